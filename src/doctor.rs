//! `bedrud doctor`: the troubleshooting tables of the Bedrud documentation, checked on this host.
//! Each check answers OK, WARN or FAIL with the cause and the fix, in the words of the tables.
//! (A too-short API secret is refused by config validation before any check runs.)

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use crate::config::{ports, Config, Mode};
use crate::host::node_ip;
use crate::livekit::binary as livekit_binary;
use crate::store::{self, Store};
use crate::supervisor;
use crate::tls::acme::AcmeStatus;
use crate::tls::certificate as tls_certificate;

const NET_TIMEOUT: Duration = Duration::from_secs(3);
/// A certificate closer to its expiry than this is worth a warning (ACME renews at a third left:
/// 30 days for Let's Encrypt).
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub level: Level,
    pub cause: String,
    /// Empty when there is nothing to fix.
    pub fix: String,
}

fn ok(check: &'static str, cause: impl Into<String>) -> Finding {
    Finding {
        check,
        level: Level::Ok,
        cause: cause.into(),
        fix: String::new(),
    }
}

fn bad(
    check: &'static str,
    level: Level,
    cause: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        check,
        level,
        cause: cause.into(),
        fix: fix.into(),
    }
}

/// Runs every check that applies to this configuration.
pub async fn run(config: &Config, env_livekit_config: bool) -> Vec<Finding> {
    let mut out = vec![livekit_config_env(env_livekit_config)];
    match &config.livekit.mode {
        Mode::Embedded(e) => {
            out.push(binary(e.binary_path.as_deref()).await);
            if bedrud_running(config).await {
                out.push(ok(
                    "LiveKit ports free",
                    "bedrud is running here: its LiveKit holds the ports",
                ));
            } else {
                out.extend(ports(config));
            }
            out.push(node_ip_reachability(config).await);
            if let Some(path) = &e.static_config {
                out.extend(static_config(path).await);
            }
            out.extend(crate::egress::doctor::checks(config).await);
            if let (true, Some(s3)) = (config.recording.enabled, &config.recording.s3) {
                out.push(s3_storage(s3).await);
            }
        }
        Mode::External => {
            out.push(internal_host(config).await);
            if config.recording.enabled {
                out.extend(external_recording(config).await);
            }
        }
    }
    out.push(webhooks(config).await);
    if let Some(files) = &config.server.tls {
        out.extend(certificate(config, &files.cert_file));
    }
    if let Some(acme) = &config.server.acme {
        out.push(acme_result(acme));
    }
    out
}

/// The certificate the API serves (and TURN/TLS reuses): readable, in date, for `server.host`,
/// and a chain in order.
fn certificate(config: &Config, file: &Path) -> Vec<Finding> {
    let check = "TLS certificate";
    let acme = config.server.acme.is_some();
    let info = match std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|pem| tls_certificate::inspect(&pem).map_err(|e| e.to_string()))
    {
        Ok(info) => info,
        Err(e) => {
            let fix = if acme {
                "Start bedrud: with server.acme it writes the certificate into <server.dataDir>/acme"
            } else {
                "Point server.certFile at the PEM certificate chain (fullchain.pem) bedrud's user can read"
            };
            return vec![bad(
                check,
                Level::Fail,
                format!("{}: {e}", file.display()),
                fix,
            )];
        }
    };
    let now = SystemTime::now();
    let expiry = humantime::format_rfc3339_seconds(info.not_after);
    let renew = if acme {
        "bedrud renews it itself: see the ACME check"
    } else {
        "Renew it (certbot renew, or enable server.acme) and restart bedrud"
    };
    let mut out = Vec::new();
    out.push(if info.not_after <= now {
        bad(
            check,
            Level::Fail,
            format!("expired at {expiry} (serial {})", info.serial),
            renew,
        )
    } else if info.not_after.duration_since(now).unwrap_or_default() < EXPIRY_WARNING {
        bad(
            check,
            Level::Warn,
            format!("expires soon, at {expiry} (serial {})", info.serial),
            renew,
        )
    } else if info.self_signed {
        let (cause, fix) = if acme {
            (
                "the self-signed placeholder: ACME has not delivered a certificate yet",
                "See the ACME check",
            )
        } else {
            (
                "self-signed: browsers refuse it, and camera and microphone need HTTPS they trust",
                "Use a CA's certificate (enable server.acme)",
            )
        };
        bad(check, Level::Warn, cause, fix)
    } else {
        ok(
            check,
            format!(
                "issued by {}, serial {}, valid until {expiry}",
                info.issuer, info.serial
            ),
        )
    });
    let name_check = "TLS certificate name";
    out.push(match ports::turn_domain(&config.server.host) {
        Err(why) => bad(
            name_check,
            Level::Warn,
            format!("{why}: browsers check the certificate against the name they were given"),
            "Set server.host to the DNS name the certificate is for",
        ),
        Ok(host) if info.covers(&host) => ok(name_check, format!("covers server.host {host}")),
        Ok(host) => bad(
            name_check,
            Level::Fail,
            format!("is for {} and not for server.host {host}", info.names.join(", ")),
            "Get a certificate for server.host (with server.acme, bedrud orders one when it starts)",
        ),
    });
    let chain_check = "TLS certificate chain";
    out.push(if !info.chain_linked {
        bad(
            chain_check,
            Level::Fail,
            "the certificates in the file are not in order (each must be issued by the next)",
            "Use the full chain file in order: the certificate, then its intermediates (fullchain.pem)",
        )
    } else if info.chain_len == 1 && !info.self_signed {
        bad(
            chain_check,
            Level::Warn,
            "the file holds the certificate without its intermediate: some clients cannot build the chain",
            "Use the full chain file (fullchain.pem, not cert.pem)",
        )
    } else {
        ok(chain_check, format!("{} certificate(s), in order", info.chain_len))
    });
    out
}

/// What the last ACME order did (from the status bedrud keeps beside the certificate).
fn acme_result(acme: &crate::config::Acme) -> Finding {
    let check = "ACME";
    let at =
        |t: u64| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string();
    let Some(status) = AcmeStatus::read(&acme.dir) else {
        return bad(
            check,
            Level::Warn,
            format!("no ACME result in {} yet", acme.dir.display()),
            "Start bedrud (systemctl start bedrud): it orders the certificate at once",
        );
    };
    let next = status
        .next_attempt
        .map(at)
        .unwrap_or_else(|| "unknown".into());
    match (&status.last_error, status.last_success) {
        (Some(e), _) => bad(
            check,
            Level::Fail,
            format!(
                "the last order for {} at {} failed: {e}; next attempt {next}",
                status.domain,
                status.last_attempt.map(at).unwrap_or_default()
            ),
            "Check that server.host's DNS record points at this host and that port 80 reaches server.acme.httpPort; bedrud retries by itself",
        ),
        (None, Some(t)) => ok(
            check,
            format!("last certificate for {} obtained at {}; renewal at {next}", status.domain, at(t)),
        ),
        (None, None) => bad(
            check,
            Level::Warn,
            format!("no order finished yet; next attempt {next}"),
            "Wait a minute, or see bedrud's log (journalctl -u bedrud)",
        ),
    }
}

fn livekit_config_env(set: bool) -> Finding {
    let check = "LIVEKIT_CONFIG environment variable";
    if set {
        bad(
            check,
            Level::Warn,
            "LIVEKIT_CONFIG is set in this environment; livekit-server reads it and it beats --config",
            "Unset LIVEKIT_CONFIG (bedrud starts LiveKit with a clean environment, but a LiveKit you run by hand would use it)",
        )
    } else {
        ok(check, "not set")
    }
}

async fn binary(configured: Option<&Path>) -> Finding {
    let check = "livekit-server binary";
    let fix = "Ensure the binary exists and is executable (scripts/install-livekit.sh, or the package's /usr/lib/bedrud/livekit-server); check bedrud's logs";
    match livekit_binary::locate(configured) {
        Err(e) => bad(
            check,
            Level::Fail,
            format!("Embedded LiveKit not starting: {e}"),
            fix,
        ),
        Ok(path) => match livekit_binary::probe_version(&path).await {
            Ok(v) => ok(check, format!("{} (version {v})", path.display())),
            Err(e) => bad(check, Level::Fail, e.to_string(), fix),
        },
    }
}

/// Whether a bedrud answers on this host's API port (then LiveKit's ports are its own).
async fn bedrud_running(config: &Config) -> bool {
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://127.0.0.1:{}/health", config.server.port);
    let Ok(client) = crate::livekit::external::client(true) else {
        return false;
    };
    matches!(client.get(&url).send().await, Ok(r) if r.status() == reqwest::StatusCode::OK)
}

/// Ports embedded LiveKit opens (`config::ports`: from bedrud's config, or from the static
/// LiveKit config), already taken by another process.
fn ports(config: &Config) -> Vec<Finding> {
    let check = "LiveKit ports free";
    let Some(e) = config.embedded() else {
        return Vec::new();
    };
    let claims = match e.static_yaml() {
        None => ports::generated(&config.server, e),
        Some(Ok(doc)) => ports::from_static(&doc),
        // The static-config check reports the file itself.
        Some(Err(_)) => return Vec::new(),
    };
    claims
        .into_iter()
        .map(|c| match supervisor::check_ports(std::slice::from_ref(&c)) {
            Ok(()) => ok(check, format!("port {} ({})", c.port, c.key)),
            Err(e) => bad(
                check,
                Level::Fail,
                format!("Port {} already in use: {e}", c.port),
                format!(
                    "Change {} or stop the other process (if bedrud itself is running, this is its LiveKit)",
                    c.setting()
                ),
            ),
        })
        .collect()
}

/// "Clients connect via relay unnecessarily: node_ip is a private IP behind NAT".
async fn node_ip_reachability(config: &Config) -> Finding {
    let check = "node_ip reachable by clients";
    let Some(e) = config.embedded() else {
        return ok(check, "external mode");
    };
    // Resolving server.host is blocking DNS: off the runtime, and bounded.
    let (configured, host) = (e.node_ip, config.server.host.clone());
    let resolve =
        tokio::task::spawn_blocking(move || node_ip::resolve(configured, &host, &node_ip::System));
    let chosen = match within(resolve).await {
        Ok(chosen) => chosen,
        Err(Slow::Failed(e)) => {
            let cause = format!("node_ip resolution failed: {e}");
            return bad(check, Level::Fail, cause, "");
        }
        Err(Slow::TimedOut) => {
            let host = &config.server.host;
            let cause = format!("resolving server.host {host} took longer than {NET_TIMEOUT:?}");
            let fix = "Check this host's DNS resolver, or set livekit.nodeIP";
            return bad(check, Level::Warn, cause, fix);
        }
    };
    let public_host = config
        .server
        .host
        .parse::<IpAddr>()
        .ok()
        .is_some_and(|ip| !is_private(&ip) && node_ip::is_usable(&ip));
    if public_host && is_private(&chosen.ip) {
        return bad(
            check,
            Level::Warn,
            format!(
                "node_ip {} (from {}) is a private address while server.host {} is public: clients behind NAT cannot reach it",
                chosen.ip, chosen.rule, config.server.host
            ),
            "Set livekit.nodeIP to the public IP (or leave it empty so server.host is used)",
        );
    }
    if chosen.ip.is_loopback() && !config.server.host.is_empty() {
        return bad(
            check,
            Level::Warn,
            format!("node_ip is {}: only this host can connect media", chosen.ip),
            "Set livekit.nodeIP to the address clients reach this host at",
        );
    }
    ok(check, format!("{} (from {})", chosen.ip, chosen.rule))
}

fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The startup crashes of the tables, found in a static LiveKit config before LiveKit hits them.
async fn static_config(path: &Path) -> Vec<Finding> {
    let check = "static LiveKit config";
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![bad(
                check,
                Level::Fail,
                format!("cannot read {}: {e}", path.display()),
                "Fix livekit.configPath",
            )]
        }
    };
    let doc: yaml_serde::Value = match yaml_serde::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            return vec![bad(
                check,
                Level::Fail,
                format!("YAML parsing error in {}: {e}", path.display()),
                "Incorrect YAML indentation or syntax: validate the file",
            )]
        }
    };
    let mut out = unknown_keys(&doc);
    if doc.get("tls").is_some() {
        out.push(bad(
            "top-level tls: key",
            Level::Fail,
            "field tls not found on startup: LiveKit v1.12+ removed the top-level tls: config field",
            "Remove the tls: block from the LiveKit YAML; use http:// / ws:// in bedrud's config",
        ));
    }
    let rtc = doc.get("rtc");
    let external_ip = rtc
        .and_then(|r| r.get("use_external_ip"))
        .and_then(|v| v.as_bool())
        == Some(true);
    if external_ip {
        out.push(bad(
            "use_external_ip",
            Level::Warn,
            "use_external_ip: true needs outbound STUN; without it LiveKit crash-loops with \"could not resolve external IP\"",
            "Set node_ip: <address> under rtc: and use_external_ip: false",
        ));
    }
    let turn = doc.get("turn");
    let tls_port = turn
        .and_then(|t| t.get("tls_port"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
        > 0;
    let field = |k: &str| {
        turn.and_then(|t| t.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let external_tls = turn
        .and_then(|t| t.get("external_tls"))
        .and_then(|v| v.as_bool())
        == Some(true);
    if tls_port
        && (field("domain").is_empty()
            || (!external_tls && (field("cert_file").is_empty() || field("key_file").is_empty())))
    {
        out.push(bad(
            "TURN TLS",
            Level::Fail,
            "LiveKit exits with \"TURN domain required\": turn.tls_port is set but no domain or TLS cert/key",
            "Add domain: under turn:, provide cert_file/key_file, or remove tls_port for UDP-only TURN",
        ));
    }
    if let Some(address) = doc
        .get("redis")
        .and_then(|r| r.get("address"))
        .and_then(|v| v.as_str())
    {
        out.push(redis(address).await);
    }
    if out.is_empty() {
        out.push(ok(
            check,
            format!("{} has none of the known startup problems", path.display()),
        ));
    }
    out
}

/// Top-level keys of livekit-server's config (v1.11–v1.13 `config.Config`); it rejects others.
const LIVEKIT_TOP_LEVEL_KEYS: &[&str] = &[
    "port",
    "bind_addresses",
    "prometheus_port",
    "prometheus",
    "debug_handler",
    "rtc",
    "redis",
    "audio",
    "video",
    "room",
    "turn",
    "ingress",
    "sip",
    "webhook",
    "node_selector",
    "key_file",
    "keys",
    "region",
    "signal_relay",
    "psrpc",
    "log_level",
    "logging",
    "limit",
    "agents",
    "development",
    "metric",
    "trace",
    "node_stats",
    "enable_data_tracks",
    "enable_participant_data_blob",
    "api",
];

fn unknown_keys(doc: &yaml_serde::Value) -> Vec<Finding> {
    let Some(map) = doc.as_mapping() else {
        return Vec::new();
    };
    map.keys()
        .filter_map(|k| k.as_str())
        // tls gets its own finding, with the version history behind it.
        .filter(|k| *k != "tls" && !LIVEKIT_TOP_LEVEL_KEYS.contains(k))
        .map(|k| {
            bad(
                "unknown LiveKit config key",
                Level::Fail,
                format!(
                    "LiveKit exits on startup with \"field {k} not found in type config.Config\""
                ),
                format!(
                    "Remove {k}: from the LiveKit YAML (LiveKit rejects keys it does not know)"
                ),
            )
        })
        .collect()
}

async fn redis(address: &str) -> Finding {
    let check = "Redis";
    let connect = async {
        let first = tokio::net::lookup_host(address).await?.next();
        let addr = first.ok_or_else(|| std::io::Error::other("no address"))?;
        tokio::net::TcpStream::connect(addr).await
    };
    let reachable = within(connect).await.is_ok();
    if reachable {
        ok(check, format!("{address} answers"))
    } else {
        bad(
            check,
            Level::Fail,
            format!("Redis connection fails: {address} is unreachable or wrong"),
            "Verify redis.address: in the LiveKit YAML; check that Redis is running and reachable",
        )
    }
}

async fn internal_host(config: &Config) -> Finding {
    let check = "LiveKit server API (internalHost)";
    let Some(url) = &config.livekit.internal_host else {
        return bad(
            check,
            Level::Fail,
            "livekit.internalHost is not set",
            "Set livekit.internalHost",
        );
    };
    let client = match crate::livekit::external::client(config.livekit.skip_tls_verify) {
        Ok(c) => c,
        Err(e) => return bad(check, Level::Fail, e.to_string(), ""),
    };
    match crate::livekit::external::check(&client, &format!("{url}/")).await {
        Ok(()) => ok(check, format!("{url} answers")),
        Err(e) if e.contains("skipTLSVerify") => bad(
            check,
            Level::Fail,
            format!("Self-signed cert errors with external LiveKit: {e}"),
            "Set skipTLSVerify: true in bedrud's livekit: config (and trust the certificate on this host for the server API)",
        ),
        Err(e) => bad(
            check,
            Level::Fail,
            format!("Admin dashboard shows \"LiveKit disconnected\": bedrud can't reach LiveKit's HTTP API: {e}"),
            format!("Verify internalHost in config; run curl {url}/ from this host; check the firewall"),
        ),
    }
}

/// External mode with `recording.enabled`: the cluster's egress must answer (`ListEgress`
/// fails with "egress not connected (redis required)" when LiveKit has no Redis), and without
/// S3 the files stay on the workers. Whether a worker is running cannot be asked without
/// starting a recording (LiveKit offers no call that reaches the workers otherwise): the start
/// endpoint's 503 says so when none answers.
async fn external_recording(config: &Config) -> Vec<Finding> {
    let check = "recording: egress (ListEgress)";
    let egress = match (&config.livekit.internal_host, &config.livekit.credentials) {
        (Some(host), Some(credentials)) => crate::recording::egress::Egress::new(host, credentials),
        _ => {
            return vec![bad(
                check,
                Level::Fail,
                "livekit.internalHost and the API key pair are needed to reach egress",
                "Set livekit.internalHost, livekit.apiKey and livekit.apiSecret",
            )]
        }
    };
    use crate::recording::EgressError;
    let mut out = vec![
        match tokio::time::timeout(NET_TIMEOUT, egress.probe()).await {
            Ok(Ok(active)) => ok(
                check,
                format!("egress answers ({active} recording(s) active)"),
            ),
            Ok(Err(EgressError::Unavailable { cause, fix })) => bad(check, Level::Fail, cause, fix),
            Ok(Err(e)) => bad(
                check,
                Level::Fail,
                e.to_string(),
                "Check LiveKit's egress setup",
            ),
            Err(_) => bad(
                check,
                Level::Fail,
                format!("LiveKit did not answer ListEgress within {NET_TIMEOUT:?}"),
                "Check LiveKit and its Redis",
            ),
        },
    ];
    let storage = "recording: storage";
    out.push(match &config.recording.s3 {
        Some(s3) => s3_storage(s3).await,
        None => bad(
            storage,
            Level::Warn,
            "no S3 configured: an egress worker on another host writes the file to its own disk \
             (the file URL is a local path on the worker), which bedrud cannot reach; only a \
             worker on this host, writing into recording.dir, works",
            "Configure S3-compatible storage (recording.s3) so egress uploads where bedrud can read",
        ),
    });
    out
}

/// `recording.s3`: the bucket answers a listing with the configured credentials (what a start
/// tries too, before it records anything).
async fn s3_storage(s3: &crate::config::S3) -> Finding {
    let check = "recording: S3 storage";
    let probed = match crate::recording::storage::Bucket::new(s3) {
        Ok(bucket) => bucket.probe().await,
        Err(e) => Err(e),
    };
    let at = s3.endpoint.as_deref().unwrap_or("AWS S3");
    match probed {
        Ok(()) => ok(check, format!("bucket {} at {at} answers", s3.bucket)),
        Err(crate::recording::StorageError::Unavailable { cause, fix }) => {
            bad(check, Level::Fail, cause, fix)
        }
        Err(e) => bad(check, Level::Fail, e.to_string(), "Check recording.s3"),
    }
}

/// "Database shows stale active participants after disconnect": webhook not configured.
/// The database is opened read-only: doctor creates no folder, no file and no table.
async fn webhooks(config: &Config) -> Finding {
    let check = "webhooks received";
    let store = match open_store_read_only(config).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return ok(
                check,
                "no database yet (bedrud has not started on this host)",
            )
        }
        Err(e) => {
            return bad(
                check,
                Level::Fail,
                format!("cannot open the database: {e:#}"),
                "Fix database.url",
            )
        }
    };
    let counts = async {
        let events = store.webhook_event_count().await?;
        let rooms = store.tracked_room_names().await?.len();
        Ok::<_, crate::store::StoreError>((events, rooms))
    };
    let counts = within(counts).await;
    store.close().await;
    let (events, rooms) = match counts {
        Ok(c) => c,
        Err(Slow::Failed(e)) => {
            let cause = format!("cannot read the webhook events from the database: {e}");
            let fix = "Check database.url and that bedrud has started once (it creates its tables)";
            return bad(check, Level::Fail, cause, fix);
        }
        Err(Slow::TimedOut) => {
            let cause = format!("the database did not answer within {NET_TIMEOUT:?}");
            let fix = "Check database.url and that the database is running";
            return bad(check, Level::Fail, cause, fix);
        }
    };
    match (events, rooms) {
        (0, r) if r > 0 => bad(
            check,
            Level::Fail,
            "bedrud knows of live meetings but no webhook has ever reached it: participants are never marked inactive",
            "Add the webhook: block to LiveKit's YAML (bedrud livekit webhook-config) and make port 443/8090 reachable from LiveKit",
        ),
        (0, _) => ok(check, "none yet (no meeting has run)"),
        (n, _) => ok(check, format!("{n} events received")),
    }
}

/// The database without creating or migrating anything: `None` when the default SQLite file
/// does not exist yet.
async fn open_store_read_only(config: &Config) -> anyhow::Result<Option<Store>> {
    let url = match &config.database_url {
        Some(u) => u.clone(),
        None => {
            let file = store::default_path(&config.server.data_dir);
            if !file.exists() {
                return Ok(None);
            }
            store::default_url(&config.server.data_dir)
        }
    };
    // The URL may hold a password: errors name the key, not the value.
    let store = Store::connect_read_only(&url)
        .await
        .context("database.url")?;
    Ok(Some(store))
}

/// Why a bounded piece of I/O gave no answer.
enum Slow {
    Failed(String),
    TimedOut,
}

/// `work` within `NET_TIMEOUT`, so that no check can hang doctor.
async fn within<T, E: std::fmt::Display>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Slow> {
    match tokio::time::timeout(NET_TIMEOUT, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Slow::Failed(e.to_string())),
        Err(_) => Err(Slow::TimedOut),
    }
}

/// The report as a human reads it.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let level = match f.level {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        out.push_str(&format!("{level}  {}: {}\n", f.check, f.cause));
        if !f.fix.is_empty() {
            out.push_str(&format!("      fix: {}\n", f.fix));
        }
    }
    out
}
