//! The Node actor: starts, updates and stops Gateway actors as committed changes arrive,
//! and answers "which actor serves gateway X".

use super::gateway::{self, Gateway};
use super::NodeShared;
use crate::records::Plan;
use crate::state::Change;
use actix::prelude::*;
use futures_util::future::join_all;
use std::collections::HashMap;
use std::sync::Arc;

pub struct Node {
    shared: Arc<NodeShared>,
    gateways: HashMap<String, Addr<Gateway>>,
    plan: Plan,
}

impl Node {
    pub fn new(shared: Arc<NodeShared>) -> Self {
        Node {
            shared,
            gateways: HashMap::new(),
            plan: Plan::default(),
        }
    }
}

impl Actor for Node {
    type Context = Context<Self>;
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
                        g.do_send(gateway::SetPlan(plan));
                    }
                }
                Change::Gateway(record) => match self.gateways.get(&record.id) {
                    Some(addr) => addr.do_send(gateway::UpdateRecord(record)),
                    None => {
                        let id = record.id.clone();
                        let (shared, plan) = (self.shared.clone(), self.plan);
                        let worker = self.shared.workers.pick();
                        let index = worker.index;
                        let addr = Gateway::start_in_arbiter(&worker.handle, move |_| {
                            Gateway::new(shared, record, plan, index)
                        });
                        self.gateways.insert(id, addr);
                    }
                },
                Change::GatewayRemoved { id } => {
                    if let Some(addr) = self.gateways.remove(&id) {
                        addr.do_send(gateway::Remove);
                    }
                }
                Change::Destination(record) => {
                    if let Some(addr) = self.gateways.get(&record.gateway_id) {
                        addr.do_send(gateway::UpsertDestination(record));
                    }
                }
                Change::DestinationRemoved { gateway_id, id } => {
                    if let Some(addr) = self.gateways.get(&gateway_id) {
                        addr.do_send(gateway::RemoveDestination(id));
                    }
                }
                Change::TokenRegenerated { gateway_id } => {
                    if let Some(addr) = self.gateways.get(&gateway_id) {
                        addr.do_send(gateway::CloseSessions {
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
            .map(|g| g.send(gateway::Barrier))
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
        self.gateways.get(&msg.0).cloned()
    }
}

/// Every gateway actor, for node-wide operations (drain, metrics).
#[derive(Message)]
#[rtype(result = "Vec<Addr<Gateway>>")]
pub struct AllGateways;

impl Handler<AllGateways> for Node {
    type Result = Vec<Addr<Gateway>>;
    fn handle(&mut self, _: AllGateways, _: &mut Self::Context) -> Self::Result {
        self.gateways.values().cloned().collect()
    }
}
