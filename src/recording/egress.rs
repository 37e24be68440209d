//! bedrud's calls into LiveKit Egress (Twirp `livekit.Egress`): start a room composite to an MP4
//! file, stop it, look one up. LiveKit's refusals become [`EgressError`], whose `Unavailable`
//! carries the cause and fix an administrator needs (the seed's troubleshooting rows), never a
//! raw Twirp error.

use std::time::Duration;

use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_api::services::egress::{
    EgressClient, EgressListFilter, EgressListOptions, EgressOutput, RoomCompositeOptions,
};
use livekit_api::services::{ServerError, ServiceError};
use livekit_protocol as proto;

use crate::config::Credentials;

/// How long one call may take. A start waits for an egress worker to accept the request
/// (LiveKit asks the workers through Redis and gives up after a few seconds itself).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Egress answers LiveKit relays when it has no Redis (`ListEgress`, `StartEgress`).
pub const NO_REDIS_CAUSE: &str = "LiveKit has no Redis, so it cannot reach any egress worker \
    (LiveKit said: egress not connected (redis required))";
pub const NO_REDIS_FIX: &str = "add a redis: section to LiveKit's YAML pointing at the Redis the \
    egress workers use, and make sure that Redis is healthy";
/// LiveKit cannot reach its Redis (the seed's "Redis connection fails" row).
pub const REDIS_DOWN_CAUSE: &str = "LiveKit cannot reach its Redis (unreachable or wrong address)";
pub const REDIS_DOWN_FIX: &str = "check redis.address in LiveKit's YAML and that Redis is running \
    and reachable from LiveKit";
/// No worker took the request (none running, none subscribed to that Redis, or all busy).
pub const NO_WORKER_CAUSE: &str = "no egress worker answered the request";
pub const NO_WORKER_FIX: &str = "start an egress worker connected to the same Redis as LiveKit \
    (embedded mode: recording.enabled runs one) and check its log; a busy worker refuses new \
    recordings until its CPU budget frees up";
/// `permissions denied` although bedrud signs with the right key and the Room grant.
pub const DENIED_CAUSE: &str = "LiveKit denied the egress request although it was signed with \
    the API key and carried roomRecord and the Room grant: usually Redis is not configured for \
    LiveKit, or no egress worker is available";
pub const DENIED_FIX: &str = "add a redis: section to LiveKit's YAML and ensure Redis is healthy; \
    check that livekit.apiKey/apiSecret match LiveKit's keys";

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// Recording cannot work now; the message says why and what to change.
    #[error("recording is unavailable: {cause}; fix: {fix}")]
    Unavailable { cause: String, fix: String },
    /// Egress does not know this recording (anymore).
    #[error("egress does not know this recording: {0}")]
    NotFound(String),
    /// A request egress refused for another reason (said plainly, without Twirp's framing).
    #[error("LiveKit refused the egress request: {0}")]
    Refused(String),
}

fn unavailable(cause: &str, fix: &str) -> EgressError {
    EgressError::Unavailable {
        cause: cause.into(),
        fix: fix.into(),
    }
}

/// Turns LiveKit's answer into what bedrud tells people. One place for the seed's rows.
pub fn classify(e: ServiceError) -> EgressError {
    match e {
        ServiceError::Twirp(ServerError::Twirp(t)) => classify_twirp(&t.code, &t.msg),
        ServiceError::Twirp(ServerError::Request(r)) if r.is_timeout() => {
            unavailable(NO_WORKER_CAUSE, NO_WORKER_FIX)
        }
        ServiceError::Twirp(ServerError::Request(r)) => {
            let url = r
                .url()
                .map(|u| u.to_string())
                .unwrap_or_else(|| "LiveKit".into());
            EgressError::Unavailable {
                cause: crate::livekit::external::describe(&url, &r),
                fix: "check that LiveKit is running and livekit.internalHost reaches it".into(),
            }
        }
        other => EgressError::Refused(other.to_string()),
    }
}

fn classify_twirp(code: &str, msg: &str) -> EgressError {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("redis required") || lower.contains("egress not connected") {
        unavailable(NO_REDIS_CAUSE, NO_REDIS_FIX)
    } else if lower.contains("redis")
        || lower.contains("dial tcp")
        || lower.contains("connection refused")
    {
        // The only connection LiveKit makes for an egress request is to Redis.
        unavailable(REDIS_DOWN_CAUSE, REDIS_DOWN_FIX)
    } else if lower.contains("permission") || code == "unauthenticated" {
        unavailable(DENIED_CAUSE, DENIED_FIX)
    } else if lower.contains("no response")
        || lower.contains("no servers")
        || lower.contains("not enough cpu")
        || code == "deadline_exceeded"
        || code == "unavailable"
        || code == "resource_exhausted"
    {
        unavailable(NO_WORKER_CAUSE, NO_WORKER_FIX)
    } else if code == "not_found" {
        EgressError::NotFound(msg.into())
    } else {
        EgressError::Refused(msg.into())
    }
}

/// The egress side of bedrud: LiveKit's address and the key pair that signs each request.
#[derive(Clone)]
pub struct Egress {
    host: String,
    credentials: Credentials,
}

impl Egress {
    pub fn new(host: &str, credentials: &Credentials) -> Egress {
        Egress {
            host: host.to_string(),
            credentials: credentials.clone(),
        }
    }

    /// A client whose every request carries `roomRecord` and, for a room's request, the Room
    /// grant (`room: <name>`, the seed's fix for "permissions denied"). `livekit-api` signs its
    /// own tokens with `roomRecord` only, so bedrud signs one itself and hands it over.
    fn client(&self, room: &str) -> Result<EgressClient, EgressError> {
        let token = AccessToken::with_api_key(
            &self.credentials.api_key,
            self.credentials.api_secret.expose(),
        )
        .with_ttl(Duration::from_secs(60))
        .with_grants(VideoGrants {
            room_record: true,
            room: room.to_string(),
            ..Default::default()
        })
        .to_jwt()
        .map_err(|e| EgressError::Refused(format!("cannot sign the egress request: {e}")))?;
        Ok(EgressClient::with_token(&self.host, &token).with_request_timeout(CALL_TIMEOUT))
    }

    /// Starts a room composite (audio only, or with video in `layout`) into `output`: MP4 with
    /// Opus audio (MP4's default AAC needs GStreamer's `faac`, which Debian does not ship) and
    /// H.264 video — `livekit-api`'s default encoding.
    pub async fn start(
        &self,
        room: &str,
        layout: &str,
        audio_only: bool,
        output: proto::EncodedFileOutput,
    ) -> Result<proto::EgressInfo, EgressError> {
        let options = RoomCompositeOptions {
            layout: if audio_only {
                String::new()
            } else {
                layout.to_string()
            },
            audio_only,
            encoding: encoding(),
            ..Default::default()
        };
        self.client(room)?
            .start_room_composite_egress(room, vec![EgressOutput::File(output)], options)
            .await
            .map_err(classify)
    }

    pub async fn stop(
        &self,
        room: &str,
        egress_id: &str,
    ) -> Result<proto::EgressInfo, EgressError> {
        self.client(room)?
            .stop_egress(egress_id)
            .await
            .map_err(classify)
    }

    /// What egress knows of one recording; `None` when it does not know it.
    pub async fn info(
        &self,
        room: &str,
        egress_id: &str,
    ) -> Result<Option<proto::EgressInfo>, EgressError> {
        // One egress id per call: `livekit-api`'s `list_egress` drops the page token, so a
        // listing of everything could silently miss items past the first page.
        let options = EgressListOptions {
            filter: EgressListFilter::Egress(egress_id.to_string()),
            active: false,
            page_token: None,
        };
        match self
            .client(room)?
            .list_egress(options)
            .await
            .map_err(classify)
        {
            Ok(items) => Ok(items.into_iter().find(|i| i.egress_id == egress_id)),
            Err(EgressError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether egress answers at all (`doctor`): `ListEgress` of the active ones.
    pub async fn probe(&self) -> Result<usize, EgressError> {
        let options = EgressListOptions {
            filter: EgressListFilter::All,
            active: true,
            page_token: None,
        };
        let items = self
            .client("")?
            .list_egress(options)
            .await
            .map_err(classify)?;
        Ok(items.len())
    }
}

/// MP4 with Opus audio and H.264 video.
fn encoding() -> livekit_api::services::egress::encoding::EncodingOptions {
    livekit_api::services::egress::encoding::EncodingOptions {
        audio_codec: proto::AudioCodec::Opus,
        video_codec: proto::VideoCodec::H264Main,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn livekit_refusals_become_the_seeds_causes() {
        let e = classify_twirp("unavailable", "egress not connected (redis required)");
        assert!(e.to_string().contains("redis: section"), "{e}");
        let e = classify_twirp(
            "unknown",
            "dial tcp 127.0.0.1:1: connect: connection refused",
        );
        assert!(e.to_string().contains("cannot reach its Redis"), "{e}");
        let e = classify_twirp("unauthenticated", "permissions denied");
        assert!(e.to_string().contains("Room grant"), "{e}");
        let e = classify_twirp("deadline_exceeded", "request timed out");
        assert!(e.to_string().contains("no egress worker answered"), "{e}");
        let e = classify_twirp("unavailable", "no response from servers");
        assert!(e.to_string().contains("no egress worker answered"), "{e}");
        assert!(matches!(
            classify_twirp("not_found", "egress not found"),
            EgressError::NotFound(_)
        ));
        let e = classify_twirp("invalid_argument", "bad layout");
        assert_eq!(
            e.to_string(),
            "LiveKit refused the egress request: bad layout"
        );
    }

    #[test]
    fn recordings_are_opus_and_h264() {
        let e = encoding();
        assert_eq!(e.audio_codec, proto::AudioCodec::Opus);
        assert_eq!(e.video_codec, proto::VideoCodec::H264Main);
    }
}
