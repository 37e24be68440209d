//! Group commit for webhook events: one writer task stores whatever events arrived while the
//! previous transaction was committing, all in one transaction, and only then answers each of
//! them. An event's 200 therefore always follows the commit that holds it (kill -9 loses no
//! acknowledged event), while a burst costs one commit per batch instead of one per event.
//!
//! One writer per store, on PostgreSQL too: a batch is a handful of statements whatever its size
//! (`event_batch`), so one writer with the whole burst in each batch does better than several
//! side by side, each with a small batch and its own commit (eight writers, measured in
//! docs/benchmarks.md). Events are applied in arrival order.

use tokio::sync::{mpsc, oneshot};

use super::{Applied, Event, Result, Store, StoreError};

/// Most events in one transaction: bounds the time a batch holds SQLite's write lock, and what
/// one failed commit sends back to LiveKit for a retry.
const MAX_BATCH: usize = 256;

/// Events waiting for the writer before `apply` waits for room (backpressure on the senders).
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Applied>>;

/// The handle handlers use; cheap to clone. The writer ends when the last handle is dropped.
#[derive(Clone)]
pub struct EventLog {
    queue: mpsc::Sender<(Event, Reply)>,
}

impl EventLog {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Store) -> EventLog {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, pending));
        EventLog { queue }
    }

    /// Stores `event` unless its id was stored before; returns once the transaction holding it
    /// has committed (or failed: then nothing of it was stored).
    pub async fn apply(&self, event: Event) -> Result<Applied> {
        let (reply, outcome) = oneshot::channel();
        self.queue
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
        tracing::debug!(events = events.len(), "applying a batch of webhook events");
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
