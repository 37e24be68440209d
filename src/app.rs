//! The running daemon. `Application::build` does everything that can fail (TLS files, database,
//! secrets, API port, LiveKit preparation) before any process starts; `run` only runs: LiveKit
//! supervision (or following an external LiveKit), HTTP, reconciliation, systemd notification —
//! and shuts all of it down in order, also when one of them ends on its own.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use livekit_api::access_token::TokenVerifier;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::{Config, Credentials, Mode};
use crate::egress;
use crate::host::systemd;
use crate::http::{self, AppState, Shared};
use crate::keys::{self, Access, Origin};
use crate::livekit::client::LiveKitClient;
use crate::livekit::status::{self, LiveKitStatus};
use crate::livekit::{config as livekit_config, embedded, external};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::reconcile::Reconciler;
use crate::reload::{self, LiveKitControl, Reloader};
use crate::rooms::RoomDirectory;
use crate::secret::Secret;
use crate::store::{self, Store};
use crate::supervisor::Supervisor;
use crate::tls::{acme, acme::AcmeStatus, ApiCertificate};

/// How long in-flight HTTP requests get once LiveKit has stopped.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// A bedrud ready to run: everything that can fail has been done, and no process has started.
pub struct Application {
    config: Arc<Config>,
    listener: TcpListener,
    port: u16,
    /// Present when `server.enableTLS`: the API is served over HTTPS only.
    tls: Option<ApiCertificate>,
    store: Store,
    state: AppState,
    livekit: LiveKitRunner,
    status: watch::Receiver<LiveKitStatus>,
    reconciler: Reconciler,
    reloader: Reloader,
    /// SIGHUP, caught from `build()` on so that a reload sent early cannot kill bedrud.
    hangups: tokio::signal::unix::Signal,
    /// `server.acme`: the HTTP-01 listener and what keeps the certificate renewed.
    acme: Option<AcmeRunner>,
    /// Embedded mode with `recording.enabled`: Redis and the egress worker, and the status
    /// they report into.
    recording: Option<(egress::Recorder, watch::Sender<LiveKitStatus>)>,
}

/// Prepared in `build()`, started by `run()`.
struct AcmeRunner {
    http01: std::net::TcpListener,
    https_origin: String,
    renewer: acme::Renewer,
}

/// What follows LiveKit once `run()` starts: the supervisor of an embedded LiveKit (prepared,
/// not yet started), or the probe of an external one.
enum LiveKitRunner {
    Embedded(Box<Supervisor>),
    External {
        url: String,
        client: reqwest::Client,
        status: watch::Sender<LiveKitStatus>,
    },
}

impl LiveKitRunner {
    fn spawn(self, stop: CancellationToken) -> JoinHandle<Result<(), String>> {
        match self {
            LiveKitRunner::Embedded(supervisor) => tokio::spawn(async move {
                supervisor.run(stop).await;
                Ok(())
            }),
            LiveKitRunner::External {
                url,
                client,
                status,
            } => tokio::spawn(async move {
                external::watch(url, client, status, stop).await;
                Ok(())
            }),
        }
    }
}

impl Application {
    /// Does everything that can fail — TLS files, database, secrets (generated on first start),
    /// the API listener, LiveKit's binary, version, node IP and config — before any process
    /// starts, each failure naming the key to fix. `server.port: 0` picks a free port,
    /// reported by `port()`.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        crate::install_tls_provider();
        crate::host::memory::return_large_blocks();
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot catch SIGHUP")?;
        let acme_prepared = match &config.server.acme {
            Some(a) => Some(acme::prepare(a, config.server.bind_address)?),
            None => None,
        };
        let tls = match &config.server.tls {
            Some(files) => Some(
                ApiCertificate::load(files)
                    .await
                    .with_context(|| tls_keys(&config))?,
            ),
            None => None,
        };
        let store = open_store(&config).await?;
        let credentials = secret(
            keys::livekit_credentials(&config, Access::Create),
            "embedded LiveKit needs an API key",
            "an API key and secret for embedded LiveKit",
        )?;
        let jwt_secret = secret(
            keys::jwt_secret(&config, Access::Create),
            "auth.jwtSecret",
            "a token-signing secret",
        )?;
        let addr = (config.server.bind_address, config.server.port);
        let listener = TcpListener::bind(addr).map_err(|e| {
            let hint = crate::host::systemd::low_port_hint(addr.1, &e).unwrap_or_default();
            anyhow::anyhow!(
                "cannot listen on {}:{} (server.bindAddress, server.port): {e}. {hint}",
                addr.0,
                addr.1
            )
        })?;
        let port = listener.local_addr()?.port();
        // Before LiveKit's config, which names recording's Redis.
        let recorder = egress::prepare(&config, &credentials).await?;
        let prepared = prepare_livekit(&config, &credentials, port).await?;
        let recording = recorder.map(|r| (r, prepared.status.clone()));
        let status = prepared.status_rx;
        let config = Arc::new(config);
        let (snapshot, snapshot_rx) = watch::channel(config.clone());
        let (reload_handle, requests) = reload::channel(tls.clone(), prepared.control.is_some());
        let (acme_status, acme_watch) = watch::channel(AcmeStatus::default());
        let state = state(
            &config,
            snapshot_rx.clone(),
            &store,
            status.clone(),
            (port, prepared.port),
            credentials.clone(),
            &jwt_secret,
            reload_handle.clone(),
            config.server.acme.is_some().then_some(acme_watch),
        );
        let acme = match (acme_prepared, &config.server.acme, &tls) {
            (Some(p), Some(a), Some(t)) => Some(AcmeRunner {
                http01: p.http01,
                https_origin: https_origin(&a.domain, port),
                renewer: acme::Renewer {
                    acme: a.clone(),
                    tls: t.clone(),
                    reload: reload_handle.clone(),
                    tokens: p.tokens,
                    status: acme_status,
                    turn_tls: turn_tls(&config),
                },
            }),
            _ => None,
        };
        let reconciler = Reconciler {
            store: store.clone(),
            livekit: state.livekit.clone(),
            metrics: state.metrics.clone(),
            status: status.clone(),
            config: snapshot_rx,
            webhook_warning: state.webhook_warning.clone(),
            directory: state.directory.clone(),
            warned_limits: Default::default(),
            recorder: Some(state.recorder.clone()),
        };
        let reloader = Reloader::new(reload::Parts {
            config: config.clone(),
            snapshot,
            state: state.clone(),
            certificate: tls.clone(),
            livekit: prepared.control.map(|(restart, plan)| LiveKitControl {
                restart,
                plan,
                credentials,
                api_port: port,
            }),
            status: prepared.status,
            requests,
        });
        Ok(Application {
            config,
            listener,
            port,
            tls,
            store,
            state,
            livekit: prepared.runner,
            status,
            reconciler,
            reloader,
            hangups,
            acme,
            recording,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown` resolves, then stops LiveKit (webhooks still arrive while it
    /// drains), then the HTTP server. If the HTTP server, LiveKit's supervision or
    /// reconciliation ends (or panics) before that, bedrud stops the rest and returns the error.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Application {
            config,
            listener,
            port,
            tls,
            store,
            state,
            livekit,
            status,
            reconciler,
            reloader,
            hangups,
            acme,
            recording,
        } = self;
        let recording = recording.map(|(r, tx)| r.start(tx));
        if let Some(r) = &recording {
            r.redis_ready(
                &status,
                config
                    .embedded()
                    .map_or(Duration::ZERO, |e| e.supervision.ready_timeout),
            )
            .await;
        }
        let stop_livekit = CancellationToken::new();
        let stop_background = CancellationToken::new();
        let mut livekit_task = livekit.spawn(stop_livekit.clone());
        let background = stop_background.clone();
        let mut reconcile_task = tokio::spawn(async move {
            reconciler.run(background).await;
            Ok(())
        });
        // Stopped with LiveKit: no reload may restart LiveKit while it is being stopped.
        let reload_task = tokio::spawn(reloader.run(hangups, stop_livekit.clone()));

        let acme_tasks = acme.map(|a| {
            let http01 = tokio::spawn(crate::tls::http01::serve(
                a.http01,
                a.renewer.tokens.clone(),
                a.https_origin,
                stop_background.clone(),
            ));
            let renewer = tokio::spawn(a.renewer.run(stop_background.clone()));
            (http01, renewer)
        });

        let handle = axum_server::Handle::new();
        let limits = config.server.limits;
        let router = http::router(state);
        let server_handle = handle.clone();
        let tls = tls.map(|t| t.rustls());
        let mut http_task = tokio::spawn(async move {
            http::server::serve(listener, tls, router, limits, server_handle)
                .await
                .map_err(|e| e.to_string())
        });
        tracing::info!(port, tls = config.server.tls.is_some(), "API listening");

        let (lk_alive, http_alive) = (livekit_task.abort_handle(), http_task.abort_handle());
        let healthy = move || !lk_alive.is_finished() && !http_alive.is_finished();
        let notifier = tokio::spawn(systemd::run_notifier(
            status,
            healthy,
            stop_background.clone(),
        ));

        // A task that ends before shutdown was asked for is an error; it is not awaited again.
        let (result, ended) = tokio::select! {
            _ = shutdown => (Ok(()), None),
            r = &mut http_task => (Err(ended("the HTTP server", r)), Some(Task::Http)),
            r = &mut livekit_task => (Err(ended("LiveKit supervision", r)), Some(Task::LiveKit)),
            r = &mut reconcile_task => (Err(ended("reconciliation", r)), Some(Task::Reconciler)),
        };
        if let Err(e) = &result {
            tracing::error!("{e:#}; stopping bedrud");
        }
        tracing::info!("shutting down");
        // The worker first: its recordings end and their files are finished while LiveKit runs.
        let mut recording = recording;
        if let Some(r) = &mut recording {
            systemd::stopping("stopping the recording worker");
            r.stop_worker().await;
        }
        systemd::stopping("stopping LiveKit");
        stop_livekit.cancel();
        let _ = reload_task.await;
        if ended != Some(Task::LiveKit) {
            let _ = livekit_task.await;
        }
        if let Some(r) = recording {
            r.stop_redis().await;
        }
        handle.graceful_shutdown(Some(HTTP_DRAIN));
        if ended != Some(Task::Http) {
            let _ = http_task.await;
        }
        stop_background.cancel();
        if ended != Some(Task::Reconciler) {
            let _ = reconcile_task.await;
        }
        if let Some((http01, renewer)) = acme_tasks {
            if let Ok(Err(e)) = http01.await {
                tracing::warn!("ACME's HTTP-01 listener failed: {e}");
            }
            let _ = renewer.await;
        }
        let _ = notifier.await;
        store.close().await;
        result
    }
}

/// The long-running tasks `run()` watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Http,
    LiveKit,
    Reconciler,
}

/// The error for a task that ended before shutdown, with the panic message when it panicked.
fn ended(what: &str, r: Result<Result<(), String>, tokio::task::JoinError>) -> anyhow::Error {
    match r {
        Ok(Ok(())) => anyhow::anyhow!("{what} stopped unexpectedly"),
        Ok(Err(e)) => anyhow::anyhow!("{what} failed: {e}"),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            anyhow::anyhow!("{what} panicked: {message}")
        }
        Err(e) => anyhow::anyhow!("{what} was cancelled: {e}"),
    }
}

/// The keys an administrator would look at when the API's certificate cannot be loaded.
fn tls_keys(config: &Config) -> &'static str {
    if config.server.acme.is_some() {
        "server.acme: the files bedrud keeps in <server.dataDir>/acme"
    } else {
        "server.certFile, server.keyFile"
    }
}

/// Where ACME's HTTP listener sends everything but challenge answers.
fn https_origin(domain: &str, port: u16) -> String {
    match port {
        443 => format!("https://{domain}"),
        p => format!("https://{domain}:{p}"),
    }
}

/// Whether the generated LiveKit config serves TURN/TLS with the API's certificate.
fn turn_tls(config: &Config) -> bool {
    match &config.livekit.mode {
        Mode::Embedded(e) if e.static_config.is_none() => matches!(
            crate::config::ports::turn_tls(&config.server, e),
            crate::config::ports::TurnTls::On { .. }
        ),
        _ => false,
    }
}

/// A secret from the resolver (which may create it: this is `serve`), saying when it was new.
fn secret<T>(
    resolved: Result<(T, Origin), keys::KeysError>,
    context: &'static str,
    what: &str,
) -> anyhow::Result<T> {
    let (value, origin) = resolved.context(context)?;
    if let Origin::Generated(file) = origin {
        tracing::info!(file = %file.display(), "generated {what}");
    }
    Ok(value)
}

/// Everything the handlers share.
#[allow(clippy::too_many_arguments)]
fn state(
    c: &Config,
    config: watch::Receiver<Arc<Config>>,
    store: &Store,
    status: watch::Receiver<LiveKitStatus>,
    (api_port, livekit_port): (u16, u16),
    creds: Credentials,
    jwt_secret: &Secret,
    reload: reload::ReloadHandle,
    acme_status: Option<watch::Receiver<AcmeStatus>>,
) -> AppState {
    let internal = c
        .livekit
        .internal_host
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{livekit_port}"));
    // Embedded: the browser reaches LiveKit's signaling through bedrud's own listener.
    let embedded = matches!(c.livekit.mode, Mode::Embedded(_));
    let public = if embedded {
        crate::livekit::client_url::ClientUrl::proxied(
            c.livekit.host.as_deref(),
            &c.server.host,
            api_port,
            c.server.tls.is_some(),
        )
    } else {
        crate::livekit::client_url::ClientUrl::new(
            c.livekit.host.as_deref(),
            &c.server.host,
            livekit_port,
        )
    };
    let livekit_proxy = embedded.then(|| format!("127.0.0.1:{livekit_port}"));
    let livekit = LiveKitClient::new(&internal, &creds);
    let recorder = Arc::new(crate::recording::Recorder::new(
        store.clone(),
        livekit.clone(),
        &internal,
        &creds,
        config.clone(),
        status.clone(),
    ));
    let directory = Arc::new(RoomDirectory::new(
        store.clone(),
        livekit.clone(),
        c.rooms.livekit_room.clone(),
    ));
    AppState::new(Shared {
        store: store.clone(),
        events: crate::store::EventLog::start(store.clone()),
        auth: Auth::new(
            jwt_secret,
            c.auth.access_token_ttl,
            c.auth.refresh_token_ttl,
        ),
        livekit,
        livekit_status: status,
        webhook_verifier: TokenVerifier::with_api_key(&creds.api_key, creds.api_secret.expose()),
        credentials: creds,
        livekit_url: public,
        livekit_proxy,
        config,
        metrics: Arc::new(Metrics::default()),
        login_limiter: RateLimiter::new(c.auth.login_attempts_per_minute),
        address_limiter: RateLimiter::new(http::address_limit(c.auth.login_attempts_per_minute)),
        register_limiter: RateLimiter::new(c.auth.registrations_per_minute),
        acme_status,
        directory,
        webhook_warning: Default::default(),
        reload: Some(reload),
        recorder,
    })
}

/// LiveKit prepared for `run()`.
struct PreparedLiveKit {
    runner: LiveKitRunner,
    /// The status the runner keeps, and a sender for the reloader (pending restarts).
    status_rx: watch::Receiver<LiveKitStatus>,
    status: watch::Sender<LiveKitStatus>,
    /// LiveKit's port.
    port: u16,
    /// Embedded: how to restart LiveKit, and the plan it will run.
    control: Option<(crate::supervisor::Restart, crate::supervisor::Plan)>,
}

/// Prepares supervision (embedded) or the external probe without starting anything.
async fn prepare_livekit(
    c: &Config,
    credentials: &Credentials,
    api_port: u16,
) -> anyhow::Result<PreparedLiveKit> {
    let mode = match c.livekit.mode {
        Mode::Embedded(_) => status::Mode::Embedded,
        Mode::External => status::Mode::External,
    };
    let (status, status_rx) = watch::channel(LiveKitStatus::new(mode));
    match &c.livekit.mode {
        Mode::Embedded(e) => {
            for stale in livekit_config::remove_stale(&livekit_config::temp_dir()) {
                tracing::info!(file = %stale.display(), "removed a LiveKit config left by a bedrud that died");
            }
            egress::remove_stale_files();
            let prepared = embedded::prepare(c, e, credentials, api_port).await?;
            for w in &prepared.warnings {
                tracing::warn!("{w}");
            }
            status.send_modify(|s| embedded::describe(&prepared, s));
            let port = prepared.port;
            let plan = prepared.plan.clone();
            let supervisor = Supervisor::new(prepared.plan, status.clone())?;
            let control = Some((supervisor.restart_handle(), plan));
            Ok(PreparedLiveKit {
                runner: LiveKitRunner::Embedded(Box::new(supervisor)),
                status_rx,
                status,
                port,
                control,
            })
        }
        Mode::External => {
            let url = c
                .livekit
                .internal_host
                .clone()
                .context("livekit.internalHost is required")?;
            let warning = (c.livekit.skip_tls_verify && url.starts_with("https://")).then(|| {
                "livekit.skipTLSVerify covers bedrud's health checks, but the server-API client \
                 (livekit-api) always verifies certificates: trust LiveKit's certificate on this \
                 host (system store, or SSL_CERT_FILE) so that joins and moderation work"
                    .to_string()
            });
            if let Some(w) = &warning {
                tracing::warn!("{w}");
            }
            status.send_modify(|s| {
                s.url = c.livekit.host.clone();
                s.warnings.extend(warning);
            });
            let client = external::client(c.livekit.skip_tls_verify).context(
                "cannot set up HTTPS for livekit.internalHost (are the system CA \
                 certificates installed? Debian: ca-certificates)",
            )?;
            let runner = LiveKitRunner::External {
                url,
                client,
                status: status.clone(),
            };
            Ok(PreparedLiveKit {
                runner,
                status_rx,
                status,
                port: 0,
                control: None,
            })
        }
    }
}

/// The configured database, or SQLite in the data folder (created, private, on first start).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = match &config.database_url {
        Some(u) => u.clone(),
        None => {
            let dir = &config.server.data_dir;
            store::prepare_default(dir).with_context(|| {
                format!(
                    "cannot create the data folder {} (server.dataDir)",
                    dir.display()
                )
            })?
        }
    };
    // The URL may hold a password: errors name the key, not the value.
    Store::connect(&url)
        .await
        .context("cannot open the database (database.url)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_is_an_error_that_says_why() {
        let panicked = tokio::spawn(async { panic!("the supervisor lost its mind") }).await;
        let e = ended("LiveKit supervision", panicked.map(|()| Ok(())));
        assert_eq!(
            e.to_string(),
            "LiveKit supervision panicked: the supervisor lost its mind"
        );
        let e = ended("reconciliation", Ok(Ok(())));
        assert_eq!(e.to_string(), "reconciliation stopped unexpectedly");
        let e = ended("the HTTP server", Ok(Err("address in use".into())));
        assert_eq!(e.to_string(), "the HTTP server failed: address in use");
    }
}
