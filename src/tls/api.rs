//! The API's TLS certificate, swappable in place: new handshakes get the new certificate, open
//! connections keep the one they were made with. A reload (edited files, renewed certificate)
//! and ACME both come through [`ApiCertificate::swap_pem`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum_server::tls_rustls::RustlsConfig;
use sha2::{Digest, Sha256};

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path} ({key}): {source}")]
    Read {
        path: PathBuf,
        key: &'static str,
        source: std::io::Error,
    },
    // rustls says what is wrong (no certificate, no key, key and certificate do not match)
    // without quoting the key.
    #[error("the certificate and key (server.certFile, server.keyFile) are not usable: {0}")]
    Invalid(std::io::Error),
}

/// The certificate the API serves. Cheap to clone; every clone swaps the same certificate.
#[derive(Clone)]
pub struct ApiCertificate {
    rustls: RustlsConfig,
    /// A digest of the PEM in use, so that re-reading unchanged files swaps nothing.
    digest: Arc<Mutex<[u8; 32]>>,
}

impl ApiCertificate {
    /// Reads `server.certFile` and `server.keyFile`.
    pub async fn load(files: &TlsFiles) -> Result<ApiCertificate, TlsError> {
        let (cert, key) = read(files).await?;
        ApiCertificate::from_pem(cert, key).await
    }

    /// A certificate chain (leaf first) and its key held in memory (ACME).
    pub async fn from_pem(
        cert_chain_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Result<ApiCertificate, TlsError> {
        let digest = digest(&cert_chain_pem, &key_pem);
        let rustls = RustlsConfig::from_pem(cert_chain_pem, key_pem)
            .await
            .map_err(TlsError::Invalid)?;
        Ok(ApiCertificate {
            rustls,
            digest: Arc::new(Mutex::new(digest)),
        })
    }

    /// The handle the listener serves with.
    pub fn rustls(&self) -> RustlsConfig {
        self.rustls.clone()
    }

    /// Serves `cert_chain_pem` (leaf first) with `key_pem` from the next handshake on. Returns
    /// whether anything changed; on an error the certificate in use stays.
    pub async fn swap_pem(
        &self,
        cert_chain_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Result<bool, TlsError> {
        let new = digest(&cert_chain_pem, &key_pem);
        if *self.digest.lock().unwrap_or_else(|e| e.into_inner()) == new {
            return Ok(false);
        }
        self.rustls
            .reload_from_pem(cert_chain_pem, key_pem)
            .await
            .map_err(TlsError::Invalid)?;
        *self.digest.lock().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(true)
    }

    /// Re-reads the files and swaps if they changed.
    pub async fn swap_files(&self, files: &TlsFiles) -> Result<bool, TlsError> {
        let (cert, key) = read(files).await?;
        self.swap_pem(cert, key).await
    }

    /// Checks that the files hold a usable certificate and key, without serving them.
    pub async fn check_files(files: &TlsFiles) -> Result<(), TlsError> {
        let (cert, key) = read(files).await?;
        RustlsConfig::from_pem(cert, key)
            .await
            .map(drop)
            .map_err(TlsError::Invalid)
    }
}

async fn read(files: &TlsFiles) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let cert = read_one(&files.cert_file, "server.certFile").await?;
    let key = read_one(&files.key_file, "server.keyFile").await?;
    Ok((cert, key))
}

async fn read_one(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            key,
            source,
        })
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cert);
    h.update([0]);
    h.update(key);
    h.finalize().into()
}
