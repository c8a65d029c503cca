//! A gateway's destinations' health as this client judges it (F31): `unhealthy_after`
//! failures in a row make a destination unhealthy, `healthy_after` successes healthy again,
//! each change is logged and bumps a watch so every session resends the whole view. The
//! probes that feed it live in [`crate::health`]; carried connections feed it too.

use sg_proto::frame::DestinationSpec;
use sg_proto::health::{DestinationHealth, HealthCheck, HealthReport};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One destination's state, with the counts that move it.
#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    healthy: bool,
    failures: u32,
    successes: u32,
    reason: String,
    since: u64,
}

/// One destination as the console and the web UI show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthView {
    pub destination_id: String,
    pub name: String,
    pub healthy: bool,
    pub reason: String,
    /// Seconds since the epoch of the last change.
    pub since: u64,
}

/// A gateway's destinations' health as this client sees it.
pub struct HealthBook {
    gateway: String,
    states: Mutex<HashMap<String, Tracked>>,
    /// Whether any destination has a failure counted or is unhealthy: while not, a
    /// connection that reaches its service costs no lock.
    trouble: AtomicBool,
    /// Bumped on every change of state; sessions send the view when it moves.
    changes: watch::Sender<u64>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn check_of(dest: &DestinationSpec) -> HealthCheck {
    dest.health_check.clone().unwrap_or_default()
}

impl HealthBook {
    pub fn new(gateway: &str) -> Self {
        HealthBook {
            gateway: gateway.to_string(),
            states: Mutex::new(HashMap::new()),
            trouble: AtomicBool::new(false),
            changes: watch::Sender::new(0),
        }
    }

    /// Wakes whenever a destination's state changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A carried connection reached the service.
    pub fn connected(&self, dest: &DestinationSpec) {
        if self.trouble.load(Ordering::Relaxed) {
            self.observe(dest, Ok(()));
        }
    }

    /// A carried connection could not reach the service.
    pub fn connect_failed(&self, dest: &DestinationSpec, why: &str) {
        self.observe(dest, Err(why.to_string()));
    }

    /// Counts one probe's or one connection's outcome.
    pub fn observe(&self, dest: &DestinationSpec, outcome: Result<(), String>) {
        let check = check_of(dest);
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let t = states.entry(dest.id.clone()).or_insert_with(|| Tracked {
            name: dest.name.clone(),
            healthy: true,
            failures: 0,
            successes: 0,
            reason: String::new(),
            since: now_secs(),
        });
        t.name.clone_from(&dest.name);
        let changed = match outcome {
            Ok(()) => {
                t.failures = 0;
                t.successes = t.successes.saturating_add(1);
                let back = !t.healthy && t.successes >= check.healthy_after;
                if back {
                    t.healthy = true;
                    t.reason.clear();
                    tracing::info!(gateway = %self.gateway, "destination {} ({}) is reachable again: new connections come back to this client", dest.id, dest.name);
                }
                back
            }
            Err(why) => {
                t.successes = 0;
                t.failures = t.failures.saturating_add(1);
                let down = t.healthy && t.failures >= check.unhealthy_after;
                if down {
                    t.healthy = false;
                    tracing::warn!(gateway = %self.gateway, "destination {} ({}) is unhealthy from this client: {why}; the node sends its new connections to other clients", dest.id, dest.name);
                }
                if !t.healthy {
                    t.reason = why;
                }
                down
            }
        };
        if changed {
            t.since = now_secs();
        }
        let trouble = states.values().any(|t| !t.healthy || t.failures > 0);
        self.trouble.store(trouble, Ordering::Relaxed);
        drop(states);
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Whether the destination counts as reachable now (unknown ones do).
    pub fn is_healthy(&self, destination: &str) -> bool {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(destination)
            .is_none_or(|t| t.healthy)
    }

    /// Forgets destinations the gateway no longer has.
    pub fn retain(&self, ids: &[&str]) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let before = states.values().filter(|t| !t.healthy).count();
        states.retain(|id, _| ids.contains(&id.as_str()));
        let after = states.values().filter(|t| !t.healthy).count();
        self.trouble.store(
            states.values().any(|t| !t.healthy || t.failures > 0),
            Ordering::Relaxed,
        );
        drop(states);
        if before != after {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// The whole view, for the node.
    pub fn report(&self) -> HealthReport {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut destinations: Vec<DestinationHealth> = states
            .iter()
            .map(|(id, t)| DestinationHealth {
                destination_id: id.clone(),
                healthy: t.healthy,
                reason: t.reason.clone(),
                since: t.since,
            })
            .collect();
        destinations.sort_by(|a, b| a.destination_id.cmp(&b.destination_id));
        HealthReport { destinations }
    }

    /// The view for the console and the UI, by destination id.
    pub fn views(&self) -> Vec<HealthView> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<HealthView> = states
            .iter()
            .map(|(id, t)| HealthView {
                destination_id: id.clone(),
                name: t.name.clone(),
                healthy: t.healthy,
                reason: t.reason.clone(),
                since: t.since,
            })
            .collect();
        v.sort_by(|a, b| a.destination_id.cmp(&b.destination_id));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sg_proto::frame::DestinationKind;

    fn dest(check: HealthCheck) -> DestinationSpec {
        DestinationSpec {
            id: "ds_1".into(),
            name: "db".into(),
            resource_host: "127.0.0.1".into(),
            resource_port: 1,
            protocol: Default::default(),
            resource_tls: None,
            proxy_protocol: None,
            host_rewrite: false,
            kind: DestinationKind::OnPremises,
            client_port: None,
            health_check: Some(check),
        }
    }

    #[test]
    fn thresholds_move_the_state_and_each_change_is_told() {
        let book = HealthBook::new("gw_1");
        let changes = book.subscribe();
        let d = dest(HealthCheck {
            unhealthy_after: 2,
            healthy_after: 3,
            ..HealthCheck::default()
        });
        book.observe(&d, Err("refused".into()));
        assert!(book.report().destinations[0].healthy, "one failure of two");
        book.observe(&d, Err("refused again".into()));
        let r = book.report();
        assert!(!r.destinations[0].healthy);
        assert_eq!(r.destinations[0].reason, "refused again");
        assert_eq!(*changes.borrow(), 1);
        book.connected(&d);
        book.connected(&d);
        assert!(
            !book.report().destinations[0].healthy,
            "two successes of three"
        );
        book.observe(&d, Err("flap".into()));
        book.connected(&d);
        book.connected(&d);
        book.connected(&d);
        assert!(book.report().destinations[0].healthy);
        assert_eq!(*changes.borrow(), 2);
        // Healthy and clean again: successes take the lock-free path.
        assert!(!book.trouble.load(Ordering::Relaxed));
        book.retain(&[]);
        assert!(book.report().destinations.is_empty());
    }
}
