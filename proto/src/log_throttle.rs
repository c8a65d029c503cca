//! Bounds the log lines that strangers can cause.
//!
//! Anyone who can reach a port can make a process log: garbage on the tunnel port, an
//! unknown gateway id, connections an ACL refuses. One line per attempt would let a flood
//! fill the disk and bury what matters, so such lines pass through a throttle: per
//! category, at most [`PER_WINDOW`] lines in each [`WINDOW`], then silence, then one line
//! saying how many were left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one category logged per window.
pub const PER_WINDOW: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(10);

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines of its category were left out since the last one logged.
    Log { suppressed: u64 },
    /// Leave it out.
    Quiet,
}

struct Window {
    category: &'static str,
    start: Instant,
    passed: u32,
    suppressed: u64,
}

/// A throttle over a few fixed categories (a `static` is the usual home).
pub struct LogThrottle {
    windows: Mutex<Vec<Window>>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl LogThrottle {
    pub const fn new() -> Self {
        LogThrottle {
            windows: Mutex::new(Vec::new()),
        }
    }

    pub fn admit(&self, category: &'static str) -> Verdict {
        self.admit_at(category, Instant::now())
    }

    fn admit_at(&self, category: &'static str, now: Instant) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let i = match windows.iter().position(|w| w.category == category) {
            Some(i) => i,
            None => {
                windows.push(Window {
                    category,
                    start: now,
                    passed: 0,
                    suppressed: 0,
                });
                windows.len() - 1
            }
        };
        let w = &mut windows[i];
        if now.duration_since(w.start) >= WINDOW {
            w.start = now;
            w.passed = 0;
        }
        if w.passed >= PER_WINDOW {
            w.suppressed += 1;
            return Verdict::Quiet;
        }
        w.passed += 1;
        Verdict::Log {
            suppressed: std::mem::take(&mut w.suppressed),
        }
    }
}

/// Logs a line at `warn` through a throttle: `throttled_warn!(THROTTLE, "category", ...)`,
/// the rest as for `tracing::warn!`.
/// When lines were left out before it, the line says how many.
#[macro_export]
macro_rules! throttled_warn {
    ($throttle:expr, $category:expr, $($arg:tt)+) => {
        if let $crate::log_throttle::Verdict::Log { suppressed } = $throttle.admit($category) {
            if suppressed > 0 {
                $crate::__tracing::warn!(
                    "{suppressed} similar line(s) ({}) left out in the last {}s",
                    $category,
                    $crate::log_throttle::WINDOW.as_secs()
                );
            }
            $crate::__tracing::warn!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_window_and_the_next_line_counts_what_was_left_out() {
        let t = LogThrottle::new();
        let start = Instant::now();
        let logged = (0..1000)
            .filter(|_| matches!(t.admit_at("garbage", start), Verdict::Log { .. }))
            .count();
        assert_eq!(logged, PER_WINDOW as usize);
        assert_eq!(
            t.admit_at("other", start),
            Verdict::Log { suppressed: 0 },
            "categories are apart"
        );
        assert_eq!(
            t.admit_at("garbage", start + WINDOW),
            Verdict::Log { suppressed: 980 }
        );
    }
}
