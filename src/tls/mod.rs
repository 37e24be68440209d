//! The API's TLS certificate: loading it, swapping it in place when a new one arrives (new
//! handshakes get the new certificate, open connections keep theirs), and obtaining and renewing
//! it with ACME.

pub mod acme;
pub mod api;
pub mod certificate;
pub mod http01;

pub use api::{ApiCertificate, TlsError};
