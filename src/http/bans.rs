//! The bans of a room, listed for its moderators (the meeting page's "lift ban" list).
//! Banning is `kick`, lifting is `unban` (both in `moderation`).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::rooms::find;
use super::{ApiError, ApiResult, AppState, PathParams, SignedIn};
use crate::rooms::Role;

/// `GET /api/room/{room}/bans`: `{bans: [{identity, name, bannedAt}]}`; `name` is the account's
/// name for `u_<id>` identities, and null for guests (their names are not kept).
pub async fn list(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let room = find(&s, &room).await?;
    if who.role_in(&s, &room).await? != Some(Role::Moderator) {
        return Err(ApiError::Forbidden(
            "only the room's moderators can do this".into(),
        ));
    }
    let mut bans = Vec::new();
    for (identity, at) in s.store.bans(&room.id).await? {
        let name = match identity.strip_prefix("u_") {
            Some(id) => s.store.user_by_id(id).await?.map(|u| u.name),
            None => None,
        };
        bans.push(json!({ "identity": identity, "name": name, "bannedAt": at }));
    }
    Ok(Json(json!({ "bans": bans })))
}
