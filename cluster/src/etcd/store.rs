//! [`ClusterStore`]: the node's `Store` in a cluster. Reads come from the local copy (sled);
//! a write is a transaction in etcd and, once etcd has it, a batch in the local copy.
//!
//! Every configuration write is a compare-and-swap on one marker key: the transaction
//! applies only if the marker has not moved since the revision this node's copy has
//! applied. So a write is validated against the whole, current configuration — plan limits,
//! unique names and cloud ports — on whichever node takes it, and two nodes can never both
//! win a race. The loser gets [`StoreError::Stale`]; its caller waits until the copy has
//! caught up and runs the request again.
//!
//! etcd refuses transactions of more than 128 operations (and requests over 1.5 MiB); a
//! larger change (a gateway's 500 destinations deactivated with it) goes out in chunks, each
//! chained to the previous one on the marker.

use super::txn::{chunks, decode_events, marker_revision};
use super::Etcd;
use crate::records::{DestinationRecord, EventRecord, GatewayRecord, Plan};
use crate::status::{NodeStatus, StoreHealth};
use crate::store::{Op, Replicated, SledStore, Store, StoreError};
use etcd_client::{Compare, CompareOp, Txn, TxnOp, WatchOptions};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Longest wait for the quorum read that precedes a write.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1500);

/// The revision of etcd the local copy has applied, readable anywhere and awaitable.
#[derive(Debug)]
pub struct Replication {
    applied: AtomicI64,
    tx: watch::Sender<i64>,
}

impl Replication {
    pub fn new(applied: i64) -> Self {
        Replication {
            applied: AtomicI64::new(applied),
            tx: watch::channel(applied).0,
        }
    }

    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.tx.subscribe()
    }

    pub(crate) fn set(&self, revision: i64) {
        self.applied.store(revision, Ordering::Release);
        self.tx.send_replace(revision);
    }
}

pub struct ClusterStore {
    local: SledStore,
    etcd: Etcd,
    replication: Arc<Replication>,
    status: Arc<NodeStatus>,
    node_id: String,
}

impl ClusterStore {
    pub fn new(
        local: SledStore,
        etcd: Etcd,
        replication: Arc<Replication>,
        status: Arc<NodeStatus>,
        node_id: String,
    ) -> Self {
        ClusterStore {
            local,
            etcd,
            replication,
            status,
            node_id,
        }
    }

    fn unavailable(&self, health: StoreHealth, detail: Option<String>) -> StoreError {
        let why = match health {
            StoreHealth::Detached => format!(
                "etcd at {} does not hold this node's cluster under {} (wiped, restored \
                 elsewhere, or another cluster): changes are refused until an operator acts; \
                 see this node's log",
                self.etcd.endpoints,
                self.etcd.keys.prefix()
            ),
            _ => format!(
                "etcd at {} cannot be reached or has no quorum{}: changes are refused until it \
                 is back; every node keeps serving its copy of the configuration",
                self.etcd.endpoints,
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            ),
        };
        StoreError::Unavailable(why)
    }

    /// One transaction: `guard` compares the marker, the ops follow, the marker is
    /// rewritten. Returns the revision it committed at, or who moved the marker.
    fn transact(&self, guard: Compare, ops: Vec<TxnOp>) -> Result<i64, StoreError> {
        let keys = &self.etcd.keys;
        let mut then = ops;
        then.push(TxnOp::put(
            keys.marker(),
            serde_json::json!({ "node": self.node_id, "at": crate::time::now_millis() })
                .to_string(),
            None,
        ));
        let txn = Txn::new()
            .when([guard])
            .and_then(then)
            .or_else([TxnOp::get(keys.marker(), None)]);
        let mut kv = self.etcd.client.kv_client();
        let answer = self.etcd.block_on(self.etcd.timed(kv.txn(txn)));
        let resp = match answer {
            Ok(r) => r,
            Err(e) => {
                self.lost_etcd();
                // Sent but not confirmed: etcd may still commit it if it recovers. Say so
                // rather than pretend either way.
                return Err(self.unavailable(
                    StoreHealth::Unreachable,
                    Some(format!(
                        "{e}; the change was not confirmed: it is not applied here, but etcd \
                         may still apply it when it recovers — check before repeating it"
                    )),
                ));
            }
        };
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        Err(StoreError::Stale {
            revision: marker_revision(&resp),
        })
    }
}

impl ClusterStore {
    /// The marker's revision, read with quorum (a short deadline: etcd answers in
    /// milliseconds when it can).
    fn read_marker(&self) -> Result<i64, StoreError> {
        let mut kv = self.etcd.client.kv_client();
        let read = kv.get(self.etcd.keys.marker(), None);
        match self
            .etcd
            .block_on(async { tokio::time::timeout(READ_DEADLINE, read).await })
        {
            Ok(Ok(resp)) => Ok(resp.kvs().first().map_or(0, |kv| kv.mod_revision())),
            Ok(Err(e)) => {
                self.lost_etcd();
                Err(self.unavailable(StoreHealth::Unreachable, Some(e.to_string())))
            }
            Err(_) => {
                self.lost_etcd();
                let why = format!("no answer within {} ms", READ_DEADLINE.as_millis());
                Err(self.unavailable(StoreHealth::Unreachable, Some(why)))
            }
        }
    }

    /// etcd failed a request: refuse further writes at once until the replicator is back
    /// in sync.
    fn lost_etcd(&self) {
        if self.status.store() == StoreHealth::Synced {
            self.status.set_store(StoreHealth::Unreachable);
        }
    }
}

impl Store for ClusterStore {
    fn gateways(&self) -> Result<Vec<GatewayRecord>, StoreError> {
        self.local.gateways()
    }

    fn destinations(&self) -> Result<Vec<DestinationRecord>, StoreError> {
        self.local.destinations()
    }

    fn plan(&self) -> Result<Option<Plan>, StoreError> {
        self.local.plan()
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let health = self.status.store();
        if !health.writable() {
            return Err(self.unavailable(health, None));
        }
        // A linearizable read first: it needs quorum and changes nothing, so a write into an
        // etcd that just lost quorum is refused before it is sent (a transaction sent then
        // could still be committed later, after it was refused here).
        let moved_at = self.read_marker()?;
        if moved_at > self.replication.applied() {
            return Err(StoreError::Stale { revision: moved_at });
        }
        let marker = self.etcd.keys.marker();
        // Nobody may have written since what this copy has applied.
        let mut guard = Compare::mod_revision(
            marker.clone(),
            CompareOp::Less,
            self.replication.applied() + 1,
        );
        let mut revision = self.replication.applied();
        for chunk in chunks(&self.etcd.keys, ops)? {
            revision = self.transact(guard, chunk)?;
            // The next chunk follows this one, or nothing.
            guard = Compare::mod_revision(marker.clone(), CompareOp::Equal, revision);
        }
        self.local.commit_at(ops, Some(revision))?;
        self.replication.set(revision);
        Ok(())
    }

    fn apply_replicated(&self, ops: &[Op], revision: i64) -> Result<(), StoreError> {
        self.local.commit_at(ops, Some(revision))?;
        self.replication.set(revision);
        Ok(())
    }

    fn revision(&self) -> Result<Option<i64>, StoreError> {
        Ok(Some(self.replication.applied()))
    }

    fn changes_until(&self, revision: i64) -> Result<Replicated, StoreError> {
        let from = self.replication.applied() + 1;
        let keys = self.etcd.keys.clone();
        let etcd = self.etcd.clone();
        let read = async move {
            let options = WatchOptions::new().with_prefix().with_start_revision(from);
            let mut watch = etcd.client.watch_client();
            let mut stream = watch.watch(keys.config(), Some(options)).await?;
            let mut all = Vec::new();
            while let Some(resp) = stream.message().await? {
                if resp.canceled() {
                    // Compacted past the copy: the replicator resynchronizes it.
                    return Ok(None);
                }
                if let Replicated::Changes { through, changes } =
                    decode_events(&keys, resp.events())
                {
                    all.extend(changes);
                    if through >= revision {
                        return Ok(Some(Replicated::Changes {
                            through,
                            changes: all,
                        }));
                    }
                }
            }
            Ok(None)
        };
        match self.etcd.block_on(self.etcd.timed(read)) {
            Ok(Some(changes)) => Ok(changes),
            Ok(None) => Err(StoreError::Stale { revision }),
            Err(e) => Err(self.unavailable(StoreHealth::Unreachable, Some(e.to_string()))),
        }
    }

    fn append_event(&self, event: &EventRecord, keep: usize) -> Result<(), StoreError> {
        self.local.append_event(event, keep)
    }

    fn events(&self, gateway_id: &str, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.local.events(gateway_id, limit)
    }

    fn delete_events(&self, gateway_id: &str) -> Result<(), StoreError> {
        self.local.delete_events(gateway_id)
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.local.meta(key)
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.local.set_meta(key, value)
    }
}
