//! Builds the LiveKit YAML that embedded mode runs with, and owns its temp file's lifecycle.
//! The file is `bedrud-livekit-*.yaml`, mode 0600, locked while in use and removed afterwards.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::ports::{self, TurnTls};
use crate::config::{Credentials, Embedded, Server};
use crate::egress::worker::RedisBlock;
use crate::livekit::binary::Version;

pub const FILE_PREFIX: &str = "bedrud-livekit-";
pub const FILE_SUFFIX: &str = ".yaml";
/// Oldest release the generated file has been started against (tests run it).
pub const OLDEST_TESTED: Version = Version::new(1, 11, 0);

/// Keys that only some releases accept (LiveKit rejects unknown keys), with the first that does.
/// Keys absent from this table are accepted by every release since `OLDEST_TESTED`.
const KEY_SINCE: &[(&str, Version)] = &[("rtc.enable_loopback_candidate", Version::new(1, 4, 0))];

/// The generated document. Field names are LiveKit's own.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveKitYaml {
    pub port: u16,
    pub keys: BTreeMap<String, String>,
    pub rtc: Rtc,
    pub turn: Turn,
    pub webhook: Webhook,
    pub room: RoomDefaults,
    pub logging: Logging,
    /// Recording: the Redis LiveKit shares with the egress worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisBlock>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoomDefaults {
    /// Off: only bedrud creates rooms (CreateRoom at a join, with the room's participant limit).
    /// On, a client connecting to a room LiveKit has ended would recreate it with no limit.
    pub auto_create: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rtc {
    pub tcp_port: u16,
    pub port_range_start: u16,
    pub port_range_end: u16,
    pub node_ip: String,
    pub use_external_ip: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_loopback_candidate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Interfaces>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Interfaces {
    pub includes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Turn {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Webhook {
    pub api_key: String,
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logging {
    pub level: String,
    /// JSON lets bedrud forward each line to its own log with the right level.
    pub json: bool,
}

/// Everything generation depends on, resolved beforehand so that generation itself is pure.
pub struct Inputs<'a> {
    pub embedded: &'a Embedded,
    pub server: &'a Server,
    pub credentials: &'a Credentials,
    pub node_ip: IpAddr,
    pub webhook_url: String,
    /// `None` when the version could not be learned: only keys every release knows are written.
    pub version: Option<Version>,
    /// `recording.enabled`: the Redis egress uses too.
    pub redis: Option<&'a crate::config::Redis>,
}

/// The document plus what the administrator should hear about it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub yaml: LiveKitYaml,
    pub warnings: Vec<String>,
}

pub fn generate(i: &Inputs) -> Generated {
    let mut warnings = Vec::new();
    if let Some(v) = i.version.filter(|v| *v < OLDEST_TESTED) {
        warnings.push(format!(
            "livekit-server {v} is older than {OLDEST_TESTED}, the oldest release bedrud is tested with"
        ));
    }
    let e = i.embedded;
    let loopback = i.node_ip.is_loopback();
    let rtc = Rtc {
        tcp_port: e.rtc_tcp_port,
        port_range_start: e.rtc_port_range.0,
        port_range_end: e.rtc_port_range.1,
        node_ip: i.node_ip.to_string(),
        // Explicit: LiveKit's STUN lookup fails offline and bedrud already chose node_ip.
        use_external_ip: false,
        enable_loopback_candidate: (loopback
            && supports(i.version, "rtc.enable_loopback_candidate"))
        .then_some(true),
        interfaces: (!e.rtc_interfaces.is_empty()).then(|| Interfaces {
            includes: e.rtc_interfaces.clone(),
        }),
    };
    Generated {
        yaml: LiveKitYaml {
            port: e.port,
            keys: BTreeMap::from([(
                i.credentials.api_key.clone(),
                i.credentials.api_secret.expose().to_string(),
            )]),
            rtc,
            turn: turn(e, i.server, &mut warnings),
            webhook: Webhook {
                api_key: i.credentials.api_key.clone(),
                urls: vec![i.webhook_url.clone()],
            },
            room: RoomDefaults { auto_create: false },
            logging: Logging {
                level: e.log_level.clone(),
                json: true,
            },
            redis: i.redis.map(RedisBlock::new),
        },
        warnings,
    }
}

/// Whether the installed release accepts `key`; an unknown release gets only the common keys.
pub fn supports(version: Option<Version>, key: &str) -> bool {
    match KEY_SINCE.iter().find(|(k, _)| *k == key) {
        None => true,
        Some((_, since)) => version.is_some_and(|v| v >= *since),
    }
}

/// UDP TURN always (when enabled); TURN/TLS only when `config::ports::turn_tls` says so (the
/// same rule the port checks follow).
fn turn(e: &Embedded, server: &Server, warnings: &mut Vec<String>) -> Turn {
    let mut t = Turn {
        enabled: e.turn.enabled,
        domain: None,
        udp_port: e.turn.enabled.then_some(e.turn.udp_port),
        tls_port: None,
        cert_file: None,
        key_file: None,
    };
    match ports::turn_tls(server, e) {
        TurnTls::Off => {}
        TurnTls::On { domain, files } => {
            t.domain = Some(domain);
            t.tls_port = Some(e.turn.tls_port);
            t.cert_file = Some(files.cert_file.display().to_string());
            t.key_file = Some(files.key_file.display().to_string());
        }
        TurnTls::NoDomain(why) => warnings.push(format!(
            "TURN/TLS disabled, UDP-only TURN on port {}: {why}; set server.host to this host's DNS name to enable it",
            e.turn.udp_port
        )),
    }
    t
}

impl LiveKitYaml {
    /// The YAML text; secrets replaced by a mask unless `show_secrets`.
    pub fn render(&self, show_secrets: bool) -> String {
        let mut doc = self.clone();
        if !show_secrets {
            for v in doc.keys.values_mut() {
                *v = "********".into();
            }
            if let Some(r) = &mut doc.redis {
                r.mask();
            }
        }
        yaml_serde::to_string(&doc).expect("the LiveKit config is plain data and always serialises")
    }
}

/// The generated file on disk. Dropping it removes it; its lock tells other bedruds it is in use.
#[derive(Debug)]
pub struct ConfigFile {
    file: tempfile::NamedTempFile,
    _lock: nix::fcntl::Flock<std::os::fd::OwnedFd>,
}

impl ConfigFile {
    /// Writes `yaml` to a new `bedrud-livekit-*.yaml` in `dir` with mode 0600 and locks it.
    pub fn write(dir: &Path, yaml: &str) -> std::io::Result<ConfigFile> {
        ConfigFile::write_named(dir, (FILE_PREFIX, FILE_SUFFIX), yaml)
    }

    /// The same for another supervised process's config (`bedrud-redis-*.conf`…): one rule for
    /// every generated file that holds a secret.
    pub fn write_named(
        dir: &Path,
        (prefix, suffix): (&str, &str),
        text: &str,
    ) -> std::io::Result<ConfigFile> {
        // tempfile creates with O_EXCL and mode 0600, so the secret is never readable by others.
        let mut file = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .tempfile_in(dir)?;
        let lock = lock_exclusive(file.as_file())?;
        file.write_all(text.as_bytes())?;
        file.as_file().sync_all()?;
        Ok(ConfigFile { file, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// flock is held by the open file description, which the duplicate shares; LiveKit never sees
/// it (close-on-exec), so the lock vanishes exactly when bedrud does.
fn lock_exclusive(f: &File) -> std::io::Result<nix::fcntl::Flock<std::os::fd::OwnedFd>> {
    nix::fcntl::Flock::lock(
        f.as_fd().try_clone_to_owned()?,
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, errno)| std::io::Error::from(errno))
}

/// The temp folder LiveKit configs go to: `$TMPDIR`, else `/tmp`.
pub fn temp_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Removes `bedrud-livekit-*.yaml` files in `dir` that no running bedrud holds a lock on.
/// Files of other names, of other users, or still locked are left alone.
pub fn remove_stale(dir: &Path) -> Vec<PathBuf> {
    remove_stale_named(dir, (FILE_PREFIX, FILE_SUFFIX))
}

/// [`remove_stale`] for the files named `prefix*suffix`.
pub fn remove_stale_named(dir: &Path, name: (&str, &str)) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let me = nix::unistd::geteuid().as_raw();
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_ours(p, me, name))
        .filter(|p| unlocked(p))
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect()
}

fn is_ours(p: &Path, uid: u32, (prefix, suffix): (&str, &str)) -> bool {
    use std::os::unix::fs::MetadataExt;
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let named = name.starts_with(prefix) && name.ends_with(suffix);
    let meta = std::fs::symlink_metadata(p);
    named && meta.is_ok_and(|m| m.file_type().is_file() && m.uid() == uid)
}

fn unlocked(p: &Path) -> bool {
    let Ok(f) = File::open(p) else {
        return false;
    };
    // Taking the lock proves its owner is gone; it is dropped with `f` right after.
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}

#[cfg(test)]
mod tests;
