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
use crate::egress::ProcStatus;
use crate::livekit::status::State;

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

/// bedrud's own worker (embedded mode) records a composite with video's sound from the
/// PulseAudio daemon bedrud runs for it; without one egress' `pactl` fails, or the file is silent.
pub const NO_PULSE_CAUSE: &str = "a recording with video takes its sound from PulseAudio, and \
    pulseaudio is not installed for bedrud's egress worker";
pub const NO_PULSE_FIX: &str = "install it (apt install pulseaudio pulseaudio-utils) and restart \
    bedrud, or record audio only (\"audioOnly\": true)";
pub const PULSE_DOWN_FIX: &str = "bedrud restarts it by itself: retry in a few seconds; if it \
    keeps failing, see recording.pulse in GET /api/admin/livekit and bedrud's log (pulseaudio \
    lines). Audio-only recordings (\"audioOnly\": true) work meanwhile";

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

/// Whether a composite with video may be asked of the worker now, given the PulseAudio bedrud
/// runs for it (`None` in external mode: the worker's PulseAudio is not bedrud's to see, and
/// egress' own answer is all there is). Refused up front, before the room's slot is taken:
/// egress would accept the request and then fail in `pactl`, or record silence.
pub fn video_refusal(pulse: Option<&ProcStatus>) -> Option<EgressError> {
    let pulse = pulse?;
    if !pulse.managed {
        return Some(unavailable(NO_PULSE_CAUSE, NO_PULSE_FIX));
    }
    if pulse.state == State::Ready {
        return None;
    }
    let last = match &pulse.last_error {
        Some(e) => format!(" (last error: {e})"),
        None => String::new(),
    };
    let cause = format!(
        "a recording with video takes its sound from the PulseAudio daemon bedrud runs for the \
         egress worker, and it is not running: {}{last}",
        pulse.state
    );
    Some(unavailable(&cause, PULSE_DOWN_FIX))
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

/// MP4 with Opus audio and H.264 video at 720p30 (3 Mbit/s). Not `livekit-api`'s default
/// 1080p30: on the 2-core test machine that took most of a core more, 1.6 GB, and its file held
/// 4.8 s of audio for 11.8 s recorded (docs/recording.md, "At 1080p30").
fn encoding() -> livekit_api::services::egress::encoding::EncodingOptions {
    use livekit_api::services::egress::encoding;
    encoding::EncodingOptions {
        audio_codec: proto::AudioCodec::Opus,
        video_codec: proto::VideoCodec::H264Main,
        ..encoding::H264_720P_30
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
        assert_eq!((e.width, e.height, e.framerate), (1280, 720, 30));
    }

    fn pulse(managed: bool, state: State, last_error: Option<&str>) -> ProcStatus {
        ProcStatus {
            managed,
            state,
            pid: None,
            restarts: 1,
            last_error: last_error.map(str::to_string),
            address: None,
            config_file: None,
        }
    }

    #[test]
    fn video_needs_bedruds_pulseaudio_running() {
        // External mode: nothing of the worker's PulseAudio to see.
        assert!(video_refusal(None).is_none());
        assert!(video_refusal(Some(&pulse(true, State::Ready, None))).is_none());
        let e = video_refusal(Some(&pulse(false, State::Stopped, Some("not installed"))));
        let e = e.expect("not installed").to_string();
        assert!(
            e.contains("not installed") && e.contains("apt install"),
            "{e}"
        );
        for state in [State::Restarting, State::Starting, State::Stopped] {
            let down = pulse(true, state, Some("exited with status 1"));
            let e = video_refusal(Some(&down)).expect("down").to_string();
            assert!(
                e.starts_with("recording is unavailable: ")
                    && e.contains("exited with status 1")
                    && e.contains("fix: bedrud restarts it"),
                "{e}"
            );
        }
        let e = video_refusal(Some(&pulse(true, State::Restarting, None))).unwrap();
        assert!(
            e.to_string().contains("not running: restarting; fix:"),
            "{e}"
        );
    }
}
