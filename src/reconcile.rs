//! Keeps bedrud's idea of who is where equal to LiveKit's, because webhooks can be lost:
//! periodically, and right after every LiveKit restart, using ListRooms/ListParticipants.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::livekit::client::{LiveKitClient, LkError};
use crate::livekit::status::LiveKitStatus;
use crate::metrics::Metrics;
use crate::rooms::{DirectoryError, RoomDirectory};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    LiveKit(#[from] LkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

pub struct Reconciler {
    pub store: Store,
    pub livekit: LiveKitClient,
    pub metrics: Arc<Metrics>,
    pub status: watch::Receiver<LiveKitStatus>,
    /// The running configuration, for `rooms.reconcileInterval` (a reload may change it).
    pub config: watch::Receiver<Arc<crate::config::Config>>,
    /// Set while LiveKit reports people in bedrud's rooms but no webhook ever arrived.
    pub webhook_warning: Arc<Mutex<Option<String>>>,
    /// Told which rooms LiveKit no longer has, and enforces bans on whoever is connected.
    pub directory: Arc<RoomDirectory>,
    /// Rooms already reported as running with LiveKit's own limit (said once, not every pass).
    pub warned_limits: Mutex<std::collections::HashSet<String>>,
    /// Recordings in progress are compared with egress, and retention applied, in each pass.
    pub recorder: Option<Arc<crate::recording::Recorder>>,
}

/// What the administrator is told when LiveKit's webhooks do not reach bedrud.
pub const NO_WEBHOOKS: &str = "LiveKit reports participants but no webhook has reached bedrud: \
    configure LiveKit's webhook (print the block with `bedrud livekit webhook-config`) and check \
    that LiveKit can reach /api/livekit/webhook; until then state is only as fresh as reconciliation";

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

impl Reconciler {
    /// Runs until `stop`: every `interval`, and as soon as LiveKit is ready again after a restart
    /// or an outage.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut interval = self.config.borrow_and_update().rooms.reconcile_interval;
        let mut tick = ticker(interval);
        let mut was_ready = self.status.borrow().is_ready();
        let mut ever_ready = was_ready;
        let mut restarts_seen = self.status.borrow().restarts;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = self.config.changed() => {
                    if changed.is_err() { break; }
                    let new = self.config.borrow_and_update().rooms.reconcile_interval;
                    if new != interval {
                        interval = new;
                        tick = ticker(interval);
                        tick.reset();
                    }
                    continue;
                }
                changed = self.status.changed() => {
                    if changed.is_err() { break; }
                    let (ready, restarts) = {
                        let s = self.status.borrow_and_update();
                        (s.is_ready(), s.restarts)
                    };
                    // LiveKit back after a restart or an outage: whatever happened meanwhile
                    // produced no webhooks, so compare now rather than at the next tick. (The
                    // restart count catches a restart whose intermediate states were coalesced.)
                    let back = ready && ever_ready && (!was_ready || restarts != restarts_seen);
                    was_ready = ready;
                    restarts_seen = restarts;
                    ever_ready |= ready;
                    if !back { continue; }
                }
                _ = stop.cancelled() => break,
            }
            if !self.status.borrow().is_ready() {
                continue;
            }
            match self.once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(corrections = n, "reconciliation corrected bedrud's state"),
                Err(e) => tracing::warn!("reconciliation failed: {e}"),
            }
        }
    }

    /// One comparison; returns how many corrections it made (0 when another bedrud instance
    /// sharing the database is reconciling right now).
    pub async fn once(&self) -> Result<u64, ReconcileError> {
        let Some(lock) = self.store.try_reconcile_lock().await? else {
            return Ok(0);
        };
        let result = self.compare().await;
        let recordings = self.recordings().await;
        lock.release().await;
        let (corrections, present) = result?;
        let corrections = corrections + recordings;
        self.check_webhooks(present).await?;
        self.metrics.reconcile_runs.inc();
        self.metrics.reconcile_corrections.inc_by(corrections);
        Ok(corrections)
    }

    /// Returns the corrections made and how many people LiveKit has in bedrud's rooms.
    async fn compare(&self) -> Result<(u64, usize), ReconcileError> {
        let live = self.livekit.list_rooms().await?;
        let mut corrections = 0;
        let mut present = 0;
        for lk in &live {
            let Some(room) = self.directory.find(&lk.name).await? else {
                continue; // not a bedrud room
            };
            let foreign_limit = i64::from(lk.max_participants) != room.max_participants;
            if foreign_limit
                && self
                    .warned_limits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(lk.name.clone())
            {
                // Created by LiveKit itself (auto-create on an external LiveKit, or a token from
                // another tool). LiveKit keeps a live room's limit even when CreateRoom names
                // another, so bedrud holds the limit itself below.
                tracing::warn!(
                    room = %lk.name,
                    livekit = lk.max_participants,
                    bedrud = room.max_participants,
                    "LiveKit runs this room with another participant limit; bedrud enforces its own"
                );
            }
            let mut participants = match self.livekit.active_participants(&lk.name).await {
                Ok(p) => p,
                Err(LkError::NotFound(_)) => continue, // closed meanwhile; the next pass sees it
                Err(e) => return Err(e.into()),
            };
            let mut banned = Vec::new();
            for p in &participants {
                if self
                    .directory
                    .turn_away_if_banned(&lk.name, &p.identity)
                    .await?
                {
                    banned.push(p.identity.clone());
                }
            }
            participants.retain(|p| !banned.contains(&p.identity));
            corrections += banned.len() as u64;
            if foreign_limit {
                corrections += self.hold_limit(&room, &mut participants).await?;
            }
            present += participants.len();
            corrections += self
                .store
                .sync_room(&lk.name, &lk.sid, &participants)
                .await?;
        }
        for tracked in self.store.tracked_room_names().await? {
            if !live.iter().any(|lk| lk.name == tracked) {
                corrections += self.store.clear_room(&tracked).await?;
                self.directory.forget_live(&tracked);
            }
        }
        Ok((corrections, present))
    }

    /// Removes the most recent arrivals beyond the room's limit: they got in only because the
    /// LiveKit room had no (or another) limit.
    async fn hold_limit(
        &self,
        room: &crate::store::Room,
        participants: &mut Vec<crate::store::LiveParticipant>,
    ) -> Result<u64, ReconcileError> {
        let max = usize::try_from(room.max_participants).unwrap_or(usize::MAX);
        if participants.len() <= max {
            return Ok(0);
        }
        participants.sort_by_key(|p| p.joined_at);
        let excess = participants.split_off(max);
        for p in &excess {
            match self.livekit.remove(&room.name, &p.identity, false).await {
                Ok(()) | Err(LkError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::warn!(room = %room.name, identity = %p.identity, max, "removed a participant over the room's limit");
        }
        Ok(excess.len() as u64)
    }

    /// Recordings: a lost `egress_ended` (or a worker that died) is found here, and old
    /// recordings are deleted (`recording.retainDays`). Egress being unavailable must not stop
    /// the room comparison, so a failure here is logged, not returned.
    async fn recordings(&self) -> u64 {
        let Some(recorder) = &self.recorder else {
            return 0;
        };
        let corrected = match recorder.reconcile().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("recording reconciliation failed: {e}");
                0
            }
        };
        if let Err(e) = recorder.sweep().await {
            tracing::warn!("recording retention failed: {e}");
        }
        corrected
    }

    async fn check_webhooks(&self, present: usize) -> Result<(), ReconcileError> {
        let silent = present > 0 && self.store.webhook_event_count().await? == 0;
        let mut warning = self
            .webhook_warning
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if silent && warning.is_none() {
            tracing::warn!("{NO_WEBHOOKS}");
        }
        *warning = silent.then(|| NO_WEBHOOKS.to_string());
        Ok(())
    }
}
