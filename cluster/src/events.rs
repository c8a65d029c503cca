//! Throttling of logged and recorded events, so a flood of refusals (a scanner on a cloud
//! port, a client retrying a bad token) costs a log line and an event per second per kind,
//! not one per attempt. Suppressed repeats are counted into the next line that passes.

use crate::records::EventKind;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events of one kind per gateway let through per window.
const PER_WINDOW: u32 = 5;
const WINDOW: Duration = Duration::from_secs(1);
/// Keys kept before old ones are forgotten.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub struct EventThrottle {
    windows: Mutex<HashMap<(String, EventKind), Window>>,
}

struct Window {
    start: Instant,
    passed: u32,
    suppressed: u64,
}

impl EventThrottle {
    /// The message to log and record, or `None` when this one is suppressed.
    pub fn admit(&self, gateway_id: &str, kind: EventKind, message: String) -> Option<String> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > MAX_KEYS {
            windows.retain(|_, w| w.start.elapsed() < WINDOW);
        }
        let now = Instant::now();
        let w = windows
            .entry((gateway_id.to_string(), kind))
            .or_insert(Window {
                start: now,
                passed: 0,
                suppressed: 0,
            });
        if now.duration_since(w.start) >= WINDOW {
            w.start = now;
            w.passed = 0;
        }
        if w.passed >= PER_WINDOW {
            w.suppressed += 1;
            return None;
        }
        w.passed += 1;
        if w.suppressed > 0 {
            let n = std::mem::take(&mut w.suppressed);
            Some(format!("{message} ({n} similar events suppressed)"))
        } else {
            Some(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_a_few_lines_per_window() {
        let t = EventThrottle::default();
        let passed = (0..100)
            .filter(|i| {
                t.admit("gw", EventKind::BadToken, format!("n{i}"))
                    .is_some()
            })
            .count();
        assert_eq!(passed, PER_WINDOW as usize);
        assert!(t
            .admit("gw", EventKind::IpRefused, "other kind".into())
            .is_some());
        assert!(t
            .admit("gw2", EventKind::BadToken, "other gateway".into())
            .is_some());
    }
}
