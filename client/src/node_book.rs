//! The nodes of the cluster as a gateway's fleet knows them: those the last node list named,
//! and those that said GoAway (held back a while), shared with the tunnels, which ask it
//! before they redial.

use sg_proto::frame::{NodeEntry, NodeList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A node that said GoAway is not dialled again until a node list shows it serving and at
/// least this long has passed (registry updates may lag behind the GoAway itself).
pub const GOAWAY_HOLD: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct NodeBook {
    listed: HashMap<String, NodeEntry>,
    /// Nodes that said GoAway, and when.
    going: HashMap<String, Instant>,
}

impl NodeBook {
    /// Whether a tunnel to `node_id` should dial (again).
    pub fn may_dial(&self, node_id: &str) -> bool {
        self.listed.get(node_id).is_some_and(|n| !n.draining) && !self.going.contains_key(node_id)
    }

    /// The cluster's new list of live nodes.
    pub fn update(&mut self, list: NodeList) {
        self.listed = list
            .nodes
            .into_iter()
            .map(|n| (n.node_id.clone(), n))
            .collect();
        self.release_held();
    }

    /// `node_id` said GoAway: not dialled again for [`GOAWAY_HOLD`] at least.
    pub fn going_away(&mut self, node_id: String) {
        self.going.insert(node_id, Instant::now());
    }

    /// Whether some node is held back after its GoAway.
    pub fn holds_any(&self) -> bool {
        !self.going.is_empty()
    }

    /// The listed nodes that may be dialled.
    pub fn dialable(&self) -> Vec<NodeEntry> {
        self.listed
            .values()
            .filter(|n| self.may_dial(&n.node_id))
            .cloned()
            .collect()
    }

    /// Forgets GoAways older than the hold for nodes listed as serving again.
    pub fn release_held(&mut self) {
        let listed = &self.listed;
        self.going.retain(|id, since| {
            since.elapsed() < GOAWAY_HOLD || listed.get(id).is_none_or(|n| n.draining)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, draining: bool) -> NodeEntry {
        NodeEntry {
            node_id: id.into(),
            region: "r".into(),
            tunnel: "127.0.0.1:9000".into(),
            draining,
        }
    }

    #[test]
    fn only_listed_serving_nodes_are_dialled() {
        let mut book = NodeBook::default();
        assert!(!book.may_dial("a"), "unknown");
        book.update(NodeList {
            nodes: vec![entry("a", false), entry("b", true)],
        });
        assert!(book.may_dial("a"));
        assert!(!book.may_dial("b"), "draining");
        book.going.insert("a".into(), Instant::now());
        assert!(!book.may_dial("a"), "said GoAway");
        book.update(NodeList {
            nodes: vec![entry("a", false)],
        });
        assert!(!book.may_dial("a"), "a GoAway holds for a while");
        book.going.insert("a".into(), Instant::now() - GOAWAY_HOLD);
        book.update(NodeList {
            nodes: vec![entry("a", false)],
        });
        assert!(book.may_dial("a"), "back and serving");
    }
}
