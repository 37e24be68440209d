//! Runs embedded livekit-server: writes its config, starts it, waits until it answers, restarts it
//! with backoff whenever it exits, and on shutdown stops it and removes its config file.

pub(crate) mod backoff;
mod child;
pub mod livekit_log;
pub mod private_home;
pub mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use backoff::Backoff;
use child::{Process, Spawner};

pub use crate::config::ports::PortClaim;
use crate::config::Supervision;
use crate::livekit::config::ConfigFile;
use crate::livekit::status::{LiveKitStatus, State};
pub use child::{Launch, CHILD_PATH};

/// How often a ready LiveKit is asked whether it is still healthy.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Failed health checks in a row before LiveKit is reported unhealthy.
const HEALTH_FAILURES: u32 = 3;
/// How often a starting LiveKit is asked whether it is ready; bounds start-up latency.
const READY_POLL: Duration = Duration::from_millis(10);

/// The LiveKit configuration to run.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// Written to a fresh temp file for every start.
    Generated(String),
    /// The administrator's own file, used as it is.
    Static(PathBuf),
}

/// Everything the supervisor needs, prepared in advance.
#[derive(Debug, Clone)]
pub struct Plan {
    pub binary: PathBuf,
    pub config: ConfigSource,
    /// LiveKit's health endpoint (`GET /`).
    pub probe_url: String,
    /// The ports LiveKit will listen on, checked before each start so the error can name them.
    pub ports: Vec<PortClaim>,
    pub timings: Supervision,
    pub temp_dir: PathBuf,
}

pub struct Supervisor {
    plan: Plan,
    status: watch::Sender<LiveKitStatus>,
    spawner: Spawner,
    http: reqwest::Client,
    restart: Restart,
}

/// Asks the supervisor to stop LiveKit and start it again with a new plan (a reload). Whether
/// that may happen now (no meeting live) is the caller's decision.
#[derive(Clone, Default)]
pub struct Restart(Arc<RestartSlot>);

#[derive(Default)]
struct RestartSlot {
    next: Mutex<Option<Plan>>,
    /// `notify_one` keeps a permit when nobody waits, so a request made while LiveKit is between
    /// two states is not lost.
    wake: Notify,
}

impl Restart {
    /// Restarts LiveKit with `plan` (the same plan restarts it unchanged).
    pub fn with_plan(&self, plan: Plan) {
        *self.0.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(plan);
        self.0.wake.notify_one();
    }

    fn take(&self) -> Option<Plan> {
        self.0.next.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// How one run of LiveKit ended.
enum Outcome {
    Shutdown,
    /// Stopped to start again with the plan waiting in `Restart`.
    Restart,
    Failed {
        error: String,
        ran_for: Duration,
    },
}

impl Supervisor {
    /// Must be called inside the tokio runtime that will run it.
    pub fn new(plan: Plan, status: watch::Sender<LiveKitStatus>) -> std::io::Result<Self> {
        // Health checks are plain HTTP on loopback: no proxy, and no dependence on the
        // system's CA store, which a minimal host may not have.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .no_proxy()
            .tls_certs_only([])
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Supervisor {
            plan,
            status,
            spawner: Spawner::start()?,
            http,
            restart: Restart::default(),
        })
    }

    /// The handle a reload uses to restart LiveKit with a new plan.
    pub fn restart_handle(&self) -> Restart {
        self.restart.clone()
    }

    /// Runs LiveKit until `shutdown` is cancelled, then stops it. Never gives up on its own.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let t = &self.plan.timings;
        let mut backoff = Backoff::new(t.restart_delay, t.restart_delay_max, t.stable_after);
        loop {
            let (error, ran_for) = match self.run_once(&shutdown).await {
                Outcome::Shutdown => break,
                Outcome::Restart => {
                    self.adopt_next_plan();
                    continue;
                }
                Outcome::Failed { error, ran_for } => (error, ran_for),
            };
            let delay = backoff.delay_after(ran_for);
            self.status.send_modify(|s| {
                s.state = State::Restarting;
                s.restarts += 1;
                s.pid = None;
                s.last_error = Some(error.clone());
                s.next_start_in_ms = Some(delay.as_millis() as u64);
            });
            tracing::error!(retry_in = ?delay, "LiveKit failed: {error}");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.restart.0.wake.notified() => self.adopt_next_plan(),
                _ = shutdown.cancelled() => break,
            }
        }
        self.status.send_modify(|s| {
            s.state = State::Stopped;
            s.pid = None;
            s.next_start_in_ms = None;
        });
    }

    fn adopt_next_plan(&mut self) {
        if let Some(plan) = self.restart.take() {
            self.plan = plan;
        }
        tracing::info!("LiveKit starting again with its new config");
    }

    async fn run_once(&self, shutdown: &CancellationToken) -> Outcome {
        self.set_state(State::Starting);
        let failed = |error: String| Outcome::Failed {
            error,
            ran_for: Duration::ZERO,
        };
        if let Err(e) = check_ports(&self.plan.ports) {
            return failed(e);
        }
        // Held for the whole run: dropping it removes the file once LiveKit has ended.
        let generated = match &self.plan.config {
            ConfigSource::Generated(yaml) => match ConfigFile::write(&self.plan.temp_dir, yaml) {
                Ok(f) => Some(f),
                Err(e) => {
                    let dir = self.plan.temp_dir.display();
                    return failed(format!("cannot write LiveKit config in {dir}: {e}"));
                }
            },
            ConfigSource::Static(_) => None,
        };
        let config_path = match (&generated, &self.plan.config) {
            (Some(f), _) => f.path().to_path_buf(),
            (None, ConfigSource::Static(p)) => p.clone(),
            (None, ConfigSource::Generated(_)) => {
                unreachable!("generated config was written above")
            }
        };
        let mut proc = match Process::start(&self.spawner, &self.plan.binary, &config_path).await {
            Ok(p) => p,
            Err(e) => return failed(format!("cannot start {}: {e}", self.plan.binary.display())),
        };
        self.status.send_modify(|s| {
            s.pid = Some(proc.pid);
            s.next_start_in_ms = None;
            s.config_file = Some(config_path.display().to_string());
        });
        tracing::info!(pid = proc.pid, config = %config_path.display(), "LiveKit started");
        let outcome = self.supervise(&mut proc, shutdown).await;
        drop(generated);
        outcome
    }

    /// From spawn to exit (or shutdown) of one process.
    async fn supervise(&self, proc: &mut Process, shutdown: &CancellationToken) -> Outcome {
        let ready = tokio::select! {
            r = self.wait_ready(proc) => r,
            _ = self.restart.0.wake.notified() => return self.stop_to_restart(proc).await,
            _ = shutdown.cancelled() => return self.stop(proc).await,
        };
        if let Err(error) = ready {
            return Outcome::Failed {
                error,
                ran_for: proc.started.elapsed(),
            };
        }
        self.set_state(State::Ready);
        tracing::info!(
            pid = proc.pid,
            startup = ?proc.started.elapsed(),
            "LiveKit is ready"
        );
        tokio::select! {
            status = proc.wait() => Outcome::Failed {
                error: describe_exit(status, &proc.tail(), proc.started.elapsed()),
                ran_for: proc.started.elapsed(),
            },
            _ = self.watch_health() => unreachable!("the health watch never ends"),
            _ = self.restart.0.wake.notified() => self.stop_to_restart(proc).await,
            _ = shutdown.cancelled() => self.stop(proc).await,
        }
    }

    async fn stop_to_restart(&self, proc: &mut Process) -> Outcome {
        tracing::info!(pid = proc.pid, "stopping LiveKit to apply its new config");
        self.stop(proc).await;
        Outcome::Restart
    }

    async fn stop(&self, proc: &mut Process) -> Outcome {
        self.set_state(State::Stopping);
        let grace = self.plan.timings.stop_grace_period;
        match proc.stop(grace).await {
            Ok(status) => tracing::info!(pid = proc.pid, %status, "LiveKit stopped"),
            Err(e) => tracing::error!(pid = proc.pid, "waiting for LiveKit to stop failed: {e}"),
        }
        Outcome::Shutdown
    }

    /// Polls the health endpoint until it answers 200; fails if LiveKit exits or takes too long.
    async fn wait_ready(&self, proc: &mut Process) -> Result<(), String> {
        let deadline = Instant::now() + self.plan.timings.ready_timeout;
        loop {
            if self.probe().await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = proc.kill().await;
                return Err(format!(
                    "LiveKit did not answer {} within {:?}; last output: {}",
                    self.plan.probe_url,
                    self.plan.timings.ready_timeout,
                    last_lines(&proc.tail(), 5)
                ));
            }
            tokio::select! {
                status = proc.wait() => {
                    return Err(describe_exit(status, &proc.tail(), proc.started.elapsed()));
                }
                _ = tokio::time::sleep(READY_POLL) => {}
            }
        }
    }

    /// Reports a running LiveKit unhealthy after repeated failed checks, and ready again after.
    async fn watch_health(&self) {
        let mut failures = 0u32;
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.probe().await {
                Ok(()) => {
                    if failures >= HEALTH_FAILURES {
                        tracing::info!("LiveKit answers its health check again");
                    }
                    failures = 0;
                    self.status.send_if_modified(|s| {
                        let changed = s.state != State::Ready;
                        s.state = State::Ready;
                        changed
                    });
                }
                Err(e) => {
                    failures += 1;
                    if failures == HEALTH_FAILURES {
                        tracing::warn!("LiveKit health check failing: {e}");
                        self.status.send_modify(|s| {
                            s.state = State::Unhealthy;
                            s.last_error = Some(e);
                        });
                    }
                }
            }
        }
    }

    async fn probe(&self) -> Result<(), String> {
        let resp = self
            .http
            .get(&self.plan.probe_url)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.plan.probe_url))?;
        match resp.status() {
            reqwest::StatusCode::OK => Ok(()),
            other => Err(format!("{} answered {other}", self.plan.probe_url)),
        }
    }

    fn set_state(&self, state: State) {
        self.status.send_modify(|s| s.state = state);
    }
}

/// Tries to bind each port LiveKit needs, so a clash is reported with the port and its key.
pub fn check_ports(claims: &[PortClaim]) -> Result<(), String> {
    for c in claims {
        let bound = if c.udp {
            std::net::UdpSocket::bind(("0.0.0.0", c.port)).map(drop)
        } else {
            std::net::TcpListener::bind(("0.0.0.0", c.port)).map(drop)
        };
        if let Err(e) = bound {
            let proto = if c.udp { "udp" } else { "tcp" };
            let what = if e.kind() == std::io::ErrorKind::AddrInUse {
                "is already in use by another process".to_string()
            } else if let Some(hint) = crate::host::systemd::low_port_hint(c.port, &e) {
                return Err(format!("{} ({proto}, {}): {hint}", c.port, c.key));
            } else {
                format!("cannot be bound: {e}")
            };
            return Err(format!(
                "port {} ({proto}, {}) {what}; stop that process or change {}",
                c.port,
                c.key,
                c.setting()
            ));
        }
    }
    Ok(())
}

/// LiveKit exits 0 even when it failed to start, so every exit is described as a failure,
/// with the reason it printed.
fn describe_exit(
    status: std::io::Result<std::process::ExitStatus>,
    tail: &[String],
    ran_for: Duration,
) -> String {
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown status: {e}"),
    };
    let ran = format!("{:.1}s", ran_for.as_secs_f64());
    // LiveKit's own words first: they are what the administrator has to act on.
    let reason = livekit_log::diagnose(tail).unwrap_or_else(|| last_lines(tail, 5));
    format!("{reason} (livekit-server exited, {status}, after {ran})")
}

fn last_lines(tail: &[String], n: usize) -> String {
    let start = tail.len().saturating_sub(n);
    let lines = &tail[start..];
    if lines.is_empty() {
        "no output".into()
    } else {
        let trimmed: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
        trimmed.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_its_key() {
        let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let claims = [PortClaim {
            port,
            udp: false,
            key: "livekit.port",
            file: crate::config::ports::SetIn::Bedrud,
        }];
        let e = check_ports(&claims).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "port {port} (tcp, livekit.port) is already in use by another process; \
                 stop that process or change livekit.port in config.yaml"
            )),
            "{e}"
        );
        drop(taken);
        assert!(check_ports(&claims).is_ok());
    }

    #[test]
    fn exit_description_keeps_the_printed_reason() {
        let tail = vec!["could not parse config: field tls not found".to_string()];
        let d = describe_exit(
            Ok(std::process::ExitStatus::default()),
            &tail,
            Duration::from_millis(300),
        );
        assert!(
            d.contains("exit status: 0") && d.contains("field tls not found"),
            "{d}"
        );
    }
}
