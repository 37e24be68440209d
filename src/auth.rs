//! Sign-in machinery: argon2id password hashes, short-lived access tokens (HS256 JWTs signed
//! with bedrud's own secret) and opaque refresh tokens, of which only a hash is ever stored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::Secret;
use crate::store::{now_ms, Role, User};

const ISSUER: &str = "bedrud";
/// Marks access tokens, so no other token signed with the same secret can pass as one.
const ACCESS: &str = "access";

/// How long a sign-in or sign-up waits for a hashing slot before it is told to come back.
pub const HASHER_WAIT: Duration = Duration::from_secs(10);

/// All hashing slots stayed busy for `HASHER_WAIT` (or the hashing task failed).
#[derive(Debug, thiserror::Error)]
#[error("the server is busy checking passwords; try again in a moment")]
pub struct HasherBusy;

/// One hashing slot per core: more would only queue inside the CPU while holding memory.
fn hasher_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing or malformed Authorization header (expected \"Bearer <access token>\")")]
    Missing,
    #[error("invalid or expired access token")]
    Invalid,
}

/// The claims of a bedrud access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    /// Display name, so a join needs no account lookup.
    pub name: String,
    pub role: String,
    pub typ: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

impl AccessClaims {
    pub fn role(&self) -> Role {
        Role::parse(&self.role)
    }
}

pub struct Auth {
    /// Bounds how many argon2id computations run at once (see `Auth::with_hasher`).
    hashers: std::sync::Arc<tokio::sync::Semaphore>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Token lifetimes in milliseconds; atomics so that a reload changes them in place.
    access_ttl_ms: AtomicU64,
    refresh_ttl_ms: AtomicU64,
    /// Verified against when the email is unknown, so both cases take the same time.
    dummy_hash: String,
}

impl Auth {
    pub fn new(secret: &Secret, access_ttl: Duration, refresh_ttl: Duration) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 30;
        Auth {
            hashers: std::sync::Arc::new(tokio::sync::Semaphore::new(hasher_count())),
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            access_ttl_ms: AtomicU64::new(access_ttl.as_millis() as u64),
            refresh_ttl_ms: AtomicU64::new(refresh_ttl.as_millis() as u64),
            dummy_hash: hash_password("not a real password").unwrap_or_default(),
        }
    }

    /// How long a new access token lives (`auth.accessTokenTTL`).
    pub fn access_ttl(&self) -> Duration {
        Duration::from_millis(self.access_ttl_ms.load(Ordering::Relaxed))
    }

    /// A reload's new lifetimes; tokens already issued keep theirs.
    pub fn set_ttls(&self, access: Duration, refresh: Duration) {
        self.access_ttl_ms
            .store(access.as_millis() as u64, Ordering::Relaxed);
        self.refresh_ttl_ms
            .store(refresh.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn issue_access(&self, user: &User) -> String {
        let now = now_ms() as u64 / 1000;
        let claims = AccessClaims {
            sub: user.id.clone(),
            name: user.name.clone(),
            role: user.role.as_str().into(),
            typ: ACCESS.into(),
            iss: ISSUER.into(),
            iat: now,
            exp: now + self.access_ttl().as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::Invalid)?;
        if data.claims.typ != ACCESS {
            return Err(AuthError::Invalid);
        }
        Ok(data.claims)
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is no user, so that
    /// response times do not reveal which emails have accounts.
    pub fn check_password(&self, password: &str, hash: Option<&str>) -> bool {
        let ok = verify_password(password, hash.unwrap_or(&self.dummy_hash));
        ok && hash.is_some()
    }

    /// Runs `work` (an argon2id hash or check) on the blocking pool once one of the hashing slots
    /// is free, waiting at most `HASHER_WAIT`. Each computation takes ~19 MiB and tens of
    /// milliseconds of a core, so unbounded, 200 concurrent sign-ups would take ~4 GB; bounded
    /// to the core count, a burst queues and memory stays flat.
    pub async fn with_hasher<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HasherBusy> {
        let permit = tokio::time::timeout(HASHER_WAIT, self.hashers.clone().acquire_owned())
            .await
            .map_err(|_| HasherBusy)?
            .map_err(|_| HasherBusy)?;
        // The slot goes with the work: a client that disconnects mid-hash cancels this future,
        // not the hash, and the slot must stay taken until the hash is done.
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            work()
        })
        .await
        .map_err(|_| HasherBusy)
    }

    pub fn refresh_expiry(&self) -> i64 {
        now_ms() + self.refresh_ttl_ms.load(Ordering::Relaxed) as i64
    }
}

/// argon2id with the crate's defaults (19 MiB, 2 passes), a fresh random salt each time.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new opaque refresh token and the hash under which it is stored.
pub fn new_refresh_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = format!(
        "rt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = refresh_hash(&token);
    (token, hash)
}

/// Refresh tokens carry 256 random bits, so a plain SHA-256 (no salt, no stretching) is enough
/// and lets the database look them up by hash.
pub fn refresh_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The token in `Authorization: Bearer <token>`.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            &Secret::new("x".repeat(40)),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
    }

    fn user(role: Role) -> User {
        User {
            id: "u1".into(),
            email: "a@example.test".into(),
            name: "A".into(),
            role,
            password_hash: String::new(),
        }
    }

    #[test]
    fn access_tokens_round_trip_and_carry_the_role() {
        let a = auth();
        let t = a.issue_access(&user(Role::Admin));
        let c = a.verify_access(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.role()), ("u1", Role::Admin));
    }

    #[test]
    fn tokens_from_another_secret_or_tampered_are_refused() {
        let other = Auth::new(
            &Secret::new("y".repeat(40)),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let t = other.issue_access(&user(Role::User));
        assert_eq!(auth().verify_access(&t).unwrap_err(), AuthError::Invalid);
        let mut good = auth().issue_access(&user(Role::User));
        good.push('x');
        assert_eq!(auth().verify_access(&good).unwrap_err(), AuthError::Invalid);
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token() {
        let (rt, hash) = new_refresh_token();
        assert_eq!(auth().verify_access(&rt).unwrap_err(), AuthError::Invalid);
        assert_eq!(refresh_hash(&rt), hash);
        assert_ne!(rt, hash);
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        let a = auth();
        assert!(a.check_password("correct horse", Some(&h)));
        assert!(!a.check_password("correct horse", None));
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_there_are_slots() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let a = Arc::new(auth());
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..4 * hasher_count())
            .map(|_| {
                let (a, now, peak) = (a.clone(), now.clone(), peak.clone());
                tokio::spawn(async move {
                    a.with_hasher(move || {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), hasher_count());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(bearer(None), Err(AuthError::Missing));
    }
}
