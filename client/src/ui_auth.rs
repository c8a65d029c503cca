//! Who may use the web UI. Without a password, only this machine (a page elsewhere that
//! rebinds a name to 127.0.0.1 still sends its own Host, and is refused). With one:
//!
//! - a password is compared as SHA-256 digests in constant time, so neither its content
//!   nor its length leaks through timing;
//! - an address that fails [`MAX_FAILURES`] times within [`FAILURE_WINDOW`] (logins and
//!   bearer tokens alike) is refused for [`BLOCKED_FOR`], even with the right password;
//! - a login gives a random session cookie that lasts [`SESSION_LIFETIME`]; at most
//!   [`MAX_SESSIONS`] live at once (the oldest goes first).

use sg_proto::secret::Secret;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest `--ui-password` accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
pub const BLOCKED_FOR: Duration = Duration::from_secs(60);
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
pub const MAX_SESSIONS: usize = 100;
/// Addresses whose failures are remembered; beyond it the oldest records are dropped.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Too many failures from this address: retry after this long.
    Throttled(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
    blocked_until: Option<Instant>,
}

/// What a request presents.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    pub bearer: Option<&'a str>,
    pub cookie: Option<&'a str>,
    /// The request's Host names this machine.
    pub loopback_host: bool,
}

pub struct UiAuth {
    password: Option<Secret>,
    sessions: Mutex<VecDeque<(String, Instant)>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl UiAuth {
    pub fn new(password: Option<Secret>) -> Self {
        UiAuth {
            password,
            sessions: Mutex::new(VecDeque::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Decides a request from `peer` at `now`.
    pub fn check(&self, creds: Credentials<'_>, peer: IpAddr, now: Instant) -> Verdict {
        let Some(password) = &self.password else {
            return if creds.loopback_host {
                Verdict::Allowed
            } else {
                Verdict::Denied
            };
        };
        if let Some(wait) = self.blocked(peer, now) {
            return Verdict::Throttled(wait);
        }
        if let Some(bearer) = creds.bearer {
            if password.matches(bearer) {
                return Verdict::Allowed;
            }
            return self.failed(peer, now);
        }
        match creds.cookie {
            Some(token) if self.session_valid(token, now) => Verdict::Allowed,
            _ => Verdict::Denied,
        }
    }

    /// A login attempt: a new session token, or why not.
    pub fn login(&self, candidate: &str, peer: IpAddr, now: Instant) -> Result<String, Verdict> {
        let Some(password) = &self.password else {
            return Ok(self.new_session(now));
        };
        if let Some(wait) = self.blocked(peer, now) {
            return Err(Verdict::Throttled(wait));
        }
        if !password.matches(candidate) {
            return Err(self.failed(peer, now));
        }
        Ok(self.new_session(now))
    }

    fn new_session(&self, now: Instant) -> String {
        let token = sg_proto::ids::random_hex(24);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|(_, at)| now.saturating_duration_since(*at) < SESSION_LIFETIME);
        while sessions.len() >= MAX_SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back((token.clone(), now));
        token
    }

    fn session_valid(&self, token: &str, now: Instant) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.iter().any(|(t, at)| {
            sg_proto::tls::ring_eq(t.as_bytes(), token.as_bytes())
                && now.saturating_duration_since(*at) < SESSION_LIFETIME
        })
    }

    fn blocked(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&peer)
            .and_then(|f| f.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Counts a failure; the address is blocked once it has too many.
    fn failed(&self, peer: IpAddr, now: Instant) -> Verdict {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&peer) {
            // Forget those that are no longer blocked first, then anyone.
            failures.retain(|_, f| f.blocked_until.is_some_and(|u| u > now));
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                failures.clear();
            }
        }
        let f = failures.entry(peer).or_insert(Failures {
            count: 0,
            since: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(f.since) > FAILURE_WINDOW {
            *f = Failures {
                count: 0,
                since: now,
                blocked_until: None,
            };
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.blocked_until = Some(now + BLOCKED_FOR);
            tracing::warn!(
                "web UI: {} failed attempts from {peer}; refusing it for {}s",
                f.count,
                BLOCKED_FOR.as_secs()
            );
            return Verdict::Throttled(BLOCKED_FOR);
        }
        Verdict::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn auth() -> UiAuth {
        UiAuth::new(Some(Secret::new("correct horse")))
    }

    fn bearer(t: &str) -> Credentials<'_> {
        Credentials {
            bearer: Some(t),
            ..Default::default()
        }
    }

    #[test]
    fn the_right_password_passes_wrong_ones_of_any_length_do_not() {
        let a = auth();
        let ip = Ipv4Addr::LOCALHOST.into();
        let now = Instant::now();
        assert_eq!(a.check(bearer("correct horse"), ip, now), Verdict::Allowed);
        for wrong in ["", "c", "correct hors", "correct horse!", "correct horsf"] {
            assert_ne!(
                a.check(bearer(wrong), Ipv4Addr::new(10, 0, 0, 9).into(), now),
                Verdict::Allowed
            );
        }
    }

    #[test]
    fn too_many_failures_block_the_address_even_with_the_right_password() {
        let a = auth();
        let ip = Ipv4Addr::new(192, 0, 2, 1).into();
        let now = Instant::now();
        for _ in 1..MAX_FAILURES {
            assert_eq!(a.check(bearer("guess"), ip, now), Verdict::Denied);
        }
        assert!(matches!(
            a.check(bearer("guess"), ip, now),
            Verdict::Throttled(_)
        ));
        assert!(matches!(
            a.login("correct horse", ip, now),
            Err(Verdict::Throttled(_))
        ));
        let other = Ipv4Addr::new(192, 0, 2, 2).into();
        assert_eq!(
            a.check(bearer("correct horse"), other, now),
            Verdict::Allowed,
            "others are not blocked"
        );
        let later = now + BLOCKED_FOR + Duration::from_secs(1);
        assert_eq!(
            a.check(bearer("correct horse"), ip, later),
            Verdict::Allowed,
            "the block ends"
        );
    }

    #[test]
    fn sessions_expire_and_are_capped() {
        let a = auth();
        let ip = Ipv4Addr::LOCALHOST.into();
        let now = Instant::now();
        let token = a.login("correct horse", ip, now).expect("logged in");
        fn cookie(t: &str) -> Credentials<'_> {
            Credentials {
                cookie: Some(t),
                ..Default::default()
            }
        }
        assert_eq!(a.check(cookie(&token), ip, now), Verdict::Allowed);
        assert_eq!(
            a.check(
                cookie(&token),
                ip,
                now + SESSION_LIFETIME + Duration::from_secs(1)
            ),
            Verdict::Denied,
            "expired"
        );
        for _ in 0..MAX_SESSIONS {
            a.login("correct horse", ip, now).expect("login");
        }
        assert_eq!(
            a.check(cookie(&token), ip, now),
            Verdict::Denied,
            "the oldest went first"
        );
    }
}
