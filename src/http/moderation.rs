//! Moderation: kick (and ban), mute the microphone, change what a participant may do, unban.
//! Only the room's moderators (owner, listed moderators, admins) may call these.

use axum::extract::{RawQuery, State};
use axum::Json;
use livekit_protocol as proto;
use serde::Deserialize;
use serde_json::{json, Value};

use super::rooms::find;
use super::{require_livekit, ApiError, ApiResult, AppState, JsonBody, PathParams, SignedIn};
use crate::livekit::client::LkError;
use crate::livekit::join_token::allowed_sources;
use crate::rooms::Role;
use crate::store::Room;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    can_publish: Option<bool>,
    can_subscribe: Option<bool>,
    can_publish_data: Option<bool>,
    can_publish_sources: Option<Vec<String>>,
}

/// The room, if `who` moderates it now (admin rights are checked against the store).
pub(super) async fn moderated_room(s: &AppState, who: &SignedIn, room: &str) -> ApiResult<Room> {
    let room = find(s, room).await?;
    if who.role_in(s, &room).await? != Some(Role::Moderator) {
        return Err(ApiError::Forbidden(
            "only the room's moderators can do this".into(),
        ));
    }
    Ok(room)
}

pub async fn kick(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams((room, identity)): PathParams<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let room = moderated_room(&s, &who, &room).await?;
    let ban = ban_flag(query.as_deref())?;
    require_livekit(&s)?;
    if ban {
        // Banned first: a join racing with the kick must already be refused.
        s.store.ban(&room.id, &identity).await?;
    }
    match s.livekit.remove(&room.name, &identity, ban).await {
        Ok(()) => Ok(Json(
            json!({ "kicked": identity, "banned": ban, "wasConnected": true }),
        )),
        // Not connected (left a moment ago, or never came): the ban still stands, and says so.
        Err(LkError::NotFound(_)) if ban => Ok(Json(
            json!({ "kicked": identity, "banned": true, "wasConnected": false }),
        )),
        Err(e) => Err(not_in_room(&identity)(e)),
    }
}

/// `?ban=false` kicks without banning; by default the person is kept out: no new token, and
/// the tokens issued so far are revoked.
fn ban_flag(query: Option<&str>) -> ApiResult<bool> {
    let value = query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("ban="));
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "ban: expected true or false, got {other:?}"
        ))),
    }
}

pub async fn unban(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams((room, identity)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let room = moderated_room(&s, &who, &room).await?;
    if !s.store.unban(&room.id, &identity).await? {
        return Err(ApiError::NotFound(format!(
            "{identity} is not banned from this room"
        )));
    }
    Ok(Json(json!({ "unbanned": identity })))
}

/// Mutes every microphone track the participant publishes.
pub async fn mute(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams((room, identity)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let room = moderated_room(&s, &who, &room).await?;
    require_livekit(&s)?;
    let tracks = s
        .livekit
        .tracks(&room.name, &identity)
        .await
        .map_err(not_in_room(&identity))?;
    let mics: Vec<_> = tracks.into_iter().filter(|t| t.microphone).collect();
    if mics.is_empty() {
        return Err(ApiError::NotFound(format!(
            "{identity} publishes no microphone track"
        )));
    }
    let mut muted = Vec::new();
    for t in mics {
        s.livekit.mute(&room.name, &identity, &t.sid).await?;
        muted.push(t.sid);
    }
    Ok(Json(json!({ "muted": muted })))
}

/// Changes what a participant may do now; never more than the room's settings allow.
pub async fn permissions(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams((room, identity)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Permissions>,
) -> ApiResult<Json<Value>> {
    let room = moderated_room(&s, &who, &room).await?;
    let permission = permission_for(&room, &body)?;
    require_livekit(&s)?;
    let applied = s
        .livekit
        .set_permissions(&room.name, &identity, permission)
        .await
        .map_err(not_in_room(&identity))?;
    let sources: Vec<String> = applied.can_publish_sources().map(source_name).collect();
    Ok(Json(json!({
        "identity": identity,
        "permissions": {
            "canPublish": applied.can_publish,
            "canSubscribe": applied.can_subscribe,
            "canPublishData": applied.can_publish_data,
            "canPublishSources": sources,
            "canUpdateMetadata": applied.can_update_metadata,
        }
    })))
}

/// The permission to send LiveKit; unspecified fields keep what the room allows.
fn permission_for(room: &Room, body: &Permissions) -> ApiResult<proto::ParticipantPermission> {
    let allowed = allowed_sources(room);
    let sources = body
        .can_publish_sources
        .clone()
        .unwrap_or_else(|| allowed.clone());
    let mut wire = Vec::new();
    for name in &sources {
        if !allowed.contains(name) {
            return Err(ApiError::BadRequest(format!(
                "canPublishSources: {name} is not allowed in this room (allowed: {})",
                allowed.join(", ")
            )));
        }
        wire.push(source_code(name) as i32);
    }
    Ok(proto::ParticipantPermission {
        can_publish: body.can_publish.unwrap_or(!allowed.is_empty()),
        can_subscribe: body.can_subscribe.unwrap_or(true),
        can_publish_data: body.can_publish_data.unwrap_or(true),
        can_publish_sources: wire,
        // The role lives in metadata: never let a participant rewrite it.
        can_update_metadata: false,
        ..Default::default()
    })
}

fn source_code(name: &str) -> proto::TrackSource {
    match name {
        "camera" => proto::TrackSource::Camera,
        "microphone" => proto::TrackSource::Microphone,
        "screen_share" => proto::TrackSource::ScreenShare,
        "screen_share_audio" => proto::TrackSource::ScreenShareAudio,
        _ => proto::TrackSource::Unknown,
    }
}

fn source_name(s: proto::TrackSource) -> String {
    match s {
        proto::TrackSource::Camera => "camera",
        proto::TrackSource::Microphone => "microphone",
        proto::TrackSource::ScreenShare => "screen_share",
        proto::TrackSource::ScreenShareAudio => "screen_share_audio",
        _ => "unknown",
    }
    .into()
}

fn not_in_room(identity: &str) -> impl FnOnce(LkError) -> ApiError + '_ {
    move |e| match e {
        LkError::NotFound(_) => ApiError::NotFound(format!("{identity} is not in this room")),
        other => other.into(),
    }
}
