//! bedrud: the control plane of a self-hosted video-meeting service built on LiveKit.
//! The binary is a thin wrapper around [`cli::main`]; everything else lives in these modules.

pub mod app;
pub mod cli;
pub mod config;
pub mod embedded;
pub mod external;
pub mod http;
pub mod keys;
pub mod livekit_binary;
pub mod livekit_config;
pub mod logging;
pub mod node_ip;
pub mod secret;
pub mod status;
pub mod supervisor;
pub mod systemd;

/// rustls needs one process-wide crypto provider; ring builds quickly and needs no C toolchain
/// beyond the compiler. Safe to call more than once.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
