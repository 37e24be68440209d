//! Supervises a helper process of recording (redis-server, the egress worker, PulseAudio) by
//! LiveKit's rules: a config generated for each start (0600, removed when the process ends),
//! started only once what it needs is up, ready when its check passes, restarted with backoff,
//! stopped with its stop signal, grace, then SIGKILL; and what it started in sessions of its
//! own (egress' handlers) killed with it. Its state goes into the recording part of the
//! LiveKit status.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::child::{Launch, Process, Spawner};
use crate::config::{Redis, Supervision};
use crate::egress::{self, ProcStatus};
use crate::livekit::config::ConfigFile;
use crate::livekit::status::{LiveKitStatus, State};

/// How often a starting process is checked for readiness.
const READY_POLL: Duration = Duration::from_millis(50);

/// How a started process shows it is ready.
#[derive(Debug, Clone)]
pub enum Ready {
    /// Redis answers PING with the password.
    Ping(Redis),
    /// A line of its output contains this (egress: "service ready", logged once it takes
    /// requests from Redis).
    Logged(&'static str),
    /// A unix socket accepts a connection (PulseAudio's native protocol socket).
    Socket(PathBuf),
}

/// Which of the recording status' entries this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Redis,
    Egress,
    Pulse,
}

#[derive(Debug, Clone)]
pub struct WorkerPlan {
    pub which: Which,
    /// What to run; the generated config's path is appended to its arguments.
    pub launch: Launch,
    pub config: String,
    pub config_name: (&'static str, &'static str),
    pub temp_dir: PathBuf,
    pub ready: Ready,
    /// Start only while LiveKit is ready (egress: its handlers join rooms at once).
    pub after_livekit: bool,
    /// Processes marked with this (see `egress::worker::MARK`) are killed before each start
    /// and after each stop.
    pub mark: Option<String>,
    pub timings: Supervision,
}

/// Runs the process until `shutdown`, then stops it. Never gives up on its own.
pub async fn run(
    plan: WorkerPlan,
    status: watch::Sender<LiveKitStatus>,
    shutdown: CancellationToken,
) {
    let spawner = match Spawner::start() {
        Ok(s) => s,
        Err(e) => {
            update(&status, plan.which, |s| {
                s.state = State::Stopped;
                s.last_error = Some(format!("cannot start a spawner thread: {e}"));
            });
            return;
        }
    };
    let t = &plan.timings;
    let mut backoff = Backoff::new(t.restart_delay, t.restart_delay_max, t.stable_after);
    let mut livekit = status.subscribe();
    loop {
        if plan.after_livekit {
            tokio::select! {
                r = livekit.wait_for(|s| s.is_ready()) => if r.is_err() { break },
                _ = shutdown.cancelled() => break,
            }
        }
        let started = Instant::now();
        let error = match run_once(&plan, &spawner, &status, &shutdown).await {
            None => break,
            Some(e) => e,
        };
        let delay = backoff.delay_after(started.elapsed());
        tracing::error!(process = name(plan.which), retry_in = ?delay, "{error}");
        update(&status, plan.which, |s| {
            s.state = State::Restarting;
            s.restarts += 1;
            s.pid = None;
            s.last_error = Some(error);
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    update(&status, plan.which, |s| {
        s.state = State::Stopped;
        s.pid = None;
    });
}

fn name(which: Which) -> &'static str {
    match which {
        Which::Redis => "redis-server",
        Which::Egress => "egress",
        Which::Pulse => "pulseaudio",
    }
}

fn update(status: &watch::Sender<LiveKitStatus>, which: Which, f: impl FnOnce(&mut ProcStatus)) {
    status.send_modify(|s| {
        if let Some(r) = &mut s.recording {
            f(match which {
                Which::Redis => &mut r.redis,
                Which::Egress => &mut r.worker,
                Which::Pulse => &mut r.pulse,
            })
        }
    });
}

fn clean_up(plan: &WorkerPlan, when: &str) {
    if let Some(owner) = &plan.mark {
        let n = egress::worker::kill_marked(owner);
        if n > 0 {
            tracing::warn!(
                process = name(plan.which),
                "killed {n} process(es) left {when}"
            );
        }
    }
}

/// One run; `None` when it ended because of `shutdown`, else why it failed.
async fn run_once(
    plan: &WorkerPlan,
    spawner: &Spawner,
    status: &watch::Sender<LiveKitStatus>,
    shutdown: &CancellationToken,
) -> Option<String> {
    let which = plan.which;
    update(status, which, |s| s.state = State::Starting);
    clean_up(plan, "by an earlier run");
    // Held for the whole run: dropping it removes the file once the process has ended.
    let file = match ConfigFile::write_named(&plan.temp_dir, plan.config_name, &plan.config) {
        Ok(f) => f,
        Err(e) => {
            let dir = plan.temp_dir.display();
            return Some(format!("cannot write its config in {dir}: {e}"));
        }
    };
    let mut launch = plan.launch.clone();
    launch.args.push(file.path().as_os_str().to_owned());
    let mut proc = match Process::launch(spawner, &launch).await {
        Ok(p) => p,
        Err(e) => return Some(format!("cannot start {}: {e}", launch.binary.display())),
    };
    update(status, which, |s| {
        s.pid = Some(proc.pid);
        s.config_file = Some(file.path().display().to_string());
    });
    tracing::info!(process = name(which), pid = proc.pid, "started");
    let outcome = tokio::select! {
        r = wait_ready(plan, &mut proc) => match r {
            Err(e) => Some(e),
            Ok(()) => {
                update(status, which, |s| s.state = State::Ready);
                tracing::info!(process = name(which), pid = proc.pid, startup = ?proc.started.elapsed(), "ready");
                tokio::select! {
                    st = proc.wait() => Some(describe_exit(st, &proc.tail())),
                    _ = shutdown.cancelled() => None,
                }
            }
        },
        _ = shutdown.cancelled() => None,
    };
    if outcome.is_none() {
        update(status, which, |s| s.state = State::Stopping);
        match proc.stop(plan.timings.stop_grace_period).await {
            Ok(st) => tracing::info!(process = name(which), pid = proc.pid, %st, "stopped"),
            Err(e) => tracing::error!(process = name(which), "waiting for it to stop failed: {e}"),
        }
    } else if !proc.exited() {
        let _ = proc.kill().await;
    }
    clean_up(plan, "after it ended");
    drop(file);
    outcome
}

async fn wait_ready(plan: &WorkerPlan, proc: &mut Process) -> Result<(), String> {
    let deadline = Instant::now() + plan.timings.ready_timeout;
    loop {
        let ready = match &plan.ready {
            Ready::Ping(link) => egress::redis::ping(link).await.is_ok(),
            Ready::Logged(text) => proc.tail().iter().any(|l| l.contains(text)),
            Ready::Socket(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
        };
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = proc.kill().await;
            return Err(format!(
                "not ready within {:?}; last output: {}",
                plan.timings.ready_timeout,
                super::last_lines(&proc.tail(), 5)
            ));
        }
        tokio::select! {
            st = proc.wait() => return Err(describe_exit(st, &proc.tail())),
            _ = tokio::time::sleep(READY_POLL) => {}
        }
    }
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>, tail: &[String]) -> String {
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown status: {e}"),
    };
    format!(
        "exited ({status}); last output: {}",
        super::last_lines(tail, 5)
    )
}
