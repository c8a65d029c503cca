//! The Node actor: starts, updates and stops Gateway actors as committed changes arrive,
//! answers "which actor serves gateway X", and holds what the node knows of the cluster —
//! the live nodes (told to every client) and the connections each gateway has open on the
//! other nodes (for its concurrency limit).

use super::admission::LiveCounters;
use super::gateway::{self, Gateway, GatewayStart};
use super::NodeShared;
use crate::fleet::Fleet;
use crate::records::Plan;
use crate::state::Change;
use actix::prelude::*;
use futures_util::future::join_all;
use sg_proto::frame::{NodeEntry, NodeList};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Node {
    shared: Arc<NodeShared>,
    gateways: HashMap<String, Served>,
    plan: Plan,
    fleet: Arc<Fleet>,
    /// The fleet as clients are told it.
    node_list: Arc<NodeList>,
    /// Open connections per gateway on the other nodes.
    remote: HashMap<String, u32>,
}

/// A gateway actor and its live counters.
struct Served {
    addr: Addr<Gateway>,
    live: Arc<LiveCounters>,
}

impl Node {
    pub fn new(shared: Arc<NodeShared>, fleet: Fleet) -> Self {
        Node {
            shared,
            gateways: HashMap::new(),
            plan: Plan::default(),
            node_list: Arc::new(node_list(&fleet)),
            fleet: Arc::new(fleet),
            remote: HashMap::new(),
        }
    }
}

fn node_list(fleet: &Fleet) -> NodeList {
    NodeList {
        nodes: fleet
            .nodes
            .iter()
            .map(|n| NodeEntry {
                node_id: n.id.clone(),
                region: n.region.clone(),
                tunnel: n.tunnel.clone(),
                draining: n.draining,
            })
            .collect(),
    }
}

/// How often the Node checks that every gateway actor is still alive.
const GATEWAY_WATCH: std::time::Duration = std::time::Duration::from_millis(500);

impl Actor for Node {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(GATEWAY_WATCH, |act, _| act.watch_gateways());
        ctx.run_interval(crate::memory::TRIM_EVERY, |_, _| crate::memory::trim());
    }
}

impl Node {
    /// Gateway actors are control plane, but they run on the worker arbiters beside the
    /// connections, where a panic ends only the task that panicked. A gateway whose actor
    /// is gone without being removed would be a zombie — its sessions and cloud ports
    /// dead while the node looks healthy — so the node exits as it does for a panic on a
    /// control-plane thread, and its service manager restarts it from durable state.
    fn watch_gateways(&self) {
        if self.shared.status.draining() {
            return;
        }
        if let Some((id, _)) = self.gateways.iter().find(|(_, g)| !g.addr.connected()) {
            tracing::error!(
                gateway = %id,
                "the actor serving gateway {id} stopped unexpectedly (a panic, logged above): \
                 exiting with status {} so the service manager restarts the node from its \
                 durable state",
                crate::panics::PANIC_EXIT
            );
            std::process::exit(crate::panics::PANIC_EXIT);
        }
    }
}

/// Committed changes, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Apply(pub Vec<Change>);

impl Handler<Apply> for Node {
    type Result = ();
    fn handle(&mut self, msg: Apply, _: &mut Self::Context) {
        for change in msg.0 {
            match change {
                Change::Plan(plan) => {
                    self.plan = plan;
                    for g in self.gateways.values() {
                        g.addr.do_send(gateway::SetPlan(plan));
                    }
                }
                Change::Gateway(record) => match self.gateways.get(&record.id) {
                    Some(g) => g.addr.do_send(gateway::UpdateRecord(record)),
                    None => {
                        let id = record.id.clone();
                        let live = Arc::new(LiveCounters::default());
                        let worker = self.shared.workers.pick();
                        let start = GatewayStart {
                            plan: self.plan,
                            worker: worker.index,
                            live: live.clone(),
                            remote_active: self.remote.get(&id).copied().unwrap_or(0),
                            nodes: self.node_list.clone(),
                        };
                        let shared = self.shared.clone();
                        let addr = Gateway::start_in_arbiter(&worker.handle, move |_| {
                            Gateway::new(shared, record, start)
                        });
                        self.gateways.insert(id, Served { addr, live });
                    }
                },
                Change::GatewayRemoved { id } => {
                    if let Some(g) = self.gateways.remove(&id) {
                        g.addr.do_send(gateway::Remove);
                    }
                }
                Change::Destination(record) => {
                    if let Some(g) = self.gateways.get(&record.gateway_id) {
                        g.addr.do_send(gateway::UpsertDestination(record));
                    }
                }
                Change::DestinationRemoved { gateway_id, id } => {
                    if let Some(g) = self.gateways.get(&gateway_id) {
                        g.addr.do_send(gateway::RemoveDestination(id));
                    }
                }
                Change::TokenRegenerated { gateway_id } => {
                    if let Some(g) = self.gateways.get(&gateway_id) {
                        g.addr.do_send(gateway::CloseSessions {
                            reason: "token regenerated".into(),
                        });
                    }
                }
            }
        }
    }
}

/// Resolves once every change sent before it has been applied by every gateway, so an API
/// answer never races the listener it provisioned.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier;

impl Handler<Barrier> for Node {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) -> Self::Result {
        let waits: Vec<_> = self
            .gateways
            .values()
            .map(|g| g.addr.send(gateway::Barrier))
            .collect();
        Box::pin(async move {
            join_all(waits).await;
        })
    }
}

/// The actor serving a gateway, if it exists.
#[derive(Message)]
#[rtype(result = "Option<Addr<Gateway>>")]
pub struct FindGateway(pub String);

impl Handler<FindGateway> for Node {
    type Result = Option<Addr<Gateway>>;
    fn handle(&mut self, msg: FindGateway, _: &mut Self::Context) -> Self::Result {
        self.gateways.get(&msg.0).map(|g| g.addr.clone())
    }
}

/// Every gateway actor, for node-wide operations (drain, metrics).
#[derive(Message)]
#[rtype(result = "Vec<Addr<Gateway>>")]
pub struct AllGateways;

impl Handler<AllGateways> for Node {
    type Result = Vec<Addr<Gateway>>;
    fn handle(&mut self, _: AllGateways, _: &mut Self::Context) -> Self::Result {
        self.gateways.values().map(|g| g.addr.clone()).collect()
    }
}

/// The live nodes changed (the cluster registry, or this node alone).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFleet(pub Arc<Fleet>);

impl Handler<SetFleet> for Node {
    type Result = ();
    fn handle(&mut self, msg: SetFleet, _: &mut Self::Context) {
        if *self.fleet == *msg.0 {
            return;
        }
        self.fleet = msg.0;
        let list = Arc::new(node_list(&self.fleet));
        if *list != *self.node_list {
            self.node_list = list;
            for g in self.gateways.values() {
                g.addr.do_send(gateway::SetNodes(self.node_list.clone()));
            }
        }
    }
}

/// The live nodes as this node knows them.
#[derive(Message)]
#[rtype(result = "Arc<Fleet>")]
pub struct GetFleet;

impl Handler<GetFleet> for Node {
    type Result = Arc<Fleet>;
    fn handle(&mut self, _: GetFleet, _: &mut Self::Context) -> Self::Result {
        self.fleet.clone()
    }
}

/// Open connections per gateway on the other nodes, summed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRemoteLoads(pub HashMap<String, u32>);

impl Handler<SetRemoteLoads> for Node {
    type Result = ();
    fn handle(&mut self, msg: SetRemoteLoads, _: &mut Self::Context) {
        for (id, g) in &self.gateways {
            let now = msg.0.get(id).copied().unwrap_or(0);
            let before = self.remote.get(id).copied().unwrap_or(0);
            if now != before {
                g.addr.do_send(gateway::SetRemoteActive(now));
            }
        }
        self.remote = msg.0;
    }
}

/// This node's open connections per gateway (what it publishes to the cluster).
#[derive(Message)]
#[rtype(result = "HashMap<String, u32>")]
pub struct LocalLoads;

impl Handler<LocalLoads> for Node {
    type Result = MessageResult<LocalLoads>;
    fn handle(&mut self, _: LocalLoads, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.gateways
                .iter()
                .map(|(id, g)| (id.clone(), g.live.active()))
                .collect(),
        )
    }
}
