//! LiveKit → bedrud webhooks: the signature check (JWT over the body's SHA-256) and a lenient
//! reading of LiveKit's protobuf JSON into the state change each event asks for.

use base64::Engine;
use livekit_api::access_token::TokenVerifier;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Egress, LiveParticipant, PresenceChange};

/// Largest body accepted; LiveKit's events are a few kilobytes.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing Authorization header")]
    MissingSignature,
    #[error("invalid webhook signature")]
    BadSignature,
    #[error("the body does not match the signed hash")]
    BodyMismatch,
    #[error("malformed webhook body: {0}")]
    Malformed(String),
}

/// Checks that `authorization` (LiveKit sends the raw JWT, no "Bearer ") was signed with our API
/// secret and that its `sha256` claim is the hash of exactly these body bytes.
pub fn verify(
    verifier: &TokenVerifier,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(), WebhookError> {
    let header = authorization.ok_or(WebhookError::MissingSignature)?.trim();
    let token = header.strip_prefix("Bearer ").unwrap_or(header);
    let claims = verifier
        .verify(token)
        .map_err(|_| WebhookError::BadSignature)?;
    let claimed = base64::engine::general_purpose::STANDARD
        .decode(claims.sha256.as_bytes())
        .map_err(|_| WebhookError::BodyMismatch)?;
    let actual = Sha256::digest(body);
    if claimed.len() != actual.len() || !bool::from(claimed.as_slice().ct_eq(actual.as_slice())) {
        return Err(WebhookError::BodyMismatch);
    }
    Ok(())
}

/// One event, as bedrud needs it.
pub use crate::store::Event;

/// Reads an event without assuming anything it does not need: unknown fields and enum values
/// are ignored, int64 may come as a string or a number.
pub fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let name = text(&v, "event");
    let id = text(&v, "id");
    if name.is_empty() || id.is_empty() {
        return Err(WebhookError::Malformed("event and id are required".into()));
    }
    let room = v.get("room").map(|r| text(r, "name")).unwrap_or_default();
    let room_sid = v.get("room").map(|r| text(r, "sid")).unwrap_or_default();
    let change = match name.as_str() {
        "room_started" if !room.is_empty() => PresenceChange::RoomStarted {
            room,
            sid: room_sid,
        },
        "room_finished" if !room.is_empty() => PresenceChange::RoomFinished { room },
        "participant_joined" => match participant(&v) {
            Some(p) if !room.is_empty() => PresenceChange::Joined {
                room,
                participant: p,
            },
            _ => PresenceChange::Nothing,
        },
        "participant_left" | "participant_connection_aborted" => match participant(&v) {
            Some(p) if !room.is_empty() => PresenceChange::Left {
                room,
                identity: p.identity,
                sid: p.sid,
            },
            _ => PresenceChange::Nothing,
        },
        "egress_started" | "egress_updated" | "egress_ended" => {
            egress(&v).map_or(PresenceChange::Nothing, PresenceChange::Egress)
        }
        _ => PresenceChange::Nothing,
    };
    Ok(Event { id, name, change })
}

fn participant(v: &Value) -> Option<LiveParticipant> {
    let p = v.get("participant")?;
    let identity = text(p, "identity");
    if identity.is_empty() {
        return None;
    }
    Some(LiveParticipant {
        identity,
        sid: text(p, "sid"),
        name: text(p, "name"),
        // Seconds to milliseconds; a signed but absurd value must not overflow (found by fuzzing).
        joined_at: int(p, "joinedAt").map_or_else(crate::store::now_ms, |s| s.saturating_mul(1000)),
    })
}

fn egress(v: &Value) -> Option<Egress> {
    let e = v.get("egressInfo")?;
    let egress_id = text(e, "egressId");
    (!egress_id.is_empty()).then(|| Egress {
        egress_id,
        room_name: text(e, "roomName"),
        // Enum names, or numbers for values newer than this code: kept as text either way.
        status: text(e, "status"),
    })
}

/// A string field, or a number written as text; empty when absent.
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// protobuf JSON writes int64 as a string; accept a bare number too.
fn int(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absurd_join_time_does_not_overflow() {
        let body = br#"{"event":"participant_joined","id":"EV_1","room":{"name":"r"},
            "participant":{"identity":"u_1","sid":"PA_1","joinedAt":"9223372036854775807"}}"#;
        let e = parse(body).unwrap();
        match e.change {
            PresenceChange::Joined { participant, .. } => {
                assert_eq!(participant.joined_at, i64::MAX)
            }
            other => panic!("{other:?}"),
        }
    }
    use livekit_api::access_token::AccessToken;

    const KEY: &str = "APIk";
    const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

    fn sign(body: &[u8], secret: &str) -> String {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        AccessToken::with_api_key(KEY, secret)
            .with_sha256(&hash)
            .to_jwt()
            .unwrap()
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::with_api_key(KEY, SECRET)
    }

    #[test]
    fn a_correct_signature_passes_and_anything_else_fails() {
        let body = br#"{"event":"room_started","id":"EV_1"}"#;
        let jwt = sign(body, SECRET);
        assert_eq!(verify(&verifier(), Some(&jwt), body), Ok(()));
        assert_eq!(
            verify(&verifier(), Some(&format!("Bearer {jwt}")), body),
            Ok(())
        );
        assert_eq!(
            verify(&verifier(), None, body),
            Err(WebhookError::MissingSignature)
        );
        let forged = sign(body, "another-secret-another-secret-another");
        assert_eq!(
            verify(&verifier(), Some(&forged), body),
            Err(WebhookError::BadSignature)
        );
        let tampered = br#"{"event":"room_started","id":"EV_2"}"#;
        assert_eq!(
            verify(&verifier(), Some(&jwt), tampered),
            Err(WebhookError::BodyMismatch)
        );
    }

    #[test]
    fn participant_events_with_protobuf_json_quirks() {
        let body = br#"{"event":"participant_joined","id":"EV_a","createdAt":"1700000002",
            "room":{"sid":"RM_1","name":"standup","newField":{"x":1}},
            "participant":{"sid":"PA_1","identity":"u_1","name":"Ada","state":"SOME_FUTURE_STATE","joinedAt":"1700000001","kind":99}}"#;
        let e = parse(body).unwrap();
        assert_eq!(e.id, "EV_a");
        assert_eq!(
            e.change,
            PresenceChange::Joined {
                room: "standup".into(),
                participant: LiveParticipant {
                    identity: "u_1".into(),
                    sid: "PA_1".into(),
                    name: "Ada".into(),
                    joined_at: 1_700_000_001_000
                }
            }
        );
        let left = br#"{"event":"participant_connection_aborted","id":"EV_b","room":{"name":"standup"},"participant":{"sid":"PA_1","identity":"u_1"}}"#;
        assert_eq!(
            parse(left).unwrap().change,
            PresenceChange::Left {
                room: "standup".into(),
                identity: "u_1".into(),
                sid: "PA_1".into()
            }
        );
    }

    #[test]
    fn rooms_egress_and_unknown_events() {
        let fin = parse(br#"{"event":"room_finished","id":"E1","room":{"name":"r"}}"#).unwrap();
        assert_eq!(
            fin.change,
            PresenceChange::RoomFinished { room: "r".into() }
        );
        let eg = parse(br#"{"event":"egress_updated","id":"E2","egressInfo":{"egressId":"EG_1","roomName":"r","status":7}}"#).unwrap();
        assert_eq!(
            eg.change,
            PresenceChange::Egress(Egress {
                egress_id: "EG_1".into(),
                room_name: "r".into(),
                status: "7".into()
            })
        );
        let other = parse(br#"{"event":"track_published","id":"E3","room":{"name":"r"}}"#).unwrap();
        assert_eq!(other.change, PresenceChange::Nothing);
        assert!(parse(b"not json").is_err());
        assert!(
            parse(br#"{"event":"room_started"}"#).is_err(),
            "an event without id cannot be deduplicated"
        );
    }
}
