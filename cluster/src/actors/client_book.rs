//! What a Gateway remembers of its clients beyond their live sessions: each client's view
//! of the destinations' health (F31), which steers new connections to the clients that can
//! reach the service, and the last clients that went away, with when and why (F30).
//!
//! Health is kept per client process, not per session: every session of a client reports
//! the same view, and a change is one event however many sessions carried it.

use crate::time::{now_secs, rfc3339};
use serde::{Deserialize, Serialize};
use sg_proto::health::{DestinationHealth, HealthReport, MAX_HEALTH_REASON};
use std::collections::{HashMap, VecDeque};

/// How many disconnected clients the list keeps.
pub const RECENT_CLIENTS: usize = 10;

/// A client process that is no longer connected to this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoneClient {
    pub client_id: String,
    pub version: String,
    pub hostname: String,
    pub address: String,
    pub connected_at: String,
    pub disconnected_at: String,
    pub reason: String,
}

/// A destination whose state, as one client sees it, changed.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub destination_id: String,
    pub healthy: bool,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ClientBook {
    /// Client id → the destinations it reported, by id.
    health: HashMap<String, HashMap<String, DestinationHealth>>,
    recent: VecDeque<GoneClient>,
}

impl ClientBook {
    /// Takes a client's whole report; answers what changed (known destinations only: a
    /// client may not file states under ids the gateway does not have).
    pub fn report(
        &mut self,
        client_id: &str,
        report: HealthReport,
        is_destination: impl Fn(&str) -> bool,
    ) -> Vec<HealthChange> {
        let before = self.health.remove(client_id).unwrap_or_default();
        let mut now: HashMap<String, DestinationHealth> = HashMap::new();
        for mut d in report.destinations {
            if !is_destination(&d.destination_id) {
                continue;
            }
            if d.reason.len() > MAX_HEALTH_REASON {
                let cut = (0..=MAX_HEALTH_REASON)
                    .rev()
                    .find(|i| d.reason.is_char_boundary(*i))
                    .unwrap_or(0);
                d.reason.truncate(cut);
            }
            now.insert(d.destination_id.clone(), d);
        }
        let mut changes = Vec::new();
        for (id, d) in &now {
            let was_healthy = before.get(id).is_none_or(|b| b.healthy);
            if was_healthy != d.healthy {
                changes.push(HealthChange {
                    destination_id: id.clone(),
                    healthy: d.healthy,
                    reason: d.reason.clone(),
                });
            }
        }
        for (id, b) in &before {
            // No longer listed: healthy again by definition.
            if !b.healthy && !now.contains_key(id) {
                changes.push(HealthChange {
                    destination_id: id.clone(),
                    healthy: true,
                    reason: String::new(),
                });
            }
        }
        changes.sort_by(|a, b| a.destination_id.cmp(&b.destination_id));
        self.health.insert(client_id.to_string(), now);
        changes
    }

    /// Whether `client_id` can reach `destination` (a client that reported nothing can).
    pub fn sees_healthy(&self, client_id: &str, destination: &str) -> bool {
        self.health
            .get(client_id)
            .and_then(|m| m.get(destination))
            .is_none_or(|d| d.healthy)
    }

    /// What a client reported, sorted by destination.
    pub fn view_of(&self, client_id: &str) -> Vec<DestinationHealth> {
        let mut v: Vec<DestinationHealth> = self
            .health
            .get(client_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.destination_id.cmp(&b.destination_id));
        v
    }

    /// Every client's reported states, for `/metrics`.
    pub fn all(&self) -> impl Iterator<Item = (&str, &DestinationHealth)> {
        self.health
            .iter()
            .flat_map(|(c, m)| m.values().map(move |d| (c.as_str(), d)))
    }

    /// A client's last session went away: forget its health, remember it as gone.
    pub fn gone(&mut self, mut client: GoneClient) {
        self.health.remove(&client.client_id);
        self.recent.retain(|c| c.client_id != client.client_id);
        if client.disconnected_at.is_empty() {
            client.disconnected_at = rfc3339(now_secs());
        }
        self.recent.push_front(client);
        self.recent.truncate(RECENT_CLIENTS);
    }

    /// The clients gone lately, newest first.
    pub fn recent(&self) -> impl Iterator<Item = &GoneClient> {
        self.recent.iter()
    }

    /// A destination was removed: no client's view of it matters any more.
    pub fn forget_destination(&mut self, destination: &str) {
        for m in self.health.values_mut() {
            m.remove(destination);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, healthy: bool) -> DestinationHealth {
        DestinationHealth {
            destination_id: id.into(),
            healthy,
            reason: if healthy { "" } else { "refused" }.into(),
            since: 1,
        }
    }

    fn report(states: Vec<DestinationHealth>) -> HealthReport {
        HealthReport {
            destinations: states,
        }
    }

    #[test]
    fn changes_are_told_once_and_unknown_ids_are_ignored() {
        let mut b = ClientBook::default();
        let known = |id: &str| id != "ds_x";
        let c = b.report(
            "cl_1",
            report(vec![state("ds_a", false), state("ds_x", false)]),
            known,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].destination_id.as_str(), c[0].healthy),
            ("ds_a", false)
        );
        assert!(!b.sees_healthy("cl_1", "ds_a"));
        assert!(
            b.sees_healthy("cl_1", "ds_x"),
            "an unknown id is not stored"
        );
        assert!(
            b.sees_healthy("cl_2", "ds_a"),
            "another client is not judged"
        );
        // The same report again changes nothing.
        assert!(b
            .report("cl_1", report(vec![state("ds_a", false)]), known)
            .is_empty());
        // Left out of the next report: healthy again.
        let c = b.report("cl_1", report(vec![]), known);
        assert_eq!((c[0].destination_id.as_str(), c[0].healthy), ("ds_a", true));
        assert!(b.sees_healthy("cl_1", "ds_a"));
    }

    #[test]
    fn gone_clients_are_kept_newest_first_and_bounded() {
        let mut b = ClientBook::default();
        b.report("cl_0", report(vec![state("ds_a", false)]), |_| true);
        for i in 0..15 {
            b.gone(GoneClient {
                client_id: format!("cl_{i}"),
                version: String::new(),
                hostname: String::new(),
                address: String::new(),
                connected_at: String::new(),
                disconnected_at: String::new(),
                reason: "r".into(),
            });
        }
        let ids: Vec<&str> = b.recent().map(|c| c.client_id.as_str()).collect();
        assert_eq!(ids.len(), RECENT_CLIENTS);
        assert_eq!(ids[0], "cl_14");
        assert!(
            b.sees_healthy("cl_0", "ds_a"),
            "a gone client's view is dropped"
        );
    }
}
