//! bedrud's HTTP API: shared state, JSON errors, the signed-in-user extractor and the routes.
//! Each group of endpoints lives in its own file; all answer JSON, errors as `{"error": …}`.

mod accounts;
pub use accounts::validate_account;
mod admin;
mod bans;
mod health;
mod livekit_proxy;
mod moderation;
mod rooms;
mod web;
mod webhook;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

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
use crate::config::{Credentials, Rooms};
use crate::livekit::client::{LiveKitClient, LkError};
use crate::livekit::status::LiveKitStatus;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::store::{Role, Store, StoreError};

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
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
    pub rooms: Rooms,
    pub allow_registration: bool,
    pub metrics: Arc<Metrics>,
    pub login_limiter: RateLimiter,
    pub address_limiter: RateLimiter,
    /// LiveKit rooms created recently, so that joins do not call CreateRoom every time.
    pub ensured_rooms: Mutex<HashMap<String, Instant>>,
    /// Set by reconciliation when LiveKit has activity but no webhook ever arrived.
    pub webhook_warning: Arc<Mutex<Option<String>>>,
    /// Rooms already read from the store (they never change once created).
    pub room_cache: RwLock<HashMap<String, crate::store::Room>>,
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
        .route("/api/admin/livekit", get(admin::livekit))
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
    Conflict(String),
    PayloadTooLarge(String),
    TooManyRequests(String, u64),
    Unavailable(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::TooManyRequests(m, retry) => {
                let body = Json(json!({ "error": m }));
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, retry.to_string())],
                    body,
                )
                    .into_response();
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

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::TooManyRequests(m, _)
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

/// `axum::Json`, with rejections answered as JSON errors naming what was wrong.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The signed-in user of a request (`Authorization: Bearer <access token>`).
#[derive(Debug, Clone)]
pub struct SignedIn(pub AccessClaims);

impl SignedIn {
    pub fn id(&self) -> &str {
        &self.0.sub
    }

    pub fn is_admin(&self) -> bool {
        self.0.role() == Role::Admin
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
