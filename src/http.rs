//! bedrud's HTTP API: the routes, their shared state, and JSON errors for everything else.
//! Issue-specific endpoints hang off this router; here are the ones every deployment needs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;

use crate::status::LiveKitStatus;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub livekit: watch::Receiver<LiveKitStatus>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(not_found)
        .with_state(state)
}

/// A JSON error body `{"error": …}` with its status code.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// 200 for as long as the process runs and serves requests.
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when LiveKit answers; 503 with the reason otherwise.
async fn ready(State(state): State<ApiState>) -> Response {
    let status = state.livekit.borrow().clone();
    match status.not_ready_reason() {
        None => Json(json!({ "status": "ready", "livekit": status })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": reason, "livekit": status })),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}
