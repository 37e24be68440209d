//! Loads `config.yaml` in two stages: a raw serde form with defaults, then a checked `Config`.
//! Every problem is collected and reported at once with its key path; secrets are never echoed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::Secret;

/// Where bedrud looks when neither `--config` nor `$BEDRUD_CONFIG` names a file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/bedrud/config.yaml";
/// LiveKit rejects shorter secrets in production, and short HMAC keys are weak.
pub const MIN_SECRET_LEN: usize = 32;

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// No file anywhere: development defaults (loopback only, local data folder).
    Development,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Development => f.write_str("development defaults (no config file)"),
        }
    }
}

/// One thing wrong with the configuration, named by its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} (from {origin}) does not exist")]
    Missing { path: PathBuf, origin: &'static str },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{} problem(s) in {origin}:\n{}", problems.len(), list(problems))]
    Invalid {
        origin: Source,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The environment variables that take part in loading, gathered so tests can supply their own.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub bedrud_config: Option<PathBuf>,
    pub livekit_config_path: Option<PathBuf>,
    /// systemd's `StateDirectory=` hands us this; it wins over the built-in data folder default.
    pub state_directory: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            bedrud_config: path("BEDRUD_CONFIG"),
            livekit_config_path: path("LIVEKIT_CONFIG_PATH"),
            // systemd may pass several colon-separated folders; the first is ours.
            state_directory: path("STATE_DIRECTORY").and_then(|p| {
                p.to_str()
                    .and_then(|s| s.split(':').next())
                    .map(PathBuf::from)
            }),
        }
    }
}

/// `--config PATH`, else `$BEDRUD_CONFIG`, else `/etc/bedrud/config.yaml` if present, else defaults.
pub fn locate(cli: Option<&Path>, env: &Env) -> Result<Source, ConfigError> {
    if let Some(p) = cli {
        return existing(p, "--config");
    }
    if let Some(p) = &env.bedrud_config {
        return existing(p, "$BEDRUD_CONFIG");
    }
    let default = Path::new(DEFAULT_CONFIG_PATH);
    if default.exists() {
        return Ok(Source::File(default.to_path_buf()));
    }
    Ok(Source::Development)
}

fn existing(p: &Path, origin: &'static str) -> Result<Source, ConfigError> {
    if p.exists() {
        Ok(Source::File(p.to_path_buf()))
    } else {
        Err(ConfigError::Missing {
            path: p.to_path_buf(),
            origin,
        })
    }
}

/// Reads and validates the configuration from `source`.
pub fn load(source: &Source, env: &Env) -> Result<Config, ConfigError> {
    let text = match source {
        Source::File(path) => std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.clone(),
            source: e,
        })?,
        Source::Development => String::new(),
    };
    parse(&text, source, env)
}

/// Parses YAML text as a config from `source` (used directly by tests).
pub fn parse(text: &str, source: &Source, env: &Env) -> Result<Config, ConfigError> {
    let development = *source == Source::Development;
    let (raw, unknown) = parse_raw(text, development).map_err(|message| ConfigError::Syntax {
        path: source.to_string(),
        message,
    })?;
    let mut problems: Vec<Problem> = unknown
        .into_iter()
        .map(|key| Problem {
            key,
            message: "unknown key".into(),
        })
        .collect();
    let config = validate(raw, source, env, &mut problems);
    match problems.is_empty() {
        true => Ok(config),
        false => Err(ConfigError::Invalid {
            origin: source.clone(),
            problems,
        }),
    }
}

fn parse_raw(text: &str, development: bool) -> Result<(RawConfig, Vec<String>), String> {
    let mut unknown = Vec::new();
    if text.trim().is_empty() {
        return Ok((RawConfig::defaults(development), unknown));
    }
    let de = yaml_serde::Deserializer::from_str(text);
    let raw: Option<RawConfig> = serde_ignored::deserialize(de, |path| {
        // The document root is an Option, which serde_ignored writes as "?".
        let p = path.to_string();
        unknown.push(p.strip_prefix("?.").unwrap_or(&p).to_string());
    })
    .map_err(|e| e.to_string())?;
    let mut raw = raw.unwrap_or_default();
    if development {
        raw.apply_development_defaults();
    }
    Ok((raw, unknown))
}

// ---------------------------------------------------------------------------------------------
// Stage one: the raw file, as written, with defaults.

// Serialize is only used to list the known keys (the example-config test).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct RawConfig {
    server: RawServer,
    database: RawDatabase,
    auth: RawAuth,
    rooms: RawRooms,
    livekit: RawLiveKit,
    log: RawLog,
}

impl RawConfig {
    fn defaults(development: bool) -> Self {
        let mut raw = RawConfig::default();
        if development {
            raw.apply_development_defaults();
        }
        raw
    }

    /// With no config file at all: listen on loopback only and keep data in the working folder,
    /// so that a newcomer can try bedrud in one command without exposing anything.
    fn apply_development_defaults(&mut self) {
        if self.server.bind_address == RawServer::default().bind_address {
            self.server.bind_address = "127.0.0.1".into();
        }
        if self.server.data_dir == RawServer::default().data_dir {
            self.server.data_dir = "bedrud-data".into();
        }
        if self.livekit.node_ip.is_empty() {
            self.livekit.node_ip = "127.0.0.1".into();
        }
        if self.livekit.rtc_interfaces.is_empty() {
            self.livekit.rtc_interfaces = vec!["lo".into()];
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
struct RawServer {
    host: String,
    bind_address: String,
    port: i64,
    #[serde(rename = "enableTLS")]
    enable_tls: bool,
    cert_file: String,
    key_file: String,
    data_dir: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            host: String::new(),
            bind_address: "0.0.0.0".into(),
            port: 8090,
            enable_tls: false,
            cert_file: String::new(),
            key_file: String::new(),
            data_dir: "/var/lib/bedrud".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
struct RawLiveKit {
    external: Option<bool>,
    embedded: Option<bool>,
    host: String,
    internal_host: String,
    #[serde(deserialize_with = "scalar_string")]
    api_key: String,
    #[serde(deserialize_with = "scalar_string")]
    api_secret: String,
    #[serde(rename = "skipTLSVerify")]
    skip_tls_verify: bool,
    #[serde(rename = "nodeIP")]
    node_ip: String,
    config_path: String,
    port: i64,
    binary_path: String,
    rtc_tcp_port: i64,
    rtc_port_range_start: i64,
    rtc_port_range_end: i64,
    rtc_interfaces: Vec<String>,
    turn_enabled: bool,
    turn_udp_port: i64,
    turn_tls_port: i64,
    webhook_url: String,
    log_level: String,
    stop_grace_period: String,
    restart_delay: String,
    restart_delay_max: String,
    stable_after: String,
    ready_timeout: String,
}

impl Default for RawLiveKit {
    fn default() -> Self {
        RawLiveKit {
            external: None,
            embedded: None,
            host: String::new(),
            internal_host: String::new(),
            api_key: String::new(),
            api_secret: String::new(),
            skip_tls_verify: false,
            node_ip: String::new(),
            config_path: String::new(),
            port: 7880,
            binary_path: String::new(),
            rtc_tcp_port: 7881,
            rtc_port_range_start: 50000,
            rtc_port_range_end: 60000,
            rtc_interfaces: Vec::new(),
            turn_enabled: true,
            turn_udp_port: 3478,
            turn_tls_port: 5349,
            webhook_url: String::new(),
            log_level: "info".into(),
            stop_grace_period: "20s".into(),
            restart_delay: "500ms".into(),
            restart_delay_max: "30s".into(),
            stable_after: "60s".into(),
            ready_timeout: "60s".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct RawDatabase {
    url: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
struct RawAuth {
    #[serde(deserialize_with = "scalar_string")]
    jwt_secret: String,
    access_token_ttl: String,
    refresh_token_ttl: String,
    allow_registration: bool,
    login_attempts_per_minute: i64,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            jwt_secret: String::new(),
            access_token_ttl: "15m".into(),
            refresh_token_ttl: "30days".into(),
            allow_registration: true,
            login_attempts_per_minute: 10,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
struct RawRooms {
    join_token_ttl: String,
    allow_guests: bool,
    default_max_participants: i64,
    reconcile_interval: String,
}

impl Default for RawRooms {
    fn default() -> Self {
        RawRooms {
            join_token_ttl: "10m".into(),
            allow_guests: true,
            default_max_participants: 50,
            reconcile_interval: "30s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
struct RawLog {
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
        }
    }
}

/// Accepts any YAML scalar as a string, so that a numeric-looking secret is neither rejected
/// nor echoed back in a type error.
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Scalar;
    impl serde::de::Visitor<'_> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i128<E>(self, v: i128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u128<E>(self, v: u128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(Scalar)
}

// ---------------------------------------------------------------------------------------------
// Stage two: the checked configuration the rest of bedrud uses.

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub server: Server,
    /// `database.url`; `None` = SQLite in the data folder.
    pub database_url: Option<String>,
    pub auth: Auth,
    pub rooms: Rooms,
    pub livekit: LiveKit,
    /// bedrud's own log level (`log.level`).
    pub log_level: String,
}

#[derive(Debug, Clone)]
pub struct Server {
    /// Public name or IP of this host (`server.host`); may be empty.
    pub host: String,
    pub bind_address: IpAddr,
    /// 0 asks the OS for a free port (tests); the bound port is what the app reports.
    pub port: u16,
    pub tls: Option<TlsFiles>,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Auth {
    /// Signs bedrud's own access tokens; `None` = generated and kept in the data folder.
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub allow_registration: bool,
    pub login_attempts_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct Rooms {
    /// Lifetime of a LiveKit join token: long enough to connect, short enough to be useless later.
    pub join_token_ttl: Duration,
    pub allow_guests: bool,
    pub default_max_participants: u32,
    pub reconcile_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct LiveKit {
    pub mode: Mode,
    /// URL given to clients (ws:// or wss://); `None` = derived from the embedded port.
    pub host: Option<String>,
    /// Server-to-server URL; `None` = derived from the embedded port.
    pub internal_host: Option<String>,
    /// `None` in embedded mode means "generate and keep in the data folder".
    pub credentials: Option<Credentials>,
    pub skip_tls_verify: bool,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub api_key: String,
    pub api_secret: Secret,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    Embedded(Embedded),
    External,
}

#[derive(Debug, Clone)]
pub struct Embedded {
    pub node_ip: Option<IpAddr>,
    /// A static LiveKit YAML to run unchanged (`livekit.configPath` / `$LIVEKIT_CONFIG_PATH`).
    pub static_config: Option<PathBuf>,
    pub port: u16,
    pub binary_path: Option<PathBuf>,
    pub rtc_tcp_port: u16,
    pub rtc_port_range: (u16, u16),
    /// Interfaces LiveKit gathers ICE candidates on (`rtc.interfaces.includes`); empty = all.
    pub rtc_interfaces: Vec<String>,
    pub turn: Turn,
    pub webhook_url: Option<String>,
    pub log_level: String,
    pub supervision: Supervision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub enabled: bool,
    pub udp_port: u16,
    pub tls_port: u16,
}

/// Timings of the supervisor; defaults suit production, tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    pub stop_grace_period: Duration,
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    pub stable_after: Duration,
    pub ready_timeout: Duration,
}

impl Config {
    pub fn embedded(&self) -> Option<&Embedded> {
        match &self.livekit.mode {
            Mode::Embedded(e) => Some(e),
            Mode::External => None,
        }
    }
}

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

fn validate(raw: RawConfig, source: &Source, env: &Env, problems: &mut Vec<Problem>) -> Config {
    let mut c = Checker { problems };
    let server = validate_server(&raw.server, source, env, &mut c);
    let database_url = validate_database(&raw.database, &mut c);
    let auth = validate_auth(&raw.auth, &mut c);
    let rooms = validate_rooms(&raw.rooms, &mut c);
    let livekit = validate_livekit(raw.livekit, env, &mut c);
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
    let tls = if raw.enable_tls {
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
    Server {
        host: raw.host.trim().to_string(),
        bind_address,
        port,
        tls,
        data_dir,
    }
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
    Auth {
        jwt_secret: (!secret.is_empty()).then_some(secret),
        access_token_ttl: c.duration("auth.accessTokenTtl", &raw.access_token_ttl),
        refresh_token_ttl: c.duration("auth.refreshTokenTtl", &raw.refresh_token_ttl),
        allow_registration: raw.allow_registration,
        login_attempts_per_minute: attempts.clamp(1, 10_000) as u32,
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
    }
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
fn check_port_clashes(server: &Server, livekit: &LiveKit, c: &mut Checker) {
    let Mode::Embedded(e) = &livekit.mode else {
        return;
    };
    if e.static_config.is_some() {
        return;
    }
    let mut tcp: BTreeMap<u16, &str> = BTreeMap::new();
    let mut claims = vec![
        ("livekit.port", e.port),
        ("livekit.rtcTcpPort", e.rtc_tcp_port),
    ];
    if server.port != 0 {
        claims.insert(0, ("server.port", server.port));
    }
    if e.turn.enabled && server.tls.is_some() {
        claims.push(("livekit.turnTlsPort", e.turn.tls_port));
    }
    for (key, port) in claims {
        if port == 0 {
            continue;
        }
        if let Some(first) = tcp.insert(port, key) {
            c.fail(key, format!("TCP port {port} is already used by {first}"));
            tcp.insert(port, first);
        }
    }
}

#[cfg(test)]
mod tests;
