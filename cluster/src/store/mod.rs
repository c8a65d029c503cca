//! Durable state behind a small trait.
//!
//! The rest of the node sees typed records in and typed records out; [`SledStore`] is the
//! embedded implementation. [`Store::commit`] applies a batch atomically and returns only
//! once it is on disk, so nothing the API acknowledged can be lost in a crash.

mod sled_store;

#[cfg(test)]
pub(crate) use sled_store::tests as sled_store_tests;
pub use sled_store::SledStore;

use crate::records::{DestinationRecord, EventRecord, GatewayRecord, Plan};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored {what} {key:?} is corrupt: {detail}")]
    Corrupt {
        what: &'static str,
        key: String,
        detail: String,
    },
    #[error("could not encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    #[error(
        "the data dir was written by a newer sg (schema {found}, this build reads {supported})"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    /// The change is in sled's memory but could not be flushed: what is on disk is now
    /// unknown, so the node must stop and reload from disk rather than carry on.
    #[error("a committed change could not be flushed to disk: {0}")]
    NotDurable(sled::Error),
    /// The cluster's store cannot take changes now (etcd unreachable, without quorum, or
    /// holding another cluster). Nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// Another node changed the configuration after this node's copy was last brought up
    /// to date; retry once the copy has reached `revision`. Nothing was changed.
    #[error("the configuration changed on another node (revision {revision}); retry")]
    Stale { revision: i64 },
}

/// One change inside a batch.
// One value per API call or command line: their size does not matter, boxing would
// only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Op {
    PutGateway(GatewayRecord),
    DeleteGateway(String),
    PutDestination(DestinationRecord),
    DeleteDestination { gateway_id: String, id: String },
    PutPlan(Plan),
}

/// What the cluster's store sends the local copy.
#[derive(Debug)]
pub enum Replicated {
    /// Changes in revision order, each with the revision that made it; the copy is then
    /// complete `through` that revision (marker writes included, which carry no op).
    Changes {
        through: i64,
        changes: Vec<(i64, Op)>,
    },
    /// Everything the cluster holds at one revision: the copy becomes exactly this.
    Snapshot(Snapshot),
}

/// The whole configuration at `revision`.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub plan: Option<Plan>,
    pub gateways: Vec<GatewayRecord>,
    pub destinations: Vec<DestinationRecord>,
    /// Ids whose stored value could not be read: kept as they are, never deleted.
    pub unreadable: std::collections::HashSet<String>,
    /// etcd went back in time (restored from a backup): accept a revision lower than
    /// the one applied.
    pub restored: bool,
}

/// Typed, durable storage of the node's state.
pub trait Store: Send + 'static {
    fn gateways(&self) -> Result<Vec<GatewayRecord>, StoreError>;
    fn destinations(&self) -> Result<Vec<DestinationRecord>, StoreError>;
    fn plan(&self) -> Result<Option<Plan>, StoreError>;
    /// Applies every op atomically and makes it durable where the configuration lives
    /// (sled alone, or etcd and then the local copy) before returning.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Applies ops that are already durable in the cluster's store (replicated from it) to
    /// the local copy, recording the revision they bring it to.
    fn apply_replicated(&self, ops: &[Op], revision: i64) -> Result<(), StoreError>;
    /// The cluster revision the local copy has applied (`None` outside a cluster).
    fn revision(&self) -> Result<Option<i64>, StoreError>;
    /// The cluster's changes after the local copy's revision, up to at least `revision`,
    /// read from the cluster's store now (a write found the copy stale). Outside a cluster
    /// there are none.
    fn changes_until(&self, revision: i64) -> Result<Replicated, StoreError>;
    /// Appends to a gateway's event log (flushed periodically, not per event), keeping at
    /// most `keep` newest events of that gateway.
    fn append_event(&self, event: &EventRecord, keep: usize) -> Result<(), StoreError>;
    /// A gateway's events, newest first.
    fn events(&self, gateway_id: &str, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    fn delete_events(&self, gateway_id: &str) -> Result<(), StoreError>;
    /// A value of the `meta` tree (node id, schema version, ...).
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}
