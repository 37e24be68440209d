//! Limits attempts per key (an email address, a client address) over a sliding minute, in
//! memory: enough to stop password guessing and sign-up floods against one bedrud instance.
//!
//! Memory has a fixed ceiling whatever clients send: keys are validated and short before they
//! get here (emails ≤ 254 bytes, addresses), each key keeps at most `per_minute` instants, and at
//! most `MAX_KEYS` keys are tracked. When the table is full of keys still inside their minute,
//! new keys share one overflow bucket, so a flood of fresh keys is throttled as one client
//! instead of evicting (and so resetting) the counters of the keys already there.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// At ~400 bytes a key, a limiter stays under about 4 MB.
pub const MAX_KEYS: usize = 10_000;
/// The key that new keys share while the table is full.
const OVERFLOW: &str = "";

pub struct RateLimiter {
    /// An atomic so that a reload changes the limit in place, keeping the counts.
    per_minute: AtomicUsize,
    max_keys: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seen: HashMap<String, VecDeque<Instant>>,
    /// Purging walks the whole table: at most once a second, not on every attempt of a flood.
    last_purge: Option<Instant>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter::with_capacity(per_minute, MAX_KEYS)
    }

    fn with_capacity(per_minute: u32, max_keys: usize) -> RateLimiter {
        RateLimiter {
            per_minute: AtomicUsize::new(per_minute as usize),
            max_keys,
            state: Mutex::default(),
        }
    }

    /// A reload's new limit; attempts already counted stay counted.
    pub fn set_per_minute(&self, per_minute: u32) {
        self.per_minute
            .store(per_minute as usize, Ordering::Relaxed);
    }

    /// Records an attempt for `key`; `Err(wait)` when the key is over its limit.
    pub fn attempt(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = key;
        if !state.seen.contains_key(key) && state.seen.len() >= self.max_keys {
            state.purge(now);
            if state.seen.len() >= self.max_keys {
                key = OVERFLOW;
            }
        }
        let q = match state.seen.get_mut(key) {
            Some(q) => q,
            None => state.seen.entry(key.to_string()).or_default(),
        };
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= self.per_minute.load(Ordering::Relaxed) {
            let oldest = *q.front().expect("non-empty when over the limit");
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }

    /// How many keys are tracked (for tests and benchmarks).
    pub fn tracked_keys(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .len()
    }
}

impl State {
    fn purge(&mut self, now: Instant) {
        if self
            .last_purge
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_purge = Some(now);
        self.seen
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_refuses_until_the_window_passes() {
        let l = RateLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.attempt("a@x.test", t0).is_ok());
        }
        let wait = l
            .attempt("a@x.test", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.attempt("b@x.test", t0).is_ok(), "keys are independent");
        assert!(l.attempt("a@x.test", t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn a_flood_of_new_keys_stays_within_the_ceiling_and_cannot_reset_a_victim() {
        let l = RateLimiter::with_capacity(2, 100);
        let t0 = Instant::now();
        l.attempt("victim@x.test", t0).unwrap();
        l.attempt("victim@x.test", t0).unwrap();
        for i in 0..10_000 {
            let _ = l.attempt(&format!("flood{i}@x.test"), t0);
        }
        assert!(l.tracked_keys() <= 101, "{} keys", l.tracked_keys());
        assert!(
            l.attempt("victim@x.test", t0).is_err(),
            "the victim's counter survived the flood"
        );
        // The flood shares the overflow bucket: it is throttled as one client.
        assert!(l.attempt("one-more@x.test", t0).is_err());
        // A minute later the old keys expire and new keys get their own counters again.
        let later = t0 + WINDOW + Duration::from_secs(2);
        assert!(l.attempt("fresh@x.test", later).is_ok());
        assert!(l.tracked_keys() <= 101);
    }
}
