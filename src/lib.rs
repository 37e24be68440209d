//! bedrud: the control plane of a self-hosted video-meeting service built on LiveKit.
//! The binary is a thin wrapper around [`cli::main`]; everything else lives in these modules.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod egress;
pub mod host;
pub mod http;
pub mod keys;
pub mod livekit;
pub mod logging;
pub mod manual;
pub mod metrics;
pub mod rate_limit;
pub mod reconcile;
pub mod recording;
pub mod reload;
pub mod rooms;
pub mod secret;
pub mod store;
pub mod supervisor;
pub mod tls;

/// rustls needs one process-wide crypto provider; ring builds quickly and needs no C toolchain
/// beyond the compiler. Safe to call more than once.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
