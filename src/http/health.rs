//! `/health` (the process answers) and `/ready` (database and LiveKit answer).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

/// 200 for as long as the process runs and serves requests.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the database and LiveKit answer; 503 with the reason otherwise.
pub async fn ready(State(state): State<AppState>) -> Response {
    let livekit = state.livekit_status.borrow().clone();
    let reason = match state.store.ping().await {
        Err(e) => Some(format!("the database does not answer: {e}")),
        Ok(()) => livekit.not_ready_reason(),
    };
    match reason {
        None => Json(json!({ "status": "ready", "livekit": livekit })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": reason, "livekit": livekit })),
        )
            .into_response(),
    }
}
