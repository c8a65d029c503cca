//! What a tunnel and its gateway's fleet say to each other: where a tunnel dials, the
//! events it reports, and how it ended. Both [`crate::fleet`] and [`crate::tunnel`] depend on
//! this contract, and neither on the other's internals.

use crate::config::ServerAddr;
use crate::node_book::NodeBook;
use sg_proto::frame::{NodeList, Refusal};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// Where a tunnel dials.
#[derive(Debug, Clone)]
pub enum Target {
    /// A `--server` address: dialled for as long as the client runs.
    Seed(ServerAddr),
    /// A node the cluster named: dialled while it is listed and not draining.
    Node { node_id: String, addr: ServerAddr },
}

impl Target {
    pub fn addr(&self) -> &ServerAddr {
        match self {
            Target::Seed(a) | Target::Node { addr: a, .. } => a,
        }
    }
}

/// What tunnels tell their fleet.
#[derive(Debug)]
pub enum FleetEvent {
    /// A session is up on `node_id`.
    Welcomed { tunnel: u64, node_id: String },
    /// A node sent the cluster's live nodes.
    Nodes(NodeList),
    /// A node is draining.
    GoAway { node_id: String },
    /// A tunnel stopped for good.
    Ended { tunnel: u64, end: TunnelEnd },
}

/// Why a tunnel stopped for good.
#[derive(Debug)]
pub enum TunnelEnd {
    Refused(Refusal),
    GaveUp {
        attempts: u64,
    },
    /// Its node left the cluster or drains; the other nodes carry the gateway.
    Retired,
    Shutdown,
}

/// One tunnel: where it dials, and how it talks to its gateway's fleet.
pub struct TunnelSpec {
    pub id: u64,
    pub target: Target,
    pub events: mpsc::UnboundedSender<FleetEvent>,
    pub book: Arc<RwLock<NodeBook>>,
}

impl TunnelSpec {
    /// A tunnel to a node the cluster named dials only while the cluster still lists it.
    pub(crate) fn may_dial(&self) -> bool {
        match &self.target {
            Target::Seed(_) => true,
            Target::Node { node_id, .. } => self
                .book
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .may_dial(node_id),
        }
    }
}
