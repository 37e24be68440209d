//! `POST /api/livekit/webhook`: LiveKit's events, verified and applied at most once.
//! 401 for a bad signature (LiveKit never retries a 4xx); 5xx when storing failed (it retries).
//! The 200 is sent only after the transaction holding the event committed (group commit:
//! `store::EventLog`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use serde_json::{json, Value};

use super::{read_limited, within_body_timeout, ApiError, ApiResult, AppState};
use crate::livekit::webhook::{self, WebhookError};
use crate::store::{Applied, PresenceChange};

pub async fn receive(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let read = read_limited(&headers, body, webhook::MAX_BODY, "webhook body");
    let body = within_body_timeout(&s, read).await??;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify(&s.webhook_verifier, auth, &body) {
        s.metrics.webhook("unknown", "rejected");
        tracing::warn!("webhook refused: {e}");
        return Err(ApiError::Unauthorized(e.to_string()));
    }
    let event = webhook::parse(&body).map_err(|e: WebhookError| {
        s.metrics.webhook("unknown", "malformed");
        ApiError::BadRequest(e.to_string())
    })?;
    let (id, name, change) = (event.id.clone(), event.name.clone(), event.change.clone());
    match s.events.apply(event).await {
        Ok(outcome @ (Applied::Applied | Applied::AppliedBanned)) => {
            s.metrics.webhook(&name, "applied");
            tracing::debug!(event = %name, %id, "webhook applied");
            act_on(&s, &change, outcome == Applied::AppliedBanned);
            Ok(Json(json!({ "status": "applied" })))
        }
        Ok(Applied::Duplicate) => {
            s.metrics.webhook(&name, "duplicate");
            Ok(Json(json!({ "status": "duplicate" })))
        }
        Err(e) => {
            s.metrics.webhook(&name, "failed");
            // 503, not 500: LiveKit retries 5xx, and the event may be stored on a later try.
            tracing::error!(event = %name, %id, "could not store webhook event: {e}");
            Err(ApiError::Unavailable(
                "could not store the event; retry".into(),
            ))
        }
    }
}

/// What an event asks of bedrud beyond the stored state: a finished room is forgotten (the
/// next join creates it again with its settings), and a banned person who connected anyway
/// (with a token from before the ban; `banned` was read in the event's own transaction) is
/// removed at once. Done after the answer, so LiveKit's ordered delivery never waits on a
/// server-API call.
fn act_on(s: &AppState, change: &PresenceChange, banned: bool) {
    match change {
        PresenceChange::RoomFinished { room } => s.directory.forget_live(room),
        PresenceChange::Joined { room, participant } if banned => {
            let (directory, room, identity) = (
                s.directory.clone(),
                room.clone(),
                participant.identity.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = directory.turn_away_if_banned(&room, &identity).await {
                    // Reconciliation tries again at its next pass.
                    tracing::warn!(%room, %identity, "could not remove a banned participant: {e}");
                }
            });
        }
        PresenceChange::Egress(e) => {
            // Egress' own report is the truth (the event only says "look again"), so repeated
            // or reordered events end in the same state; a failure here is retried by
            // reconciliation.
            let (recorder, id) = (s.recorder.clone(), e.egress_id.clone());
            tokio::spawn(async move {
                if let Err(e) = recorder.refresh(&id).await {
                    tracing::warn!(egress = %id, "could not update the recording: {e}");
                }
            });
        }
        _ => {}
    }
}
