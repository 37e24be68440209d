//! Live reload: `systemctl reload` (SIGHUP), an edited config file or a renewed certificate
//! (watched, `server.watchConfig`) make bedrud re-read its config without ending a meeting.
//!
//! A reload checks the new config fully first and refuses it whole when anything is wrong (the
//! running config stays, bedrud never exits for it). Otherwise, by the rule in [`keys`]: live
//! keys apply at once (the shared config snapshot, limiters, token lifetimes, log level, room
//! timeouts), the API certificate is swapped in place, keys embedded LiveKit reads at start wait
//! for a LiveKit restart that happens only when no meeting is live (or when an admin forces it),
//! and keys that need bedrud restarted are named. Each reload ends with one log line saying so.
//!
//! - `keys`: which key changes how (the one rule);
//! - `files`: the config and certificate files seen through `notify`, debounced.

mod files;
pub mod keys;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, Credentials, Env, Source};
use crate::host::systemd;
use crate::http::AppState;
use crate::livekit::embedded;
use crate::livekit::status::LiveKitStatus;
use crate::supervisor::{Plan, Restart};
use crate::tls::ApiCertificate;
use keys::{Changes, Class};

/// How often a pending LiveKit restart asks whether the last meeting has ended.
const PENDING_POLL: Duration = Duration::from_secs(1);

/// What a caller can ask the reloader for.
enum Request {
    /// Restart LiveKit under the no-live-meeting rule (e.g. a renewed TURN/TLS certificate).
    LiveKitRestart { reason: String },
    /// Restart LiveKit now, applying what is pending; answers with the keys applied.
    ForceLiveKitRestart { done: oneshot::Sender<Vec<String>> },
}

/// What the rest of bedrud (the admin API, ACME) holds to reach the reloader. Cheap to clone.
#[derive(Clone)]
pub struct ReloadHandle {
    requests: mpsc::UnboundedSender<Request>,
    certificate: Option<ApiCertificate>,
    embedded: bool,
}

/// The requests a [`Reloader`] serves, made before it (the handle goes into the API's state,
/// which the reloader needs).
pub struct Requests(mpsc::UnboundedReceiver<Request>);

/// A handle and the requests it sends; `embedded`: bedrud runs LiveKit.
pub fn channel(certificate: Option<ApiCertificate>, embedded: bool) -> (ReloadHandle, Requests) {
    let (requests, rx) = mpsc::unbounded_channel();
    let handle = ReloadHandle {
        requests,
        certificate,
        embedded,
    };
    (handle, Requests(rx))
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("bedrud is shutting down")]
    ShuttingDown,
    #[error("bedrud runs no LiveKit (livekit.external is true): restart LiveKit where it runs")]
    NoEmbeddedLiveKit,
}

impl ReloadHandle {
    /// The API's certificate, when `server.enableTLS`: swap it in place with
    /// [`ApiCertificate::swap_pem`].
    pub fn api_certificate(&self) -> Option<&ApiCertificate> {
        self.certificate.as_ref()
    }

    /// Asks for a LiveKit restart (its config is generated again from the running config, so a
    /// renewed TURN/TLS certificate is read) under the rule that no meeting may be live; shown as
    /// "LiveKit restart pending: `reason`" until it happens. No-op without embedded LiveKit.
    pub fn request_livekit_restart(&self, reason: impl Into<String>) -> Result<(), ReloadError> {
        let reason = reason.into();
        self.requests
            .send(Request::LiveKitRestart { reason })
            .map_err(|_| ReloadError::ShuttingDown)
    }

    /// Restarts embedded LiveKit now, whether a meeting is live or not, applying any pending
    /// change; returns the keys that were pending.
    pub async fn force_livekit_restart(&self) -> Result<Vec<String>, ReloadError> {
        if !self.embedded {
            return Err(ReloadError::NoEmbeddedLiveKit);
        }
        let (done, answer) = oneshot::channel();
        self.requests
            .send(Request::ForceLiveKitRestart { done })
            .map_err(|_| ReloadError::ShuttingDown)?;
        answer.await.map_err(|_| ReloadError::ShuttingDown)
    }
}

/// Embedded LiveKit as the reloader sees it: how to restart it, and the plan it runs.
pub struct LiveKitControl {
    pub restart: Restart,
    pub plan: Plan,
    pub credentials: Credentials,
    pub api_port: u16,
}

/// A LiveKit restart waiting for the meetings to end.
struct Pending {
    plan: Plan,
    /// The running config with the LiveKit keys it applies.
    config: Arc<Config>,
    keys: Vec<String>,
}

/// Why a reload ran.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Signal,
    Files,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Files => "file change",
        })
    }
}

/// The task that owns the running config and changes it.
pub struct Reloader {
    source: Source,
    env: Env,
    running: Arc<Config>,
    snapshot: watch::Sender<Arc<Config>>,
    state: AppState,
    certificate: Option<ApiCertificate>,
    livekit: Option<LiveKitControl>,
    status: watch::Sender<LiveKitStatus>,
    pending: Option<Pending>,
    requests: mpsc::UnboundedReceiver<Request>,
}

/// What a reloader works on, gathered by `Application::build`.
pub struct Parts {
    pub config: Arc<Config>,
    pub snapshot: watch::Sender<Arc<Config>>,
    pub state: AppState,
    pub certificate: Option<ApiCertificate>,
    pub livekit: Option<LiveKitControl>,
    pub status: watch::Sender<LiveKitStatus>,
    pub requests: Requests,
}

impl Reloader {
    pub fn new(p: Parts) -> Reloader {
        Reloader {
            source: p.config.source.clone(),
            env: Env::from_process(),
            running: p.config,
            snapshot: p.snapshot,
            state: p.state,
            certificate: p.certificate,
            livekit: p.livekit,
            status: p.status,
            pending: None,
            requests: p.requests.0,
        }
    }

    /// Reloads on every SIGHUP and (with `server.watchConfig`) every change of the watched
    /// files, applies a pending LiveKit restart once no meeting is live, until `stop`.
    pub async fn run(mut self, mut hangups: tokio::signal::unix::Signal, stop: CancellationToken) {
        let mut watched = self.watch_files();
        let mut poll = tokio::time::interval(PENDING_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = hangups.recv() => self.reload(Trigger::Signal).await,
                Some(()) = files::changed(&mut watched) => self.reload(Trigger::Files).await,
                Some(request) = self.requests.recv() => self.serve(request).await,
                _ = poll.tick(), if self.pending.is_some() => { self.apply_pending(false).await; }
                _ = stop.cancelled() => break,
            }
            // The files to watch may have changed with the config.
            let wanted = self.watched_paths();
            if watched.as_ref().map(|w| w.paths()) != Some(wanted.as_slice()) {
                watched = self.watch_files();
            }
        }
    }

    fn watched_paths(&self) -> Vec<PathBuf> {
        let c = &self.running;
        if !c.server.watch_config {
            return Vec::new();
        }
        let mut paths = Vec::new();
        if let Source::File(p) = &c.source {
            paths.push(p.clone());
        }
        if let Some(t) = &c.server.tls {
            paths.extend([t.cert_file.clone(), t.key_file.clone()]);
        }
        paths
    }

    fn watch_files(&self) -> Option<files::Watched> {
        let paths = self.watched_paths();
        if paths.is_empty() {
            return None;
        }
        match files::Watched::start(paths) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot watch the config and certificate files ({e}); `systemctl reload bedrud` still reloads");
                None
            }
        }
    }

    async fn serve(&mut self, request: Request) {
        match request {
            Request::LiveKitRestart { reason } => {
                let Some(lk) = &self.livekit else { return };
                // On top of a restart already pending, with the config that one brings.
                let (config, mut keys) = match &self.pending {
                    Some(p) => (p.config.clone(), p.keys.clone()),
                    None => (self.running.clone(), Vec::new()),
                };
                let plan = match self.plan_for(&config, lk).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!("LiveKit restart ({reason}) not possible: {e:#}");
                        return;
                    }
                };
                if !keys.contains(&reason) {
                    keys.push(reason.clone());
                }
                self.set_pending(Some(Pending { plan, config, keys }));
                tracing::info!(
                    "LiveKit restart requested ({reason}): waiting until no meeting is live"
                );
                self.apply_pending(false).await;
            }
            Request::ForceLiveKitRestart { done } => {
                let keys = self.apply_pending(true).await;
                let _ = done.send(keys);
            }
        }
    }

    /// One reload: RELOADING=1 to systemd, check, apply, one log line, READY=1.
    async fn reload(&mut self, trigger: Trigger) {
        systemd::reloading();
        match self.try_reload().await {
            Ok(report) => {
                self.status.send_modify(|s| s.reload_refused = None);
                tracing::info!("config reloaded ({trigger}): {report}");
            }
            Err(refused) => {
                // One line, every problem on it: the journal and STATUS= show it whole.
                let refused = refused.lines().map(str::trim).collect::<Vec<_>>().join(" ");
                tracing::error!(
                    "config reload ({trigger}) refused, running config kept: {refused}"
                );
                self.status
                    .send_modify(|s| s.reload_refused = Some(refused));
            }
        }
        systemd::reloaded(&self.status.borrow().summary());
        // A restart the reload made pending may be possible right away.
        if self.pending.is_some() {
            self.apply_pending(false).await;
        }
    }

    /// Checks the new config fully, then applies it; `Err` is every problem, nothing applied.
    async fn try_reload(&mut self) -> Result<Report, String> {
        let new = config::load(&self.source, &self.env).map_err(|e| e.to_string())?;
        let changes = keys::diff(&self.running, &new);
        // Certificates are checked before anything applies: a bad pair refuses the reload.
        if let (Some(_), Some(files)) = (&self.certificate, &new.server.tls) {
            ApiCertificate::check_files(files)
                .await
                .map_err(|e| e.to_string())?;
        }
        let live = Arc::new(keys::adopt(&self.running, &new, Class::Live));
        let mut report = Report::from(&changes);
        // LiveKit's config as it would be with its keys from the new config, the rest as running.
        let with_livekit = Arc::new(keys::adopt(&live, &new, Class::LiveKitRestart));
        let plan = match &self.livekit {
            Some(lk) => Some(
                self.plan_for(&with_livekit, lk)
                    .await
                    .map_err(|e| format!("{e:#}"))?,
            ),
            None => None,
        };

        // Everything checked: apply.
        if let (Some(cert), Some(files)) = (&self.certificate, &live.server.tls) {
            report.certificate_swapped = cert.swap_files(files).await.map_err(|e| e.to_string())?;
        }
        self.apply_live(&live);

        let pending = match (plan, &self.livekit) {
            (Some(plan), Some(lk)) => {
                let mut why: Vec<String> = changes
                    .livekit_restart
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                if why.is_empty() && differs(&plan, &lk.plan) {
                    // The same keys, another result: node IP resolved anew, static file edited.
                    why.push(GENERATED.into());
                }
                if report.certificate_swapped && turn_tls_uses_certificate(&with_livekit) {
                    // TURN/TLS reads the same files, but only when LiveKit starts.
                    why.push(TURN_CERTIFICATE.into());
                }
                // Requests (ACME) that are not config keys stay pending across reloads.
                let requested = self.pending.iter().flat_map(|p| p.keys.iter());
                for reason in requested.filter(|k| is_request(k)) {
                    if !why.contains(reason) {
                        why.push(reason.clone());
                    }
                }
                (!why.is_empty()).then_some(Pending {
                    plan,
                    config: with_livekit,
                    keys: why,
                })
            }
            _ => None,
        };
        report.pending = pending.as_ref().map(|p| p.keys.clone()).unwrap_or_default();
        self.set_pending(pending);
        Ok(report)
    }

    /// Puts the live keys of `next` into effect.
    fn apply_live(&mut self, next: &Arc<Config>) {
        let s = &self.state;
        if next.log_level != self.running.log_level {
            crate::logging::set_level(&next.log_level);
        }
        s.auth
            .set_ttls(next.auth.access_token_ttl, next.auth.refresh_token_ttl);
        let attempts = next.auth.login_attempts_per_minute;
        s.login_limiter.set_per_minute(attempts);
        s.address_limiter
            .set_per_minute(crate::http::address_limit(attempts));
        s.register_limiter
            .set_per_minute(next.auth.registrations_per_minute);
        s.directory.set_options(next.rooms.livekit_room.clone());
        self.running = next.clone();
        self.snapshot.send_replace(next.clone());
    }

    async fn plan_for(&self, c: &Config, lk: &LiveKitControl) -> anyhow::Result<Plan> {
        let Some(e) = c.embedded() else {
            anyhow::bail!("livekit.external changed: restart bedrud");
        };
        let prepared = embedded::prepare(c, e, &lk.credentials, lk.api_port).await?;
        Ok(prepared.plan)
    }

    fn set_pending(&mut self, pending: Option<Pending>) {
        let keys = pending.as_ref().map(|p| p.keys.clone()).unwrap_or_default();
        self.pending = pending;
        self.status.send_if_modified(|s| {
            let changed = s.pending_restart != keys;
            s.pending_restart = keys;
            changed
        });
    }

    /// Restarts LiveKit with the pending plan when no meeting is live, or at once when `force`d
    /// (then with the running plan if nothing is pending). Returns the keys applied.
    async fn apply_pending(&mut self, force: bool) -> Vec<String> {
        let Some(lk) = &self.livekit else {
            return Vec::new();
        };
        if !force {
            if self.pending.is_none() {
                return Vec::new();
            }
            match self.meeting_live().await {
                Ok(false) => {}
                Ok(true) => return Vec::new(),
                Err(e) => {
                    tracing::warn!("cannot tell whether a meeting is live ({e}); LiveKit restart stays pending");
                    return Vec::new();
                }
            }
        }
        let (plan, config, keys) = match self.pending.take() {
            Some(p) => (p.plan, p.config, p.keys),
            None => (lk.plan.clone(), self.running.clone(), Vec::new()),
        };
        let how = if force {
            "forced by an admin"
        } else {
            "no meeting live"
        };
        tracing::info!(
            "restarting LiveKit ({how}) to apply: {}",
            if keys.is_empty() {
                "nothing pending".to_string()
            } else {
                keys.join(", ")
            }
        );
        lk.restart.with_plan(plan.clone());
        if let Some(lk) = &mut self.livekit {
            lk.plan = plan;
        }
        // The LiveKit keys now run; live keys changed meanwhile stay as they are.
        let running = Arc::new(keys::adopt(&self.running, &config, Class::LiveKitRestart));
        self.running = running.clone();
        self.snapshot.send_replace(running);
        self.set_pending(None);
        keys
    }

    /// Whether anyone is in a meeting, from bedrud's presence (webhooks + reconciliation).
    async fn meeting_live(&self) -> anyhow::Result<bool> {
        let rooms = self.state.store.active_rooms().await?;
        Ok(rooms.iter().any(|(_, n)| *n > 0))
    }
}

/// Pending because the generated LiveKit config differs though no key did.
const GENERATED: &str = "livekit (generated config)";
/// Pending because the certificate TURN/TLS serves was renewed.
const TURN_CERTIFICATE: &str = "TURN/TLS certificate";

/// A pending reason that came from `request_livekit_restart`, not from the config.
fn is_request(reason: &str) -> bool {
    keys::class_of(reason).is_none() && reason != GENERATED && reason != TURN_CERTIFICATE
}

/// Whether LiveKit serves TURN/TLS with the API's certificate files.
fn turn_tls_uses_certificate(c: &Config) -> bool {
    c.embedded().is_some_and(|e| {
        e.static_config.is_none()
            && matches!(
                config::ports::turn_tls(&c.server, e),
                config::ports::TurnTls::On { .. }
            )
    })
}

/// Whether two plans would run LiveKit differently.
fn differs(a: &Plan, b: &Plan) -> bool {
    format!("{:?}{:?}{:?}", a.binary, a.config, a.ports)
        != format!("{:?}{:?}{:?}", b.binary, b.config, b.ports)
}

/// What one reload did, for its log line.
#[derive(Debug, Default)]
struct Report {
    live: Vec<&'static str>,
    pending: Vec<String>,
    process_restart: Vec<&'static str>,
    certificate_swapped: bool,
}

impl From<&Changes> for Report {
    fn from(c: &Changes) -> Report {
        Report {
            live: c.live.clone(),
            process_restart: c.process_restart.clone(),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.live.is_empty() {
            parts.push(format!("applied: {}", self.live.join(", ")));
        }
        if self.certificate_swapped {
            parts.push("API certificate swapped".to_string());
        }
        if !self.pending.is_empty() {
            parts.push(format!(
                "LiveKit restart pending: {}",
                self.pending.join(", ")
            ));
        }
        if !self.process_restart.is_empty() {
            parts.push(format!(
                "needs a bedrud restart (not applied): {}",
                self.process_restart.join(", ")
            ));
        }
        if parts.is_empty() {
            f.write_str("no changes")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}
