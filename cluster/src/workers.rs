//! The worker arbiters: one single-threaded event loop per core. Sessions are placed
//! round-robin across them, and each session's connections run on its arbiter, so the node
//! uses every core and a connection's bytes never cross threads inside the node.

use actix::{Arbiter, ArbiterHandle};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Workers {
    arbiters: Vec<Arbiter>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `n` arbiters (at least one).
    pub fn start(n: usize) -> Self {
        Workers {
            arbiters: (0..n.max(1)).map(|_| Arbiter::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The arbiter for the next session.
    pub fn pick(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        self.arbiters[i].handle()
    }

    pub fn len(&self) -> usize {
        self.arbiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arbiters.is_empty()
    }

    pub fn stop(&self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}
