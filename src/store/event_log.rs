//! Group commit for webhook events: one writer task stores whatever events arrived while the
//! previous transaction was committing, all in one transaction, and only then answers each of
//! them. An event's 200 therefore always follows the commit that holds it (kill -9 loses no
//! acknowledged event), while a burst costs one commit per batch instead of one per event.
//!
//! One writer per store, on PostgreSQL too: a batch is a handful of statements whatever its size
//! (`event_batch`), so one writer with the whole burst in each batch does better than several
//! side by side, each with a small batch and its own commit (eight writers, measured in
//! docs/benchmarks.md). Events are applied in arrival order.
//!
//! On SQLite the writer has a thread of its own and runs each batch on it (`sqlite_writer`): a
//! batch then costs waking that thread and waking the handlers it answers, with no hand-off in
//! between. On PostgreSQL it is a task, its statements network round trips anyway.

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
    /// Starts the writer: on a thread of its own for SQLite, else on the current tokio runtime.
    pub fn start(store: Store) -> EventLog {
        let (queue, pending) = mpsc::channel(QUEUE);
        if store.has_sqlite_writer() {
            // A runtime of its own only to await the queue and the mirror's lock; the batch's
            // statements run synchronously on this thread.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the webhook event writer's runtime");
            std::thread::Builder::new()
                .name("bedrud-events".into())
                .spawn(move || runtime.block_on(write(store, pending, true)))
                .expect("the webhook event writer's thread");
        } else {
            tokio::spawn(write(store, pending, false));
        }
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

/// `here`: on the writer's own thread, where SQLite's work runs in place.
async fn apply(store: &Store, events: &[&Event], here: bool) -> Result<Vec<Applied>> {
    match here {
        true => store.apply_events_here(events).await,
        false => store.apply_events(events).await,
    }
}

async fn write(store: Store, mut pending: mpsc::Receiver<(Event, Reply)>, here: bool) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let events: Vec<&Event> = batch.iter().map(|(e, _)| e).collect();
        tracing::debug!(events = events.len(), "applying a batch of webhook events");
        match apply(&store, &events, here).await {
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
                    let outcome = apply(&store, &[&event], here)
                        .await
                        .map(|mut o| o.pop().expect("one outcome per event"));
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}
