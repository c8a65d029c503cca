//! What `run` does for a node started with `--etcd`: connect (lazily), settle which cluster
//! the node serves, and start replication and presence once the actors exist.

use super::identity::{self, IdentityError, Membership};
use super::registry::{self, RegistryHandle};
use super::replicator::Replicator;
use super::store::{ClusterStore, Replication};
use super::{Etcd, EtcdError, EtcdRuntime};
use crate::actors::node::Node;
use crate::actors::state::StateActor;
use crate::config::{EtcdConfig, NodeConfig};
use crate::fleet::NodeRecord;
use crate::status::{NodeStatus, StoreHealth};
use crate::store::{SledStore, Store};
use actix::Addr;
use std::sync::Arc;
use std::time::Duration;

/// How long a node joining with an empty copy waits for it to fill before it serves.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A node's link to its cluster.
pub struct ClusterLink {
    pub etcd: Etcd,
    pub membership: Membership,
    pub replication: Arc<Replication>,
    /// Owns the runtime all etcd I/O runs on; dropped last.
    _runtime: EtcdRuntime,
}

impl ClusterLink {
    /// Connects and joins (or creates) the cluster. Blocking: run it off the event loop.
    pub fn establish(
        etcd_config: &EtcdConfig,
        local: &SledStore,
        config: &NodeConfig,
        node_id: &str,
    ) -> Result<ClusterLink, BootError> {
        let runtime = EtcdRuntime::start()?;
        let etcd = Etcd::connect(etcd_config, &runtime)?;
        let membership = identity::establish(&etcd, local, config, node_id, etcd_config.reseed)?;
        let applied = local.revision().ok().flatten().unwrap_or(0);
        Ok(ClusterLink {
            etcd,
            membership,
            replication: Arc::new(Replication::new(applied)),
            _runtime: runtime,
        })
    }

    /// The store the node's state uses: writes to etcd, reads from the local copy.
    pub fn store(&self, local: SledStore, status: Arc<NodeStatus>, node_id: &str) -> ClusterStore {
        ClusterStore::new(
            local,
            self.etcd.clone(),
            self.replication.clone(),
            status,
            node_id.to_string(),
        )
    }

    /// How the store stands until the replicator has a watch up.
    pub fn initial_health(&self) -> StoreHealth {
        match self.membership.health {
            StoreHealth::Detached => StoreHealth::Detached,
            _ => StoreHealth::Unreachable,
        }
    }

    /// Starts replication into the local copy. A node whose copy was empty waits until it
    /// has the cluster's configuration, so it never refuses a client for a gateway it just
    /// has not heard of yet.
    pub async fn start_replication(&self, state: Addr<StateActor>, status: Arc<NodeStatus>) {
        self.etcd.spawn(
            Replicator {
                etcd: self.etcd.clone(),
                state: state.recipient(),
                replication: self.replication.clone(),
                status,
                cluster_id: self.membership.cluster_id.clone(),
            }
            .run(),
        );
        if self.membership.fresh {
            let mut applied = self.replication.subscribe();
            let filled = tokio::time::timeout(FIRST_SYNC_WAIT, applied.wait_for(|r| *r > 0)).await;
            if !matches!(filled, Ok(Ok(_))) {
                tracing::warn!(
                    "the cluster's configuration has not arrived within {}s; serving anyway",
                    FIRST_SYNC_WAIT.as_secs()
                );
            }
        }
    }

    /// Registers this node (under a lease) and follows the fleet.
    pub fn register(&self, node: Addr<Node>, me: NodeRecord) -> RegistryHandle {
        registry::start(self.etcd.clone(), node, me)
    }
}
