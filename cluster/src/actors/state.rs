//! The single writer of the node's state, on its own thread (a `SyncArbiter`), because
//! every change ends in an fsync. Each mutation runs to completion — validate, commit,
//! flush — before the next starts, and its [`Change`]s are sent to the Node actor before
//! the caller hears back, so actors apply changes in commit order.

use super::node::{Apply, Node};
use crate::records::EventRecord;
use crate::state::{Change, State, StateError};
use crate::store::StoreError;
use actix::prelude::*;

pub struct StateActor {
    state: State,
    node: Option<Addr<Node>>,
}

impl StateActor {
    pub fn new(state: State) -> Self {
        StateActor { state, node: None }
    }
}

impl Actor for StateActor {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        // Without its single writer the node cannot change state: a panic here must exit.
        crate::panics::mark_critical_thread();
    }
}

/// Tells the state where to send changes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachNode(pub Addr<Node>);

impl Handler<AttachNode> for StateActor {
    type Result = ();
    fn handle(&mut self, msg: AttachNode, _: &mut Self::Context) {
        self.node = Some(msg.0);
    }
}

type MutateFn<R> = Box<dyn FnOnce(&mut State) -> Result<(R, Vec<Change>), StateError> + Send>;

/// Runs one mutation of the state; its changes go to the Node before the reply.
pub struct Mutate<R>(pub MutateFn<R>);

impl<R: Send + 'static> Message for Mutate<R> {
    type Result = Result<R, StateError>;
}

impl<R: Send + 'static> Handler<Mutate<R>> for StateActor {
    type Result = Result<R, StateError>;
    fn handle(&mut self, msg: Mutate<R>, _: &mut Self::Context) -> Self::Result {
        let (out, changes) = match (msg.0)(&mut self.state) {
            Ok(done) => done,
            Err(StateError::Store(StoreError::NotDurable(e))) => {
                // Memory and disk may now disagree; nothing was acknowledged. Restart from
                // what is on disk (the service manager restarts the node).
                tracing::error!(
                    "cannot make state durable ({e}); stopping so the node restarts from disk"
                );
                std::process::exit(74);
            }
            Err(e) => return Err(e),
        };
        if !changes.is_empty() {
            if let Some(node) = &self.node {
                node.do_send(Apply(changes));
            }
        }
        Ok(out)
    }
}

type ReadFn<R> = Box<dyn FnOnce(&State) -> R + Send>;

/// Reads the state.
pub struct Read<R>(pub ReadFn<R>);

impl<R: Send + 'static> Message for Read<R> {
    type Result = R;
}

impl<R: Send + 'static> Handler<Read<R>> for StateActor {
    type Result = MessageResult<Read<R>>;
    fn handle(&mut self, msg: Read<R>, _: &mut Self::Context) -> Self::Result {
        MessageResult((msg.0)(&self.state))
    }
}

/// Appends to a gateway's event log.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordEvent(pub EventRecord);

impl Handler<RecordEvent> for StateActor {
    type Result = ();
    fn handle(&mut self, msg: RecordEvent, _: &mut Self::Context) {
        self.state.record_event(&msg.0);
    }
}
