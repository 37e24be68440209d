//! Loads `config.yaml` in two stages: a raw serde form with defaults, then a checked `Config`.
//! Every problem is collected and reported at once with its key path; secrets are never echoed.
//!
//! - this file: where the file is found (`locate`), loading (`load`, `parse`), the errors, and the
//!   typed [`Config`] the rest of bedrud reads;
//! - `raw`: stage one, the file as written, with defaults (serde);
//! - `check`: stage two, the checker that turns raw values into a `Config`, one problem per key;
//! - `ports`: settings derived from the checked config: the ports LiveKit opens.

mod check;
pub mod ports;
mod raw;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;
use check::validate;
use raw::parse_raw;
#[cfg(test)]
use raw::RawConfig;

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
    let (raw, mut problems) =
        parse_raw(text, development).map_err(|message| ConfigError::Syntax {
            path: source.to_string(),
            message,
        })?;
    let config = validate(raw, source, env, &mut problems);
    match problems.is_empty() {
        true => Ok(config),
        false => Err(ConfigError::Invalid {
            origin: source.clone(),
            problems,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The checked configuration the rest of bedrud uses.

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub server: Server,
    /// `database.url`; `None` = SQLite in the data folder.
    pub database_url: Option<String>,
    pub auth: Auth,
    pub rooms: Rooms,
    pub livekit: LiveKit,
    pub recording: Recording,
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
    /// With `server.acme.enabled`, the files ACME keeps in the data folder.
    pub tls: Option<TlsFiles>,
    pub data_dir: PathBuf,
    pub limits: HttpLimits,
    /// Reload by itself when the config file or the TLS certificate/key change
    /// (`server.watchConfig`).
    pub watch_config: bool,
    /// `server.acme`, when enabled: bedrud obtains and renews the certificate in `tls` itself.
    pub acme: Option<Acme>,
}

/// Automatic HTTPS (`server.acme`): where to ask for the certificate of `domain`, and how to
/// prove control of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    /// `server.host`: the one name the certificate is for.
    pub domain: String,
    /// `mailto:` URLs from `server.acme.email`; may be empty.
    pub contact: Vec<String>,
    pub directory_url: String,
    /// A PEM CA that signs the directory's HTTPS certificate, instead of the system roots
    /// (a test CA such as Pebble's).
    pub directory_ca_file: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    /// HTTP-01: the port that serves `/.well-known/acme-challenge/` (80 for a real CA).
    pub http_port: u16,
    /// `<dataDir>/acme`: account key, certificate, key and the last result, all 0600.
    pub dir: PathBuf,
}

impl Acme {
    /// ACME keeps the certificate and key it obtains in its own folder; the API and TURN/TLS
    /// read them from there like files an administrator named.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert_file: self.dir.join("certificate.pem"),
            key_file: self.dir.join("key.pem"),
        }
    }
}

/// How bedrud proves to the CA that it answers for `server.host`. (TLS-ALPN-01 on the API port
/// needs a certificate resolver on the API listener; not built yet, so the checker refuses it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A plain-HTTP listener on `server.acme.httpPort` answers the CA.
    Http01,
}

impl AcmeChallenge {
    pub fn name(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// What one client connection may cost: how long it may take to send a request's header and
/// body, how long it may sit idle between requests, and how many connections are open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Auth {
    /// Signs bedrud's own access tokens; `None` = generated and kept in the data folder.
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub allow_registration: bool,
    pub login_attempts_per_minute: u32,
    /// Sign-ups per client address per minute.
    pub registrations_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct Rooms {
    /// Lifetime of a LiveKit join token: long enough to connect, short enough to be useless later.
    pub join_token_ttl: Duration,
    pub allow_guests: bool,
    pub default_max_participants: u32,
    pub reconcile_interval: Duration,
    /// How LiveKit treats the rooms bedrud creates (`rooms.emptyTimeout`, `rooms.departureTimeout`).
    pub livekit_room: crate::livekit::client::RoomOptions,
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

/// Recording with LiveKit Egress (`recording.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// `recording.enabled`: the API records; in embedded mode bedrud also runs Redis (unless
    /// `redis` names one) and the egress worker.
    pub enabled: bool,
    /// `recording.dir`: where finished local recordings are kept; `None` = `<dataDir>/recordings`
    /// (use [`Config::recordings_dir`]).
    pub dir: Option<PathBuf>,
    /// `recording.retainDays`: recordings older than this are deleted; `None` keeps them.
    pub retain: Option<Duration>,
    /// `recording.egressBinaryPath`: the egress worker; `None` = `egress` found like LiveKit's binary.
    pub egress_binary_path: Option<PathBuf>,
    /// `recording.redisBinaryPath`: `redis-server`; `None` = found on the usual paths.
    pub redis_binary_path: Option<PathBuf>,
    /// `recording.egressCpuCost`: CPU cores egress' resource guard reserves per recording
    /// (its defaults assume large machines).
    pub egress_cpu_cost: f64,
    /// `recording.redis.address` set: an existing Redis that LiveKit and egress share;
    /// `None` in embedded mode = bedrud runs its own on loopback with a generated password.
    pub redis: Option<Redis>,
    /// `recording.s3.bucket` set: egress uploads there and bedrud reads from there;
    /// `None` = local files in `dir`.
    pub s3: Option<S3>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redis {
    /// `host:port`.
    pub address: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub db: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3 {
    /// `recording.s3.endpoint`: an S3-compatible server's URL; `None` = AWS for `region`.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Object keys start with this (`recordings/` by default).
    pub prefix: String,
    pub access_key: String,
    pub secret_key: Secret,
    pub force_path_style: bool,
}

/// The static LiveKit config could not be read as YAML.
#[derive(Debug, thiserror::Error)]
pub enum StaticConfigError {
    #[error("cannot read the static LiveKit config {path} (livekit.configPath): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    // The parser's message is not kept: it could quote a secret under `keys:`.
    #[error("the static LiveKit config {path} (livekit.configPath) is not valid YAML")]
    Yaml { path: PathBuf },
}

impl Embedded {
    /// The static LiveKit config (`livekit.configPath`) as YAML; `None` when bedrud generates
    /// LiveKit's config. An empty file reads as `Null`.
    pub fn static_yaml(&self) -> Option<Result<yaml_serde::Value, StaticConfigError>> {
        let path = self.static_config.as_ref()?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(source) => {
                let path = path.clone();
                return Some(Err(StaticConfigError::Read { path, source }));
            }
        };
        let yaml =
            yaml_serde::from_str(&text).map_err(|_| StaticConfigError::Yaml { path: path.clone() });
        Some(yaml)
    }
}

impl Config {
    /// Where finished local recordings are kept (`recording.dir`, else in the data folder).
    pub fn recordings_dir(&self) -> PathBuf {
        let default = || self.server.data_dir.join("recordings");
        self.recording.dir.clone().unwrap_or_else(default)
    }

    pub fn embedded(&self) -> Option<&Embedded> {
        match &self.livekit.mode {
            Mode::Embedded(e) => Some(e),
            Mode::External => None,
        }
    }
}

#[cfg(test)]
mod tests;
