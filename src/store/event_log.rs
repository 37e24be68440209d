//! Group commit for webhook events: one writer task stores whatever events arrived while the
//! previous transaction was committing, all in one transaction, and only then answers each of
//! them. An event's 200 therefore always follows the commit that holds it (kill -9 loses no
//! acknowledged event), while a burst costs one commit per batch instead of one per event.
//!
//! SQLite has one writer, so there is one writer task. PostgreSQL runs transactions side by
//! side, and a single writer sending one statement at a time would leave it idle: there are
//! `PG_WRITERS`, and the events of one participant (or one room, for room events) always go to
//! the same writer, which applies them in arrival order — a `participant_left` is never applied
//! before its `participant_joined` received earlier by the same instance.

use tokio::sync::{mpsc, oneshot};

use std::hash::{Hash, Hasher};

use super::{Applied, Event, Kind, PresenceChange, Result, Store, StoreError};

/// Most events in one transaction: bounds the time a batch holds SQLite's write lock, and what
/// one failed commit sends back to LiveKit for a retry.
const MAX_BATCH: usize = 256;

/// Writer tasks on PostgreSQL (SQLite: one).
const PG_WRITERS: usize = 8;

/// Events waiting for the writer before `apply` waits for room (backpressure on the senders).
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Applied>>;

/// The handle handlers use; cheap to clone. The writer ends when the last handle is dropped.
#[derive(Clone)]
pub struct EventLog {
    queues: Vec<mpsc::Sender<(Event, Reply)>>,
}

impl EventLog {
    /// Starts the writers on the current tokio runtime.
    pub fn start(store: Store) -> EventLog {
        let writers = match store.kind() {
            Kind::Sqlite => 1,
            Kind::Postgres => PG_WRITERS,
        };
        let queues = (0..writers)
            .map(|_| {
                let (queue, pending) = mpsc::channel(QUEUE);
                tokio::spawn(write(store.clone(), pending));
                queue
            })
            .collect();
        EventLog { queues }
    }

    /// Stores `event` unless its id was stored before; returns once the transaction holding it
    /// has committed (or failed: then nothing of it was stored).
    pub async fn apply(&self, event: Event) -> Result<Applied> {
        let (reply, outcome) = oneshot::channel();
        let key = match &event.change {
            PresenceChange::Joined { participant, .. } => participant.identity.as_str(),
            PresenceChange::Left { identity, .. } => identity,
            other => other.room().unwrap_or(""),
        };
        let mut hash = std::hash::DefaultHasher::new();
        key.hash(&mut hash);
        let queue = &self.queues[hash.finish() as usize % self.queues.len()];
        queue
            .send((event, reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        outcome.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn write(store: Store, mut pending: mpsc::Receiver<(Event, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let events: Vec<&Event> = batch.iter().map(|(e, _)| e).collect();
        match store.apply_events(&events).await {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                    // A handler whose client went away no longer listens; its event is stored.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if batch.len() == 1 => {
                let (_, reply) = batch.pop().expect("one event");
                let _ = reply.send(Err(e));
            }
            Err(e) => {
                // Nothing of the batch was stored. One bad event must not fail the others (and
                // a PostgreSQL deadlock with another instance's batch goes away when retried
                // alone): each gets its own transaction and its own answer.
                tracing::warn!(
                    events = batch.len(),
                    "a batch of webhook events failed ({e}); storing them one by one"
                );
                for (event, reply) in batch.drain(..) {
                    let outcome = store
                        .apply_events(&[&event])
                        .await
                        .map(|mut o| o.pop().expect("one outcome per event"));
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}
