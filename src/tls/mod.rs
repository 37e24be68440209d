//! The API's TLS certificate: loading it, swapping it in place when a new one arrives (new
//! handshakes get the new certificate, open connections keep theirs), and obtaining and renewing
//! it with ACME.

pub mod acme;
pub mod certificate;
pub mod http01;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::TlsFiles;

/// Loads the certificate chain and key the API serves.
pub async fn load(files: &TlsFiles, keys: &str) -> anyhow::Result<RustlsConfig> {
    RustlsConfig::from_pem_file(&files.cert_file, &files.key_file)
        .await
        .with_context(|| {
            format!(
                "cannot load the TLS certificate {} / key {} ({keys})",
                files.cert_file.display(),
                files.key_file.display()
            )
        })
}

/// The one way a new API certificate goes live: the listener's rustls configuration is replaced,
/// so the next handshake uses it, while connections already open (and the meetings whose
/// signaling runs over them) keep the certificate they started with. Live reload routes its
/// certificate changes here too.
pub async fn install_certificate(
    tls: &RustlsConfig,
    chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
) -> std::io::Result<()> {
    tls.reload_from_pem(chain_pem, key_pem).await
}

/// Hook for the reload path: LiveKit reads its TURN/TLS certificate (the API's, see
/// `config::ports::turn_tls`) only when it starts, so a new certificate reaches TURN/TLS only
/// through a LiveKit restart, which must wait until no meeting is live. Until live reload
/// provides that restart, this says so in the log; the files on disk are already the new ones.
pub fn livekit_must_restart_for_new_turn_certificate(turn_tls: bool) {
    if turn_tls {
        tracing::warn!(
            "TURN/TLS still serves the previous certificate: LiveKit reads it only when it starts \
             (LiveKit restart pending: server.certFile)"
        );
    }
}
