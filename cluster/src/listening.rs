//! Whether each destination's cloud port is actually listening on this node.
//!
//! A destination is created (and answered `201`) by the state; its port is bound a moment
//! later by its gateway's actor, and binding can fail (another process holds the port).
//! The book lets the API say so — `listening: false` with the reason — instead of
//! reporting a port that nothing listens on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One destination's cloud port on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Listening,
    /// The last bind failed (it is retried with backoff).
    Failed(String),
}

#[derive(Debug, Default)]
pub struct ListenBook {
    ports: Mutex<HashMap<String, Listen>>,
}

impl ListenBook {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Listen>) -> R) -> R {
        let mut map = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    pub fn listening(&self, destination: &str) {
        self.with(|m| m.insert(destination.to_string(), Listen::Listening));
    }

    pub fn failed(&self, destination: &str, why: String) {
        self.with(|m| m.insert(destination.to_string(), Listen::Failed(why)));
    }

    /// The port is closed on purpose (inactive, deleted, draining).
    pub fn closed(&self, destination: &str) {
        self.with(|m| m.remove(destination));
    }

    pub fn get(&self, destination: &str) -> Option<Listen> {
        self.with(|m| m.get(destination).cloned())
    }

    /// Waits (bounded) until the first bind of a new port has been tried.
    pub async fn settled(&self, destination: &str, limit: Duration) -> Option<Listen> {
        let end = Instant::now() + limit;
        loop {
            if let Some(state) = self.get(destination) {
                return Some(state);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_keeps_the_latest_outcome() {
        let book = ListenBook::default();
        assert_eq!(book.get("ds_1"), None);
        book.failed("ds_1", "address in use".into());
        assert_eq!(
            book.get("ds_1"),
            Some(Listen::Failed("address in use".into()))
        );
        book.listening("ds_1");
        assert_eq!(book.get("ds_1"), Some(Listen::Listening));
        book.closed("ds_1");
        assert_eq!(book.get("ds_1"), None);
    }
}
