//! The room directory: bedrud's rooms by name (read once, they never change), their LiveKit
//! counterparts created once per meeting (one CreateRoom however many joins race for it), and
//! who may do what in a room.
//!
//! LiveKit ends a room on its own (empty for its departure timeout) and, in embedded mode, cannot
//! recreate it behind bedrud's back (`room.auto_create: false` in the generated config), so every
//! meeting starts with bedrud's CreateRoom carrying the room's settings. What bedrud believes
//! about a live room is forgotten when LiveKit says the room finished, when it is closed, and when
//! reconciliation finds LiveKit no longer has it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::livekit::client::{LiveKitClient, LkError, RoomOptions};
use crate::store::{Room, Store, StoreError};

/// A LiveKit room ensured this recently is not created again. It only bounds how long a room that
/// LiveKit dropped without a webhook (lost, or never configured) is believed to exist;
/// `room_finished` and reconciliation forget it sooner.
const ENSURED_FOR: Duration = Duration::from_secs(60);

/// Someone's role in a room, as far as grants and moderation are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Moderator,
    Participant,
    Guest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Participant => "participant",
            Role::Guest => "guest",
        }
    }
}

impl Room {
    /// The one rule for who may do what: the owner, listed moderators and admins moderate; others
    /// take part in public rooms only (`None`: a private room that is not theirs).
    pub fn role_of(&self, user_id: &str, admin: bool) -> Option<Role> {
        if admin || self.owner_id == user_id || self.moderators.iter().any(|m| m == user_id) {
            Some(Role::Moderator)
        } else if self.is_public {
            Some(Role::Participant)
        } else {
            None
        }
    }

    /// Moderator without admin rights: the case that needs no account lookup.
    pub fn moderates_itself(&self, user_id: &str) -> bool {
        self.role_of(user_id, false) == Some(Role::Moderator)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    LiveKit(#[from] LkError),
}

/// One per bedrud instance; cheap to share behind the application state.
pub struct RoomDirectory {
    store: Store,
    livekit: LiveKitClient,
    /// `rooms.emptyTimeout`/`departureTimeout`; a reload replaces them for rooms created after.
    options: RwLock<RoomOptions>,
    rooms: RwLock<HashMap<String, Room>>,
    /// Per room, when bedrud last made sure LiveKit has it; the async mutex makes concurrent
    /// joins wait for one CreateRoom instead of each sending their own.
    ensured: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl RoomDirectory {
    pub fn new(store: Store, livekit: LiveKitClient, options: RoomOptions) -> RoomDirectory {
        RoomDirectory {
            store,
            livekit,
            options: RwLock::new(options),
            rooms: RwLock::default(),
            ensured: Mutex::default(),
        }
    }

    /// A reload's new room timeouts, for the rooms LiveKit creates from now on.
    pub fn set_options(&self, options: RoomOptions) {
        *write(&self.options) = options;
    }

    /// The room named `name`, from memory after the first read (rooms never change once
    /// created: settings are fixed and there is no delete).
    pub async fn find(&self, name: &str) -> Result<Option<Room>, StoreError> {
        if let Some(room) = read(&self.rooms).get(name) {
            return Ok(Some(room.clone()));
        }
        let room = self.store.room_by_name(name).await?;
        if let Some(room) = &room {
            write(&self.rooms).insert(name.to_string(), room.clone());
        }
        Ok(room)
    }

    /// Makes sure LiveKit has the room, with its limit and timeouts, before a token for it is
    /// handed out; at most one CreateRoom per room at a time, none while the last is fresh.
    pub async fn ensure_live(&self, room: &Room) -> Result<(), LkError> {
        let slot = lock(&self.ensured)
            .entry(room.name.clone())
            .or_default()
            .clone();
        let mut ensured_at = slot.lock().await;
        if ensured_at.is_some_and(|t| t.elapsed() < ENSURED_FOR) {
            return Ok(());
        }
        let max = u32::try_from(room.max_participants).unwrap_or(u32::MAX);
        let options = read(&self.options).clone();
        let live = self.livekit.ensure_room(&room.name, max, &options).await?;
        if live.max_participants != max {
            // A room LiveKit already ran without bedrud keeps its own limit (CreateRoom does not
            // change a live room's); reconciliation holds bedrud's limit on it.
            tracing::debug!(room = %room.name, livekit = live.max_participants, "room runs with LiveKit's own limit");
        }
        *ensured_at = Some(Instant::now());
        Ok(())
    }

    /// LiveKit no longer has the room (finished, closed, or gone at reconciliation): the next
    /// join creates it again with its settings.
    pub fn forget_live(&self, name: &str) {
        lock(&self.ensured).remove(name);
    }

    /// Removes `identity` from the LiveKit room `room` if it is banned there; returns whether it
    /// was. A token issued before the ban (or one LiveKit refreshed for a connected client) still
    /// connects, because livekit-server does not act on token revocation: so bans are enforced
    /// when the person shows up, by the `participant_joined` webhook and by reconciliation.
    pub async fn turn_away_if_banned(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<bool, DirectoryError> {
        if !self.store.is_banned_from(room, identity).await? {
            return Ok(false);
        }
        match self.livekit.remove(room, identity, true).await {
            Ok(()) | Err(LkError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(room, identity, "removed a banned participant who connected");
        Ok(true)
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(public: bool) -> Room {
        Room {
            id: "r1".into(),
            name: "standup".into(),
            owner_id: "owner".into(),
            is_public: public,
            max_participants: 10,
            allow_video: true,
            allow_audio: true,
            allow_screen_share: true,
            allow_guests: false,
            moderators: vec!["mod".into()],
        }
    }

    #[test]
    fn owners_listed_moderators_and_admins_moderate() {
        let r = room(false);
        assert_eq!(r.role_of("owner", false), Some(Role::Moderator));
        assert_eq!(r.role_of("mod", false), Some(Role::Moderator));
        assert_eq!(r.role_of("anyone", true), Some(Role::Moderator));
        assert!(r.moderates_itself("mod"));
        assert!(!r.moderates_itself("anyone"));
    }

    #[test]
    fn others_take_part_in_public_rooms_only() {
        assert_eq!(room(true).role_of("anyone", false), Some(Role::Participant));
        assert_eq!(room(false).role_of("anyone", false), None);
    }
}
