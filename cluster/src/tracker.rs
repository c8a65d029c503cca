//! Counts live things — carried connections, client sessions — so that a drain can wait
//! until none is left without polling: each one holds a [`Tracked`] guard, and the last
//! guard to go wakes whoever waits in [`Tracker::idle`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Tracker {
    live: AtomicUsize,
    idle: Notify,
}

/// One live thing; dropping it counts it out.
#[derive(Debug)]
pub struct Tracked(Arc<Tracker>);

impl Tracker {
    pub fn enter(self: &Arc<Self>) -> Tracked {
        self.live.fetch_add(1, Ordering::AcqRel);
        Tracked(self.clone())
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Resolves once nothing is live.
    pub async fn idle(&self) {
        loop {
            // Created before the check, so a wake-up between the two is not lost.
            let woken = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            woken.await;
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_resolves_when_the_last_guard_goes() {
        let t = Arc::new(Tracker::default());
        t.idle().await;
        let a = t.enter();
        let b = t.enter();
        assert_eq!(t.live(), 2);
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.idle().await })
        };
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one is still live");
        drop(b);
        waiter.await.unwrap();
        assert_eq!(t.live(), 0);
    }
}
