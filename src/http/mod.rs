//! bedrud's HTTP API: shared state, JSON errors, the signed-in-user extractor and the routes.
//! Each group of endpoints lives in its own file; all answer JSON, errors as `{"error": …}`.

mod accounts;
pub use accounts::validate_account;
mod admin;
mod bans;
mod health;
mod livekit_proxy;
mod moderation;
mod recordings;
mod rooms;
pub mod server;
mod web;
mod webhook;

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use axum::{Json, Router};
use livekit_api::access_token::TokenVerifier;
use serde_json::json;
use tokio::sync::watch;

use crate::auth::{self, AccessClaims, Auth};
use crate::config::{Config, Credentials};
use crate::livekit::client::{LiveKitClient, LkError};
use crate::livekit::status::LiveKitStatus;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::rooms::{Role as RoomRole, RoomDirectory};
use crate::store::{Role, Room, Store, StoreError};

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    /// Webhook events, stored by group commit.
    pub events: crate::store::EventLog,
    pub auth: Auth,
    pub livekit: LiveKitClient,
    pub livekit_status: watch::Receiver<LiveKitStatus>,
    /// The API key pair: signs join tokens, verifies webhooks.
    pub credentials: Credentials,
    pub webhook_verifier: TokenVerifier,
    /// The URL clients connect to (`livekit.host`, or the host they reached bedrud at).
    pub livekit_url: crate::livekit::client_url::ClientUrl,
    /// Embedded mode: LiveKit's HTTP address (`127.0.0.1:<port>`), proxied under `/livekit`.
    pub livekit_proxy: Option<String>,
    /// The running configuration: a reload replaces it, so handlers read it per request
    /// (`config()`) instead of keeping copies of its values.
    pub config: watch::Receiver<Arc<Config>>,
    pub metrics: Arc<Metrics>,
    pub login_limiter: RateLimiter,
    pub address_limiter: RateLimiter,
    /// Sign-ups per client address.
    pub register_limiter: RateLimiter,
    /// Rooms by name and their LiveKit counterparts (shared with reconciliation).
    pub directory: Arc<RoomDirectory>,
    /// Set by reconciliation when LiveKit has activity but no webhook ever arrived.
    pub webhook_warning: Arc<Mutex<Option<String>>>,
    /// `server.acme`: the last certificate order and the next one.
    pub acme_status: Option<watch::Receiver<crate::tls::acme::AcmeStatus>>,
    /// Reaches the reloader (a forced LiveKit restart); `None` when bedrud runs no LiveKit, and
    /// in tests that build the state without one.
    pub reload: Option<crate::reload::ReloadHandle>,
    /// Recording with LiveKit Egress: starts, stops, and keeps recordings' state.
    pub recorder: Arc<crate::recording::Recorder>,
}

impl Shared {
    /// The configuration in effect now.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(admin::metrics))
        .route("/api/auth/register", post(accounts::register))
        .route("/api/auth/login", post(accounts::login))
        .route("/api/auth/refresh", post(accounts::refresh))
        .route("/api/auth/logout", post(accounts::logout))
        .route("/api/auth/me", get(accounts::me))
        .route("/api/room/create", post(rooms::create))
        .route("/api/room/list", get(rooms::list))
        .route("/api/room/join", post(rooms::join))
        .route("/api/room/guest-join", post(rooms::guest_join))
        .route("/api/room/{room}/participants", get(rooms::participants))
        .route("/api/room/{room}/close", post(rooms::close))
        .route("/api/room/{room}/kick/{identity}", post(moderation::kick))
        .route("/api/room/{room}/mute/{identity}", post(moderation::mute))
        .route(
            "/api/room/{room}/participants/{identity}/permissions",
            put(moderation::permissions),
        )
        .route("/api/room/{room}/bans", get(bans::list))
        .route(
            "/api/room/{room}/bans/{identity}",
            delete(moderation::unban),
        )
        .route("/api/room/{room}/recording/start", post(recordings::start))
        .route("/api/room/{room}/recording/stop", post(recordings::stop))
        .route("/api/room/{room}/recordings", get(recordings::list))
        .route(
            "/api/recordings/{id}",
            get(recordings::get).delete(recordings::delete),
        )
        .route("/api/recordings/{id}/download", get(recordings::download))
        .route("/api/admin/livekit", get(admin::livekit))
        .route("/api/admin/livekit/restart", post(admin::restart_livekit))
        .route("/api/admin/users", get(admin::users))
        .route("/api/admin/users/{id}/admin", put(admin::set_admin))
        .route("/api/livekit/webhook", post(webhook::receive))
        .route("/api/{*rest}", any(not_found))
        .route("/livekit", any(livekit_proxy::proxy))
        .route("/livekit/", any(livekit_proxy::proxy))
        .route("/livekit/{*rest}", any(livekit_proxy::proxy))
        .fallback(web::serve)
        .with_state(state)
}

/// Login attempts per client address per minute: one address may try a few accounts.
pub fn address_limit(per_email: u32) -> u32 {
    per_email.saturating_mul(3)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// An error answered as `{"error": message}` with its status code.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    RequestTimeout(String),
    Conflict(String),
    PayloadTooLarge(String),
    TooManyRequests(String, u64),
    Unavailable(String),
    /// 503 with Retry-After (seconds): overloaded for a moment, not broken.
    Busy(String, u64),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::RequestTimeout(m) => (StatusCode::REQUEST_TIMEOUT, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::TooManyRequests(m, retry) => {
                return retry_after(StatusCode::TOO_MANY_REQUESTS, m, retry)
            }
            ApiError::Busy(m, retry) => {
                return retry_after(StatusCode::SERVICE_UNAVAILABLE, m, retry)
            }
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(m) => {
                // The details go to the log, not to the client.
                tracing::error!("internal error: {m}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_string(),
                )
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

fn retry_after(status: StatusCode, message: String, secs: u64) -> Response {
    let body = Json(json!({ "error": message }));
    (status, [(header::RETRY_AFTER, secs.to_string())], body).into_response()
}

impl From<crate::auth::HasherBusy> for ApiError {
    fn from(e: crate::auth::HasherBusy) -> Self {
        ApiError::Busy(e.to_string(), 1)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::RequestTimeout(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::TooManyRequests(m, _)
            | ApiError::Busy(m, _)
            | ApiError::Unavailable(m)
            | ApiError::Internal(m) => f.write_str(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} is already taken")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<LkError> for ApiError {
    fn from(e: LkError) -> Self {
        match e {
            LkError::NotFound(m) => ApiError::NotFound(m),
            LkError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            LkError::Refused(m) => ApiError::Internal(format!("LiveKit refused: {m}")),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `axum::Json`, with rejections answered as JSON errors naming what was wrong: 413 for a body
/// over the limit, 400 otherwise, and 400 for a NUL character anywhere in a string (PostgreSQL
/// cannot store one, and no name, email or password needs it).
pub struct JsonBody<T>(pub T);

/// The largest JSON request body: the API's requests are a few hundred bytes, and every body is
/// held in memory (before authentication, for sign-in and sign-up) while it is read.
pub const MAX_JSON_BODY: usize = 64 * 1024;

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let read = read_limited(&parts.headers, body, MAX_JSON_BODY, "JSON body");
        let bytes = within_body_timeout(state, read).await??;
        if has_escaped_nul(&bytes) {
            return Err(ApiError::BadRequest(
                "strings must not contain NUL characters".into(),
            ));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Reads a whole body of at most `max` bytes. An oversized one is refused from its
/// Content-Length before any of it is read (a client that sent `Expect: 100-continue` is then never
/// asked for it); one without a length stops being read at the limit.
pub async fn read_limited(
    headers: &header::HeaderMap,
    body: axum::body::Body,
    max: usize,
    what: &str,
) -> ApiResult<axum::body::Bytes> {
    let too_large = || ApiError::PayloadTooLarge(format!("{what} larger than {max} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())
}

/// Runs `read` (reading a request body) within `server.bodyTimeout`: a client that sends half a
/// body, or drips it, gets 408 instead of holding its connection (and, before authentication,
/// bedrud's memory) for as long as it likes.
pub async fn within_body_timeout<T>(
    s: &AppState,
    read: impl std::future::Future<Output = T>,
) -> ApiResult<T> {
    tokio::time::timeout(s.config().server.limits.body_timeout, read)
        .await
        .map_err(|_| ApiError::RequestTimeout("the request body did not arrive in time".into()))
}

/// Whether a JSON text holds the escape `\u0000`. A raw NUL byte is not valid JSON anyway; an
/// escape counts only when its backslash is not itself escaped (an odd run of backslashes).
fn has_escaped_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(i, w)| {
        w == b"\\u0000" && json[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    })
}

/// `axum::extract::Path`, with a segment that does not decode (`%ff`) or holds a NUL answered
/// as a JSON 400 like every other error.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        if raw.iter().any(|(_, v)| v.contains('\0')) {
            return Err(ApiError::BadRequest(
                "path segments must not contain NUL characters".into(),
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParams(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// The signed-in user of a request (`Authorization: Bearer <access token>`).
#[derive(Debug, Clone)]
pub struct SignedIn(pub AccessClaims);

impl SignedIn {
    pub fn id(&self) -> &str {
        &self.0.sub
    }

    /// Whether the account is an admin *now*. The token's role may be up to an access-token
    /// lifetime old and a demoted admin must lose admin rights at once, so a token that claims
    /// admin is checked against the store (a token that does not claim it needs no lookup).
    pub async fn is_admin_now(&self, s: &AppState) -> ApiResult<bool> {
        if self.0.role() != Role::Admin {
            return Ok(false);
        }
        let user = s
            .store
            .user_by_id(self.id())
            .await?
            .ok_or_else(|| ApiError::Unauthorized("account no longer exists".into()))?;
        Ok(user.role == Role::Admin)
    }

    pub async fn require_admin(&self, s: &AppState) -> ApiResult<()> {
        if self.is_admin_now(s).await? {
            Ok(())
        } else {
            Err(ApiError::Forbidden("admins only".into()))
        }
    }

    /// This person's role in `room` (`None`: a private room that is not theirs); the account is
    /// looked up only when admin rights would decide it.
    pub async fn role_in(&self, s: &AppState, room: &Room) -> ApiResult<Option<RoomRole>> {
        if room.moderates_itself(self.id()) {
            return Ok(Some(RoomRole::Moderator));
        }
        Ok(room.role_of(self.id(), self.is_admin_now(s).await?))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = auth::bearer(header).map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let claims = state
            .auth
            .verify_access(token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        Ok(SignedIn(claims))
    }
}

/// Refuses quickly, with the reason, while LiveKit is down, instead of letting a call hang.
pub fn require_livekit(state: &AppState) -> ApiResult<()> {
    match state.livekit_status.borrow().not_ready_reason() {
        None => Ok(()),
        Some(reason) => Err(ApiError::Unavailable(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::has_escaped_nul;

    #[test]
    fn finds_an_escaped_nul_only_where_it_is_one() {
        assert!(has_escaped_nul(br#"{"name":"a\u0000b"}"#));
        assert!(
            has_escaped_nul(br#"{"name":"\\\u0000"}"#),
            "escaped backslash, then a NUL"
        );
        assert!(
            !has_escaped_nul(br#"{"name":"\\u0000"}"#),
            "a backslash, then text"
        );
        assert!(!has_escaped_nul(br#"{"name":"u0000"}"#));
    }
}
