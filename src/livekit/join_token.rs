//! The LiveKit access token a join returns: identity, display name and grants that enforce the
//! room's settings and the person's role in the token itself, not only in the client.

use std::time::Duration;

use livekit_api::access_token::{AccessToken, VideoGrants};

use crate::config::Credentials;
pub use crate::rooms::Role;
use crate::store::Room;

/// The sources a room lets anyone publish, in LiveKit's names.
pub fn allowed_sources(room: &Room) -> Vec<String> {
    let mut s = Vec::new();
    if room.allow_video {
        s.push("camera".to_string());
    }
    if room.allow_audio {
        s.push("microphone".to_string());
    }
    if room.allow_screen_share {
        s.push("screen_share".to_string());
        s.push("screen_share_audio".to_string());
    }
    s
}

pub fn grants(room: &Room, role: Role) -> VideoGrants {
    let sources = allowed_sources(room);
    VideoGrants {
        room_join: true,
        room: room.name.clone(),
        room_admin: role == Role::Moderator,
        can_publish: Some(!sources.is_empty()),
        can_publish_sources: sources,
        can_subscribe: Some(true),
        can_publish_data: Some(true),
        // Participants must not rewrite their own metadata: it carries their role.
        can_update_own_metadata: Some(false),
        ..Default::default()
    }
}

/// Signs the join token with the LiveKit API key.
pub fn mint(
    credentials: &Credentials,
    room: &Room,
    identity: &str,
    name: &str,
    role: Role,
    ttl: Duration,
) -> Result<String, livekit_api::access_token::AccessTokenError> {
    let metadata = serde_json::json!({ "role": role.as_str() }).to_string();
    AccessToken::with_api_key(&credentials.api_key, credentials.api_secret.expose())
        .with_identity(identity)
        .with_name(name)
        .with_metadata(&metadata)
        .with_ttl(ttl)
        .with_grants(grants(room, role))
        .to_jwt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use livekit_api::access_token::TokenVerifier;

    fn room(video: bool, audio: bool, screen: bool) -> Room {
        Room {
            id: "r".into(),
            name: "standup".into(),
            owner_id: "u1".into(),
            is_public: true,
            max_participants: 10,
            allow_video: video,
            allow_audio: audio,
            allow_screen_share: screen,
            allow_guests: false,
            moderators: vec![],
        }
    }

    #[test]
    fn settings_become_publish_sources() {
        let g = grants(&room(false, true, false), Role::Participant);
        assert_eq!(g.can_publish_sources, vec!["microphone"]);
        assert_eq!(g.can_publish, Some(true));
        assert!(!g.room_admin);
        assert_eq!(g.can_update_own_metadata, Some(false));
        let g = grants(&room(true, true, true), Role::Moderator);
        assert_eq!(
            g.can_publish_sources,
            vec!["camera", "microphone", "screen_share", "screen_share_audio"]
        );
        assert!(g.room_admin);
    }

    #[test]
    fn a_room_with_nothing_allowed_cannot_publish() {
        let g = grants(&room(false, false, false), Role::Participant);
        assert_eq!(g.can_publish, Some(false));
        assert!(g.can_publish_sources.is_empty());
    }

    #[test]
    fn the_token_verifies_with_livekits_key_and_carries_identity_and_grants() {
        let creds = Credentials {
            api_key: "APIk".into(),
            api_secret: Secret::new("s".repeat(40)),
        };
        let jwt = mint(
            &creds,
            &room(false, true, true),
            "u_1",
            "Ada",
            Role::Guest,
            Duration::from_secs(60),
        )
        .unwrap();
        let claims = TokenVerifier::with_api_key("APIk", &"s".repeat(40))
            .verify(&jwt)
            .unwrap();
        assert_eq!(claims.sub, "u_1");
        assert_eq!(claims.name, "Ada");
        assert_eq!(claims.metadata, r#"{"role":"guest"}"#);
        assert_eq!(claims.video.room, "standup");
        assert!(!claims
            .video
            .can_publish_sources
            .contains(&"camera".to_string()));
        assert!(claims.exp - claims.nbf <= 60);
    }
}
