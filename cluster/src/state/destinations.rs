//! Destinations: create, update, delete, each validated against its gateway, the plan and
//! the free cloud ports.

use super::validate::{
    check_host_rewrite, validate_health_check, validate_host, validate_idle_timeout, validate_name,
    validate_port,
};
use super::{Change, State, StateError, MAX_DESTINATIONS_PER_GATEWAY};
use crate::cloud_dest::{self};
use crate::controls::{validate_resource_tls, CloudTls, IpRules};
use crate::ids::new_id;
use crate::inputs;
use crate::records::{DestinationRecord, RECORD_VERSION};
use crate::store::Op;
use crate::time::now_secs;
use sg_api::destinations::{DestinationPatch, NewDestination};
use sg_api::ErrorCode;
use sg_proto::frame::DestinationKind;

impl State {
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
}
