//! What the node tells a Gateway as its configuration and the cluster change: a new
//! record or plan, destinations added and removed, the live nodes, the other nodes' load,
//! and the steps of a drain.

use super::{Gateway, Slot};
use crate::actors::destination;
use crate::records::{DestinationRecord, EventKind, GatewayRecord, Plan};
use actix::prelude::*;
use sg_proto::frame::{Frame, GoAway, NodeList};
use sg_proto::version::NODE_LIST_SINCE;
use std::sync::Arc;

#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateRecord(pub GatewayRecord);

impl Handler<UpdateRecord> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: UpdateRecord, _: &mut Self::Context) {
        let old = std::mem::replace(&mut self.record, msg.0);
        if old.active && !self.record.active {
            self.close_sessions("the gateway was deactivated");
        } else {
            self.push_config();
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPlan(pub Plan);

impl Handler<SetPlan> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SetPlan, _: &mut Self::Context) {
        self.plan = msg.0;
    }
}

/// The gateway was deleted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove;

impl Handler<Remove> for Gateway {
    type Result = ();
    fn handle(&mut self, _: Remove, ctx: &mut Self::Context) {
        self.close_sessions("the gateway was deleted");
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSessions {
    pub reason: String,
}

impl Handler<CloseSessions> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: CloseSessions, _: &mut Self::Context) {
        let id = self.record.id.clone();
        let n = self.sessions.len();
        self.close_sessions(&msg.reason);
        if n > 0 {
            self.shared.event(
                &id,
                EventKind::SessionClosed,
                format!("closed {n} client session(s): {}", msg.reason),
                None,
                None,
            );
        }
    }
}

/// The node is draining: tell every client to make sure it is connected elsewhere.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct SendGoAway(pub GoAway);

impl Handler<SendGoAway> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SendGoAway, _: &mut Self::Context) {
        for s in self.sessions.iter() {
            let _ = s.handle.send_control(Frame::GoAway(msg.0.clone()));
        }
    }
}

/// The cluster's live nodes changed: every client that understands it hears of it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetNodes(pub Arc<NodeList>);

impl Handler<SetNodes> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SetNodes, _: &mut Self::Context) {
        if *self.nodes == *msg.0 {
            return;
        }
        self.nodes = msg.0;
        for s in self.sessions.iter() {
            if s.protocol_minor >= NODE_LIST_SINCE {
                let _ = s
                    .handle
                    .send_control(Frame::NodeList((*self.nodes).clone()));
            }
        }
    }
}

/// Connections the gateway has open on the other nodes changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRemoteActive(pub u32);

impl Handler<SetRemoteActive> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SetRemoteActive, _: &mut Self::Context) {
        self.remote_active = msg.0;
    }
}

/// Late in a drain: stop accepting on every cloud port. Carried connections go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseListeners;

impl Handler<CloseListeners> for Gateway {
    type Result = ();
    fn handle(&mut self, _: CloseListeners, _: &mut Self::Context) {
        for (id, slot) in self.destinations.iter_mut() {
            if let Some((_, addr)) = slot.listener.take() {
                addr.do_send(destination::Stop);
                self.shared.listening.closed(id);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UpsertDestination(pub DestinationRecord);

impl Handler<UpsertDestination> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: UpsertDestination, ctx: &mut Self::Context) {
        let id = msg.0.id.clone();
        match self.destinations.get_mut(&id) {
            Some(slot) => slot.record = msg.0,
            None => {
                self.destinations.insert(
                    id.clone(),
                    Slot {
                        record: msg.0,
                        listener: None,
                    },
                );
            }
        }
        self.sync_listener(&id, ctx);
        self.push_config();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveDestination(pub String);

impl Handler<RemoveDestination> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: RemoveDestination, _: &mut Self::Context) {
        if let Some(mut slot) = self.destinations.remove(&msg.0) {
            self.book.forget_destination(&msg.0);
            if let Some((_, addr)) = slot.listener.take() {
                addr.do_send(destination::Stop);
                self.shared.listening.closed(&msg.0);
            }
            self.push_config();
        }
    }
}

/// Answers after every earlier message to this gateway was handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier;

impl Handler<Barrier> for Gateway {
    type Result = ();
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}
