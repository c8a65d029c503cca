//! Admitting a cloud connection: the checks every connection passes, the session that
//! carries it, and the guard that gives its slot back (see [`crate::actors::admission`]).

use super::{Gateway, SessionEntry, OPEN_SWEEP_MIN};
use crate::actors::admission::{ConnectionGuard, OpenConnection, Refused, Ticket};
use crate::actors::client_book::ClientBook;
use crate::records::EventKind;
use crate::workers::Worker;
use actix::prelude::*;
use sg_proto::driver::SessionHandle;
use sg_proto::frame::OpenStream;
use sg_proto::limits::SESSION_SUSPECT_AFTER;
use std::sync::Arc;

impl Gateway {
    /// The least-loaded open session that is `eligible`, preferring this gateway's thread.
    fn pick_session(
        &mut self,
        eligible: impl Fn(&SessionEntry, &ClientBook) -> bool,
    ) -> Option<(SessionHandle, Worker)> {
        let here = self.worker;
        let book = &self.book;
        self.sessions
            .pick(
                |s| !s.handle.is_closed() && eligible(s, book),
                |s| s.handle.active_streams(),
                |s| s.worker.index == here,
            )
            .map(|s| (s.handle.clone(), s.worker.clone()))
    }

    pub(super) fn refuse(
        &self,
        why: Refused,
        kind: EventKind,
        dest: &str,
        message: String,
    ) -> Refused {
        self.live.refuse(why);
        self.shared
            .event(&self.record.id, kind, message, Some(dest), None);
        why
    }
}

impl Gateway {
    /// The checks every connection passes, whichever way it goes: the destination and its
    /// gateway are enabled, and the gateway is under its concurrency limit. `from` names
    /// the requesting application in the refusal's event.
    pub(super) fn admit(
        &mut self,
        dest: &str,
        from: &str,
        ctx: &mut Context<Self>,
    ) -> Result<(), Refused> {
        let Some(slot) = self.destinations.get(dest) else {
            return Err(Refused::DestinationDisabled);
        };
        if !slot.record.active || !slot.record.enabled {
            return Err(self.refuse(
                Refused::DestinationDisabled,
                EventKind::DestinationDisabled,
                dest,
                format!("refused a connection from {from} to disabled destination {dest}"),
            ));
        }
        if !self.record.enabled {
            return Err(self.refuse(
                Refused::GatewayDisabled,
                EventKind::GatewayDisabled,
                dest,
                format!("refused a connection from {from} to destination {dest}: gateway disabled"),
            ));
        }
        let limit = self.plan.max_connections_per_gateway;
        if self.live.active() + self.remote_active >= limit {
            let why = self.refuse(
                Refused::Limit,
                EventKind::LimitReached,
                dest,
                format!(
                    "refused a connection from {from} to destination {dest}: {limit} concurrent connections is the limit"
                ),
            );
            self.refuse_over_limit(ctx);
            return Err(why);
        }
        Ok(())
    }

    /// Bytes carried to the resources and to the cloud: closed connections' and open ones'.
    pub(super) fn bytes_now(&mut self) -> (u64, u64) {
        // Hold every open guard while the totals are read, so none adds itself to them
        // in between (it would be counted twice); one that finished just before is in
        // neither sum for a moment, which `reported_*` (never lower) hides.
        let held: Vec<Arc<ConnectionGuard>> = self
            .open
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        self.open = held.iter().map(Arc::downgrade).collect();
        let (closed_to_resources, closed_to_cloud) = self.live.closed_bytes();
        let (to_resources, to_cloud) = held
            .iter()
            .map(|g| g.bytes())
            .fold((closed_to_resources, closed_to_cloud), |(a, b), (x, y)| {
                (a + x, b + y)
            });
        drop(held);
        self.live.report_bytes(to_resources, to_cloud)
    }

    /// The guard of an admitted connection; `reversed` for a cloud destination's, whose
    /// bytes towards the resource are the ones its pump writes.
    pub(super) fn guard(&mut self, reversed: bool) -> Arc<ConnectionGuard> {
        if self.open.len() >= self.sweep_at {
            self.open.retain(|g| g.strong_count() > 0);
            self.sweep_at = (self.open.len() * 2).max(OPEN_SWEEP_MIN);
        }
        let guard = Arc::new(self.new_guard(reversed));
        self.open.push(Arc::downgrade(&guard));
        guard
    }

    fn new_guard(&self, reversed: bool) -> ConnectionGuard {
        ConnectionGuard::new(
            self.live.clone(),
            self.plan
                .max_connections_per_gateway
                .saturating_sub(self.remote_active),
            reversed,
            self.shared.connections.enter(),
            self.shared.timings.clone(),
        )
    }
}

impl Handler<OpenConnection> for Gateway {
    type Result = Result<Ticket, Refused>;
    fn handle(&mut self, msg: OpenConnection, ctx: &mut Self::Context) -> Self::Result {
        let dest = msg.destination_id.as_str();
        let peer = msg.peer;
        self.admit(dest, &peer.to_string(), ctx)?;
        let authorities = self
            .destinations
            .get(dest)
            .and_then(|slot| slot.record.cloud_port)
            .map(|port| self.shared.cloud_authorities(port))
            .unwrap_or_default();
        // A session that has gone silent (a partitioned client) is passed over while a
        // lively one exists, and a client that cannot reach the service (F31) while one
        // that can does: a silent session cannot say how it is, so liveness comes first.
        // With none, any session is still better than a refusal.
        let lively = |s: &SessionEntry| s.handle.silent_for() < SESSION_SUSPECT_AFTER;
        let healthy = |s: &SessionEntry, b: &ClientBook| b.sees_healthy(&s.client_id, dest);
        let picked = self
            .pick_session(|s, b| healthy(s, b) && lively(s))
            .or_else(|| self.pick_session(|s, _| lively(s)))
            .or_else(|| self.pick_session(healthy))
            .or_else(|| self.pick_session(|_, _| true));
        let Some((session, worker)) = picked else {
            return Err(self.refuse(
                Refused::NoClient,
                EventKind::SessionRefused,
                dest,
                format!("refused a connection from {peer} to destination {dest}: no client is connected"),
            ));
        };
        let guard = self.guard(false);
        if !msg.defer_slot && !guard.take_slot() {
            return Err(Refused::Limit);
        }
        Ok(Ticket {
            session,
            open: OpenStream {
                destination_id: dest.to_string(),
                peer: peer.to_string(),
                connection: self.shared.next_connection(),
                authorities,
                local: msg.local.map(|a| a.to_string()),
            },
            worker,
            gateway_id: self.record.id.clone(),
            guard,
        })
    }
}
