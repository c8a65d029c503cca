//! The node's authoritative state and every rule about changing it.
//!
//! [`State`] is the single writer: each operation validates its request against the whole
//! state (plan limits, active/enabled rules, ports), commits one atomic batch to the
//! [`Store`] — which returns only once the batch is on disk — and only then updates memory
//! and returns the [`Change`]s the actors must apply. It does no I/O beyond the store, so
//! the rules are unit-tested directly (see the tests below).

use crate::client_config::{client_config, encoded_len, MAX_CLIENT_CONFIG};
use crate::cloud_dest::{self, NodeEndpoints};
use crate::controls::{validate_resource_tls, CloudTls, FieldError, IpRules};
use crate::ids::{hash_token, new_id, new_token};
use crate::inputs;
use crate::pki::CertificateAuthority;
use crate::ports::PortPool;
use crate::records::{DestinationRecord, EventRecord, GatewayRecord, Plan, RECORD_VERSION};
use crate::store::{Op, Replicated, Snapshot, Store, StoreError};
use crate::time::now_secs;
use sg_api::destinations::{DestinationPatch, HealthCheckInput, NewDestination};
use sg_api::gateways::{GatewayPatch, NewGateway};
use sg_api::node::PlanUpdate;
use sg_api::ErrorCode;
use sg_proto::frame::{AppProtocol, DestinationKind};
use sg_proto::health::HealthCheck;
use std::collections::BTreeMap;
use std::sync::Arc;

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
const MAX_NAME_LEN: usize = 64;
const MAX_HOST_LEN: usize = 253;

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

/// A health check as asked for, with the defaults filled in.
fn health_check_of(input: HealthCheckInput) -> HealthCheck {
    let d = HealthCheck::default();
    HealthCheck {
        kind: input.kind.map_or(d.kind, inputs::health_kind),
        path: input.path,
        interval_secs: input.interval_secs.unwrap_or(d.interval_secs),
        timeout_secs: input.timeout_secs.unwrap_or(d.timeout_secs),
        unhealthy_after: input.unhealthy_after.unwrap_or(d.unhealthy_after),
        healthy_after: input.healthy_after.unwrap_or(d.healthy_after),
    }
}

/// A health check's settings, checked; the default check is stored as `None`.
fn validate_health_check(c: Option<HealthCheckInput>) -> Result<Option<HealthCheck>, StateError> {
    let Some(c) = c.map(health_check_of) else {
        return Ok(None);
    };
    c.validate()
        .map_err(|e| StateError::invalid(format!("health_check.{}", e.field), e.reason.clone()))?;
    Ok((c != HealthCheck::default()).then_some(c))
}

/// Host rewriting reads HTTP requests: only an HTTP destination can have it.
fn check_host_rewrite(d: &DestinationRecord) -> Result<(), StateError> {
    if d.host_rewrite && d.protocol != AppProtocol::Http {
        return Err(StateError::invalid(
            "host_rewrite",
            "needs \"protocol\": \"http\" (the client rewrites the Host of HTTP requests)",
        ));
    }
    Ok(())
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

fn validate_name(field: &str, name: &str) -> Result<String, StateError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StateError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(StateError::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(StateError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

fn validate_host(host: &str) -> Result<String, StateError> {
    let host = host.trim();
    if host.is_empty() {
        return Err(StateError::invalid("resource_host", "must not be empty"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(StateError::invalid(
            "resource_host",
            format!("must be at most {MAX_HOST_LEN} characters"),
        ));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
    {
        return Err(StateError::invalid(
            "resource_host",
            "must be a host name or IP address, without scheme, path or spaces",
        ));
    }
    Ok(host.to_string())
}

/// Longest idle timeout one may set: an hour.
pub const MAX_IDLE_TIMEOUT_SECS: u32 = 3600;

fn validate_idle_timeout(secs: u32) -> Result<u32, StateError> {
    if secs > MAX_IDLE_TIMEOUT_SECS {
        return Err(StateError::invalid(
            "idle_timeout_secs",
            format!("must be 0 (never) or 1-{MAX_IDLE_TIMEOUT_SECS}"),
        ));
    }
    Ok(secs)
}

fn validate_port(field: &str, port: u32) -> Result<u16, StateError> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(StateError::invalid(
            field,
            format!("{port} is not a port (1-65535)"),
        )),
    }
}

fn token_expiry(days: Option<u32>) -> Result<u64, StateError> {
    let days = days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if days == 0 || days > MAX_TOKEN_DAYS {
        return Err(StateError::invalid(
            "token_expires_in_days",
            format!("must be between 1 and {MAX_TOKEN_DAYS}"),
        ));
    }
    Ok(now_secs() + u64::from(days) * 86_400)
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

    /// After a new plan epoch: what was active under the old one is inactive now.
    fn renormalize(&mut self) -> Vec<Change> {
        let epoch = self.plan.epoch;
        let mut changes = Vec::new();
        for g in self.gateways.values_mut() {
            let e = effective_gateway(g.clone(), epoch);
            if e != *g {
                *g = e.clone();
                changes.push(Change::Gateway(e));
            }
        }
        for d in self.destinations.values_mut() {
            let e = effective_destination(d.clone(), epoch);
            if e != *d {
                if let Some(p) = d.cloud_port {
                    self.ports.release(p);
                }
                *d = e.clone();
                changes.push(Change::Destination(e));
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

    // ---- gateways -------------------------------------------------------------------

    pub fn create_gateway(
        &mut self,
        req: NewGateway,
    ) -> Result<(IssuedToken, Vec<Change>), StateError> {
        let name = validate_name("name", &req.name)?;
        let expires = token_expiry(req.token_expires_in_days)?;
        let active = req.active.unwrap_or(true);
        if active && self.active_gateways() >= self.plan.max_gateways {
            return Err(StateError::LimitReached {
                limit: "max_gateways",
                max: self.plan.max_gateways,
            });
        }
        let token = new_token();
        let gateway = GatewayRecord {
            v: RECORD_VERSION,
            id: new_id("gw"),
            name,
            token_hash: hash_token(&token),
            token_expires_at: expires,
            created_at: now_secs(),
            active,
            enabled: req.enabled.unwrap_or(true),
            acl: Vec::new(),
            epoch: self.plan.epoch,
        };
        let changes = self.commit(vec![Op::PutGateway(gateway.clone())])?;
        Ok((IssuedToken { gateway, token }, changes))
    }

    pub fn update_gateway(
        &mut self,
        id: &str,
        patch: GatewayPatch,
    ) -> Result<(GatewayRecord, Vec<Change>), StateError> {
        let old = self.gateway(id)?.clone();
        let mut gw = old.clone();
        if let Some(name) = &patch.name {
            gw.name = validate_name("name", name)?;
        }
        if let Some(enabled) = patch.enabled {
            gw.enabled = enabled;
        }
        let mut ops = Vec::new();
        match patch.active {
            // Also when already inactive: a deactivation cut short (a cluster write spans
            // several transactions) is finished by asking again.
            Some(false) => {
                gw.active = false;
                for mut d in self.destinations_of(id)? {
                    if d.active {
                        d.active = false;
                        d.suspended = true;
                        d.last_cloud_port = d.cloud_port.take().or(d.last_cloud_port);
                        ops.push(Op::PutDestination(d));
                    }
                }
            }
            Some(true) => {
                if !old.active && self.active_gateways() >= self.plan.max_gateways {
                    return Err(StateError::LimitReached {
                        limit: "max_gateways",
                        max: self.plan.max_gateways,
                    });
                }
                gw.active = true;
                // Bring back the destinations the gateway took down, as far as the plan
                // allows (asking again brings back what fits later).
                let mut room = self
                    .plan
                    .max_destinations
                    .saturating_sub(self.active_destinations());
                let mut taken = Vec::new();
                for mut d in self.destinations_of(id)? {
                    if !d.suspended || room == 0 {
                        continue;
                    }
                    if !d.has_cloud_port() {
                        d.active = true;
                        d.suspended = false;
                        room -= 1;
                        ops.push(Op::PutDestination(d));
                        continue;
                    }
                    let preferred = d.last_cloud_port.filter(|p| !taken.contains(p));
                    // Without room or a port it stays suspended, for the next activation.
                    if let Some(port) = self.ports.pick_excluding(preferred, &taken) {
                        taken.push(port);
                        d.cloud_port = Some(port);
                        d.last_cloud_port = Some(port);
                        d.active = true;
                        d.suspended = false;
                        room -= 1;
                        ops.push(Op::PutDestination(d));
                    }
                }
            }
            None => {}
        }
        if gw == old && ops.is_empty() {
            return Ok((gw, Vec::new()));
        }
        ops.insert(0, Op::PutGateway(gw.clone()));
        let changes = self.commit(ops)?;
        Ok((self.gateway(id)?.clone(), changes))
    }

    /// Deletes a gateway with its destinations.
    pub fn delete_gateway(&mut self, id: &str) -> Result<Vec<Change>, StateError> {
        self.gateway(id)?;
        let mut ops: Vec<Op> = self
            .destinations_of(id)?
            .into_iter()
            .map(|d| Op::DeleteDestination {
                gateway_id: d.gateway_id,
                id: d.id,
            })
            .collect();
        ops.push(Op::DeleteGateway(id.to_string()));
        self.commit(ops)
    }

    pub fn regenerate_token(
        &mut self,
        id: &str,
        expires_in_days: Option<u32>,
    ) -> Result<(IssuedToken, Vec<Change>), StateError> {
        let mut gw = self.gateway(id)?.clone();
        let token = new_token();
        gw.token_hash = hash_token(&token);
        gw.token_expires_at = token_expiry(expires_in_days)?;
        let changes = self.commit(vec![Op::PutGateway(gw.clone())])?;
        Ok((IssuedToken { gateway: gw, token }, changes))
    }

    /// Replaces a gateway's ACL. Each rule must parse; they are stored normalized.
    pub fn set_acl(
        &mut self,
        id: &str,
        rules: &[String],
    ) -> Result<(GatewayRecord, Vec<Change>), StateError> {
        let mut gw = self.gateway(id)?.clone();
        if rules.len() > MAX_ACL_RULES {
            return Err(StateError::invalid(
                "rules",
                format!("at most {MAX_ACL_RULES} rules"),
            ));
        }
        let mut normalized = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let rule = sg_proto::acl::parse_rule(r)
                .map_err(|e| StateError::invalid(format!("rules[{i}]"), e.0))?;
            normalized.push(rule.to_string());
        }
        if gw.acl == normalized {
            return Ok((gw, Vec::new()));
        }
        gw.acl = normalized;
        let changes = self.commit(vec![Op::PutGateway(gw.clone())])?;
        Ok((gw, changes))
    }

    // ---- destinations ---------------------------------------------------------------

    pub fn create_destination(
        &mut self,
        gateway_id: &str,
        req: NewDestination,
    ) -> Result<(DestinationRecord, Vec<Change>), StateError> {
        let gw = self.gateway(gateway_id)?.clone();
        let held = self
            .destinations
            .values()
            .filter(|d| d.gateway_id == gateway_id)
            .count();
        if held >= MAX_DESTINATIONS_PER_GATEWAY {
            return Err(StateError::Conflict {
                code: ErrorCode::TooManyDestinations,
                message: format!(
                    "gateway {gateway_id} already has {held} destinations, the most one gateway \
                     can hold; use another gateway"
                ),
            });
        }
        let name = validate_name("name", &req.name)?;
        let resource_host = validate_host(&req.resource_host)?;
        let resource_port = validate_port("resource_port", req.resource_port)?;
        let requested = req
            .cloud_port
            .map(|p| validate_port("cloud_port", p))
            .transpose()?;
        let kind = req.kind.map(inputs::kind).unwrap_or_default();
        if kind == DestinationKind::Cloud && requested.is_some() {
            return Err(StateError::invalid(
                "cloud_port",
                "a cloud destination has no cloud port: its clients listen on client_port",
            ));
        }
        let client_port = req
            .client_port
            .map(|p| validate_port("client_port", p))
            .transpose()?;
        let want_active = req.active.unwrap_or(true);
        let (active, suspended) = match (want_active, gw.active) {
            (true, true) => (true, false),
            // Created under an inactive gateway: it comes up when the gateway does.
            (true, false) => (false, true),
            (false, _) => (false, false),
        };
        if active && self.active_destinations() >= self.plan.max_destinations {
            return Err(StateError::LimitReached {
                limit: "max_destinations",
                max: self.plan.max_destinations,
            });
        }
        let ip_rules = match &req.ip_rules {
            Some(rules) => IpRules::parse(rules)?.1,
            None => Vec::new(),
        };
        let cloud_tls = match req.cloud_tls {
            Some(t) => CloudTls::from_input(t, self.issuer.ca.as_deref(), &self.issuer.cloud_host)?,
            None => CloudTls::default(),
        };
        let resource_tls = match &req.resource_tls {
            Some(t) => Some(validate_resource_tls(
                &inputs::resource_tls(t),
                &resource_host,
            )?),
            None => None,
        };
        let cloud_port = if active && kind == DestinationKind::OnPremises {
            Some(self.allocate(requested)?)
        } else {
            None
        };
        let d = DestinationRecord {
            v: RECORD_VERSION,
            id: new_id("ds"),
            gateway_id: gateway_id.to_string(),
            name,
            resource_host,
            resource_port,
            protocol: req.protocol.map(inputs::protocol).unwrap_or_default(),
            cloud_port,
            last_cloud_port: cloud_port.or(requested),
            active,
            enabled: req.enabled.unwrap_or(true),
            suspended,
            created_at: now_secs(),
            ip_rules,
            cloud_tls,
            resource_tls,
            epoch: self.plan.epoch,
            idle_timeout_secs: validate_idle_timeout(req.idle_timeout_secs.unwrap_or(0))?,
            max_connections_per_source: req.max_connections_per_source.unwrap_or(0),
            proxy_protocol: req.proxy_protocol.and_then(inputs::proxy),
            host_rewrite: req.host_rewrite.unwrap_or(false),
            kind,
            client_port,
            health_check: validate_health_check(req.health_check)?,
        };
        self.check_destination(&d)?;
        let changes = self.commit(vec![Op::PutDestination(d.clone())])?;
        Ok((d, changes))
    }

    /// The rules a destination's fields must keep together, whatever changed them.
    fn check_destination(&self, d: &DestinationRecord) -> Result<(), StateError> {
        check_host_rewrite(d)?;
        let siblings = self
            .destinations
            .values()
            .filter(|o| o.gateway_id == d.gateway_id);
        cloud_dest::check_kind(d, siblings, &self.issuer.node)?;
        Ok(())
    }

    /// A port for a destination: the requested one if free, else any free one.
    fn allocate(&self, requested: Option<u16>) -> Result<u16, StateError> {
        match requested {
            Some(p) => {
                if !self.ports.range().contains(&p) {
                    let r = self.ports.range();
                    return Err(StateError::invalid(
                        "cloud_port",
                        format!(
                            "{p} is outside the node's cloud port range {}-{}",
                            r.start(),
                            r.end()
                        ),
                    ));
                }
                if !self.ports.is_free(p) {
                    return Err(StateError::Conflict {
                        code: ErrorCode::PortInUse,
                        message: format!("cloud port {p} is already in use"),
                    });
                }
                Ok(p)
            }
            None => self.ports.pick(None).ok_or_else(|| self.no_free_port()),
        }
    }

    pub fn update_destination(
        &mut self,
        gateway_id: &str,
        id: &str,
        patch: DestinationPatch,
    ) -> Result<(DestinationRecord, Vec<Change>), StateError> {
        let old = self.destination(gateway_id, id)?.clone();
        let gw = self.gateway(gateway_id)?.clone();
        let mut d = old.clone();
        if let Some(name) = &patch.name {
            d.name = validate_name("name", name)?;
        }
        if let Some(host) = &patch.resource_host {
            d.resource_host = validate_host(host)?;
        }
        if let Some(port) = patch.resource_port {
            d.resource_port = validate_port("resource_port", port)?;
        }
        if let Some(p) = patch.protocol {
            d.protocol = inputs::protocol(p);
        }
        if let Some(enabled) = patch.enabled {
            d.enabled = enabled;
        }
        if let Some(secs) = patch.idle_timeout_secs {
            d.idle_timeout_secs = validate_idle_timeout(secs)?;
        }
        if let Some(n) = patch.max_connections_per_source {
            d.max_connections_per_source = n;
        }
        if let Some(p) = patch.proxy_protocol {
            d.proxy_protocol = inputs::proxy(p);
        }
        if let Some(h) = patch.host_rewrite {
            d.host_rewrite = h;
        }
        if let Some(kind) = patch.kind.map(inputs::kind).filter(|k| *k != d.kind) {
            return Err(StateError::invalid(
                "type",
                format!(
                    "a destination's type is fixed when it is created ({} here, not {}); \
                     create a new destination instead",
                    d.kind.as_str(),
                    kind.as_str()
                ),
            ));
        }
        if let Some(p) = patch.client_port {
            d.client_port = Some(validate_port("client_port", p)?);
        }
        if patch.health_check.is_some() {
            d.health_check = validate_health_check(patch.health_check)?;
        }
        if let Some(rules) = &patch.ip_rules {
            d.ip_rules = IpRules::parse(rules)?.1;
        }
        if let Some(t) = patch.cloud_tls {
            d.cloud_tls =
                CloudTls::from_input(t, self.issuer.ca.as_deref(), &self.issuer.cloud_host)?;
        }
        if let Some(t) = &patch.resource_tls {
            d.resource_tls = Some(validate_resource_tls(
                &inputs::resource_tls(t),
                &d.resource_host,
            )?);
        } else if patch.resource_host.is_some() {
            // A new host must still be a name the stored TLS settings can verify.
            if let Some(t) = &d.resource_tls {
                d.resource_tls = Some(validate_resource_tls(t, &d.resource_host)?);
            }
        }
        self.check_destination(&d)?;
        match (old.active, patch.active) {
            (false, Some(true)) => {
                if !gw.active {
                    return Err(StateError::Conflict {
                        code: ErrorCode::GatewayInactive,
                        message: format!(
                            "gateway {} ({}) is inactive; activate the gateway first",
                            gw.id, gw.name
                        ),
                    });
                }
                if self.active_destinations() >= self.plan.max_destinations {
                    return Err(StateError::LimitReached {
                        limit: "max_destinations",
                        max: self.plan.max_destinations,
                    });
                }
                if d.has_cloud_port() {
                    let port = self
                        .ports
                        .pick(old.last_cloud_port)
                        .ok_or_else(|| self.no_free_port())?;
                    d.cloud_port = Some(port);
                    d.last_cloud_port = Some(port);
                }
                d.active = true;
                d.suspended = false;
            }
            (true, Some(false)) => {
                d.active = false;
                d.last_cloud_port = d.cloud_port.take().or(d.last_cloud_port);
            }
            (false, Some(false)) => d.suspended = false,
            _ => {}
        }
        if d == old {
            return Ok((d, Vec::new()));
        }
        let changes = self.commit(vec![Op::PutDestination(d.clone())])?;
        Ok((d, changes))
    }

    pub fn delete_destination(
        &mut self,
        gateway_id: &str,
        id: &str,
    ) -> Result<Vec<Change>, StateError> {
        self.destination(gateway_id, id)?;
        self.commit(vec![Op::DeleteDestination {
            gateway_id: gateway_id.to_string(),
            id: id.to_string(),
        }])
    }

    // ---- plan -----------------------------------------------------------------------

    /// Changes the plan. Below current usage, every gateway becomes inactive and every
    /// cloud port is released; gateways can then be reactivated one by one.
    pub fn set_plan(&mut self, update: PlanUpdate) -> Result<(Plan, Vec<Change>), StateError> {
        let mut plan = self.plan;
        let check = |field: &str, v: Option<u32>, cur: u32| -> Result<u32, StateError> {
            match v {
                Some(0) => Err(StateError::invalid(field, "must be at least 1")),
                Some(v) => Ok(v),
                None => Ok(cur),
            }
        };
        plan.max_gateways = check("max_gateways", update.max_gateways, plan.max_gateways)?;
        plan.max_destinations = check(
            "max_destinations",
            update.max_destinations,
            plan.max_destinations,
        )?;
        plan.max_connections_per_gateway = check(
            "max_connections_per_gateway",
            update.max_connections_per_gateway,
            plan.max_connections_per_gateway,
        )?;
        if let Some(n) = update.max_clients_per_gateway {
            plan.max_clients_per_gateway = n;
        }
        let over = self.active_gateways() > plan.max_gateways
            || self.active_destinations() > plan.max_destinations;
        if over {
            // Everything active now was activated under the old epoch: one write makes it
            // all inactive (see `effective_gateway`).
            plan.epoch += 1;
        }
        if plan == self.plan {
            return Ok((plan, Vec::new()));
        }
        let changes = self.commit(vec![Op::PutPlan(plan)])?;
        Ok((plan, changes))
    }

    // ---- events ---------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use std::net::{Ipv4Addr, TcpListener};

    /// A state over a temp sled dir with a small port range that is free right now.
    fn state() -> (State, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let base = free_block(8);
        let ports = PortPool::new(base..=base + 7, Ipv4Addr::LOCALHOST.into());
        (State::open(Box::new(store), ports, issuer()).unwrap(), dir)
    }

    fn issuer() -> Issuer {
        Issuer {
            cloud_host: "127.0.0.1".into(),
            ca: None,
            node: NodeEndpoints {
                tunnel: "127.0.0.1:9000".parse().unwrap(),
                api: "127.0.0.1:9090".parse().unwrap(),
                cloud_host: "127.0.0.1".into(),
            },
        }
    }

    fn free_block(n: u16) -> u16 {
        'search: for base in (21000..31000u16).step_by(97) {
            for p in base..base + n {
                if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_err() {
                    continue 'search;
                }
            }
            return base;
        }
        panic!("no free block of ports");
    }

    fn gw(s: &mut State, name: &str) -> GatewayRecord {
        s.create_gateway(NewGateway {
            name: name.into(),
            ..Default::default()
        })
        .unwrap()
        .0
        .gateway
    }

    fn dest(s: &mut State, gw: &str) -> Result<DestinationRecord, StateError> {
        s.create_destination(
            gw,
            NewDestination {
                name: "db".into(),
                resource_host: "127.0.0.1".into(),
                resource_port: 5432,
                ..Default::default()
            },
        )
        .map(|(d, _)| d)
    }

    #[test]
    fn create_gateway_hashes_the_token_and_reloads() {
        let (mut s, dir) = state();
        let (issued, _) = s
            .create_gateway(NewGateway {
                name: " prod ".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(issued.gateway.name, "prod");
        assert!(crate::ids::token_matches(
            &issued.token,
            &issued.gateway.token_hash
        ));
        let d = dest(&mut s, &issued.gateway.id).unwrap();
        let port = d.cloud_port.expect("active destinations get a port");
        drop(s);
        let store = crate::store::sled_store_tests::reopen(dir.path());
        let again = State::open(
            Box::new(store),
            PortPool::new(port..=port, Ipv4Addr::LOCALHOST.into()),
            issuer(),
        )
        .unwrap();
        assert_eq!(again.gateways().len(), 1);
        let d2 = again.destination(&issued.gateway.id, &d.id).unwrap();
        assert_eq!(d2.cloud_port, Some(port), "the port survives a restart");
    }

    #[test]
    fn a_cloud_destination_never_takes_a_cloud_port_through_its_gateways_ups_and_downs() {
        let (mut s, _dir) = state();
        let g = gw(&mut s, "g");
        let (d, _) = s
            .create_destination(
                &g.id,
                NewDestination {
                    name: "cloud-db".into(),
                    resource_host: "db.cloud.example".into(),
                    resource_port: 5432,
                    kind: Some(sg_api::destinations::DestinationType::Cloud),
                    client_port: Some(15432),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(d.active && d.cloud_port.is_none(), "{d:?}");
        let down = GatewayPatch {
            active: Some(false),
            ..Default::default()
        };
        s.update_gateway(&g.id, down).unwrap();
        let up = GatewayPatch {
            active: Some(true),
            ..Default::default()
        };
        s.update_gateway(&g.id, up).unwrap();
        let back = s.destination(&g.id, &d.id).unwrap();
        assert!(back.active && back.cloud_port.is_none(), "{back:?}");
        // Every cloud port of the range is still free for on-premises destinations.
        for _ in 0..8 {
            assert!(dest(&mut s, &g.id).unwrap().cloud_port.is_some());
        }
    }

    #[test]
    fn invalid_input_names_the_field_and_stores_nothing() {
        let (mut s, _dir) = state();
        let err = s
            .create_gateway(NewGateway {
                name: "  ".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(&err, StateError::Invalid { field, .. } if field == "name"));
        let g = gw(&mut s, "g");
        for (host, port, field) in [
            ("", 1, "resource_host"),
            ("a b", 1, "resource_host"),
            ("h", 0, "resource_port"),
            ("h", 70000, "resource_port"),
        ] {
            let err = s
                .create_destination(
                    &g.id,
                    NewDestination {
                        name: "x".into(),
                        resource_host: host.into(),
                        resource_port: port,
                        ..Default::default()
                    },
                )
                .unwrap_err();
            assert!(
                matches!(&err, StateError::Invalid { field: f, .. } if f == field),
                "{err}"
            );
        }
        assert!(s.destinations_of(&g.id).unwrap().is_empty());
        assert!(matches!(
            s.create_gateway(NewGateway {
                name: "x".into(),
                token_expires_in_days: Some(0),
                ..Default::default()
            }),
            Err(StateError::Invalid { field, .. }) if field == "token_expires_in_days"
        ));
    }

    #[test]
    fn plan_limits_refuse_creates_with_the_limit_named() {
        let (mut s, _dir) = state();
        s.set_plan(PlanUpdate {
            max_gateways: Some(1),
            max_destinations: Some(1),
            ..Default::default()
        })
        .unwrap();
        let g = gw(&mut s, "a");
        let err = s
            .create_gateway(NewGateway {
                name: "b".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("max_gateways"), "{err}");
        dest(&mut s, &g.id).unwrap();
        let err = dest(&mut s, &g.id).unwrap_err();
        assert!(err.to_string().contains("max_destinations"), "{err}");
    }

    #[test]
    fn an_inactive_gateway_takes_its_destinations_down_and_back() {
        let (mut s, _dir) = state();
        let g = gw(&mut s, "a");
        // `d` holds the second port; with the first free again, only the preference for
        // its old port can bring the same one back.
        let filler = dest(&mut s, &g.id).unwrap();
        let d = dest(&mut s, &g.id).unwrap();
        let port = d.cloud_port.unwrap();
        s.delete_destination(&g.id, &filler.id).unwrap();
        s.update_gateway(
            &g.id,
            GatewayPatch {
                active: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        let down = s.destination(&g.id, &d.id).unwrap().clone();
        assert!(!down.active && down.cloud_port.is_none(), "port released");
        let err = s
            .update_destination(
                &g.id,
                &d.id,
                DestinationPatch {
                    active: Some(true),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains(&g.id), "names the gateway: {err}");
        s.update_gateway(
            &g.id,
            GatewayPatch {
                active: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
        let up = s.destination(&g.id, &d.id).unwrap();
        assert!(up.active);
        assert_eq!(
            up.cloud_port,
            Some(port),
            "the same port comes back when free"
        );
    }

    #[test]
    fn downgrading_below_usage_deactivates_everything() {
        let (mut s, _dir) = state();
        let a = gw(&mut s, "a");
        let _b = gw(&mut s, "b");
        dest(&mut s, &a.id).unwrap();
        s.set_plan(PlanUpdate {
            max_gateways: Some(1),
            ..Default::default()
        })
        .unwrap();
        assert!(s.gateways().iter().all(|g| !g.active));
        assert!(s
            .destinations_of(&a.id)
            .unwrap()
            .iter()
            .all(|d| d.cloud_port.is_none()));
        // One gateway fits again under the new plan, a second does not.
        s.update_gateway(
            &a.id,
            GatewayPatch {
                active: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.destinations_of(&a.id).unwrap()[0].active);
        let err = s
            .update_gateway(
                &_b.id,
                GatewayPatch {
                    active: Some(true),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(matches!(
            err,
            StateError::LimitReached {
                limit: "max_gateways",
                ..
            }
        ));
    }

    #[test]
    fn regenerating_the_token_invalidates_the_old_one() {
        let (mut s, _dir) = state();
        let (issued, _) = s
            .create_gateway(NewGateway {
                name: "a".into(),
                ..Default::default()
            })
            .unwrap();
        let (again, changes) = s.regenerate_token(&issued.gateway.id, None).unwrap();
        assert_ne!(issued.token, again.token);
        let stored = s.gateway(&issued.gateway.id).unwrap();
        assert!(!crate::ids::token_matches(
            &issued.token,
            &stored.token_hash
        ));
        assert!(crate::ids::token_matches(&again.token, &stored.token_hash));
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::TokenRegenerated { .. })));
    }

    #[test]
    fn deleting_a_gateway_deletes_its_destinations_and_frees_ports() {
        let (mut s, _dir) = state();
        let g = gw(&mut s, "a");
        let d = dest(&mut s, &g.id).unwrap();
        s.delete_gateway(&g.id).unwrap();
        assert!(matches!(s.gateway(&g.id), Err(StateError::NotFound { .. })));
        let g2 = gw(&mut s, "b");
        let d2 = dest(&mut s, &g2.id).unwrap();
        assert_eq!(d2.cloud_port, d.cloud_port, "the freed port is reused");
    }

    #[test]
    fn a_gateway_holds_a_bounded_number_of_destinations() {
        let (mut s, _dir) = state();
        let g = gw(&mut s, "a");
        for i in 0..MAX_DESTINATIONS_PER_GATEWAY {
            s.create_destination(
                &g.id,
                NewDestination {
                    name: format!("d{i}"),
                    resource_host: "10.0.0.1".into(),
                    resource_port: 80,
                    active: Some(false),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        let err = dest(&mut s, &g.id).unwrap_err();
        assert!(
            matches!(
                err,
                StateError::Conflict {
                    code: ErrorCode::TooManyDestinations,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn acl_rules_are_validated_and_normalized() {
        let (mut s, _dir) = state();
        let g = gw(&mut s, "a");
        let (rec, changes) = s
            .set_acl(
                &g.id,
                &["acl  allow  DB:5432".into(), "acl deny :22".into()],
            )
            .unwrap();
        assert_eq!(rec.acl, vec!["acl allow db:5432", "acl deny :22"]);
        assert_eq!(changes.len(), 1);
        let err = s.set_acl(&g.id, &["acl allow db".into()]).unwrap_err();
        assert!(
            matches!(&err, StateError::Invalid { field, .. } if field == "rules[0]"),
            "{err}"
        );
        assert_eq!(
            s.gateway(&g.id).unwrap().acl.len(),
            2,
            "nothing stored on refusal"
        );
    }

    #[test]
    fn a_snapshot_makes_the_copy_exactly_it_and_keeps_what_cannot_be_read() {
        let (mut s, _dir) = state();
        let a = gw(&mut s, "a");
        let b = gw(&mut s, "b");
        let d = dest(&mut s, &a.id).unwrap();
        let changes = s
            .replicate(Replicated::Snapshot(Snapshot {
                revision: 10,
                gateways: vec![b.clone()],
                unreadable: [a.id.clone()].into_iter().collect(),
                ..Default::default()
            }))
            .unwrap();
        assert!(s.gateway(&a.id).is_ok(), "an unreadable record is kept");
        assert!(
            s.destination(&a.id, &d.id).is_err(),
            "what is gone is deleted"
        );
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::DestinationRemoved { id, .. } if *id == d.id)));
        assert_eq!(s.store.revision().unwrap(), Some(10));
        // An older snapshot is refused unless etcd went back in time (a restore).
        let old = Snapshot {
            revision: 5,
            ..Default::default()
        };
        assert!(matches!(
            s.replicate(Replicated::Snapshot(old)),
            Err(StateError::Store(StoreError::Stale { .. }))
        ));
        let restored = Snapshot {
            revision: 5,
            restored: true,
            ..Default::default()
        };
        s.replicate(Replicated::Snapshot(restored)).unwrap();
        assert!(s.gateways().is_empty(), "a restore wins");
    }

    #[test]
    fn replicated_changes_apply_once_and_derive_what_the_actors_do() {
        let (mut s, _dir) = state();
        let a = gw(&mut s, "a");
        let mut rekeyed = a.clone();
        rekeyed.token_hash = "other".into();
        let batch = |through| Replicated::Changes {
            through,
            changes: vec![(through, Op::PutGateway(rekeyed.clone()))],
        };
        let changes = s.replicate(batch(7)).unwrap();
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::TokenRegenerated { .. })),
            "a new token hash closes the old sessions: {changes:?}"
        );
        assert!(s.replicate(batch(7)).unwrap().is_empty(), "seen already");
        let gone = Replicated::Changes {
            through: 8,
            changes: vec![(8, Op::DeleteGateway(a.id.clone()))],
        };
        assert!(matches!(
            s.replicate(gone).unwrap().as_slice(),
            [Change::GatewayRemoved { .. }]
        ));
    }

    #[test]
    fn a_downgrade_is_one_write_whatever_it_deactivates() {
        let (mut s, _dir) = state();
        for name in ["a", "b", "c"] {
            let g = gw(&mut s, name);
            dest(&mut s, &g.id).unwrap();
        }
        let before = s.plan().epoch;
        let (_, changes) = s
            .set_plan(PlanUpdate {
                max_gateways: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(s.plan().epoch, before + 1);
        // One stored plan; six derived changes (three gateways, three destinations).
        assert_eq!(
            s.store
                .gateways()
                .unwrap()
                .iter()
                .filter(|g| g.active)
                .count(),
            3,
            "the stored records were not rewritten"
        );
        assert_eq!(changes.len(), 1 + 6, "{changes:?}");
        assert!(
            s.gateways().iter().all(|g| !g.active),
            "all effectively inactive"
        );
    }

    #[test]
    fn running_out_of_ports_is_a_clear_error() {
        let (mut s, _dir) = state();
        let g = gw(&mut s, "a");
        for _ in 0..8 {
            dest(&mut s, &g.id).unwrap();
        }
        assert!(matches!(
            dest(&mut s, &g.id),
            Err(StateError::NoFreePort { .. })
        ));
    }
}
