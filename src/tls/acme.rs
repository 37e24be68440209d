//! Automatic HTTPS (`server.acme`): bedrud obtains the API's certificate from an ACME CA (Let's
//! Encrypt by default) and renews it two thirds into its lifetime, with backoff on failure while
//! the old certificate keeps serving. The account key, certificate, key and the last result live
//! in `<dataDir>/acme/`, all 0600. A new certificate goes live through [`ApiCertificate::swap_pem`],
//! the same path as a reload; TURN/TLS gets it through the reload's LiveKit restart, which waits
//! until no meeting is live.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::certificate::{self, unix, CertificateInfo};
use super::http01::Tokens;
use super::{ApiCertificate, TlsError};
use crate::config::{Acme, TlsFiles};
use crate::host::private;
use crate::reload::ReloadHandle;
use crate::supervisor::backoff::Backoff;

/// First retry after a failed order; doubling up to `RETRY_MAX`. Let's Encrypt allows 5 failed
/// validations per name per hour, so retries start slow.
const RETRY_FIRST: Duration = Duration::from_secs(120);
const RETRY_MAX: Duration = Duration::from_secs(4 * 3600);
/// How long the CA may take to validate and to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("{0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("the CA refused: {0}")]
    Refused(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Stored {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the CA's certificate is unusable: {0}")]
    Certificate(#[from] certificate::CertificateError),
    #[error("cannot serve the new certificate: {0}")]
    Install(TlsError),
}

/// The last result, kept in `status.json` for `doctor` and shown by `/api/admin/livekit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeStatus {
    pub domain: String,
    pub directory_url: String,
    /// Unix seconds of the last order, finished or failed.
    pub last_attempt: Option<u64>,
    pub last_success: Option<u64>,
    /// Why the last order failed; `None` after a success.
    pub last_error: Option<String>,
    /// The serving certificate: its serial and expiry (unix seconds).
    pub serial: Option<String>,
    pub not_after: Option<u64>,
    /// When bedrud orders next (renewal or retry), unix seconds.
    pub next_attempt: Option<u64>,
}

impl AcmeStatus {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("status.json")
    }

    /// The last status written, if any (for `doctor`, which runs beside the daemon).
    pub fn read(dir: &Path) -> Option<AcmeStatus> {
        let text = std::fs::read(Self::path(dir)).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// The account, keyed by the directory it was created at: a changed `directoryUrl` (staging to
/// production) gets a new account rather than credentials the new CA does not know.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAccount {
    directory_url: String,
    credentials: AccountCredentials,
}

/// What `Application::build` prepares: the ACME folder, a certificate to serve from the start,
/// and the HTTP-01 listener, bound before anything runs so that a port problem stops startup.
pub struct Prepared {
    pub http01: std::net::TcpListener,
    pub tokens: Tokens,
}

/// Creates `<dataDir>/acme` (0700) and, when it holds no usable certificate yet, a self-signed
/// placeholder so that the API (and TURN/TLS) can start before the CA has answered.
pub fn prepare(acme: &Acme, bind: std::net::IpAddr) -> anyhow::Result<Prepared> {
    use anyhow::Context;
    private::create_dir(&acme.dir).with_context(|| {
        format!(
            "cannot create the ACME folder {} (server.dataDir)",
            acme.dir.display()
        )
    })?;
    let files = acme.files();
    let usable = match (
        std::fs::read(&files.cert_file),
        std::fs::read(&files.key_file),
    ) {
        (Ok(cert), Ok(key)) => {
            certificate::inspect(&cert).is_ok() && certificate::key_matches(&cert, &key)
        }
        _ => false,
    };
    if !usable {
        let (cert, key) = certificate::placeholder(&acme.domain)?;
        write_private(&files.key_file, key.as_bytes())?;
        write_private(&files.cert_file, cert.as_bytes())?;
        tracing::info!(
            domain = %acme.domain,
            "no ACME certificate yet: serving a self-signed placeholder until the CA delivers"
        );
    }
    let addr = (bind, acme.http_port);
    let http01 = std::net::TcpListener::bind(addr).map_err(|e| {
        let hint = crate::host::systemd::low_port_hint(addr.1, &e).unwrap_or_default();
        anyhow::anyhow!(
            "cannot listen on {}:{} for ACME's HTTP-01 challenge (server.acme.httpPort): {e}. {hint}",
            addr.0,
            addr.1
        )
    })?;
    Ok(Prepared {
        http01,
        tokens: Tokens::default(),
    })
}

/// Keeps the API's certificate obtained and renewed until `stop`.
pub struct Renewer {
    pub acme: Acme,
    pub tls: ApiCertificate,
    /// Asks for the LiveKit restart that gives TURN/TLS the new certificate.
    pub reload: ReloadHandle,
    pub tokens: Tokens,
    pub status: watch::Sender<AcmeStatus>,
    /// LiveKit's TURN/TLS serves this certificate too.
    pub turn_tls: bool,
}

impl Renewer {
    pub async fn run(self, stop: CancellationToken) {
        let files = self.acme.files();
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX, Duration::MAX);
        let mut retry_at: Option<SystemTime> = None;
        loop {
            let serving = read_certificate(&files);
            let due = retry_at.unwrap_or_else(|| self.renewal_due(serving.as_ref()));
            self.publish(|s| {
                s.serial = serving.as_ref().map(|c| c.serial.clone());
                s.not_after = serving.as_ref().map(|c| unix(c.not_after));
                s.next_attempt = Some(unix(due));
            });
            let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let attempt = SystemTime::now();
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.order(&files) => r,
            };
            self.tokens.clear();
            match result {
                Ok(info) => {
                    backoff = Backoff::new(RETRY_FIRST, RETRY_MAX, Duration::MAX);
                    retry_at = None;
                    tracing::info!(
                        domain = %self.acme.domain,
                        serial = %info.serial,
                        issuer = %info.issuer,
                        expires = %humantime::format_rfc3339_seconds(info.not_after),
                        renew_at = %humantime::format_rfc3339_seconds(info.renew_at()),
                        "ACME: new certificate installed: new connections get it, open ones keep theirs"
                    );
                    if self.turn_tls {
                        if let Err(e) = self
                            .reload
                            .request_livekit_restart("TURN/TLS certificate (ACME renewal)")
                        {
                            tracing::warn!("TURN/TLS keeps the previous certificate: {e}");
                        }
                    }
                    self.publish(|s| {
                        s.last_attempt = Some(unix(attempt));
                        s.last_success = Some(unix(attempt));
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    let delay = backoff.delay_after(Duration::ZERO);
                    let next = SystemTime::now() + delay;
                    retry_at = Some(next);
                    let expiry = serving
                        .as_ref()
                        .filter(|c| !c.self_signed)
                        .map(|c| humantime::format_rfc3339_seconds(c.not_after).to_string())
                        .unwrap_or_else(|| {
                            "no CA certificate yet (self-signed placeholder)".into()
                        });
                    tracing::error!(
                        domain = %self.acme.domain,
                        directory = %self.acme.directory_url,
                        retry_in = %humantime::format_duration(delay),
                        serving_until = %expiry,
                        "ACME: cannot obtain a certificate: {e}; the current certificate keeps serving"
                    );
                    // With the failure, when the next try is: a reader of the status must never
                    // see this error beside the attempt that just failed as the next one.
                    self.publish(|s| {
                        s.last_attempt = Some(unix(attempt));
                        s.last_error = Some(e.to_string());
                        s.next_attempt = Some(unix(next));
                    });
                }
            }
        }
    }

    /// Now, for a placeholder or a certificate for another name (`server.host` changed);
    /// otherwise two thirds into the certificate's lifetime.
    fn renewal_due(&self, serving: Option<&CertificateInfo>) -> SystemTime {
        match serving {
            Some(c) if !c.self_signed && c.covers(&self.acme.domain) => c.renew_at(),
            _ => SystemTime::now(),
        }
    }

    fn publish(&self, change: impl FnOnce(&mut AcmeStatus)) {
        self.status.send_modify(|s| {
            s.domain.clone_from(&self.acme.domain);
            s.directory_url.clone_from(&self.acme.directory_url);
            change(s);
        });
        let status = self.status.borrow().clone();
        if let Ok(json) = serde_json::to_vec_pretty(&status) {
            if let Err(e) = write_private(&AcmeStatus::path(&self.acme.dir), &json) {
                tracing::warn!("ACME: {e}");
            }
        }
    }

    /// One order: account, HTTP-01 answers, finalization, download; then the files are
    /// replaced and the listener swapped to the new certificate.
    async fn order(&self, files: &TlsFiles) -> Result<CertificateInfo, AcmeError> {
        tracing::info!(domain = %self.acme.domain, directory = %self.acme.directory_url, "ACME: ordering a certificate");
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(self.acme.domain.clone())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Refused(format!(
                        "authorization for {} is {other:?}",
                        self.acme.domain
                    )))
                }
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| AcmeError::Refused("the CA offers no http-01 challenge".into()))?;
            self.tokens.insert(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_string(),
            );
            challenge.set_ready().await?;
        }
        let retries = RetryPolicy::default().timeout(ORDER_TIMEOUT);
        let status = order.poll_ready(&retries).await?;
        if status != OrderStatus::Ready {
            let why = order
                .state()
                .error
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| format!("order is {status:?}"));
            return Err(AcmeError::Refused(format!(
                "{why} (does http://{}/ reach server.acme.httpPort {} on this host?)",
                self.acme.domain, self.acme.http_port
            )));
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&retries).await?;
        let info = certificate::inspect(chain_pem.as_bytes())?;
        write_private(&files.key_file, key_pem.as_bytes())?;
        write_private(&files.cert_file, chain_pem.as_bytes())?;
        self.tls
            .swap_pem(chain_pem.into_bytes(), key_pem.into_bytes())
            .await
            .map_err(AcmeError::Install)?;
        Ok(info)
    }

    /// The stored account for this directory, or a new one (stored 0600 before it is used).
    async fn account(&self) -> Result<Account, AcmeError> {
        let path = self.acme.dir.join("account.json");
        let stored: Option<StoredAccount> = match std::fs::read(&path) {
            Ok(bytes) => {
                Some(
                    serde_json::from_slice(&bytes).map_err(|source| AcmeError::Stored {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(AcmeError::Read { path, source }),
        };
        match stored {
            Some(s) if s.directory_url == self.acme.directory_url => {
                Ok(self.builder()?.from_credentials(s.credentials).await?)
            }
            _ => {
                let contact: Vec<&str> = self.acme.contact.iter().map(String::as_str).collect();
                let (account, credentials) = self
                    .builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.acme.directory_url.clone(),
                        None,
                    )
                    .await?;
                let stored = StoredAccount {
                    directory_url: self.acme.directory_url.clone(),
                    credentials,
                };
                let json = serde_json::to_vec(&stored).map_err(|source| AcmeError::Stored {
                    path: path.clone(),
                    source,
                })?;
                write_private(&path, &json)?;
                tracing::info!(directory = %self.acme.directory_url, "ACME: account created");
                Ok(account)
            }
        }
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, AcmeError> {
        Ok(match &self.acme.directory_ca_file {
            Some(ca) => Account::builder_with_root(ca)?,
            None => Account::builder()?,
        })
    }
}

fn read_certificate(files: &TlsFiles) -> Option<CertificateInfo> {
    let pem = std::fs::read(&files.cert_file).ok()?;
    certificate::inspect(&pem).ok()
}

/// Replaces `path` with `contents` atomically (a 0600 temporary file beside it, then a rename),
/// so that a reader — LiveKit starting, `doctor` — never sees half a key.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), AcmeError> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        // tempfile creates its files 0600.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(contents)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|source| AcmeError::Write {
        path: path.to_path_buf(),
        source,
    })
}
