//! bedrud's calls into LiveKit's server API (Twirp RoomService), through `livekit-api`,
//! with LiveKit's errors turned into the few cases the HTTP API distinguishes.

use std::time::Duration;

use livekit_api::services::room::{
    CreateRoomOptions, RemoveParticipantOptions, RoomClient, UpdateParticipantOptions,
};
use livekit_api::services::ServiceError;
use livekit_protocol as proto;

use crate::config::Credentials;
use crate::store::LiveParticipant;

/// How long one server-API call may take: a join must never hang on a dead LiveKit.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[derive(Debug, thiserror::Error)]
pub enum LkError {
    #[error("{0}")]
    NotFound(String),
    #[error("LiveKit is unavailable: {0}")]
    Unavailable(String),
    #[error("LiveKit refused the request: {0}")]
    Refused(String),
}

fn classify(e: ServiceError) -> LkError {
    use livekit_api::services::ServerError;
    match e {
        ServiceError::Twirp(ServerError::Twirp(code)) if code.code == "not_found" => {
            LkError::NotFound(code.msg)
        }
        ServiceError::Twirp(ServerError::Twirp(code))
            if code.code == "unavailable" || code.code == "internal" =>
        {
            LkError::Unavailable(code.msg)
        }
        ServiceError::Twirp(ServerError::Twirp(code)) => {
            LkError::Refused(format!("{}: {}", code.code, code.msg))
        }
        ServiceError::Twirp(ServerError::Request(r)) => {
            let url = r
                .url()
                .map(|u| u.to_string())
                .unwrap_or_else(|| "LiveKit".into());
            LkError::Unavailable(crate::livekit::external::describe(&url, &r))
        }
        other => LkError::Refused(other.to_string()),
    }
}

/// How LiveKit should treat a room bedrud creates: how long it lives with nobody ever joining
/// (`rooms.emptyTimeout`), and after the last person left (`rooms.departureTimeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOptions {
    pub empty_timeout: Duration,
    pub departure_timeout: Duration,
}

impl Default for RoomOptions {
    fn default() -> Self {
        RoomOptions {
            empty_timeout: Duration::from_secs(300),
            departure_timeout: Duration::from_secs(20),
        }
    }
}

/// A room as LiveKit has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRoom {
    pub name: String,
    pub sid: String,
    pub max_participants: u32,
}

#[derive(Clone)]
pub struct LiveKitClient {
    rooms: std::sync::Arc<RoomClient>,
}

/// A track as `mute` needs to see it.
#[derive(Debug, Clone)]
pub struct Track {
    pub sid: String,
    pub microphone: bool,
    pub muted: bool,
}

impl LiveKitClient {
    pub fn new(internal_host: &str, credentials: &Credentials) -> LiveKitClient {
        let rooms = RoomClient::with_api_key(
            internal_host,
            &credentials.api_key,
            credentials.api_secret.expose(),
        )
        .with_request_timeout(CALL_TIMEOUT);
        LiveKitClient {
            rooms: std::sync::Arc::new(rooms),
        }
    }

    /// Creates the LiveKit room with the room's limit, so LiveKit itself enforces it; on a room
    /// that exists, LiveKit applies the limit and timeouts to it and answers it as it is now.
    pub async fn ensure_room(
        &self,
        name: &str,
        max_participants: u32,
        options: &RoomOptions,
    ) -> Result<LiveRoom, LkError> {
        let request = CreateRoomOptions {
            max_participants,
            empty_timeout: secs(options.empty_timeout),
            departure_timeout: secs(options.departure_timeout),
            ..Default::default()
        };
        let room = self
            .rooms
            .create_room(name, request)
            .await
            .map_err(classify)?;
        Ok(LiveRoom {
            name: room.name,
            sid: room.sid,
            max_participants: room.max_participants,
        })
    }

    /// Every LiveKit room.
    pub async fn list_rooms(&self) -> Result<Vec<LiveRoom>, LkError> {
        let rooms = self.rooms.list_rooms(Vec::new()).await.map_err(classify)?;
        Ok(rooms
            .into_iter()
            .map(|r| LiveRoom {
                name: r.name,
                sid: r.sid,
                max_participants: r.max_participants,
            })
            .collect())
    }

    /// Participants whose media is connected (the same moment `participant_joined` is sent).
    pub async fn active_participants(&self, room: &str) -> Result<Vec<LiveParticipant>, LkError> {
        let all = self.rooms.list_participants(room).await.map_err(classify)?;
        let active = proto::participant_info::State::Active as i32;
        Ok(all
            .into_iter()
            .filter(|p| p.state == active)
            .map(|p| LiveParticipant {
                identity: p.identity,
                sid: p.sid,
                name: p.name,
                joined_at: p.joined_at.saturating_mul(1000),
            })
            .collect())
    }

    /// Disconnects `identity`. With `revoke`, also asks LiveKit to refuse the tokens issued to it
    /// so far (`revoke_token_ts`, Unix seconds). livekit-server 1.13.5 does not act on that, so
    /// bans do not rely on it: bedrud removes a banned identity whenever it shows up (webhook,
    /// reconciliation).
    pub async fn remove(&self, room: &str, identity: &str, revoke: bool) -> Result<(), LkError> {
        let options = RemoveParticipantOptions {
            revoke_token_ts: if revoke {
                crate::store::now_ms() / 1000
            } else {
                0
            },
        };
        self.rooms
            .remove_participant_with_options(room, identity, options)
            .await
            .map_err(classify)
    }

    pub async fn tracks(&self, room: &str, identity: &str) -> Result<Vec<Track>, LkError> {
        let p = self
            .rooms
            .get_participant(room, identity)
            .await
            .map_err(classify)?;
        let mic = proto::TrackSource::Microphone as i32;
        let audio = proto::TrackType::Audio as i32;
        Ok(p.tracks
            .into_iter()
            .map(|t| Track {
                microphone: t.source == mic || (t.source == 0 && t.r#type == audio),
                sid: t.sid,
                muted: t.muted,
            })
            .collect())
    }

    /// Mutes one published track. `livekit-api` panics when LiveKit answers without the track
    /// (it vanished meanwhile); the call runs in its own task so that panic becomes `NotFound`.
    pub async fn mute(&self, room: &str, identity: &str, track_sid: &str) -> Result<(), LkError> {
        let (client, room_s, id, sid) = (
            self.rooms.clone(),
            room.to_string(),
            identity.to_string(),
            track_sid.to_string(),
        );
        let call =
            tokio::spawn(
                async move { client.mute_published_track(&room_s, &id, &sid, true).await },
            );
        match call.await {
            Ok(r) => r.map(drop).map_err(classify),
            Err(e) if e.is_panic() => Err(LkError::NotFound(format!("track {track_sid} is gone"))),
            Err(e) => Err(LkError::Unavailable(e.to_string())),
        }
    }

    pub async fn set_permissions(
        &self,
        room: &str,
        identity: &str,
        permission: proto::ParticipantPermission,
    ) -> Result<proto::ParticipantPermission, LkError> {
        let options = UpdateParticipantOptions {
            permission: Some(permission),
            ..Default::default()
        };
        let p = self
            .rooms
            .update_participant(room, identity, options)
            .await
            .map_err(classify)?;
        Ok(p.permission.unwrap_or_default())
    }

    /// Ends the meeting for everyone; a room that does not exist counts as closed.
    pub async fn delete_room(&self, room: &str) -> Result<(), LkError> {
        match self.rooms.delete_room(room).await.map_err(classify) {
            Err(LkError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}
