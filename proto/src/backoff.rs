//! Retry delays for both binaries: exponential from a base to a cap, with jitter, so a fleet
//! of clients (or of nodes retrying etcd) does not come back in lockstep after an outage.

use rand::Rng;
use std::time::Duration;

/// The next wait is uniform in `[ceiling/2, ceiling]`; the ceiling doubles up to the cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    ceiling: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            ceiling: base,
        }
    }

    /// The next wait, and the ceiling doubles.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.cap);
        let hi = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(hi / 2..=hi))
    }

    /// After a success: the next wait is short again.
    pub fn reset(&mut self) {
        self.ceiling = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_stays_under_the_cap() {
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(60));
        let mut b = Backoff::new(base, cap);
        let waits: Vec<_> = (0..12).map(|_| b.next_wait()).collect();
        assert!(waits[0] <= base && waits[0] >= base / 2);
        assert!(waits[3] >= base * 4, "doubles: {waits:?}");
        assert!(waits.iter().all(|w| *w <= cap));
        assert!(waits[11] >= cap / 2, "reaches the cap");
        b.reset();
        assert!(b.next_wait() <= base);
    }
}
