//! Recording endpoints: start and stop a room's recording, list a room's recordings, read one,
//! download its file (streamed, `Range` requests answered 206) and delete it. Only the room's
//! moderators (owner, listed moderators) and admins may call any of them: recordings hold what
//! everyone in the meeting said.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::moderation::moderated_room;
use super::{require_livekit, ApiError, ApiResult, AppState, JsonBody, PathParams, SignedIn};
use crate::recording::{EgressError, RecordingError};
use crate::rooms::Role;
use crate::store::{Recording, RecordingStatus};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Start {
    /// LiveKit's composite layout (`grid`, `speaker`, `single-speaker`, …); ignored for audio.
    layout: Option<String>,
    #[serde(default)]
    audio_only: bool,
}

/// The layout used when none is given.
const DEFAULT_LAYOUT: &str = "grid";

/// Layout names are LiveKit template names: short, lowercase words with dashes.
fn validate_layout(layout: &str) -> ApiResult<()> {
    let ok = !layout.is_empty()
        && layout.len() <= 64
        && layout
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "layout: 1 to 64 lowercase letters, digits or dashes (e.g. grid, speaker)".into(),
        ))
    }
}

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> Self {
        match e {
            RecordingError::AlreadyRecording(r) => ApiError::Conflict(format!(
                "this room is already being recorded (recording {}, {})",
                r.id,
                r.status.as_str()
            )),
            RecordingError::InProgress => ApiError::Conflict(e.to_string()),
            RecordingError::Disabled | RecordingError::S3Unsupported => {
                ApiError::Unavailable(e.to_string())
            }
            // The seed's cause and fix, or LiveKit's refusal said plainly.
            RecordingError::Egress(EgressError::NotFound(_) | EgressError::Refused(_))
            | RecordingError::Egress(EgressError::Unavailable { .. }) => {
                ApiError::Unavailable(e.to_string())
            }
            RecordingError::Store(s) => s.into(),
            RecordingError::Folder(..) | RecordingError::Delete(..) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

pub async fn start(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(room): PathParams<String>,
    JsonBody(body): JsonBody<Start>,
) -> ApiResult<Response> {
    let room = moderated_room(&s, &who, &room).await?;
    let layout = body.layout.unwrap_or_else(|| DEFAULT_LAYOUT.into());
    validate_layout(&layout)?;
    s.recorder.ensure_enabled()?;
    require_livekit(&s)?;
    let rec = s
        .recorder
        .start(&room.name, who.id(), &layout, body.audio_only)
        .await?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

pub async fn stop(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Recording>> {
    let room = moderated_room(&s, &who, &room).await?;
    match s.recorder.stop(&room.name).await? {
        Some(rec) => Ok(Json(rec)),
        None => Err(ApiError::NotFound(format!(
            "room \"{}\" has no recording",
            room.name
        ))),
    }
}

pub async fn list(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let room = moderated_room(&s, &who, &room).await?;
    let recordings = s.store.recordings_of_room(&room.name).await?;
    Ok(Json(json!({ "recordings": recordings })))
}

/// The recording `id`, if `who` moderates its room now (or is an admin).
async fn permitted(s: &AppState, who: &SignedIn, id: &str) -> ApiResult<Recording> {
    let rec = s
        .store
        .recording(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no recording {id}")))?;
    let allowed = match s.directory.find(&rec.room).await? {
        Some(room) => who.role_in(s, &room).await? == Some(Role::Moderator),
        None => who.is_admin_now(s).await?,
    };
    if !allowed {
        return Err(ApiError::Forbidden(
            "only the room's moderators can see its recordings".into(),
        ));
    }
    Ok(rec)
}

pub async fn get(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Recording>> {
    Ok(Json(permitted(&s, &who, &id).await?))
}

pub async fn delete(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let rec = permitted(&s, &who, &id).await?;
    s.recorder.delete(&rec).await?;
    Ok(Json(json!({ "deleted": rec.id })))
}

/// A file name for the download: the room's name kept to safe characters, and the start time.
fn download_name(rec: &Recording) -> String {
    let room: String = rec
        .room
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{room}-{}.mp4", rec.started_at.unwrap_or(rec.created_at))
}

pub async fn download(
    State(s): State<AppState>,
    who: SignedIn,
    PathParams(id): PathParams<String>,
    request: Request,
) -> ApiResult<Response> {
    let rec = permitted(&s, &who, &id).await?;
    if rec.status != RecordingStatus::Complete {
        return Err(ApiError::Conflict(format!(
            "the recording is {}, not complete",
            rec.status.as_str()
        )));
    }
    let path = s
        .recorder
        .file_path(&rec)
        .ok_or_else(|| ApiError::NotFound("the recording has no file".into()))?;
    if !path.is_file() {
        return Err(ApiError::NotFound("the recording's file is gone".into()));
    }
    // tower-http's ServeFile streams the file and answers Range (206/416) and conditional
    // requests; only GET reaches here.
    let served = tower_http::services::ServeFile::new(&path)
        .try_call(request)
        .await
        .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
    let mut response = served.map(axum::body::Body::new);
    let kind = if rec.audio_only {
        "audio/mp4"
    } else {
        "video/mp4"
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", download_name(&rec)))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_template_names() {
        for ok in ["grid", "speaker", "single-speaker", "grid-2"] {
            assert!(validate_layout(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Grid", "../x", "a b", &"x".repeat(65)] {
            assert!(validate_layout(bad).is_err(), "{bad}");
        }
    }
}
