//! For administrators and their tools: LiveKit status with active rooms, accounts (making and
//! removing administrators), and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, AppState, JsonBody, PathParams, SignedIn};
use crate::reload::ReloadError;
use crate::store::Role;

/// `GET /api/admin/livekit`: what the dashboard shows about LiveKit.
pub async fn livekit(State(s): State<AppState>, who: SignedIn) -> ApiResult<Json<Value>> {
    who.require_admin(&s).await?;
    let status = s.livekit_status.borrow().clone();
    let rooms: Vec<Value> = s
        .store
        .active_rooms()
        .await?
        .into_iter()
        .map(|(name, n)| json!({ "name": name, "participants": n }))
        .collect();
    Ok(Json(json!({
        "mode": status.mode,
        "connected": status.is_ready(),
        "state": status.state,
        "version": status.version,
        "nodeIp": status.node_ip,
        "url": s.livekit_url.describe(),
        "restarts": status.restarts,
        "lastError": status.last_error,
        "warnings": warnings(&s, &status.warnings),
        "pendingRestart": status.pending_restart,
        "pending": status.pending(),
        "reloadRefused": status.reload_refused,
        // Embedded recording: the Redis and egress worker bedrud runs (null when it runs none).
        "recording": status.recording,
        "activeRooms": rooms,
        "reconcile": {
            "runs": s.metrics.reconcile_runs.get(),
            "corrections": s.metrics.reconcile_corrections.get(),
        },
        "acme": s.acme_status.as_ref().map(|a| a.borrow().clone()),
    })))
}

/// `POST /api/admin/livekit/restart`: restarts embedded LiveKit now, live meetings or not,
/// applying a restart a reload left pending (`bedrud livekit restart`).
pub async fn restart_livekit(State(s): State<AppState>, who: SignedIn) -> ApiResult<Json<Value>> {
    who.require_admin(&s).await?;
    let Some(reload) = &s.reload else {
        return Err(ApiError::Unavailable("reload is not running".into()));
    };
    let applied = reload.force_livekit_restart().await.map_err(|e| match e {
        ReloadError::NoEmbeddedLiveKit => ApiError::Conflict(e.to_string()),
        ReloadError::ShuttingDown => ApiError::Unavailable(e.to_string()),
    })?;
    tracing::info!(admin = %who.id(), "LiveKit restart forced by an admin");
    Ok(Json(json!({ "restarted": true, "applied": applied })))
}

/// Supervisor warnings plus the webhook warning, if any.
fn warnings(s: &AppState, base: &[String]) -> Vec<String> {
    let mut all = base.to_vec();
    if let Some(w) = s
        .webhook_warning
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        all.push(w.clone());
    }
    all
}

/// `GET /metrics` in Prometheus text format.
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    s.metrics
        .livekit_restarts
        .set(s.livekit_status.borrow().restarts as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// `GET /api/admin/users`: every account, for the admin page.
pub async fn users(State(s): State<AppState>, who: SignedIn) -> ApiResult<Json<Value>> {
    who.require_admin(&s).await?;
    Ok(Json(json!({ "users": s.store.list_users().await? })))
}

#[derive(serde::Deserialize)]
pub struct AdminFlag {
    admin: bool,
}

/// `PUT /api/admin/users/{id}/admin` with `{"admin": bool}`: makes or removes an administrator.
/// Removal takes effect at once (admin rights are checked against the store); a new admin's
/// rights come with that account's next access token (at its next refresh). The last
/// administrator cannot be removed: nobody could then give the role back from the web.
pub async fn set_admin(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<AdminFlag>,
) -> ApiResult<Json<Value>> {
    who.require_admin(&s).await?;
    let Some(user) = s.store.user_by_id(&id).await? else {
        return Err(ApiError::NotFound("no such account".into()));
    };
    let role = if body.admin { Role::Admin } else { Role::User };
    if user.role == Role::Admin && role == Role::User && s.store.admin_count().await? <= 1 {
        return Err(ApiError::Conflict(
            "this is the last administrator; make another one first".into(),
        ));
    }
    s.store.set_role(&id, role).await?;
    let user = s
        .store
        .user_by_id(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such account".into()))?;
    Ok(Json(json!({ "user": user })))
}
