//! Stage two of loading: the checker turns the raw values into the typed [`Config`], collecting
//! every problem with its dotted key instead of stopping at the first, and never echoing a secret.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ports;
use super::raw::{
    RawAcme, RawAuth, RawConfig, RawDatabase, RawLiveKit, RawRecording, RawRooms, RawServer,
};
use super::{
    Acme, AcmeChallenge, Auth, Config, Credentials, Embedded, Env, HttpLimits, LiveKit, Mode,
    Problem, Recording, Redis, Rooms, Server, Source, Supervision, TlsFiles, Turn, MIN_SECRET_LEN,
    S3,
};
use crate::livekit::client::RoomOptions;
use crate::secret::Secret;

/// Collects problems while turning raw values into checked ones.
struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn port(&mut self, key: &str, value: i64, allow_zero: bool) -> u16 {
        let low = if allow_zero { 0 } else { 1 };
        if (low..=65535).contains(&value) {
            value as u16
        } else {
            self.fail(
                key,
                format!("must be a port number between {low} and 65535"),
            );
            0
        }
    }

    fn duration(&mut self, key: &str, value: &str) -> Duration {
        match humantime::parse_duration(value.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.fail(key, "must be longer than zero");
                Duration::from_secs(1)
            }
            Err(e) => {
                self.fail(
                    key,
                    format!("{e} (write it like \"500ms\", \"20s\" or \"2m\")"),
                );
                Duration::from_secs(1)
            }
        }
    }

    fn ip(&mut self, key: &str, value: &str) -> Option<IpAddr> {
        if value.trim().is_empty() {
            return None;
        }
        match value.trim().parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => {
                self.fail(key, "must be a concrete address, not 0.0.0.0 or ::");
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                self.fail(key, format!("\"{value}\" is not an IP address"));
                None
            }
        }
    }

    fn url(&mut self, key: &str, value: &str, schemes: &[&str]) -> Option<String> {
        let v = value.trim();
        if v.is_empty() {
            return None;
        }
        let ok = schemes.iter().any(|s| {
            v.strip_prefix(s)
                .and_then(|rest| rest.strip_prefix("://"))
                .is_some_and(|rest| !rest.is_empty())
        });
        if !ok {
            self.fail(
                key,
                format!("must be a URL starting with {}://", schemes.join(":// or ")),
            );
        }
        Some(v.trim_end_matches('/').to_string())
    }

    fn level(&mut self, key: &str, value: &str, allowed: &[&str]) -> String {
        let v = value.trim().to_ascii_lowercase();
        if !allowed.contains(&v.as_str()) {
            self.fail(key, format!("must be one of {}", allowed.join(", ")));
        }
        v
    }

    fn readable_file(&mut self, key: &str, value: &str) -> Option<PathBuf> {
        if value.trim().is_empty() {
            return None;
        }
        let p = PathBuf::from(value.trim());
        match std::fs::File::open(&p) {
            Ok(_) if p.is_file() => {}
            Ok(_) => self.fail(key, format!("{} is not a regular file", p.display())),
            Err(e) => self.fail(key, format!("cannot read {}: {e}", p.display())),
        }
        Some(p)
    }
}

pub(super) fn validate(
    raw: RawConfig,
    source: &Source,
    env: &Env,
    problems: &mut Vec<Problem>,
) -> Config {
    let mut c = Checker { problems };
    let server = validate_server(&raw.server, source, env, &mut c);
    let database_url = validate_database(&raw.database, &mut c);
    let auth = validate_auth(&raw.auth, &mut c);
    let rooms = validate_rooms(&raw.rooms, &mut c);
    let livekit = validate_livekit(raw.livekit, env, &mut c);
    let recording = validate_recording(&raw.recording, &mut c);
    let log_level = c.level(
        "log.level",
        &raw.log.level,
        &["trace", "debug", "info", "warn", "error"],
    );
    check_port_clashes(&server, &livekit, &mut c);
    Config {
        source: source.clone(),
        server,
        database_url,
        auth,
        rooms,
        livekit,
        recording,
        log_level,
    }
}

fn validate_server(raw: &RawServer, source: &Source, env: &Env, c: &mut Checker) -> Server {
    let bind_address = raw.bind_address.trim().parse().unwrap_or_else(|_| {
        c.fail(
            "server.bindAddress",
            format!("\"{}\" is not an IP address", raw.bind_address),
        );
        IpAddr::from([127, 0, 0, 1])
    });
    let port = c.port("server.port", raw.port, true);
    // Under systemd, StateDirectory= is the authority unless the file names a folder itself.
    let data_dir = match (&env.state_directory, raw.data_dir.as_str()) {
        (Some(dir), d) if d == RawServer::default().data_dir || *source == Source::Development => {
            dir.clone()
        }
        (_, d) if d.trim().is_empty() => {
            c.fail("server.dataDir", "must not be empty");
            PathBuf::new()
        }
        (_, d) => PathBuf::from(d),
    };
    let acme = validate_acme(raw, &data_dir, c);
    let tls = if let Some(acme) = &acme {
        Some(acme.files())
    } else if raw.enable_tls {
        let cert = c.readable_file("server.certFile", &raw.cert_file);
        let key = c.readable_file("server.keyFile", &raw.key_file);
        if cert.is_none() {
            c.fail(
                "server.certFile",
                "is required when server.enableTLS is true",
            );
        }
        if key.is_none() {
            c.fail(
                "server.keyFile",
                "is required when server.enableTLS is true",
            );
        }
        cert.zip(key).map(|(cert_file, key_file)| TlsFiles {
            cert_file,
            key_file,
        })
    } else {
        None
    };
    let max_connections = raw.max_connections;
    if !(1..=1_000_000).contains(&max_connections) {
        c.fail("server.maxConnections", "must be between 1 and 1000000");
    }
    Server {
        host: raw.host.trim().to_string(),
        bind_address,
        port,
        tls,
        data_dir,
        watch_config: raw.watch_config,
        limits: HttpLimits {
            header_timeout: c.duration("server.headerTimeout", &raw.header_timeout),
            body_timeout: c.duration("server.bodyTimeout", &raw.body_timeout),
            max_connections: max_connections.clamp(1, 1_000_000) as usize,
        },
        acme,
    }
}

fn validate_acme(server: &RawServer, data_dir: &std::path::Path, c: &mut Checker) -> Option<Acme> {
    let raw: &RawAcme = &server.acme;
    if !raw.enabled {
        return None;
    }
    if !server.enable_tls {
        c.fail(
            "server.acme.enabled",
            "needs server.enableTLS: true (ACME obtains the certificate the API serves)",
        );
    }
    for (key, value) in [
        ("server.certFile", &server.cert_file),
        ("server.keyFile", &server.key_file),
    ] {
        if !value.trim().is_empty() {
            c.fail(
                key,
                "must be empty when server.acme.enabled is true (ACME keeps its certificate in the data folder)",
            );
        }
    }
    let domain = match ports::turn_domain(&server.host) {
        Ok(domain) => domain,
        Err(why) => {
            c.fail(
                "server.host",
                format!("{why}: server.acme needs the public DNS name of this host"),
            );
            String::new()
        }
    };
    let email = raw.email.trim();
    let contact = if email.is_empty() {
        Vec::new()
    } else {
        let ok = email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !email.chars().any(|ch| ch.is_whitespace() || ch == ',');
        if !ok {
            c.fail(
                "server.acme.email",
                format!("\"{email}\" is not an e-mail address"),
            );
        }
        vec![format!("mailto:{email}")]
    };
    let directory_url = c
        .url("server.acme.directoryUrl", &raw.directory_url, &["https"])
        .unwrap_or_else(|| {
            c.fail("server.acme.directoryUrl", "must not be empty");
            String::new()
        });
    let challenge = match raw.challenge.trim().to_ascii_lowercase().as_str() {
        "http-01" => AcmeChallenge::Http01,
        "tls-alpn-01" => {
            c.fail(
                "server.acme.challenge",
                "tls-alpn-01 is not supported yet; use http-01 (needs server.acme.httpPort, 80 for a public CA)",
            );
            AcmeChallenge::Http01
        }
        _ => {
            c.fail("server.acme.challenge", "must be http-01");
            AcmeChallenge::Http01
        }
    };
    let http_port = c.port("server.acme.httpPort", raw.http_port, false);
    if challenge == AcmeChallenge::Http01 && i64::from(http_port) == server.port {
        c.fail(
            "server.acme.httpPort",
            format!("TCP port {http_port} is already used by server.port"),
        );
    }
    Some(Acme {
        domain,
        contact,
        directory_url,
        directory_ca_file: c.readable_file("server.acme.directoryCaFile", &raw.directory_ca_file),
        challenge,
        http_port,
        dir: data_dir.join("acme"),
    })
}

fn validate_database(raw: &RawDatabase, c: &mut Checker) -> Option<String> {
    let url = raw.url.trim();
    if url.is_empty() {
        return None;
    }
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if !known.iter().any(|k| url.starts_with(k)) {
        // The URL may carry a password: name the scheme problem without echoing it.
        c.fail(
            "database.url",
            "must start with sqlite:, postgres:// or postgresql://",
        );
    }
    Some(url.to_string())
}

fn validate_auth(raw: &RawAuth, c: &mut Checker) -> Auth {
    let secret = Secret::new(raw.jwt_secret.trim());
    if !secret.is_empty() && secret.char_len() < MIN_SECRET_LEN {
        c.fail(
            "auth.jwtSecret",
            format!(
                "must be at least {MIN_SECRET_LEN} characters (it has {})",
                secret.char_len()
            ),
        );
    }
    let attempts = raw.login_attempts_per_minute;
    if !(1..=10_000).contains(&attempts) {
        c.fail("auth.loginAttemptsPerMinute", "must be between 1 and 10000");
    }
    let sign_ups = raw.registrations_per_minute;
    if !(1..=10_000).contains(&sign_ups) {
        c.fail("auth.registrationsPerMinute", "must be between 1 and 10000");
    }
    Auth {
        jwt_secret: (!secret.is_empty()).then_some(secret),
        access_token_ttl: c.duration("auth.accessTokenTtl", &raw.access_token_ttl),
        refresh_token_ttl: c.duration("auth.refreshTokenTtl", &raw.refresh_token_ttl),
        allow_registration: raw.allow_registration,
        login_attempts_per_minute: attempts.clamp(1, 10_000) as u32,
        registrations_per_minute: sign_ups.clamp(1, 10_000) as u32,
    }
}

fn validate_rooms(raw: &RawRooms, c: &mut Checker) -> Rooms {
    let max = raw.default_max_participants;
    if !(1..=100_000).contains(&max) {
        c.fail(
            "rooms.defaultMaxParticipants",
            "must be between 1 and 100000",
        );
    }
    Rooms {
        join_token_ttl: c.duration("rooms.joinTokenTtl", &raw.join_token_ttl),
        allow_guests: raw.allow_guests,
        default_max_participants: max.clamp(1, 100_000) as u32,
        reconcile_interval: c.duration("rooms.reconcileInterval", &raw.reconcile_interval),
        livekit_room: RoomOptions {
            empty_timeout: c.duration("rooms.emptyTimeout", &raw.empty_timeout),
            departure_timeout: c.duration("rooms.departureTimeout", &raw.departure_timeout),
        },
    }
}

fn validate_recording(raw: &RawRecording, c: &mut Checker) -> Recording {
    let path = |v: &str| (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()));
    if !(0..=36_500).contains(&raw.retain_days) {
        c.fail("recording.retainDays", "must be between 0 (keep) and 36500");
    }
    let retain = (raw.retain_days > 0)
        .then(|| Duration::from_secs(raw.retain_days.clamp(0, 36_500) as u64 * 86_400));
    if !(raw.egress_cpu_cost > 0.0 && raw.egress_cpu_cost <= 64.0) {
        c.fail(
            "recording.egressCpuCost",
            "must be a number of CPU cores above 0 and at most 64",
        );
    }
    let r = &raw.redis;
    let redis = if r.address.trim().is_empty() {
        for (key, set) in [
            ("recording.redis.username", !r.username.trim().is_empty()),
            ("recording.redis.password", !r.password.is_empty()),
            ("recording.redis.db", r.db != 0),
        ] {
            if set {
                c.fail(key, "is set but recording.redis.address is empty");
            }
        }
        None
    } else {
        if !(0..=15).contains(&r.db) {
            c.fail("recording.redis.db", "must be between 0 and 15");
        }
        if !r.address.contains(':') {
            c.fail("recording.redis.address", "must be host:port");
        }
        let username = r.username.trim();
        Some(Redis {
            address: r.address.trim().to_string(),
            username: (!username.is_empty()).then(|| username.to_string()),
            password: (!r.password.is_empty()).then(|| Secret::new(r.password.as_str())),
            db: r.db.clamp(0, 15) as u32,
        })
    };
    let s = &raw.s3;
    let s3 = if s.bucket.trim().is_empty() {
        for (key, set) in [
            ("recording.s3.endpoint", !s.endpoint.trim().is_empty()),
            ("recording.s3.accessKey", !s.access_key.trim().is_empty()),
            ("recording.s3.secretKey", !s.secret_key.is_empty()),
        ] {
            if set {
                c.fail(key, "is set but recording.s3.bucket is empty");
            }
        }
        None
    } else {
        for (key, value) in [
            ("recording.s3.accessKey", s.access_key.trim()),
            ("recording.s3.secretKey", s.secret_key.trim()),
            ("recording.s3.region", s.region.trim()),
        ] {
            if value.is_empty() {
                c.fail(key, "is required when recording.s3.bucket is set");
            }
        }
        let prefix = s.prefix.trim().trim_start_matches('/');
        if !plain_key_prefix(prefix) {
            c.fail(
                "recording.s3.prefix",
                "may hold only letters, digits and - _ . /, with no empty, . or .. part \
                 (e.g. recordings/)",
            );
        }
        Some(S3 {
            endpoint: c.url("recording.s3.endpoint", &s.endpoint, &["http", "https"]),
            region: s.region.trim().to_string(),
            bucket: s.bucket.trim().to_string(),
            prefix: prefix.to_string(),
            access_key: s.access_key.trim().to_string(),
            secret_key: Secret::new(s.secret_key.trim()),
            force_path_style: s.force_path_style,
        })
    };
    Recording {
        enabled: raw.enabled,
        dir: path(&raw.dir),
        retain,
        egress_binary_path: path(&raw.egress_binary_path),
        redis_binary_path: path(&raw.redis_binary_path),
        egress_cpu_cost: raw.egress_cpu_cost,
        redis,
        s3,
    }
}

/// An object-key prefix that egress (which uploads to it as written) and bedrud's S3 client
/// (which normalises keys: no empty parts, some characters percent-encoded) see as the same
/// key: plain characters, no `//`, no `.` or `..` parts.
fn plain_key_prefix(prefix: &str) -> bool {
    let plain = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    let mut parts: Vec<&str> = prefix.split('/').collect();
    if prefix.ends_with('/') {
        parts.pop();
    }
    plain
        && (prefix.is_empty()
            || parts
                .iter()
                .all(|p| !p.is_empty() && *p != "." && *p != ".."))
}

fn validate_livekit(raw: RawLiveKit, env: &Env, c: &mut Checker) -> LiveKit {
    let external = external_flag(raw.external, raw.embedded, c);
    let host = c.url("livekit.host", &raw.host, &["ws", "wss"]);
    let internal_host = c.url(
        "livekit.internalHost",
        &raw.internal_host,
        &["http", "https"],
    );
    let credentials = credentials(&raw.api_key, &raw.api_secret, external, c);
    let mode = if external {
        for (key, value) in [
            ("livekit.host", &host),
            ("livekit.internalHost", &internal_host),
        ] {
            if value.is_none() {
                c.fail(key, "is required when livekit.external is true");
            }
        }
        if !raw.config_path.trim().is_empty() {
            c.fail(
                "livekit.configPath",
                "only applies to embedded LiveKit (livekit.external is true)",
            );
        }
        Mode::External
    } else {
        Mode::Embedded(validate_embedded(&raw, env, c))
    };
    LiveKit {
        mode,
        host,
        internal_host,
        credentials,
        skip_tls_verify: raw.skip_tls_verify,
    }
}

/// `external: true` and `embedded: false` mean the same; saying both ways differently is an error.
fn external_flag(external: Option<bool>, embedded: Option<bool>, c: &mut Checker) -> bool {
    match (external, embedded) {
        (Some(x), Some(e)) if x == e => {
            c.fail(
                "livekit.embedded",
                format!(
                    "contradicts livekit.external (external: {x} and embedded: {e}); set only one"
                ),
            );
            x
        }
        (Some(x), _) => x,
        (None, Some(e)) => !e,
        (None, None) => false,
    }
}

fn credentials(key: &str, secret: &str, external: bool, c: &mut Checker) -> Option<Credentials> {
    let key = key.trim();
    let secret = Secret::new(secret.trim());
    match (key.is_empty(), secret.is_empty()) {
        (true, true) => {
            if external {
                c.fail(
                    "livekit.apiKey",
                    "is required when livekit.external is true",
                );
                c.fail(
                    "livekit.apiSecret",
                    "is required when livekit.external is true",
                );
            }
            None
        }
        (true, false) => {
            c.fail(
                "livekit.apiKey",
                "is required when livekit.apiSecret is set",
            );
            None
        }
        (false, true) => {
            c.fail(
                "livekit.apiSecret",
                "is required when livekit.apiKey is set",
            );
            None
        }
        (false, false) => {
            if secret.char_len() < MIN_SECRET_LEN {
                c.fail(
                    "livekit.apiSecret",
                    format!(
                        "must be at least {MIN_SECRET_LEN} characters (it has {})",
                        secret.char_len()
                    ),
                );
            }
            if key.chars().any(|ch| ch.is_whitespace() || ch == ':') {
                c.fail("livekit.apiKey", "must not contain spaces or ':'");
            }
            Some(Credentials {
                api_key: key.to_string(),
                api_secret: secret,
            })
        }
    }
}

fn validate_embedded(raw: &RawLiveKit, env: &Env, c: &mut Checker) -> Embedded {
    let static_config = match env.livekit_config_path.as_ref() {
        Some(p) => c.readable_file("LIVEKIT_CONFIG_PATH", &p.to_string_lossy()),
        None => c.readable_file("livekit.configPath", &raw.config_path),
    };
    let range_start = c.port("livekit.rtcPortRangeStart", raw.rtc_port_range_start, false);
    let range_end = c.port("livekit.rtcPortRangeEnd", raw.rtc_port_range_end, false);
    if range_start > range_end {
        c.fail(
            "livekit.rtcPortRangeEnd",
            format!("must not be below livekit.rtcPortRangeStart ({range_start})"),
        );
    }
    let turn = Turn {
        enabled: raw.turn_enabled,
        udp_port: c.port("livekit.turnUdpPort", raw.turn_udp_port, false),
        tls_port: c.port("livekit.turnTlsPort", raw.turn_tls_port, false),
    };
    if turn.enabled && (range_start..=range_end).contains(&turn.udp_port) {
        c.fail(
            "livekit.turnUdpPort",
            format!(
                "{} lies inside the RTC UDP port range {range_start}-{range_end}",
                turn.udp_port
            ),
        );
    }
    Embedded {
        node_ip: c.ip("livekit.nodeIP", &raw.node_ip),
        static_config,
        port: c.port("livekit.port", raw.port, false),
        binary_path: (!raw.binary_path.trim().is_empty())
            .then(|| PathBuf::from(raw.binary_path.trim())),
        rtc_tcp_port: c.port("livekit.rtcTcpPort", raw.rtc_tcp_port, false),
        rtc_port_range: (range_start, range_end),
        rtc_interfaces: raw
            .rtc_interfaces
            .iter()
            .map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty())
            .collect(),
        turn,
        webhook_url: c.url("livekit.webhookUrl", &raw.webhook_url, &["http", "https"]),
        log_level: c.level(
            "livekit.logLevel",
            &raw.log_level,
            &["debug", "info", "warn", "error"],
        ),
        supervision: Supervision {
            stop_grace_period: c.duration("livekit.stopGracePeriod", &raw.stop_grace_period),
            restart_delay: c.duration("livekit.restartDelay", &raw.restart_delay),
            restart_delay_max: c.duration("livekit.restartDelayMax", &raw.restart_delay_max),
            stable_after: c.duration("livekit.stableAfter", &raw.stable_after),
            ready_timeout: c.duration("livekit.readyTimeout", &raw.ready_timeout),
        },
    }
}

/// Two listeners on one TCP port would only fail at run time, far from the key that caused it.
/// LiveKit's ports are the ones `ports::generated` says it opens (a static LiveKit config is
/// the administrator's own file, not checked here).
fn check_port_clashes(server: &Server, livekit: &LiveKit, c: &mut Checker) {
    let Mode::Embedded(e) = &livekit.mode else {
        return;
    };
    if e.static_config.is_some() {
        return;
    }
    let api = (server.port != 0).then_some(("server.port", server.port));
    let acme_http = server
        .acme
        .as_ref()
        .filter(|a| a.challenge == AcmeChallenge::Http01)
        .map(|a| ("server.acme.httpPort", a.http_port));
    let livekit_tcp = ports::generated(server, e)
        .into_iter()
        .filter(|p| !p.udp)
        .map(|p| (p.key, p.port));
    let mut tcp: BTreeMap<u16, &str> = BTreeMap::new();
    for (key, port) in api.into_iter().chain(acme_http).chain(livekit_tcp) {
        if port == 0 {
            continue;
        }
        if let Some(first) = tcp.insert(port, key) {
            c.fail(key, format!("TCP port {port} is already used by {first}"));
            tcp.insert(port, first);
        }
    }
}
