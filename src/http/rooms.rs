//! Rooms: create, list, join (the LiveKit token), guest join, who is in, close.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{require_livekit, ApiError, ApiResult, AppState, JsonBody, PathParams, SignedIn};
use crate::livekit::join_token;
use crate::metrics::JoinLabels;
use crate::rooms::Role;
use crate::store::Room;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Create {
    name: String,
    #[serde(default = "yes")]
    is_public: bool,
    max_participants: Option<u32>,
    #[serde(default)]
    settings: Settings,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    allow_video: bool,
    allow_audio: bool,
    allow_screen_share: bool,
    allow_guests: bool,
    /// Emails of users who moderate besides the owner.
    moderators: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_video: true,
            allow_audio: true,
            allow_screen_share: true,
            allow_guests: false,
            moderators: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Join {
    room_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestJoin {
    room_name: String,
    guest_name: String,
}

pub async fn create(
    State(s): State<AppState>,
    who: SignedIn,
    JsonBody(body): JsonBody<Create>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    validate_name(&body.name)?;
    let max = body
        .max_participants
        .unwrap_or(s.config().rooms.default_max_participants);
    if !(1..=100_000).contains(&max) {
        return Err(ApiError::BadRequest(
            "maxParticipants: must be between 1 and 100000".into(),
        ));
    }
    let mut moderators = Vec::new();
    for email in &body.settings.moderators {
        let user = s.store.user_by_email(email).await?;
        let user = user.ok_or_else(|| {
            ApiError::BadRequest(format!("settings.moderators: no account for {email}"))
        })?;
        moderators.push(user.id);
    }
    let new = Room {
        id: String::new(),
        name: body.name.clone(),
        owner_id: who.id().to_string(),
        is_public: body.is_public,
        max_participants: max.into(),
        allow_video: body.settings.allow_video,
        allow_audio: body.settings.allow_audio,
        allow_screen_share: body.settings.allow_screen_share,
        allow_guests: body.settings.allow_guests,
        moderators,
    };
    // A taken name fails here, before anything touches LiveKit (and its live room of that name).
    let room = s
        .store
        .create_room(new)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => {
                ApiError::Conflict(format!("room name \"{}\" is already taken", body.name))
            }
            other => other,
        })?;
    Ok((StatusCode::CREATED, Json(json!({ "room": room }))))
}

pub async fn list(State(s): State<AppState>, who: SignedIn) -> ApiResult<Json<Value>> {
    let rooms = s
        .store
        .list_rooms(who.id(), who.is_admin_now(&s).await?)
        .await?;
    Ok(Json(json!({ "rooms": rooms })))
}

pub async fn join(
    State(s): State<AppState>,
    who: SignedIn,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Join>,
) -> ApiResult<Json<Value>> {
    let room = find(&s, &body.room_name).await?;
    let role = who.role_in(&s, &room).await?.ok_or_else(private)?;
    let identity = format!("u_{}", who.id());
    // The display name travels in the access token: a join needs no account lookup.
    let answer = admit(&s, &room, &identity, &who.0.name, role, &headers).await?;
    Ok(Json(answer))
}

pub async fn guest_join(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<GuestJoin>,
) -> ApiResult<Json<Value>> {
    let name = body.guest_name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::BadRequest(
            "guestName: must be 1 to 64 characters".into(),
        ));
    }
    if !s.config().rooms.allow_guests {
        return Err(ApiError::Forbidden(
            "guests are not allowed on this server".into(),
        ));
    }
    let room = find(&s, &body.room_name).await?;
    if !room.is_public {
        // Anonymous callers learn nothing about private rooms: the same answer as no room.
        return Err(no_room(&body.room_name));
    }
    if !room.allow_guests {
        return Err(ApiError::Forbidden(
            "this room does not admit guests".into(),
        ));
    }
    let identity = format!("g_{}", Alphanumeric.sample_string(&mut rand::rng(), 12));
    let answer = admit(&s, &room, &identity, name, Role::Guest, &headers).await?;
    Ok(Json(answer))
}

pub async fn participants(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let room = find(&s, &room).await?;
    who.role_in(&s, &room).await?.ok_or_else(private)?;
    let participants = s.store.participants(&room.name).await?;
    Ok(Json(
        json!({ "roomName": room.name, "participants": participants }),
    ))
}

pub async fn close(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let room = find(&s, &room).await?;
    if room.owner_id != who.id() && !who.is_admin_now(&s).await? {
        return Err(ApiError::Forbidden(
            "only the room's owner or an admin can close it".into(),
        ));
    }
    require_livekit(&s)?;
    s.livekit.delete_room(&room.name).await?;
    s.store.clear_room(&room.name).await?;
    s.directory.forget_live(&room.name);
    Ok(Json(json!({ "closed": room.name })))
}

/// Bans, capacity, the LiveKit room, and the signed token: the part every kind of join shares.
/// The database is asked once (`Store::admission`).
async fn admit(
    s: &AppState,
    room: &Room,
    identity: &str,
    name: &str,
    role: Role,
    headers: &HeaderMap,
) -> ApiResult<Value> {
    let (present, banned) = s.store.admission(&room.name, &room.id, identity).await?;
    if banned {
        return Err(ApiError::Forbidden(
            "you were removed from this room by a moderator".into(),
        ));
    }
    if present >= room.max_participants {
        return Err(ApiError::Forbidden(format!(
            "the room is full ({present} of {})",
            room.max_participants
        )));
    }
    require_livekit(s)?;
    s.directory.ensure_live(room).await?;
    let ttl = s.config().rooms.join_token_ttl;
    let token = join_token::mint(&s.credentials, room, identity, name, role, ttl)
        .map_err(|e| ApiError::Internal(format!("signing the join token: {e}")))?;
    let kind = if role == Role::Guest { "guest" } else { "user" };
    s.metrics.joins.get_or_create(&JoinLabels { kind }).inc();
    Ok(json!({
        "token": token,
        "livekitHost": s.livekit_url.for_request(
            headers.get(header::HOST).and_then(|h| h.to_str().ok())
        ),
        "roomName": room.name,
        "identity": identity,
        "name": name,
        "role": role.as_str(),
        "expiresIn": ttl.as_secs(),
    }))
}

/// The room named `name`, or 404.
pub async fn find(s: &AppState, name: &str) -> ApiResult<Room> {
    s.directory.find(name).await?.ok_or_else(|| no_room(name))
}

fn no_room(name: &str) -> ApiError {
    ApiError::NotFound(format!("no room named \"{name}\""))
}

fn private() -> ApiError {
    ApiError::Forbidden("this room is private".into())
}

/// Room names become LiveKit room names (at most 256 bytes) and URL path segments.
fn validate_name(name: &str) -> ApiResult<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > 128 || !ok_chars || name.starts_with('.') {
        return Err(ApiError::BadRequest(
            "name: 1 to 128 characters: letters, digits, '-', '_' and '.' (not first)".into(),
        ));
    }
    Ok(())
}
