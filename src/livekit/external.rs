//! External mode: bedrud runs no LiveKit and watches one elsewhere (`livekit.internalHost`).
//! Readiness is LiveKit's own health answer; `skipTLSVerify` trusts a self-signed certificate.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::livekit::status::{LiveKitStatus, State};

const CHECK_WHEN_READY: Duration = Duration::from_secs(5);
const CHECK_WHEN_DOWN: Duration = Duration::from_secs(1);

/// An HTTP client for server-to-server calls to LiveKit.
pub fn client(skip_tls_verify: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .tls_danger_accept_invalid_certs(skip_tls_verify)
        .build()
}

/// Asks `GET <internalHost>/` until `stop`, keeping the status up to date.
pub async fn watch(
    internal_host: String,
    client: reqwest::Client,
    status: watch::Sender<LiveKitStatus>,
    stop: CancellationToken,
) {
    let url = format!("{internal_host}/");
    loop {
        let result = check(&client, &url).await;
        let ready = result.is_ok();
        status.send_if_modified(|s| {
            let (state, error) = match &result {
                Ok(()) => (State::Ready, s.last_error.clone()),
                Err(e) => (State::Unreachable, Some(e.clone())),
            };
            let changed = s.state != state || s.last_error != error;
            if changed && state == State::Unreachable {
                tracing::warn!(
                    "LiveKit at {url} is unreachable: {}",
                    error.as_deref().unwrap_or("")
                );
            }
            s.state = state;
            s.last_error = error;
            changed
        });
        let wait = if ready {
            CHECK_WHEN_READY
        } else {
            CHECK_WHEN_DOWN
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => break,
        }
    }
}

pub async fn check(client: &reqwest::Client, url: &str) -> Result<(), String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| describe(url, &e))?;
    match resp.status() {
        reqwest::StatusCode::OK => Ok(()),
        other => Err(format!("{url} answered {other}")),
    }
}

/// A certificate failure gets the key that fixes it; reqwest hides the cause in its source chain.
pub fn describe(url: &str, e: &reqwest::Error) -> String {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    if chain.contains("certificate") || chain.contains("UnknownIssuer") {
        format!(
            "{url}: TLS certificate not trusted ({chain}); for a self-signed certificate set \
             livekit.skipTLSVerify: true (health checks) and trust the certificate on this host \
             (system store or SSL_CERT_FILE) for the server API"
        )
    } else {
        format!("{url}: {chain}")
    }
}
