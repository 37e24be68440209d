//! Keeps bedrud's idea of who is where equal to LiveKit's, because webhooks can be lost:
//! periodically, and right after every LiveKit restart, using ListRooms/ListParticipants.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::livekit_client::{LiveKitClient, LkError};
use crate::metrics::Metrics;
use crate::status::LiveKitStatus;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    LiveKit(#[from] LkError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Reconciler {
    pub store: Store,
    pub livekit: LiveKitClient,
    pub metrics: Arc<Metrics>,
    pub status: watch::Receiver<LiveKitStatus>,
    pub interval: Duration,
}

impl Reconciler {
    /// Runs until `stop`: every `interval`, and as soon as LiveKit is ready after a restart.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut restarts_seen = self.status.borrow().restarts;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = self.status.changed() => {
                    if changed.is_err() { break; }
                    let s = self.status.borrow_and_update().clone();
                    // Only a LiveKit that is back after a restart needs an immediate pass.
                    if !(s.is_ready() && s.restarts != restarts_seen) { continue; }
                    restarts_seen = s.restarts;
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

    /// One comparison; returns how many corrections it made.
    pub async fn once(&self) -> Result<u64, ReconcileError> {
        let live = self.livekit.list_rooms().await?;
        let mut corrections = 0;
        for (name, sid) in &live {
            if self.store.room_by_name(name).await?.is_none() {
                continue; // not a bedrud room
            }
            let participants = match self.livekit.active_participants(name).await {
                Ok(p) => p,
                Err(LkError::NotFound(_)) => continue, // closed meanwhile; the next pass sees it
                Err(e) => return Err(e.into()),
            };
            corrections += self.store.sync_room(name, sid, &participants).await?;
        }
        for tracked in self.store.tracked_room_names().await? {
            if !live.iter().any(|(n, _)| *n == tracked) {
                corrections += self.store.clear_room(&tracked).await?;
            }
        }
        self.metrics.reconcile_runs.inc();
        self.metrics.reconcile_corrections.inc_by(corrections);
        Ok(corrections)
    }
}
