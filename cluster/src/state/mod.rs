//! The node's authoritative state and every rule about changing it.
//!
//! [`State`] is the single writer: each operation validates its request against the whole
//! state (plan limits, active/enabled rules, ports), commits one atomic batch to the
//! [`Store`] — which returns only once the batch is on disk — and only then updates memory
//! and returns the [`Change`]s the actors must apply. It does no I/O beyond the store, so
//! the rules are unit-tested directly (see `tests.rs`).
//!
//! This file holds the state, its reads and the one commit path; the operations are grouped
//! by what they change: [`gateways`], [`destinations`], [`plan`], and [`replication`] (what
//! the cluster's store replicated); [`validate`] checks single fields.

mod destinations;
mod gateways;
mod plan;
mod replication;
#[cfg(test)]
mod tests;
mod validate;

use crate::client_config::{client_config, encoded_len, MAX_CLIENT_CONFIG};
use crate::cloud_dest::NodeEndpoints;
use crate::controls::FieldError;
use crate::pki::CertificateAuthority;
use crate::ports::PortPool;
use crate::records::{DestinationRecord, EventRecord, GatewayRecord, Plan};
use crate::store::{Op, Store, StoreError};
use sg_api::ErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;
pub use validate::MAX_IDLE_TIMEOUT_SECS;

/// Default lifetime of a gateway token.
pub const DEFAULT_TOKEN_DAYS: u32 = 365;
/// Longest token lifetime one may ask for.
pub const MAX_TOKEN_DAYS: u32 = 3650;
/// Events kept per gateway; older ones are dropped.
pub const EVENTS_PER_GATEWAY: usize = 1000;
/// Destinations one gateway may hold (active or not). Every client of the gateway receives
/// all of them in one configuration frame, which must stay well under the frame limit.
pub const MAX_DESTINATIONS_PER_GATEWAY: usize = 500;
/// ACL rules one gateway may hold.
pub const MAX_ACL_RULES: usize = 1000;

/// Why a request was not applied. Nothing is stored when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("plan limit reached: {limit} is {max}; raise it with `sgctl plan set` or deactivate something first")]
    LimitReached { limit: &'static str, max: u32 },
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("no free cloud port in {range}; widen --cloud-ports or free a port")]
    NoFreePort { range: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StateError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StateError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<FieldError> for StateError {
    fn from(e: FieldError) -> Self {
        StateError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// What the state knows of its node: how to issue certificates for TLS cloud ports, and
/// which ports of its own no cloud destination may point at.
#[derive(Clone)]
pub struct Issuer {
    pub cloud_host: String,
    /// The node's own CA; `None` when it serves an operator certificate.
    pub ca: Option<Arc<CertificateAuthority>>,
    pub node: NodeEndpoints,
}

/// What the actors must do after a committed change.
// One value per API call or command line: their size does not matter, boxing would
// only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Change {
    /// A gateway was created or changed.
    Gateway(GatewayRecord),
    GatewayRemoved {
        id: String,
    },
    /// A destination was created or changed; its listener follows `cloud_port`.
    Destination(DestinationRecord),
    DestinationRemoved {
        gateway_id: String,
        id: String,
    },
    /// Sessions authenticated with the old token must close.
    TokenRegenerated {
        gateway_id: String,
    },
    Plan(Plan),
}

/// A gateway just created or re-keyed, with the token shown this once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub gateway: GatewayRecord,
    pub token: String,
}

pub struct State {
    store: Box<dyn Store>,
    issuer: Issuer,
    plan: Plan,
    gateways: BTreeMap<String, GatewayRecord>,
    destinations: BTreeMap<String, DestinationRecord>,
    ports: PortPool,
}

/// A gateway as it stands under the plan's `epoch`: one activated under an earlier epoch
/// was deactivated by a plan downgrade. Deriving this instead of rewriting every record
/// keeps a downgrade one small write, whatever the number of gateways (etcd refuses large
/// transactions).
pub fn effective_gateway(mut g: GatewayRecord, epoch: u64) -> GatewayRecord {
    if g.active && g.epoch != epoch {
        g.active = false;
        g.epoch = epoch;
    }
    g
}

/// A destination as it stands under the plan's `epoch`: one active under an earlier epoch
/// is suspended, its port released, and comes back when its gateway is activated again.
pub fn effective_destination(mut d: DestinationRecord, epoch: u64) -> DestinationRecord {
    if d.active && d.epoch != epoch {
        d.active = false;
        d.suspended = true;
        d.last_cloud_port = d.cloud_port.take().or(d.last_cloud_port);
        d.epoch = epoch;
    }
    d
}

impl State {
    /// Loads everything from the store.
    pub fn open(
        store: Box<dyn Store>,
        mut ports: PortPool,
        issuer: Issuer,
    ) -> Result<Self, StoreError> {
        let plan = store.plan()?.unwrap_or_default();
        let gateways = store
            .gateways()?
            .into_iter()
            .map(|g| (g.id.clone(), effective_gateway(g, plan.epoch)))
            .collect();
        let destinations: BTreeMap<String, DestinationRecord> = store
            .destinations()?
            .into_iter()
            .map(|d| (d.id.clone(), effective_destination(d, plan.epoch)))
            .collect();
        for d in destinations.values() {
            if let Some(p) = d.cloud_port {
                ports.mark_used(p);
            }
        }
        Ok(State {
            store,
            issuer,
            plan,
            gateways,
            destinations,
            ports,
        })
    }

    /// Changes that bring freshly started actors up to the stored state.
    pub fn snapshot(&self) -> Vec<Change> {
        let mut out = vec![Change::Plan(self.plan)];
        out.extend(self.gateways.values().cloned().map(Change::Gateway));
        out.extend(self.destinations.values().cloned().map(Change::Destination));
        out
    }

    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// The plan with current usage, as the API shows it.
    pub fn gateways(&self) -> Vec<GatewayRecord> {
        self.gateways.values().cloned().collect()
    }

    pub fn gateway(&self, id: &str) -> Result<&GatewayRecord, StateError> {
        self.gateways.get(id).ok_or_else(|| StateError::NotFound {
            what: "gateway",
            id: id.to_string(),
        })
    }

    pub fn destinations_of(&self, gateway_id: &str) -> Result<Vec<DestinationRecord>, StateError> {
        self.gateway(gateway_id)?;
        Ok(self
            .destinations
            .values()
            .filter(|d| d.gateway_id == gateway_id)
            .cloned()
            .collect())
    }

    pub fn destination(
        &self,
        gateway_id: &str,
        id: &str,
    ) -> Result<&DestinationRecord, StateError> {
        self.gateway(gateway_id)?;
        self.destinations
            .get(id)
            .filter(|d| d.gateway_id == gateway_id)
            .ok_or_else(|| StateError::NotFound {
                what: "destination",
                id: id.to_string(),
            })
    }

    pub fn active_gateways(&self) -> u32 {
        self.gateways.values().filter(|g| g.active).count() as u32
    }

    pub fn active_destinations(&self) -> u32 {
        self.destinations.values().filter(|d| d.active).count() as u32
    }

    /// Commits `ops` durably, then applies them to memory; returns what the actors must do.
    /// Every record written carries the plan's epoch (see [`effective_gateway`]).
    fn commit(&mut self, mut ops: Vec<Op>) -> Result<Vec<Change>, StateError> {
        self.check_config_sizes(&ops)?;
        let epoch = ops
            .iter()
            .find_map(|op| match op {
                Op::PutPlan(p) => Some(p.epoch),
                _ => None,
            })
            .unwrap_or(self.plan.epoch);
        for op in &mut ops {
            match op {
                Op::PutGateway(g) => g.epoch = epoch,
                Op::PutDestination(d) => d.epoch = epoch,
                _ => {}
            }
        }
        self.store.commit(&ops)?;
        Ok(self.apply(ops))
    }

    /// Refuses ops that would make a gateway's client configuration larger than one frame.
    /// Every destination counts, active or not, so activating one later cannot overflow it.
    fn check_config_sizes(&self, ops: &[Op]) -> Result<(), StateError> {
        let mut touched: Vec<&str> = Vec::new();
        for op in ops {
            let id = match op {
                Op::PutGateway(g) => g.id.as_str(),
                Op::PutDestination(d) => d.gateway_id.as_str(),
                _ => continue,
            };
            if !touched.contains(&id) {
                touched.push(id);
            }
        }
        for id in touched {
            let gateway = ops
                .iter()
                .rev()
                .find_map(|op| match op {
                    Op::PutGateway(g) if g.id == id => Some(g),
                    _ => None,
                })
                .or_else(|| self.gateways.get(id));
            let Some(gateway) = gateway else { continue };
            let mut destinations: BTreeMap<&str, &DestinationRecord> = self
                .destinations
                .values()
                .filter(|d| d.gateway_id == id)
                .map(|d| (d.id.as_str(), d))
                .collect();
            for op in ops {
                if let Op::PutDestination(d) = op {
                    if d.gateway_id == id {
                        destinations.insert(d.id.as_str(), d);
                    }
                }
            }
            let config = client_config(gateway, destinations.into_values());
            let size = encoded_len(&config);
            if size > MAX_CLIENT_CONFIG {
                return Err(StateError::Conflict {
                    code: ErrorCode::ConfigTooLarge,
                    message: format!(
                        "this change would make gateway {id}'s configuration {size} bytes, more \
                         than the {MAX_CLIENT_CONFIG} bytes its clients can receive in one \
                         frame (destinations with their TLS certificates, and the ACL); use \
                         smaller CA bundles, fewer destinations or another gateway"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Applies durable ops to memory and derives the actors' changes from what differs, so
    /// a change made here and one replicated from another node take the same path.
    fn apply(&mut self, ops: Vec<Op>) -> Vec<Change> {
        let mut changes = Vec::new();
        for op in ops {
            match op {
                Op::PutGateway(g) => {
                    let g = effective_gateway(g, self.plan.epoch);
                    let old = self.gateways.insert(g.id.clone(), g.clone());
                    if old.as_ref() == Some(&g) {
                        continue;
                    }
                    let rekeyed = old.is_some_and(|o| o.token_hash != g.token_hash);
                    let id = g.id.clone();
                    changes.push(Change::Gateway(g));
                    if rekeyed {
                        changes.push(Change::TokenRegenerated { gateway_id: id });
                    }
                }
                Op::DeleteGateway(id) => {
                    if self.gateways.remove(&id).is_some() {
                        if let Err(e) = self.store.delete_events(&id) {
                            tracing::warn!(gateway = %id, "could not delete the event log: {e}");
                        }
                        changes.push(Change::GatewayRemoved { id });
                    }
                }
                Op::PutDestination(d) => {
                    let d = effective_destination(d, self.plan.epoch);
                    if let Some(old) = self.destinations.get(&d.id).and_then(|o| o.cloud_port) {
                        self.ports.release(old);
                    }
                    if let Some(p) = d.cloud_port {
                        self.ports.mark_used(p);
                    }
                    let old = self.destinations.insert(d.id.clone(), d.clone());
                    if old.as_ref() != Some(&d) {
                        changes.push(Change::Destination(d));
                    }
                }
                Op::DeleteDestination { id, .. } => {
                    if let Some(d) = self.destinations.remove(&id) {
                        if let Some(p) = d.cloud_port {
                            self.ports.release(p);
                        }
                        changes.push(Change::DestinationRemoved {
                            gateway_id: d.gateway_id,
                            id,
                        });
                    }
                }
                Op::PutPlan(p) => {
                    let new_epoch = p.epoch != self.plan.epoch;
                    if p != self.plan {
                        self.plan = p;
                        changes.push(Change::Plan(p));
                    }
                    if new_epoch {
                        changes.extend(self.renormalize());
                    }
                }
            }
        }
        changes
    }

    fn no_free_port(&self) -> StateError {
        let r = self.ports.range();
        StateError::NoFreePort {
            range: format!("{}-{}", r.start(), r.end()),
        }
    }

    pub fn record_event(&self, event: &EventRecord) {
        if !self.gateways.contains_key(&event.gateway_id) {
            return;
        }
        if let Err(e) = self.store.append_event(event, EVENTS_PER_GATEWAY) {
            tracing::warn!(gateway = %event.gateway_id, "could not record an event: {e}");
        }
    }

    pub fn events(&self, gateway_id: &str, limit: usize) -> Result<Vec<EventRecord>, StateError> {
        self.gateway(gateway_id)?;
        Ok(self.store.events(gateway_id, limit)?)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.store.meta(key)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.store.set_meta(key, value)
    }
}
