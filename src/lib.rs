//! bedrud: the control plane of a self-hosted video-meeting service built on LiveKit.
//! The binary is a thin wrapper around [`cli::main`]; everything else lives in these modules.

pub mod app;
pub mod auth;
pub mod cli;
pub mod client_url;
pub mod config;
pub mod doctor;
pub mod embedded;
pub mod external;
pub mod http;
pub mod join_token;
pub mod keys;
pub mod livekit_binary;
pub mod livekit_client;
pub mod livekit_config;
pub mod logging;
pub mod manual;
pub mod metrics;
pub mod node_ip;
pub mod rate_limit;
pub mod reconcile;
pub mod secret;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod systemd;
pub mod webhook;

/// rustls needs one process-wide crypto provider; ring builds quickly and needs no C toolchain
/// beyond the compiler. Safe to call more than once.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
