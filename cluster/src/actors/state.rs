//! The single writer of the node's state, on its own thread (a `SyncArbiter`), because
//! every change ends in an fsync. Each mutation runs to completion — validate, commit,
//! flush — before the next starts, and its [`Change`]s are sent to the Node actor before
//! the caller hears back, so actors apply changes in commit order.

use super::node::{Apply, Node};
use crate::etcd::replicator::Replicate;
use crate::etcd::store::Replication;
use crate::records::EventRecord;
use crate::state::{Change, State, StateError};
use crate::store::StoreError;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

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

type MutateFn<R> = Arc<dyn Fn(&mut State) -> Result<(R, Vec<Change>), StateError> + Send + Sync>;

/// Runs one mutation of the state; its changes go to the Node before the reply. It may run
/// more than once (see [`mutate`]), so it is a `Fn`.
pub struct Mutate<R>(pub MutateFn<R>);

/// Times the state thread catches up and validates a mutation again before it hands the
/// conflict back to the caller (which waits for replication and tries again).
const CATCH_UPS_PER_MUTATION: u32 = 10;

/// Times a mutation is tried when other nodes keep changing the configuration first.
const MUTATE_ATTEMPTS: u32 = 20;
/// Longest wait for this node's copy to catch up with a change another node made.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// Runs a mutation. In a cluster, when another node changed the configuration after this
/// node's copy was last updated, the state refuses it as stale: wait until the copy has
/// that change, then validate and try again against the newer state.
pub async fn mutate<R, F>(
    state: &Addr<StateActor>,
    replication: Option<&Replication>,
    f: F,
) -> Result<R, StateError>
where
    R: Send + 'static,
    F: Fn(&mut State) -> Result<(R, Vec<Change>), StateError> + Send + Sync + 'static,
{
    let f: MutateFn<R> = Arc::new(f);
    let stopping = || StateError::Store(StoreError::Unavailable("the node is stopping".into()));
    for attempt in 0..MUTATE_ATTEMPTS {
        let answer = state
            .send(Mutate(f.clone()))
            .await
            .map_err(|_| stopping())?;
        let (Err(StateError::Store(StoreError::Stale { revision })), Some(replication)) =
            (&answer, replication)
        else {
            return answer;
        };
        let mut applied = replication.subscribe();
        let caught_up =
            tokio::time::timeout(CATCH_UP_WAIT, applied.wait_for(|r| *r >= *revision)).await;
        if !matches!(caught_up, Ok(Ok(_))) {
            return Err(StateError::Store(StoreError::Unavailable(format!(
                "this node's copy of the configuration did not catch up with revision \
                 {revision} within {}s; retry",
                CATCH_UP_WAIT.as_secs()
            ))));
        }
        // Nodes racing for the marker take turns rather than collide again in step.
        let jitter = rand::random::<u64>() % (5 * u64::from(attempt + 1));
        tokio::time::sleep(Duration::from_millis(jitter)).await;
    }
    Err(StateError::Store(StoreError::Unavailable(format!(
        "the configuration kept changing on other nodes ({MUTATE_ATTEMPTS} attempts); retry"
    ))))
}

impl<R: Send + 'static> Message for Mutate<R> {
    type Result = Result<R, StateError>;
}

impl<R: Send + 'static> Handler<Mutate<R>> for StateActor {
    type Result = Result<R, StateError>;
    fn handle(&mut self, msg: Mutate<R>, ctx: &mut Self::Context) -> Self::Result {
        // Another node writing first is not an error: catch up and validate again, here,
        // before any other request (requests queued behind this one would all be stale).
        let mut attempts = 0;
        loop {
            match (msg.0)(&mut self.state).map_err(fatal_if_not_durable) {
                Ok((out, changes)) => {
                    self.send_changes(changes, ctx);
                    return Ok(out);
                }
                Err(StateError::Store(StoreError::Stale { revision }))
                    if attempts < CATCH_UPS_PER_MUTATION =>
                {
                    attempts += 1;
                    let changes = self
                        .state
                        .catch_up(revision)
                        .map_err(fatal_if_not_durable)?;
                    self.send_changes(changes, ctx);
                }
                Err(e) => return Err(e),
            }
        }
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

impl Handler<Replicate> for StateActor {
    type Result = Result<(), StateError>;
    fn handle(&mut self, msg: Replicate, ctx: &mut Self::Context) -> Self::Result {
        let changes = self.state.replicate(msg.0).map_err(fatal_if_not_durable)?;
        self.send_changes(changes, ctx);
        Ok(())
    }
}

/// Memory and disk may disagree after a failed flush; nothing was acknowledged. The node
/// restarts from what is on disk (the service manager restarts it).
fn fatal_if_not_durable(e: StateError) -> StateError {
    if let StateError::Store(StoreError::NotDurable(e)) = &e {
        tracing::error!("cannot make state durable ({e}); stopping so the node restarts from disk");
        std::process::exit(74);
    }
    e
}

impl StateActor {
    fn send_changes(&self, changes: Vec<Change>, _: &mut SyncContext<Self>) {
        if !changes.is_empty() {
            if let Some(node) = &self.node {
                node.do_send(Apply(changes));
            }
        }
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
