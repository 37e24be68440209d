//! What a PEM certificate chain says about itself: the names it is for, its lifetime, who issued
//! it, its serial number and whether each certificate is issued by the next. ACME renewal reads
//! it to know when to renew; `doctor` reads it to check the installed certificate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("no PEM certificate in the file")]
    Empty,
    #[error("not a valid PEM certificate: {0}")]
    Invalid(String),
}

/// The leaf certificate of a chain, and how the chain holds together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// DNS names from the subject alternative names (the CN is not used by browsers).
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub issuer: String,
    pub subject: String,
    /// Hex, colon-separated, as `openssl x509 -serial` shows it (without colons there).
    pub serial: String,
    /// Issued by itself: the temporary certificate bedrud serves until ACME delivers one.
    pub self_signed: bool,
    /// Certificates in the file, leaf included.
    pub chain_len: usize,
    /// Each certificate's issuer is the next one's subject (a file in the wrong order, or with
    /// a missing intermediate, is not).
    pub chain_linked: bool,
}

impl CertificateInfo {
    /// Renewal time: two thirds into the lifetime (Let's Encrypt's own advice), which leaves a
    /// third of it — 30 days for a 90-day certificate — for retries.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + lifetime * 2 / 3
    }

    /// Whether the certificate is for `domain` (exactly, or through a `*.` wildcard one level up).
    pub fn covers(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            match n.strip_prefix("*.") {
                Some(parent) => domain
                    .split_once('.')
                    .is_some_and(|(_, rest)| rest == parent),
                None => n == domain,
            }
        })
    }
}

/// Seconds since the epoch, as the status files and JSON answers carry times.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads the chain in `pem`: the first certificate is the leaf.
pub fn inspect(pem: &[u8]) -> Result<CertificateInfo, CertificateError> {
    let blocks: Vec<Pem> = Pem::iter_from_buffer(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError::Invalid(e.to_string()))?;
    let certs = blocks
        .iter()
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.parse_x509())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::Invalid(e.to_string()))?;
    let leaf = certs.first().ok_or(CertificateError::Empty)?;
    let names = match leaf.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let time = |t: x509_parser::time::ASN1Time| {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
    };
    let chain_linked = certs
        .windows(2)
        .all(|pair| pair[0].issuer().as_raw() == pair[1].subject().as_raw());
    Ok(CertificateInfo {
        names,
        not_before: time(leaf.validity().not_before),
        not_after: time(leaf.validity().not_after),
        issuer: leaf.issuer().to_string(),
        subject: leaf.subject().to_string(),
        serial: leaf.raw_serial_as_string(),
        self_signed: leaf.issuer().as_raw() == leaf.subject().as_raw(),
        chain_len: certs.len(),
        chain_linked,
    })
}

/// Whether `key_pem` is the private key of the first certificate in `chain_pem`: two files
/// replaced one after the other can disagree after a crash between the two writes.
pub fn key_matches(chain_pem: &[u8], key_pem: &[u8]) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Ok(chain) = CertificateDer::pem_slice_iter(chain_pem).collect::<Result<Vec<_>, _>>() else {
        return false;
    };
    let Ok(key) = PrivateKeyDer::from_pem_slice(key_pem) else {
        return false;
    };
    let Ok(signing_key) = rustls::crypto::ring::sign::any_supported_type(&key) else {
        return false;
    };
    !chain.is_empty()
        && rustls::sign::CertifiedKey::new(chain, signing_key)
            .keys_match()
            .is_ok()
}

/// A self-signed certificate for `domain`, valid for a day: what the API serves until ACME has
/// delivered the real one, so that bedrud can start (and answer the CA) before it has one.
pub fn placeholder(domain: &str) -> Result<(String, String), CertificateError> {
    let key = rcgen::KeyPair::generate().map_err(|e| CertificateError::Invalid(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])
        .map_err(|e| CertificateError::Invalid(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{domain} (bedrud placeholder until ACME delivers)"),
    );
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + Duration::from_secs(86_400)).into();
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertificateError::Invalid(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_self_signed_for_the_domain_and_due_for_renewal_at_two_thirds() {
        let (cert, key) = placeholder("meet.example.test").unwrap();
        assert!(key_matches(cert.as_bytes(), key.as_bytes()));
        let (_, other_key) = placeholder("meet.example.test").unwrap();
        assert!(!key_matches(cert.as_bytes(), other_key.as_bytes()));
        let info = inspect(cert.as_bytes()).unwrap();
        assert!(info.self_signed);
        assert!(info.covers("meet.example.test"));
        assert!(info.covers("MEET.example.test."));
        assert!(!info.covers("other.example.test"));
        assert_eq!(info.chain_len, 1);
        assert!(info.chain_linked);
        let lifetime = info.not_after.duration_since(info.not_before).unwrap();
        assert_eq!(info.renew_at(), info.not_before + lifetime * 2 / 3);
    }

    #[test]
    fn wildcards_cover_one_level() {
        let info = CertificateInfo {
            names: vec!["*.example.test".into()],
            not_before: UNIX_EPOCH,
            not_after: UNIX_EPOCH,
            issuer: String::new(),
            subject: String::new(),
            serial: String::new(),
            self_signed: false,
            chain_len: 1,
            chain_linked: true,
        };
        assert!(info.covers("meet.example.test"));
        assert!(!info.covers("a.meet.example.test"));
        assert!(!info.covers("example.test"));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(inspect(b"hello"), Err(CertificateError::Empty)));
        assert!(
            inspect(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }
}
