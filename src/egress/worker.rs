//! The LiveKit Egress worker of embedded mode: where its binary is, the YAML it runs with
//! (generated for each start, 0600, passed by path so no secret is in its arguments), and the
//! `egress run-handler` processes it starts — each in a session of its own (setsid), so they
//! escape a process-group signal and are found by the mark they inherit in their environment.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Credentials, Redis};

/// Where the `bedrud-recording` package installs the worker.
pub const PACKAGED_PATH: &str = "/usr/lib/bedrud/egress";
/// Generated egress configs, in the temp folder like LiveKit's.
pub const CONFIG_NAME: (&str, &str) = ("bedrud-egress-", ".yaml");
/// Every process of the worker (it, and the handlers it starts, which inherit it) carries this
/// variable, set to the folder it records into: so bedrud finds its handlers even once they
/// have been re-parented, and leaves other bedruds' alone.
pub const MARK: &str = "BEDRUD_EGRESS_OWNER";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BinaryError {
    #[error(
        "{name} not found; looked in: {}. {install}, or set {key}",
        looked.join(", ")
    )]
    NotFound {
        name: &'static str,
        looked: Vec<String>,
        install: &'static str,
        key: &'static str,
    },
    #[error("{key} {path} does not exist")]
    ConfiguredMissing { key: &'static str, path: String },
    #[error("{path} is not an executable file; run: chmod +x {path}")]
    NotExecutable { path: String },
}

/// A helper binary to find: its file name, the key that names it, where a package puts it.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub name: &'static str,
    pub key: &'static str,
    pub packaged: Option<&'static str>,
    pub install: &'static str,
}

pub const EGRESS: Wanted = Wanted {
    name: "egress",
    key: "recording.egressBinaryPath",
    packaged: Some(PACKAGED_PATH),
    install:
        "Install it: apt install bedrud-recording (or, from a checkout, scripts/install-egress.sh)",
};

pub const REDIS: Wanted = Wanted {
    name: "redis-server",
    key: "recording.redisBinaryPath",
    packaged: None,
    install: "Install it: apt-get install redis-server",
};

/// The configured path, the packaged one, then `$PATH`.
pub fn locate(w: Wanted, configured: Option<&Path>) -> Result<PathBuf, BinaryError> {
    let path_env = std::env::var("PATH").ok();
    locate_in(
        w,
        configured,
        w.packaged.map(Path::new),
        path_env.as_deref(),
    )
}

pub fn locate_in(
    w: Wanted,
    configured: Option<&Path>,
    packaged: Option<&Path>,
    path_env: Option<&str>,
) -> Result<PathBuf, BinaryError> {
    if let Some(p) = configured {
        if !p.exists() {
            return Err(BinaryError::ConfiguredMissing {
                key: w.key,
                path: p.display().to_string(),
            });
        }
        return executable(p);
    }
    let dirs = path_env
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty());
    let candidates = packaged
        .map(Path::to_path_buf)
        .into_iter()
        .chain(dirs.map(|d| Path::new(d).join(w.name)));
    let mut looked = Vec::new();
    for c in candidates {
        if c.exists() {
            return executable(&c);
        }
        looked.push(c.display().to_string());
    }
    Err(BinaryError::NotFound {
        name: w.name,
        looked,
        install: w.install,
        key: w.key,
    })
}

fn executable(p: &Path) -> Result<PathBuf, BinaryError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p).map(|m| m.permissions().mode());
    match mode {
        Ok(m) if p.is_file() && m & 0o111 != 0 => Ok(p.to_path_buf()),
        _ => Err(BinaryError::NotExecutable {
            path: p.display().to_string(),
        }),
    }
}

/// The worker's YAML. Field names are egress' own.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EgressYaml {
    pub api_key: String,
    pub api_secret: String,
    pub ws_url: String,
    pub redis: RedisBlock,
    /// Serves the room-composite web page on `localhost`; a free port, so that two bedruds
    /// (or a test beside a real installation) do not clash on egress' default 7980.
    pub template_port: u16,
    // health_port and prometheus_port stay unset (0): egress would bind them on every interface.
    pub logging: Logging,
    pub cpu_cost: CpuCost,
}

/// LiveKit's and egress' `redis:` block (the same `RedisConfig` in both).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RedisBlock {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub db: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RedisBlock {
    pub fn new(r: &Redis) -> RedisBlock {
        RedisBlock {
            address: r.address.clone(),
            username: r.username.clone(),
            password: r.password.as_ref().map(|p| p.expose().to_string()),
            db: r.db,
        }
    }

    pub fn mask(&mut self) {
        if let Some(p) = &mut self.password {
            *p = "********".into();
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logging {
    pub level: String,
    /// JSON lets bedrud forward each line to its own log with the right level.
    pub json: bool,
}

/// Egress' resource guard reserves this many CPU cores per recording of each kind; its defaults
/// (a room composite wants 4) refuse every request on a small host.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuCost {
    pub room_composite_cpu_cost: f64,
    pub audio_room_composite_cpu_cost: f64,
    pub web_cpu_cost: f64,
    pub audio_web_cpu_cost: f64,
    pub participant_cpu_cost: f64,
    pub track_composite_cpu_cost: f64,
    pub track_cpu_cost: f64,
}

impl CpuCost {
    pub fn all(cost: f64) -> CpuCost {
        CpuCost {
            room_composite_cpu_cost: cost,
            audio_room_composite_cpu_cost: cost,
            web_cpu_cost: cost,
            audio_web_cpu_cost: cost,
            participant_cpu_cost: cost,
            track_composite_cpu_cost: cost,
            track_cpu_cost: cost,
        }
    }
}

/// What the worker's config is made from.
pub struct Inputs<'a> {
    pub credentials: &'a Credentials,
    /// Embedded LiveKit's port on loopback.
    pub livekit_port: u16,
    pub redis: &'a Redis,
    pub template_port: u16,
    pub log_level: &'a str,
    pub cpu_cost: f64,
}

pub fn generate(i: &Inputs) -> EgressYaml {
    EgressYaml {
        api_key: i.credentials.api_key.clone(),
        api_secret: i.credentials.api_secret.expose().to_string(),
        ws_url: format!("ws://127.0.0.1:{}", i.livekit_port),
        redis: RedisBlock::new(i.redis),
        template_port: i.template_port,
        logging: Logging {
            level: i.log_level.to_string(),
            json: true,
        },
        cpu_cost: CpuCost::all(i.cpu_cost),
    }
}

impl EgressYaml {
    /// The YAML text; secrets masked unless `show_secrets`.
    pub fn render(&self, show_secrets: bool) -> String {
        let mut doc = self.clone();
        if !show_secrets {
            doc.api_secret = "********".into();
            doc.redis.mask();
        }
        yaml_serde::to_string(&doc).expect("the egress config is plain data and always serialises")
    }
}

/// The worker's `$PATH`: its own folder first, because it starts each recording as
/// `egress run-handler` looked up there.
pub fn child_path(binary: &Path) -> String {
    let own = binary.parent().unwrap_or(Path::new("/"));
    format!("{}:{}", own.display(), crate::supervisor::CHILD_PATH)
}

/// Processes whose environment holds `MARK=<owner>`: the worker and its handlers, also those of
/// a bedrud that was killed (their parent is then gone). Same-user processes only: /proc hides
/// the environment of others.
pub fn marked_processes(owner: &str) -> Vec<i32> {
    let needle = format!("{MARK}={owner}");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

/// SIGKILLs every marked process; returns how many there were. Used before each start (what a
/// killed bedrud or worker left) and after each stop (handlers that outlived their worker).
pub fn kill_marked(owner: &str) -> usize {
    let pids = marked_processes(owner);
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::os::unix::fs::PermissionsExt;

    fn exe(p: &Path) {
        std::fs::write(p, "").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn lookup_order_is_key_then_package_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let (key, packaged, on_path) = (
            dir.path().join("mine"),
            dir.path().join("pkg"),
            dir.path().join("bin"),
        );
        std::fs::create_dir(&on_path).unwrap();
        let path_env = on_path.display().to_string();
        let found = |configured: Option<&Path>| {
            locate_in(EGRESS, configured, Some(&packaged), Some(&path_env))
        };
        let e = found(None).unwrap_err().to_string();
        assert!(
            e.contains(&packaged.display().to_string())
                && e.contains(&on_path.join("egress").display().to_string())
                && e.contains("apt install bedrud-recording")
                && e.contains("scripts/install-egress.sh")
                && e.contains("recording.egressBinaryPath"),
            "{e}"
        );
        exe(&on_path.join("egress"));
        assert_eq!(found(None).unwrap(), on_path.join("egress"));
        exe(&packaged);
        assert_eq!(found(None).unwrap(), packaged);
        let e = found(Some(&key)).unwrap_err().to_string();
        assert!(
            e.contains("recording.egressBinaryPath") && e.contains("does not exist"),
            "{e}"
        );
        exe(&key);
        assert_eq!(found(Some(&key)).unwrap(), key);
    }

    #[test]
    fn a_missing_redis_says_how_to_install_it() {
        let e = locate_in(REDIS, None, None, Some("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("apt-get install redis-server") && e.contains("recording.redisBinaryPath"),
            "{e}"
        );
    }

    #[test]
    fn config_points_at_livekit_and_redis_and_masks_its_secrets() {
        let creds = Credentials {
            api_key: "APIkey".into(),
            api_secret: Secret::new("api-secret-0123456789abcdef0123456789"),
        };
        let redis = Redis {
            address: "127.0.0.1:6400".into(),
            username: None,
            password: Some(Secret::new("redis-secret-0123")),
            db: 2,
        };
        let y = generate(&Inputs {
            credentials: &creds,
            livekit_port: 7880,
            redis: &redis,
            template_port: 7990,
            log_level: "info",
            cpu_cost: 0.5,
        });
        let text = y.render(true);
        let back: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(back["ws_url"].as_str(), Some("ws://127.0.0.1:7880"));
        assert_eq!(back["api_key"].as_str(), Some("APIkey"));
        assert_eq!(back["redis"]["address"].as_str(), Some("127.0.0.1:6400"));
        assert_eq!(
            back["redis"]["password"].as_str(),
            Some("redis-secret-0123")
        );
        assert_eq!(back["redis"]["db"].as_u64(), Some(2));
        assert_eq!(
            back["cpu_cost"]["room_composite_cpu_cost"].as_f64(),
            Some(0.5)
        );
        assert_eq!(back["cpu_cost"]["track_cpu_cost"].as_f64(), Some(0.5));
        assert_eq!(back["template_port"].as_u64(), Some(7990));
        assert!(back.get("health_port").is_none(), "{text}");
        let masked = y.render(false);
        assert!(
            !masked.contains("redis-secret") && !masked.contains("api-secret"),
            "{masked}"
        );
    }

    #[test]
    fn the_workers_own_folder_comes_first_on_its_path() {
        let p = child_path(Path::new("/opt/egress/bin/egress"));
        assert!(p.starts_with("/opt/egress/bin:/usr/local/sbin"), "{p}");
    }

    #[test]
    fn marked_processes_are_found_and_killed() {
        let owner = format!("/test/{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .env(MARK, &owner)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // `spawn` returns once the child has swapped in its new memory, but the kernel sets the
        // bounds of its environment a moment later; until then /proc/PID/environ reads empty. So
        // wait (bounded) for it to show: bedrud only ever looks for processes long since started.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while marked_processes(&owner).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(marked_processes(&owner), vec![pid]);
        assert!(marked_processes(&format!("{owner}-other")).is_empty());
        assert_eq!(kill_marked(&owner), 1);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}
