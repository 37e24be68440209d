//! What recording needs in embedded mode, run by bedrud like LiveKit itself: a Redis shared by
//! LiveKit and egress (bedrud's own on loopback, or `recording.redis`), the LiveKit Egress
//! worker, and the private PulseAudio daemon its composites with video record sound from.
//! `prepare` does everything that can fail before anything starts; `Recorder::start` runs
//! PulseAudio and Redis before LiveKit and egress once LiveKit is ready, and stops them in
//! reverse.

pub mod doctor;
pub mod pulse;
pub mod redis;
pub mod worker;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ports, Config, Credentials, Embedded, Mode, Redis};
use crate::livekit::config::temp_dir;
use crate::livekit::status::{LiveKitStatus, State};
use crate::supervisor::worker::{self as supervise, Ready, Which, WorkerPlan};
use crate::supervisor::{private_home, Launch};

/// The recording part of the status (`GET /api/admin/livekit`, `STATUS=`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStatus {
    pub redis: ProcStatus,
    pub worker: ProcStatus,
    /// The worker's PulseAudio; `managed: false` with `lastError` when it is not installed
    /// (only composites with video need it).
    pub pulse: ProcStatus,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcStatus {
    /// Run by bedrud; false for an existing Redis (`recording.redis`, the static LiveKit
    /// config's), whose state stays `ready` as checked at start.
    pub managed: bool,
    pub state: State,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
}

impl ProcStatus {
    fn new(managed: bool, address: Option<String>) -> ProcStatus {
        ProcStatus {
            managed,
            state: if managed {
                State::Starting
            } else {
                State::Ready
            },
            pid: None,
            restarts: 0,
            last_error: None,
            address,
            config_file: None,
        }
    }
}

impl RecordingStatus {
    /// For `STATUS=`: "recording: worker ready, Redis ready".
    pub fn summary(&self) -> String {
        let word = |p: &ProcStatus| match p.state {
            State::Ready => "ready".to_string(),
            State::Restarting => format!("restarting ({} restarts)", p.restarts),
            s => s.to_string(),
        };
        let pulse = if self.pulse.managed {
            word(&self.pulse)
        } else {
            "not installed (no video)".to_string()
        };
        format!(
            "recording: worker {}, Redis {}, PulseAudio {pulse}",
            word(&self.worker),
            word(&self.redis)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(
        "recording.enabled with livekit.configPath: {path} has no redis: block (redis.address); \
         egress needs the Redis LiveKit uses. Add one to that file, or drop livekit.configPath"
    )]
    StaticNoRedis { path: PathBuf },
    #[error(transparent)]
    StaticConfig(#[from] crate::config::StaticConfigError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Where the Redis recording uses comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisSource {
    /// bedrud runs it (`recording.redis` not set).
    Embedded,
    /// `recording.redis`.
    Configured(Redis),
    /// The `redis:` block of the static LiveKit config (`livekit.configPath`).
    StaticLiveKit(Redis),
}

/// The Redis of embedded-mode recording; `None` when recording is off or LiveKit is external
/// (the cluster's egress is then not bedrud's to run).
pub fn redis_source(config: &Config) -> Result<Option<RedisSource>, RecordingError> {
    let Mode::Embedded(e) = &config.livekit.mode else {
        return Ok(None);
    };
    if !config.recording.enabled {
        return Ok(None);
    }
    if let Some(doc) = e.static_yaml() {
        return static_redis(&doc?, e).map(|r| Some(RedisSource::StaticLiveKit(r)));
    }
    Ok(Some(match &config.recording.redis {
        Some(r) => RedisSource::Configured(r.clone()),
        None => RedisSource::Embedded,
    }))
}

fn static_redis(doc: &yaml_serde::Value, e: &Embedded) -> Result<Redis, RecordingError> {
    let r = &doc["redis"];
    let text = |k: &str| r[k].as_str().map(str::to_string).filter(|s| !s.is_empty());
    let Some(address) = text("address") else {
        let path = e.static_config.clone().unwrap_or_default();
        return Err(RecordingError::StaticNoRedis { path });
    };
    Ok(Redis {
        address,
        username: text("username"),
        password: text("password").map(crate::secret::Secret::new),
        db: r["db"].as_u64().unwrap_or(0) as u32,
    })
}

/// The `redis:` block for the generated LiveKit config: `None` when recording is off.
pub fn livekit_redis(config: &Config) -> Result<Option<Redis>, RecordingError> {
    Ok(match redis_source(config)? {
        None | Some(RedisSource::StaticLiveKit(_)) => None,
        Some(RedisSource::Configured(r)) => Some(r),
        Some(RedisSource::Embedded) => Some(redis::stored_link(&config.server.data_dir)?),
    })
}

/// Where egress' temp folder (`/home/egress/tmp` inside its namespace) is kept on disk.
pub fn egress_tmp(config: &Config) -> PathBuf {
    config.server.data_dir.join("egress-tmp")
}

/// Everything checked and generated; nothing started.
pub struct Recorder {
    redis: Option<WorkerPlan>,
    egress: WorkerPlan,
    /// `None` when `pulseaudio` is not installed.
    pulse: Option<WorkerPlan>,
    initial: RecordingStatus,
}

/// Prepares recording for `serve`: finds both binaries, sets up (or checks) Redis, writes
/// nothing but the stored Redis settings. Must run before LiveKit's config is generated,
/// which names this Redis. `None` when there is nothing for bedrud to run.
pub async fn prepare(
    config: &Config,
    credentials: &Credentials,
) -> anyhow::Result<Option<Recorder>> {
    let Some(source) = redis_source(config)? else {
        return Ok(None);
    };
    let Mode::Embedded(e) = &config.livekit.mode else {
        return Ok(None);
    };
    let rec = &config.recording;
    let (redis_plan, link) = match source {
        RedisSource::Embedded => {
            let binary = worker::locate(worker::REDIS, rec.redis_binary_path.as_deref())?;
            let link = redis::ensure_settings(&config.server.data_dir)?;
            (Some(redis_plan(binary, &link, e)), link)
        }
        RedisSource::Configured(link) | RedisSource::StaticLiveKit(link) => {
            redis::ping(&link).await.with_context(|| {
                "the Redis recording uses (recording.redis, or the redis: block of \
                 livekit.configPath) must answer when bedrud starts"
            })?;
            (None, link)
        }
    };
    let binary = worker::locate(worker::EGRESS, rec.egress_binary_path.as_deref())?;
    let incoming = config.recordings_dir().join(".incoming");
    crate::host::private::create_dir(&incoming)
        .with_context(|| format!("cannot create {} (recording.dir)", incoming.display()))?;
    let tmp = egress_tmp(config);
    crate::host::private::create_dir(&tmp)
        .with_context(|| format!("cannot create {} (server.dataDir)", tmp.display()))?;
    // The namespace covers /home: what egress must reach there would vanish from its view.
    let tmp = std::path::absolute(&tmp).unwrap_or(tmp);
    let under_home = [&tmp, &std::path::absolute(config.recordings_dir())?]
        .iter()
        .any(|p| p.starts_with("/home"));
    let private_home = (private_home::available() && !under_home).then(|| tmp.clone());
    if private_home.is_none() {
        check_egress_tmp()?;
    }
    let livekit_port = livekit_port(e);
    let yaml = worker::generate(&worker::Inputs {
        credentials,
        livekit_port,
        redis: &link,
        template_port: free_port()?,
        log_level: &e.log_level,
        cpu_cost: rec.egress_cpu_cost,
    });
    let owner = tmp.display().to_string();
    // Its HOME (Chromium, for the composite with video, keeps caches there): in the data
    // folder, not in the namespace's small tmpfs nor a home bedrud's user may not have.
    let home = config.server.data_dir.join("egress-home");
    crate::host::private::create_dir(&home)
        .with_context(|| format!("cannot create {} (server.dataDir)", home.display()))?;
    let pulse = pulse_plan(config, e)?;
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), worker::child_path(&binary).into()),
        (worker::MARK.into(), owner.clone().into()),
        ("HOME".into(), std::path::absolute(&home)?.into_os_string()),
        // GStreamer's plugin registry cache: in the data folder, not a home folder that may be
        // read-only (systemd's ProtectHome) or hidden (the private namespace's tmpfs).
        (
            "XDG_CACHE_HOME".into(),
            config.server.data_dir.join("cache").into_os_string(),
        ),
    ];
    if let Some((_, socket)) = &pulse {
        let mut server = OsString::from("unix:");
        server.push(socket);
        env.push(("PULSE_SERVER".into(), server));
    }
    let egress = WorkerPlan {
        which: Which::Egress,
        launch: Launch {
            binary,
            args: vec!["--config".into()],
            env,
            log_as: "egress",
            private_home,
            stop_signal: nix::sys::signal::Signal::SIGINT,
        },
        config: yaml.render(true),
        config_name: worker::CONFIG_NAME,
        temp_dir: temp_dir(),
        ready: Ready::Logged("service ready"),
        after_livekit: true,
        mark: Some(owner),
        timings: e.supervision.clone(),
    };
    let initial = RecordingStatus {
        redis: ProcStatus::new(redis_plan.is_some(), Some(link.address.clone())),
        worker: ProcStatus::new(true, None),
        pulse: match &pulse {
            Some((_, socket)) => ProcStatus::new(true, Some(socket.display().to_string())),
            None => ProcStatus {
                state: State::Stopped,
                last_error: Some(pulse::MISSING.to_string()),
                ..ProcStatus::new(false, None)
            },
        },
    };
    Ok(Some(Recorder {
        redis: redis_plan,
        egress,
        pulse: pulse.map(|(plan, _)| plan),
        initial,
    }))
}

/// The PulseAudio daemon and its socket; `None` (after one warning) when it is not installed:
/// audio-only recordings do not need it.
fn pulse_plan(config: &Config, e: &Embedded) -> anyhow::Result<Option<(WorkerPlan, PathBuf)>> {
    let Some(binary) = pulse::locate() else {
        tracing::warn!("{}", pulse::MISSING);
        return Ok(None);
    };
    let dir = std::path::absolute(pulse::dir(&config.server.data_dir))?;
    crate::host::private::create_dir(&dir)
        .with_context(|| format!("cannot create {} (server.dataDir)", dir.display()))?;
    let socket = pulse::socket(&dir);
    pulse::check_socket(&socket)?;
    // A socket left by a PulseAudio that was killed would make the new one refuse to bind.
    let _ = std::fs::remove_file(&socket);
    let plan = pulse::plan(binary, &dir, temp_dir(), e.supervision.clone());
    Ok(Some((plan, socket)))
}

fn redis_plan(binary: PathBuf, link: &Redis, e: &Embedded) -> WorkerPlan {
    WorkerPlan {
        which: Which::Redis,
        launch: Launch {
            binary,
            args: Vec::new(),
            env: vec![("PATH".into(), crate::supervisor::CHILD_PATH.into())],
            log_as: "redis",
            private_home: None,
            stop_signal: nix::sys::signal::Signal::SIGTERM,
        },
        config: redis::server_config(link, &temp_dir()),
        config_name: redis::CONFIG_NAME,
        temp_dir: temp_dir(),
        ready: Ready::Ping(link.clone()),
        after_livekit: false,
        mark: None,
        timings: e.supervision.clone(),
    }
}

/// Embedded LiveKit's HTTP port, from the generated or the static config.
fn livekit_port(e: &Embedded) -> u16 {
    match e.static_yaml() {
        Some(doc) => ports::http_port(&ports::from_static(&doc.unwrap_or_default())),
        None => e.port,
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Without a namespace of its own, egress needs `/home/egress/tmp` writable as it is (the
/// packaged unit binds a folder of bedrud's state directory there).
fn check_egress_tmp() -> anyhow::Result<()> {
    let dir = Path::new(private_home::EGRESS_TMP);
    let ok = std::fs::create_dir_all(dir).is_ok() && tempfile::tempfile_in(dir).is_ok();
    anyhow::ensure!(
        ok,
        "the egress worker writes recordings in progress to {} (fixed in egress 1.14.0), which \
         this user cannot write. Under systemd the bedrud-recording package's unit settings \
         provide it (ProtectHome=tmpfs, BindPaths=/var/lib/bedrud/egress-tmp:{}); otherwise \
         create it owned by bedrud's user, or run bedrud as root (it then gives egress a \
         private mount namespace)",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Removes generated Redis and egress configs that a killed bedrud left behind.
pub fn remove_stale_files() {
    for name in [redis::CONFIG_NAME, worker::CONFIG_NAME, pulse::CONFIG_NAME] {
        for stale in crate::livekit::config::remove_stale_named(&temp_dir(), name) {
            tracing::info!(file = %stale.display(), "removed a config left by a bedrud that died");
        }
    }
}

/// Redis, egress and PulseAudio, running.
pub struct Running {
    redis: Option<(CancellationToken, JoinHandle<()>)>,
    egress: (CancellationToken, JoinHandle<()>),
    pulse: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Recorder {
    /// Starts PulseAudio and Redis now and egress once LiveKit is ready (so PulseAudio, ready
    /// in well under a second, runs before egress); puts their state in `status`.
    pub fn start(self, status: watch::Sender<LiveKitStatus>) -> Running {
        status.send_modify(|s| s.recording = Some(self.initial.clone()));
        let spawn = |plan: WorkerPlan| {
            let stop = CancellationToken::new();
            let task = tokio::spawn(supervise::run(plan, status.clone(), stop.clone()));
            (stop, task)
        };
        let pulse = self.pulse.map(spawn);
        Running {
            redis: self.redis.map(spawn),
            egress: spawn(self.egress),
            pulse,
        }
    }
}

impl Running {
    /// Waits (at most `limit`) for the embedded Redis to answer, so that LiveKit, whose config
    /// names it, does not start against nothing.
    pub async fn redis_ready(&self, status: &watch::Receiver<LiveKitStatus>, limit: Duration) {
        let mut status = status.clone();
        let ready = status.wait_for(|s| {
            s.recording
                .as_ref()
                .is_none_or(|r| r.redis.state == State::Ready)
        });
        if tokio::time::timeout(limit, ready).await.is_err() {
            tracing::warn!(
                "the embedded Redis is not ready after {limit:?}; starting LiveKit anyway"
            );
        }
    }

    /// Stops the egress worker (its recordings end and their files are finished), then its
    /// PulseAudio.
    pub async fn stop_worker(&mut self) {
        self.egress.0.cancel();
        let _ = (&mut self.egress.1).await;
        if let Some((stop, task)) = &mut self.pulse {
            stop.cancel();
            let _ = task.await;
        }
    }

    /// Stops Redis; after LiveKit, which uses it.
    pub async fn stop_redis(self) {
        if let Some((stop, task)) = self.redis {
            stop.cancel();
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Env, Source};

    fn config_from(text: &str) -> Config {
        config::parse(
            text,
            &Source::File("/etc/bedrud/config.yaml".into()),
            &Env::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn which_redis_recording_uses() {
        assert_eq!(redis_source(&config_from("")).unwrap(), None);
        let on = "recording:\n  enabled: true\n";
        assert_eq!(
            redis_source(&config_from(on)).unwrap(),
            Some(RedisSource::Embedded)
        );
        let existing = format!("{on}  redis:\n    address: 127.0.0.1:6390\n    db: 3\n");
        match redis_source(&config_from(&existing)).unwrap() {
            Some(RedisSource::Configured(r)) => {
                assert_eq!((r.address.as_str(), r.db), ("127.0.0.1:6390", 3))
            }
            other => panic!("{other:?}"),
        }
        let external = format!(
            "{on}livekit:\n  external: true\n  host: wss://lk.example.test\n  \
             internalHost: https://lk.example.test\n  apiKey: k\n  \
             apiSecret: 0123456789abcdef0123456789abcdef\n"
        );
        assert_eq!(redis_source(&config_from(&external)).unwrap(), None);
    }

    #[test]
    fn a_static_livekit_config_must_name_its_redis() {
        let dir = tempfile::tempdir().unwrap();
        let lk = dir.path().join("livekit.yaml");
        std::fs::write(
            &lk,
            "port: 7880\nkeys:\n  k: 0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let text = format!(
            "recording:\n  enabled: true\nlivekit:\n  configPath: {}\n",
            lk.display()
        );
        let e = redis_source(&config_from(&text)).unwrap_err().to_string();
        assert!(
            e.contains("no redis: block") && e.contains(&lk.display().to_string()),
            "{e}"
        );
        std::fs::write(
            &lk,
            "port: 7880\nredis:\n  address: 127.0.0.1:6391\n  password: pw-static\n",
        )
        .unwrap();
        match redis_source(&config_from(&text)).unwrap() {
            Some(RedisSource::StaticLiveKit(r)) => {
                assert_eq!(r.address, "127.0.0.1:6391");
                assert_eq!(r.password.unwrap().expose(), "pw-static");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_line_names_every_part() {
        let mut r = RecordingStatus {
            redis: ProcStatus::new(true, None),
            worker: ProcStatus::new(true, None),
            pulse: ProcStatus::new(true, None),
        };
        r.redis.state = State::Ready;
        r.worker.state = State::Restarting;
        r.worker.restarts = 2;
        r.pulse.state = State::Ready;
        assert_eq!(
            r.summary(),
            "recording: worker restarting (2 restarts), Redis ready, PulseAudio ready"
        );
        r.pulse = ProcStatus::new(false, None);
        assert!(r.summary().ends_with("PulseAudio not installed (no video)"));
    }
}
