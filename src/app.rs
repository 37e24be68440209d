//! The running daemon: opens the database, binds the API port, starts LiveKit supervision (or
//! follows an external LiveKit), serves HTTP, reconciles state, keeps systemd informed, and
//! shuts all of it down in order.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use livekit_api::access_token::TokenVerifier;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::{Config, Credentials, Mode};
use crate::host::systemd;
use crate::http::{self, AppState, Shared};
use crate::keys;
use crate::livekit::client::LiveKitClient;
use crate::livekit::status::{self, LiveKitStatus};
use crate::livekit::{config as livekit_config, embedded, external};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::reconcile::Reconciler;
use crate::rooms::RoomDirectory;
use crate::store::{self, Store};
use crate::supervisor::Supervisor;

/// How long in-flight HTTP requests get once LiveKit has stopped.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

pub struct Application {
    config: Config,
    listener: TcpListener,
    port: u16,
    /// Present when `server.enableTLS`: the API is served over HTTPS only.
    tls: Option<RustlsConfig>,
    store: Store,
    credentials: Credentials,
}

impl Application {
    /// Opens the database and binds the API listener; `server.port: 0` picks a free port,
    /// reported by `port()`. Fails early, with the key to fix, on anything that cannot work.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        crate::install_tls_provider();
        crate::host::memory::return_large_blocks();
        let tls = match &config.server.tls {
            Some(files) => Some(
                RustlsConfig::from_pem_file(&files.cert_file, &files.key_file)
                    .await
                    .with_context(|| {
                        format!(
                    "cannot load the TLS certificate {} / key {} (server.certFile, server.keyFile)",
                    files.cert_file.display(),
                    files.key_file.display()
                )
                    })?,
            ),
            None => None,
        };
        let store = open_store(&config).await?;
        let credentials = embedded::credentials(&config)?;
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
        Ok(Application {
            config,
            listener,
            port,
            tls,
            store,
            credentials,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown` resolves, then stops LiveKit (webhooks still arrive while it
    /// drains), then the HTTP server.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mode = match self.config.livekit.mode {
            Mode::Embedded(_) => status::Mode::Embedded,
            Mode::External => status::Mode::External,
        };
        let (status_tx, status_rx) = watch::channel(LiveKitStatus::new(mode));
        let stop_livekit = CancellationToken::new();
        let (livekit, livekit_port) = self.start_livekit(status_tx, stop_livekit.clone()).await?;
        let state = self.state(status_rx.clone(), livekit_port)?;

        let stop_background = CancellationToken::new();
        let reconciler = Reconciler {
            store: self.store.clone(),
            livekit: state.livekit.clone(),
            metrics: state.metrics.clone(),
            status: status_rx.clone(),
            interval: self.config.rooms.reconcile_interval,
            webhook_warning: state.webhook_warning.clone(),
            directory: state.directory.clone(),
            warned_limits: Default::default(),
        };
        let reconcile_task = tokio::spawn(reconciler.run(stop_background.clone()));

        let handle = axum_server::Handle::new();
        let mut http_task = tokio::spawn(http::server::serve(
            self.listener,
            self.tls,
            http::router(state),
            self.config.server.limits,
            handle.clone(),
        ));
        tracing::info!(
            port = self.port,
            tls = self.config.server.tls.is_some(),
            "API listening"
        );

        let (lk_alive, http_alive) = (livekit.abort_handle(), http_task.abort_handle());
        let healthy = move || !lk_alive.is_finished() && !http_alive.is_finished();
        let notifier = tokio::spawn(systemd::run_notifier(
            status_rx,
            healthy,
            stop_background.clone(),
        ));

        let (result, http_done) = tokio::select! {
            _ = shutdown => (Ok(()), false),
            r = &mut http_task => (Err(anyhow::anyhow!("the HTTP server stopped unexpectedly: {r:?}")), true),
        };
        tracing::info!("shutting down");
        systemd::stopping("stopping LiveKit");
        stop_livekit.cancel();
        let _ = livekit.await;
        handle.graceful_shutdown(Some(HTTP_DRAIN));
        if !http_done {
            let _ = http_task.await;
        }
        stop_background.cancel();
        let _ = tokio::join!(notifier, reconcile_task);
        self.store.close().await;
        result
    }

    fn state(
        &self,
        status: watch::Receiver<LiveKitStatus>,
        livekit_port: u16,
    ) -> anyhow::Result<AppState> {
        let c = &self.config;
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
                self.port,
                self.tls.is_some(),
            )
        } else {
            crate::livekit::client_url::ClientUrl::new(
                c.livekit.host.as_deref(),
                &c.server.host,
                livekit_port,
            )
        };
        let livekit_proxy = embedded.then(|| format!("127.0.0.1:{livekit_port}"));
        let jwt_secret = match &c.auth.jwt_secret {
            Some(s) => s.clone(),
            None => keys::jwt_secret(&c.server.data_dir).context("auth.jwtSecret")?,
        };
        let creds = &self.credentials;
        let livekit = LiveKitClient::new(&internal, creds);
        let directory = Arc::new(RoomDirectory::new(
            self.store.clone(),
            livekit.clone(),
            c.rooms.livekit_room.clone(),
        ));
        Ok(AppState::new(Shared {
            store: self.store.clone(),
            auth: Auth::new(
                &jwt_secret,
                c.auth.access_token_ttl,
                c.auth.refresh_token_ttl,
            ),
            livekit,
            livekit_status: status,
            credentials: creds.clone(),
            webhook_verifier: TokenVerifier::with_api_key(
                &creds.api_key,
                creds.api_secret.expose(),
            ),
            livekit_url: public,
            livekit_proxy,
            rooms: c.rooms.clone(),
            allow_registration: c.auth.allow_registration,
            metrics: Arc::new(Metrics::default()),
            login_limiter: RateLimiter::new(c.auth.login_attempts_per_minute),
            address_limiter: RateLimiter::new(c.auth.login_attempts_per_minute.saturating_mul(3)),
            body_timeout: c.server.limits.body_timeout,
            register_limiter: RateLimiter::new(c.auth.registrations_per_minute),
            directory,
            webhook_warning: Default::default(),
        }))
    }

    /// Starts supervision (embedded) or the external probe; returns its task and LiveKit's port.
    async fn start_livekit(
        &self,
        status: watch::Sender<LiveKitStatus>,
        stop: CancellationToken,
    ) -> anyhow::Result<(JoinHandle<()>, u16)> {
        let c = &self.config;
        match &c.livekit.mode {
            Mode::Embedded(e) => {
                for stale in livekit_config::remove_stale(&livekit_config::temp_dir()) {
                    tracing::info!(file = %stale.display(), "removed a LiveKit config left by a bedrud that died");
                }
                let prepared = embedded::prepare(c, e, &self.credentials, self.port).await?;
                for w in &prepared.warnings {
                    tracing::warn!("{w}");
                }
                status.send_modify(|s| embedded::describe(&prepared, s));
                let port = prepared.port;
                let supervisor = Supervisor::new(prepared.plan, status)?;
                Ok((tokio::spawn(supervisor.run(stop)), port))
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
                Ok((tokio::spawn(external::watch(url, client, status, stop)), 0))
            }
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
