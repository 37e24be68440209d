//! Limits sign-in attempts per key (an email address, a client address) over a sliding minute,
//! in memory: enough to stop password guessing against one bedrud instance.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

pub struct RateLimiter {
    per_minute: usize,
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: per_minute as usize,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an attempt for `key`; `Err(wait)` when the key is over its limit.
    pub fn attempt(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 100_000 {
            // Bound the memory an attacker with many addresses can make us use.
            seen.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let q = seen.entry(key.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= self.per_minute {
            let oldest = *q.front().expect("non-empty when over the limit");
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
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
}
