//! Recording endpoints: start and stop a room's recording, list a room's recordings, read one,
//! download its file (streamed from the folder or from S3, `Range` requests answered 206) and
//! delete it. Only the room's moderators (owner, listed moderators) and admins may call any of
//! them: recordings hold what everyone in the meeting said.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::moderation::moderated_room;
use super::{require_livekit, ApiError, ApiResult, AppState, JsonBody, PathParams, SignedIn};
use crate::recording::{storage::Bucket, EgressError, RecordingError, StorageError, Stored};
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
            RecordingError::Disabled => ApiError::Unavailable(e.to_string()),
            RecordingError::Storage(StorageError::Missing { .. }) => {
                ApiError::NotFound("the recording's object is gone from the bucket".into())
            }
            // S3 unreachable, refusing the credentials, no bucket: the cause and the key to fix.
            RecordingError::Storage(_) => ApiError::Unavailable(e.to_string()),
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
    let mut response = match s.recorder.stored(&rec)? {
        None => return Err(ApiError::NotFound("the recording has no file".into())),
        Some(Stored::File(path)) => {
            if !path.is_file() {
                return Err(ApiError::NotFound("the recording's file is gone".into()));
            }
            // tower-http's ServeFile streams the file and answers Range (206/416) and
            // conditional requests; only GET reaches here.
            let served = tower_http::services::ServeFile::new(&path)
                .try_call(request)
                .await
                .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
            served.map(axum::body::Body::new)
        }
        Some(Stored::Object(bucket, key)) => {
            let range = request
                .headers()
                .get(header::RANGE)
                .map(|v| v.to_str().unwrap_or(""));
            object_response(&bucket, &key, range).await?
        }
    };
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

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Requested {
    Whole,
    /// One range of bytes (end exclusive).
    Part(std::ops::Range<u64>),
    /// Malformed, out of bounds, or several ranges: 416, as tower-http's `ServeFile` answers
    /// for local files (with the same parser), so both storages behave alike.
    Unsatisfiable,
}

fn requested(range: Option<&str>, size: u64) -> Requested {
    let Some(range) = range else {
        return Requested::Whole;
    };
    match http_range_header::parse_range_header(range).and_then(|r| r.validate(size)) {
        Ok(ranges) if ranges.len() == 1 => {
            Requested::Part(*ranges[0].start()..*ranges[0].end() + 1)
        }
        _ => Requested::Unsatisfiable,
    }
}

/// Streams an S3 object through bedrud (a ranged GET for a `Range`): S3's body goes out as it
/// arrives, never held whole in memory.
async fn object_response(bucket: &Bucket, key: &str, range: Option<&str>) -> ApiResult<Response> {
    let size = bucket
        .size(key)
        .await
        .map_err(RecordingError::from)?
        .ok_or_else(|| {
            ApiError::NotFound("the recording's object is gone from the bucket".into())
        })?;
    let (status, part) = match requested(range, size) {
        Requested::Whole => (StatusCode::OK, None),
        Requested::Part(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        Requested::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response())
        }
    };
    let got = bucket
        .read(key, part.clone())
        .await
        .map_err(RecordingError::from)?;
    let length = got.range.end - got.range.start;
    let mut response = Response::new(axum::body::Body::from_stream(got.into_stream()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(r) = part {
        let value = format!("bytes {}-{}/{size}", r.start, r.end - 1);
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("digits and dashes"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_map_to_one_byte_range_or_416() {
        use Requested::*;
        assert_eq!(requested(None, 1000), Whole);
        assert_eq!(requested(Some("bytes=0-99"), 1000), Part(0..100));
        assert_eq!(requested(Some("bytes=900-"), 1000), Part(900..1000));
        assert_eq!(requested(Some("bytes=-100"), 1000), Part(900..1000));
        // An end past the object is cut to it (RFC 9110).
        assert_eq!(requested(Some("bytes=990-2000"), 1000), Part(990..1000));
        assert_eq!(requested(Some("bytes=1000-"), 1000), Unsatisfiable);
        assert_eq!(requested(Some("bytes=0-1,5-9"), 1000), Unsatisfiable);
        assert_eq!(requested(Some("items=0-9"), 1000), Unsatisfiable);
        assert_eq!(requested(Some("bytes=9-0"), 1000), Unsatisfiable);
    }

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
