//! The running daemon: binds the API port, starts LiveKit supervision (or watches an external
//! LiveKit), serves HTTP, keeps systemd informed, and shuts all of it down in order.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use std::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode};
use crate::http::{self, ApiState};
use crate::status::{self, LiveKitStatus};
use crate::supervisor::Supervisor;
use crate::{embedded, external, livekit_config, systemd};

/// How long in-flight HTTP requests get once LiveKit has stopped.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

pub struct Application {
    config: Config,
    listener: TcpListener,
    port: u16,
    /// Present when `server.enableTLS`: the API is served over HTTPS only.
    tls: Option<RustlsConfig>,
}

impl Application {
    /// Binds the API listener; `server.port: 0` picks a free port, reported by `port()`.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        crate::install_tls_provider();
        let addr = (config.server.bind_address, config.server.port);
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
        let listener = TcpListener::bind(addr).with_context(|| {
            format!(
                "cannot listen on {}:{} (server.bindAddress, server.port)",
                addr.0, addr.1
            )
        })?;
        let port = listener.local_addr()?.port();
        Ok(Application {
            config,
            listener,
            port,
            tls,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown` resolves, then stops LiveKit (letting webhooks still arrive while it
    /// drains), then the HTTP server.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mode = match self.config.livekit.mode {
            Mode::Embedded(_) => status::Mode::Embedded,
            Mode::External => status::Mode::External,
        };
        let (status_tx, status_rx) = watch::channel(LiveKitStatus::new(mode));
        let stop_livekit = CancellationToken::new();
        let livekit = self.start_livekit(status_tx, stop_livekit.clone()).await?;

        let router = http::router(ApiState {
            livekit: status_rx.clone(),
        });
        let handle = axum_server::Handle::new();
        let service = router.into_make_service();
        let mut http_task = match self.tls {
            Some(tls) => {
                let server =
                    axum_server::from_tcp_rustls(self.listener, tls)?.handle(handle.clone());
                tokio::spawn(server.serve(service))
            }
            None => {
                let server = axum_server::from_tcp(self.listener)?.handle(handle.clone());
                tokio::spawn(server.serve(service))
            }
        };
        tracing::info!(
            port = self.port,
            tls = self.config.server.tls.is_some(),
            "API listening"
        );

        let stop_notifier = CancellationToken::new();
        let (lk_alive, http_alive) = (livekit.abort_handle(), http_task.abort_handle());
        let healthy = move || !lk_alive.is_finished() && !http_alive.is_finished();
        let notifier = tokio::spawn(systemd::run_notifier(
            status_rx,
            healthy,
            stop_notifier.clone(),
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
        stop_notifier.cancel();
        let _ = notifier.await;
        result
    }

    async fn start_livekit(
        &self,
        status: watch::Sender<LiveKitStatus>,
        stop: CancellationToken,
    ) -> anyhow::Result<JoinHandle<()>> {
        let c = &self.config;
        match &c.livekit.mode {
            Mode::Embedded(e) => {
                for stale in livekit_config::remove_stale(&livekit_config::temp_dir()) {
                    tracing::info!(file = %stale.display(), "removed a LiveKit config left by a bedrud that died");
                }
                let prepared = embedded::prepare(c, e, self.port).await?;
                for w in &prepared.warnings {
                    tracing::warn!("{w}");
                }
                status.send_modify(|s| embedded::describe(&prepared, s));
                let supervisor = Supervisor::new(prepared.plan, status)?;
                Ok(tokio::spawn(supervisor.run(stop)))
            }
            Mode::External => {
                let url = c
                    .livekit
                    .internal_host
                    .clone()
                    .context("livekit.internalHost is required")?;
                status.send_modify(|s| s.url = c.livekit.host.clone());
                let client = external::client(c.livekit.skip_tls_verify)?;
                Ok(tokio::spawn(external::watch(url, client, status, stop)))
            }
        }
    }
}
