//! Reconnect delays: exponential from [`BASE`] to [`CAP`], with full jitter so a fleet of
//! clients does not reconnect to a restarted node in lockstep.

use rand::Rng;
use std::time::Duration;

pub const BASE: Duration = Duration::from_millis(500);
/// No wait is longer than this, so a client is back within a minute of its node (F15).
pub const CAP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Backoff {
    ceiling: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { ceiling: BASE }
    }
}

impl Backoff {
    /// The next wait: uniform in [ceiling/2, ceiling], then the ceiling doubles.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(CAP);
        let lo = ceiling.as_millis() as u64 / 2;
        let hi = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(lo..=hi))
    }

    pub fn reset(&mut self) {
        self.ceiling = BASE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_stays_under_the_cap() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..12).map(|_| b.next_wait()).collect();
        assert!(waits[0] <= BASE && waits[0] >= BASE / 2);
        assert!(waits[3] >= BASE * 4, "doubles: {waits:?}");
        assert!(waits.iter().all(|w| *w <= CAP));
        assert!(waits[11] >= CAP / 2, "reaches the cap");
        b.reset();
        assert!(b.next_wait() <= BASE);
    }
}
