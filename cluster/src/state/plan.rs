//! The plan: its limits, and what a downgrade below current usage deactivates.

use super::{effective_destination, effective_gateway, Change, State, StateError};
use crate::records::Plan;
use crate::store::Op;
use sg_api::node::PlanUpdate;

impl State {
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

    /// After a new plan epoch: what was active under the old one is inactive now.
    pub(super) fn renormalize(&mut self) -> Vec<Change> {
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
}
