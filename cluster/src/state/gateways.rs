//! Gateways: create, update (activation included), delete, re-key, and their ACL.

use super::validate::{token_expiry, validate_name};
use super::{Change, IssuedToken, State, StateError, MAX_ACL_RULES};
use crate::ids::{hash_token, new_id, new_token};
use crate::records::{GatewayRecord, RECORD_VERSION};
use crate::store::Op;
use crate::time::now_secs;
use sg_api::gateways::{GatewayPatch, NewGateway};

impl State {
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
}
