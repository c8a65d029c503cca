//! One gateway's sessions across the cluster (F20, F32).
//!
//! The `--server` addresses are seeds. After its handshake a node tells the client every
//! live node of its cluster (a `NodeList`), and the fleet makes sure each node that is not
//! draining has `--sessions` tunnels. A node that leaves the list keeps its sessions for as
//! long as they live — the list comes from etcd, which may flap — and is not dialled again
//! once they end. A `GoAway` (the node drains) makes the fleet cover every other node at
//! once and stop dialling that one; its open streams finish on the session they are on.

use crate::config::ServerAddr;
use crate::fleet_link::{FleetEvent, Target, TunnelEnd, TunnelSpec};
use crate::node_book::{NodeBook, GOAWAY_HOLD};
use crate::registry::GatewayRuntime;
use crate::tunnel::{self, ClientContext};
use crate::workers::WorkerPool;
use sg_proto::frame::NodeEntry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, watch};

/// How a gateway's fleet ended.
#[derive(Debug, Default, Clone, Copy)]
pub struct FleetOutcome {
    pub tunnels: usize,
    pub refused: usize,
}

struct TunnelInfo {
    target: Target,
    /// The node its session is (or was last) on.
    node: Option<String>,
}

pub struct Fleet {
    ctx: Arc<ClientContext>,
    gw: Arc<GatewayRuntime>,
    pool: Arc<WorkerPool>,
    shutdown: watch::Receiver<bool>,
    events: mpsc::UnboundedReceiver<FleetEvent>,
    sender: mpsc::UnboundedSender<FleetEvent>,
    book: Arc<RwLock<NodeBook>>,
    tunnels: HashMap<u64, TunnelInfo>,
    next_id: u64,
    outcome: FleetOutcome,
}

impl Fleet {
    pub fn new(
        ctx: Arc<ClientContext>,
        gw: Arc<GatewayRuntime>,
        pool: Arc<WorkerPool>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        Fleet {
            ctx,
            gw,
            pool,
            shutdown,
            events,
            sender,
            book: Arc::new(RwLock::new(NodeBook::default())),
            tunnels: HashMap::new(),
            next_id: 0,
            outcome: FleetOutcome::default(),
        }
    }

    /// Runs until every tunnel of the gateway has stopped for good.
    pub async fn run(mut self) -> FleetOutcome {
        let seeds = self.ctx.config.servers.clone();
        for seed in seeds {
            for _ in 0..self.ctx.config.sessions {
                self.spawn(Target::Seed(seed.clone()));
            }
        }
        // A node held back after its GoAway is covered again once the hold is over, even
        // if no new node list arrives.
        let mut recheck = tokio::time::interval(GOAWAY_HOLD);
        loop {
            let event = tokio::select! {
                e = self.events.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
                _ = recheck.tick() => {
                    let held = self.book.read().unwrap_or_else(|p| p.into_inner()).holds_any();
                    if held {
                        self.book().release_held();
                        self.cover();
                    }
                    continue;
                }
            };
            match event {
                FleetEvent::Welcomed { tunnel, node_id } => {
                    if let Some(t) = self.tunnels.get_mut(&tunnel) {
                        t.node = Some(node_id);
                    }
                }
                FleetEvent::Nodes(list) => {
                    if self.ctx.config.discover {
                        self.book().update(list);
                        self.cover();
                    }
                }
                FleetEvent::GoAway { node_id } => {
                    tracing::warn!(
                        gateway = %self.gw.id(),
                        "node {node_id} is draining: its streams finish where they are, new ones go to the other nodes"
                    );
                    self.book().going_away(node_id);
                    self.cover();
                }
                FleetEvent::Ended { tunnel, end } => {
                    if let Some(t) = self.tunnels.remove(&tunnel) {
                        let last_to_node = |id: &str| {
                            !self.tunnels.values().any(|o| {
                                matches!(&o.target, Target::Node { node_id, .. } if node_id == id)
                            })
                        };
                        if let (Target::Node { node_id, .. }, TunnelEnd::Retired) =
                            (&t.target, &end)
                        {
                            if last_to_node(node_id) {
                                tracing::info!(gateway = %self.gw.id(), "no longer connecting to node {node_id}: it left the cluster or drains");
                            }
                        }
                    }
                    if matches!(end, TunnelEnd::Refused(_)) {
                        self.outcome.refused += 1;
                    }
                    if self.tunnels.is_empty() {
                        break;
                    }
                }
            }
        }
        self.outcome
    }

    fn book(&self) -> std::sync::RwLockWriteGuard<'_, NodeBook> {
        self.book.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives every listed node that may be dialled and has no tunnel its sessions.
    fn cover(&mut self) {
        if *self.shutdown.borrow() {
            return;
        }
        let wanted = self
            .book
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .dialable();
        let covered: HashSet<&str> = self
            .tunnels
            .values()
            .filter_map(|t| match (&t.node, &t.target) {
                (Some(n), _) => Some(n.as_str()),
                (None, Target::Node { node_id, .. }) => Some(node_id.as_str()),
                (None, Target::Seed(_)) => None,
            })
            .collect();
        let missing: Vec<NodeEntry> = wanted
            .into_iter()
            .filter(|n| !covered.contains(n.node_id.as_str()))
            .collect();
        for node in missing {
            let addr = match node.tunnel.parse::<ServerAddr>() {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(gateway = %self.gw.id(), "node {} names a tunnel address this client cannot use: {e}", node.node_id);
                    continue;
                }
            };
            tracing::info!(
                gateway = %self.gw.id(),
                "connecting to node {} (region {}) at {addr}, named by the cluster",
                node.node_id,
                node.region
            );
            for _ in 0..self.ctx.config.sessions {
                self.spawn(Target::Node {
                    node_id: node.node_id.clone(),
                    addr: addr.clone(),
                });
            }
        }
    }

    fn spawn(&mut self, target: Target) {
        let id = self.next_id;
        self.next_id += 1;
        self.outcome.tunnels += 1;
        self.tunnels.insert(
            id,
            TunnelInfo {
                target: target.clone(),
                node: None,
            },
        );
        let spec = TunnelSpec {
            id,
            target,
            events: self.sender.clone(),
            book: self.book.clone(),
        };
        let (ctx, gw, shutdown, events) = (
            self.ctx.clone(),
            self.gw.clone(),
            self.shutdown.clone(),
            self.sender.clone(),
        );
        self.pool.spawn(async move {
            let mut report = EndReport {
                tunnel: id,
                events,
                end: None,
            };
            report.end = Some(tunnel::run(ctx, gw, spec, shutdown).await);
        });
    }
}

/// Tells the fleet a tunnel ended — also if its task panicked, so the fleet never waits
/// for a tunnel that is gone.
struct EndReport {
    tunnel: u64,
    events: mpsc::UnboundedSender<FleetEvent>,
    end: Option<TunnelEnd>,
}

impl Drop for EndReport {
    fn drop(&mut self) {
        let end = self.end.take().unwrap_or(TunnelEnd::Shutdown);
        let _ = self.events.send(FleetEvent::Ended {
            tunnel: self.tunnel,
            end,
        });
    }
}
