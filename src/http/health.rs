//! `/health` (the process answers) and `/ready` (database and LiveKit answer).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{AppState, SignedIn};

/// 200 for as long as the process runs and serves requests.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the database and LiveKit answer; 503 with a one-line reason otherwise. Anonymous
/// callers (load balancers, monitors) get only that verdict: LiveKit's version, PID, node IP,
/// paths and errors describe the host and are shown to admins only (as `livekit`, the same
/// details `/api/admin/livekit` gives).
pub async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let livekit = state.livekit_status.borrow().clone();
    let (status, reason) = match state.store.ping().await {
        Err(e) => {
            tracing::warn!("/ready: the database does not answer: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("the database does not answer".to_string()),
            )
        }
        Ok(()) => match livekit.short_reason() {
            None => (StatusCode::OK, None),
            Some(r) => (StatusCode::SERVICE_UNAVAILABLE, Some(r.to_string())),
        },
    };
    let mut body = match &reason {
        None => json!({ "status": "ready" }),
        Some(reason) => json!({ "status": "not ready", "error": reason }),
    };
    if is_admin(&state, &headers).await {
        body["livekit"] = json!(livekit);
        // Admins get the whole reason, with LiveKit's last error.
        if let (Some(_), Some(detail)) = (&reason, livekit.not_ready_reason()) {
            body["error"] = json!(detail);
        }
    }
    (status, Json(body)).into_response()
}

/// Whether the request carries the access token of a current admin (anything else, including
/// a bad token, is simply anonymous here: `/ready` never refuses).
async fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(claims) = crate::auth::bearer(header)
        .ok()
        .and_then(|t| state.auth.verify_access(t).ok())
    else {
        return false;
    };
    SignedIn(claims).is_admin_now(state).await.unwrap_or(false)
}
