//! Health checks of private services (F31): how a destination is checked, as the admin
//! configures it, the node stores it and the client runs it; and what a client reports of
//! the destinations it checks.
//!
//! A client that cannot reach a destination's service says so, and the node sends that
//! destination's new connections to the clients that can. The thresholds count both the
//! client's own probes and the real connections it carries (passive checking), so a dead
//! path is left at its first failed connection when `unhealthy_after` is 1.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a client checks one destination's private service. On the wire unknown fields are
/// ignored and an unknown kind reads as [`HealthKind::Unknown`], so a newer node's checks
/// never break an older client's configuration; the API is strict (see the node's input
/// type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(default)]
    pub kind: HealthKind,
    /// HTTP checks: the path requested (`GET`); any 2xx or 3xx answer is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default = "default_interval")]
    pub interval_secs: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// Failures in a row (probes or carried connections) that make it unhealthy.
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after: u32,
    /// Successes in a row that make it healthy again.
    #[serde(default = "default_healthy_after")]
    pub healthy_after: u32,
}

/// What a probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    /// Connect and close (the default for every destination).
    #[default]
    Tcp,
    /// Connect (over TLS when the destination's resource side is), send `GET path`, expect
    /// a 2xx or 3xx status.
    Http,
    /// No probes while healthy: carried connections count (passive checking); once
    /// unhealthy, a TCP connect every interval lets it come back.
    Off,
    /// A kind this build does not know (from a newer node): checked as `Tcp`.
    #[serde(other)]
    Unknown,
}

impl HealthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthKind::Tcp => "tcp",
            HealthKind::Http => "http",
            HealthKind::Off => "off",
            HealthKind::Unknown => "unknown",
        }
    }
}

fn default_interval() -> u32 {
    10
}
fn default_timeout() -> u32 {
    3
}
fn default_unhealthy_after() -> u32 {
    2
}
fn default_healthy_after() -> u32 {
    2
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthKind::Tcp,
            path: None,
            interval_secs: default_interval(),
            timeout_secs: default_timeout(),
            unhealthy_after: default_unhealthy_after(),
            healthy_after: default_healthy_after(),
        }
    }
}

/// Longest HTTP check path.
pub const MAX_HEALTH_PATH: usize = 256;

/// Why a health check setting is not acceptable: the field and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("health_check.{field} {reason}")]
pub struct HealthCheckError {
    pub field: &'static str,
    pub reason: String,
}

impl HealthCheck {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval_secs.max(1)))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_secs.max(1)))
    }

    /// The path an HTTP check requests.
    pub fn http_path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }

    /// Checks the ranges and that the fields fit together.
    pub fn validate(&self) -> Result<(), HealthCheckError> {
        let bad = |field, reason: &str| {
            Err(HealthCheckError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.kind == HealthKind::Unknown {
            return bad("kind", "must be tcp, http or off");
        }
        if !(1..=3600).contains(&self.interval_secs) {
            return bad("interval_secs", "must be 1-3600");
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return bad("timeout_secs", "must be 1-60");
        }
        if self.timeout_secs > self.interval_secs {
            return bad("timeout_secs", "must not exceed interval_secs");
        }
        if !(1..=10).contains(&self.unhealthy_after) {
            return bad("unhealthy_after", "must be 1-10");
        }
        if !(1..=10).contains(&self.healthy_after) {
            return bad("healthy_after", "must be 1-10");
        }
        match (&self.path, self.kind) {
            (Some(_), HealthKind::Tcp | HealthKind::Off | HealthKind::Unknown) => {
                bad("path", "applies only to \"kind\": \"http\"")
            }
            (Some(p), HealthKind::Http) => {
                if !p.starts_with('/') || p.len() > MAX_HEALTH_PATH {
                    return bad("path", "must start with / and be at most 256 characters");
                }
                // It goes into a request line as it is: visible ASCII only.
                if !p.bytes().all(|b| b.is_ascii_graphic()) {
                    return bad("path", "must be visible ASCII (percent-encode the rest)");
                }
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }
}

/// Client → node (protocol 1.10 and later): this client's view of its gateway's
/// destinations, whole, sent when a session starts and whenever a state changes. A
/// destination it does not list counts as healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub destinations: Vec<DestinationHealth>,
}

/// One destination as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationHealth {
    pub destination_id: String,
    pub healthy: bool,
    /// Why it is unhealthy (the last failure), or empty.
    #[serde(default)]
    pub reason: String,
    /// Seconds since the epoch of the last change of state.
    #[serde(default)]
    pub since: u64,
}

/// Most destinations a report may list (a gateway has fewer; more is refused as malformed).
pub const MAX_REPORTED_DESTINATIONS: usize = 10_000;
/// Longest reason kept from a report.
pub const MAX_HEALTH_REASON: usize = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c: HealthCheck = serde_json::from_str(r#"{"kind":"http","path":"/healthz"}"#).unwrap();
        assert_eq!(c.kind, HealthKind::Http);
        assert_eq!((c.interval_secs, c.timeout_secs), (10, 3));
        assert_eq!((c.unhealthy_after, c.healthy_after), (2, 2));
        assert!(c.validate().is_ok());
        let c: HealthCheck = serde_json::from_str("{}").unwrap();
        assert_eq!(c, HealthCheck::default());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let check = |json: &str| {
            serde_json::from_str::<HealthCheck>(json)
                .unwrap()
                .validate()
                .unwrap_err()
                .field
        };
        assert_eq!(check(r#"{"interval_secs":0}"#), "interval_secs");
        assert_eq!(
            check(r#"{"interval_secs":5,"timeout_secs":6}"#),
            "timeout_secs"
        );
        assert_eq!(check(r#"{"unhealthy_after":0}"#), "unhealthy_after");
        assert_eq!(check(r#"{"healthy_after":11}"#), "healthy_after");
        assert_eq!(check(r#"{"path":"/x"}"#), "path");
        assert_eq!(check(r#"{"kind":"http","path":"healthz"}"#), "path");
        assert_eq!(check(r#"{"kind":"http","path":"/a b"}"#), "path");
        assert_eq!(check(r#"{"kind":"http","path":"/\r\nX: y"}"#), "path");
        assert_eq!(check(r#"{"kind":"udp"}"#), "kind");
        // What a newer node may send is read, not refused.
        let newer: HealthCheck =
            serde_json::from_str(r#"{"kind":"grpc","service":"x","interval_secs":5}"#).unwrap();
        assert_eq!((newer.kind, newer.interval_secs), (HealthKind::Unknown, 5));
    }
}
