//! The worker arbiters: one single-threaded event loop per core. Sessions and gateways are
//! placed round-robin across them; each session's connections run on its arbiter, so the
//! node uses every core and a connection's bytes never cross threads inside the node. A
//! gateway's cloud ports accept on the gateway's arbiter, so admitting a connection involves
//! no other thread unless the chosen session lives elsewhere.

use actix::{Arbiter, ArbiterHandle};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One worker arbiter: its position (to tell "same thread" cheaply) and its handle.
#[derive(Clone)]
pub struct Worker {
    pub index: usize,
    pub handle: ArbiterHandle,
}

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

    /// The arbiter for the next session or gateway.
    pub fn pick(&self) -> Worker {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        Worker {
            index,
            handle: self.arbiters[index].handle(),
        }
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
