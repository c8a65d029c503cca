//! Bringing this node's copy up to what the cluster's store replicated: changes newer than
//! the copy, or a whole snapshot it must become.

use super::{Change, State, StateError};
use crate::store::{Op, Replicated, Snapshot, StoreError};

impl State {
    /// Applies what the cluster's store replicated: changes newer than the copy, or a
    /// whole snapshot the copy must become (what is gone from it is deleted here too).
    pub fn replicate(&mut self, replicated: Replicated) -> Result<Vec<Change>, StateError> {
        let applied = self.store.revision()?.unwrap_or(0);
        let (ops, revision) = match replicated {
            Replicated::Changes { through, changes } => {
                if through <= applied {
                    return Ok(Vec::new());
                }
                let ops: Vec<Op> = changes
                    .into_iter()
                    .filter(|(r, _)| *r > applied)
                    .map(|(_, op)| op)
                    .collect();
                (ops, through)
            }
            Replicated::Snapshot(snapshot) => {
                if snapshot.revision < applied && !snapshot.restored {
                    // This node wrote something newer meanwhile: take a fresher snapshot.
                    return Err(StoreError::Stale { revision: applied }.into());
                }
                let revision = snapshot.revision;
                (self.diff(snapshot), revision)
            }
        };
        self.store.apply_replicated(&ops, revision)?;
        Ok(self.apply(ops))
    }

    /// A write found this copy behind the cluster (another node changed the configuration
    /// up to `revision`): bring it up to date from the cluster's store now, so the write can
    /// be validated again against the newer state at once.
    pub fn catch_up(&mut self, revision: i64) -> Result<Vec<Change>, StateError> {
        let changes = self.store.changes_until(revision)?;
        self.replicate(changes)
    }

    /// The ops that turn this copy into `snapshot`: the plan first (its epoch decides what
    /// is active), then puts, then deletes of what the snapshot no longer has.
    fn diff(&self, snapshot: Snapshot) -> Vec<Op> {
        let Snapshot {
            plan,
            gateways,
            destinations,
            unreadable,
            ..
        } = snapshot;
        let mut ops = vec![Op::PutPlan(plan.unwrap_or_default())];
        let keep_gw: std::collections::HashSet<String> =
            gateways.iter().map(|g| g.id.clone()).collect();
        let keep_ds: std::collections::HashSet<String> =
            destinations.iter().map(|d| d.id.clone()).collect();
        ops.extend(gateways.into_iter().map(Op::PutGateway));
        ops.extend(destinations.into_iter().map(Op::PutDestination));
        for d in self.destinations.values() {
            if !keep_ds.contains(&d.id) && !unreadable.contains(&d.id) {
                ops.push(Op::DeleteDestination {
                    gateway_id: d.gateway_id.clone(),
                    id: d.id.clone(),
                });
            }
        }
        for g in self.gateways.values() {
            if !keep_gw.contains(&g.id) && !unreadable.contains(&g.id) {
                ops.push(Op::DeleteGateway(g.id.clone()));
            }
        }
        ops
    }
}
