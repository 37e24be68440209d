//! One supervised process (livekit-server, and for recording redis-server and the egress worker):
//! spawned so that it cannot outlive bedrud, its output forwarded to bedrud's log, and stopped
//! with LiveKit's two-signal protocol.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::livekit_log::{self, Level};

/// How many of LiveKit's last output lines are kept for error messages.
const TAIL_LINES: usize = 40;
/// After the second SIGTERM, how long LiveKit gets before SIGKILL.
const FORCE_WAIT: Duration = Duration::from_secs(5);
/// The only variable LiveKit gets; everything else it reads could change its config behind our back
/// (`LIVEKIT_*`, `NODE_IP`…) or confuse systemd (`NOTIFY_SOCKET`, `WATCHDOG_*`, `LISTEN_*`).
pub const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The last lines LiveKit printed, on either stream.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == TAIL_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }

    pub fn lines(&self) -> Vec<String> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().cloned().collect()
    }
}

/// A dedicated thread that performs every spawn. `PR_SET_PDEATHSIG` fires when the *thread*
/// that forked the child ends, so it must be one that lives as long as the supervisor, not a
/// tokio worker or blocking thread that may be retired.
pub struct Spawner {
    requests: std::sync::mpsc::Sender<(Command, oneshot::Sender<io::Result<Child>>)>,
}

impl Spawner {
    pub fn start() -> io::Result<Spawner> {
        let (tx, rx) = std::sync::mpsc::channel::<(Command, oneshot::Sender<io::Result<Child>>)>();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("livekit-spawner".into())
            .spawn(move || {
                // Child reaping is registered with this runtime's signal driver.
                let _guard = runtime.enter();
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        Ok(Spawner { requests: tx })
    }

    async fn spawn(&self, cmd: Command) -> io::Result<Child> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((cmd, tx))
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("spawner thread is gone"))?
    }
}

/// What to run and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub binary: PathBuf,
    /// No secrets here: every user can read a process's arguments.
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// Logged as `livekit` (target) or with `process = <name>` under the target `worker`.
    pub log_as: &'static str,
    /// Run in a mount namespace of its own where this folder is `/home/egress/tmp`
    /// (see [`super::private_home`]).
    pub private_home: Option<PathBuf>,
    /// The signal that asks for a stop (sent twice, as LiveKit's forced stop needs): SIGTERM for
    /// LiveKit and Redis; SIGINT for egress, which on SIGTERM would wait for every recording to
    /// be stopped by someone else, but on SIGINT ends them and finishes their files.
    pub stop_signal: Signal,
}

/// A running supervised process.
pub struct Process {
    child: Child,
    stop_signal: Signal,
    /// Its name in bedrud's messages.
    name: &'static str,
    pub pid: u32,
    pub started: Instant,
    tail: Tail,
    forwarders: Vec<JoinHandle<()>>,
}

impl Process {
    /// Starts `binary --config config` in its own process group with a clean environment.
    pub async fn start(spawner: &Spawner, binary: &Path, config: &Path) -> io::Result<Process> {
        let launch = Launch {
            binary: binary.to_path_buf(),
            args: vec!["--config".into(), config.as_os_str().to_owned()],
            env: vec![("PATH".into(), CHILD_PATH.into())],
            log_as: "livekit",
            private_home: None,
            stop_signal: Signal::SIGTERM,
        };
        Process::launch(spawner, &launch).await
    }

    /// Starts `launch` in its own process group with only the environment it names.
    pub async fn launch(spawner: &Spawner, launch: &Launch) -> io::Result<Process> {
        let mut cmd = Command::new(&launch.binary);
        cmd.args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a Ctrl-C in bedrud's terminal must not reach LiveKit directly,
            // bedrud decides how it stops.
            .process_group(0)
            .kill_on_drop(true);
        let parent = nix::unistd::getpid();
        let private_home = launch
            .private_home
            .as_deref()
            .map(super::private_home::Mounts::new)
            .transpose()?;
        // SAFETY: runs in the forked child before exec; prctl, getppid, unshare, mkdir and mount
        // are async-signal-safe system calls, and `Mounts` allocated its paths before the fork.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // bedrud may have died between fork and prctl: then nobody would kill us.
                if nix::unistd::getppid() != parent {
                    return Err(io::Error::other("bedrud exited while starting the process"));
                }
                if let Some(m) = &private_home {
                    m.apply()?;
                }
                Ok(())
            });
        }
        let mut child = spawner.spawn(cmd).await?;
        let pid = child.id().unwrap_or_default();
        let tail = Tail::default();
        let forwarders = vec![
            forward(child.stdout.take(), "stdout", launch.log_as, tail.clone()),
            forward(child.stderr.take(), "stderr", launch.log_as, tail.clone()),
        ];
        Ok(Process {
            child,
            stop_signal: launch.stop_signal,
            name: match launch.log_as {
                "livekit" => "LiveKit",
                other => other,
            },
            pid,
            started: Instant::now(),
            tail,
            forwarders,
        })
    }

    /// Waits for the process to exit, then for its output to be fully read. Cancel-safe: the
    /// callers race it against timers in `select!`, so a forwarder is forgotten only once it
    /// has finished, and a later call waits for the rest.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        while let Some(f) = self.forwarders.last_mut() {
            // A grandchild could hold the pipe open; do not wait for it forever.
            let _ = tokio::time::timeout(Duration::from_secs(1), f).await;
            self.forwarders.pop();
        }
        Ok(status)
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.lines()
    }

    /// Signals the whole process group, but only while the leader is not yet reaped: after
    /// that its pid and group id may belong to someone else.
    fn signal(&self, sig: Signal) {
        if let Some(pid) = self.child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), sig);
        }
    }

    /// SIGTERM (LiveKit drains), `grace`, SIGTERM again (forced stop), 5 s, then SIGKILL
    /// (with the launch's own stop signal in place of SIGTERM).
    pub async fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.signal(self.stop_signal);
        if let Ok(status) = tokio::time::timeout(grace, self.wait()).await {
            return status;
        }
        tracing::warn!(
            pid = self.pid,
            "{} still draining after {grace:?}; forcing it to stop",
            self.name
        );
        self.signal(self.stop_signal);
        if let Ok(status) = tokio::time::timeout(FORCE_WAIT, self.wait()).await {
            return status;
        }
        tracing::warn!(
            pid = self.pid,
            "{} ignored two stop signals; sending SIGKILL",
            self.name
        );
        self.signal(Signal::SIGKILL);
        self.wait().await
    }

    /// Whether the process has exited (reaping it if so), without waiting.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Immediate SIGKILL, for a process that never became ready.
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        self.signal(Signal::SIGKILL);
        self.wait().await
    }
}

fn forward(
    stream: Option<impl AsyncRead + Unpin + Send + 'static>,
    name: &'static str,
    process: &'static str,
    tail: Tail,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(stream) = stream else { return };
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(raw)) = lines.next_line().await {
            let line = livekit_log::parse(&raw);
            let text = line.text();
            // tracing's target must be a constant: LiveKit keeps its own, the others share one.
            if process == "livekit" {
                match line.level {
                    Level::Debug => tracing::debug!(target: "livekit", stream = name, "{text}"),
                    Level::Info => tracing::info!(target: "livekit", stream = name, "{text}"),
                    Level::Warn => tracing::warn!(target: "livekit", stream = name, "{text}"),
                    Level::Error => tracing::error!(target: "livekit", stream = name, "{text}"),
                }
            } else {
                match line.level {
                    Level::Debug => {
                        tracing::debug!(target: "worker", process, stream = name, "{text}")
                    }
                    Level::Info => {
                        tracing::info!(target: "worker", process, stream = name, "{text}")
                    }
                    Level::Warn => {
                        tracing::warn!(target: "worker", process, stream = name, "{text}")
                    }
                    Level::Error => {
                        tracing::error!(target: "worker", process, stream = name, "{text}")
                    }
                }
            }
            tail.push(text);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_output_is_complete_even_when_waits_are_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-livekit");
        std::fs::write(&fake, "#!/bin/sh\nseq 1 300000\necho last line\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let spawner = Spawner::start().unwrap();
        let mut proc = Process::start(&spawner, &fake, Path::new("unused.yaml"))
            .await
            .unwrap();
        // As in the supervisor's readiness loop: wait() keeps losing a race against a timer.
        let status = loop {
            let short = Duration::from_micros(50);
            if let Ok(status) = tokio::time::timeout(short, proc.wait()).await {
                break status.unwrap();
            }
        };
        assert!(status.success());
        let tail = proc.tail();
        assert!(tail.contains(&"last line".to_string()), "{tail:?}");
        assert_eq!(tail[tail.len() - 2], "300000", "{tail:?}");
    }
}
