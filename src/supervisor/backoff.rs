//! Restart delays for a crashing LiveKit: doubling from an initial delay up to a ceiling,
//! back to the initial delay once a run has lasted long enough to count as stable.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    stable_after: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, stable_after: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            stable_after,
            next: initial,
        }
    }

    /// The delay before the next start, given how long the run that just ended lasted.
    pub fn delay_after(&mut self, run_time: Duration) -> Duration {
        if run_time >= self.stable_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_up_to_the_ceiling() {
        let mut b = Backoff::new(S(1), S(10), S(60));
        let delays: Vec<u64> = (0..6).map(|_| b.delay_after(S(0)).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn a_stable_run_resets_the_delay() {
        let mut b = Backoff::new(S(1), S(10), S(60));
        b.delay_after(S(0));
        b.delay_after(S(0));
        assert_eq!(b.delay_after(S(5)), S(4));
        assert_eq!(b.delay_after(S(61)), S(1));
        assert_eq!(b.delay_after(S(0)), S(2));
    }
}
