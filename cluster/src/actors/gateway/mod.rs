//! The Gateway actor: one per gateway. It owns the gateway's live state — its record, its
//! destinations' listeners, its client sessions and its concurrency count — and makes the
//! per-connection decision: admit or refuse, and on which session.
//!
//! This file holds the actor and its state; its messages are grouped by job:
//! [`control`] (what the node tells it as configuration and the cluster change),
//! [`sessions`] (clients authenticating, coming and going, reporting health, being
//! killed), [`connections`] (admitting cloud connections, see [`super::admission`]),
//! [`cloud`] (connections a client asks to carry to a cloud destination) and [`views`]
//! (what the API and `/metrics` read).

mod cloud;
mod connections;
mod control;
mod sessions;
mod views;

pub use cloud::{CloudTicket, OpenCloudConnection};
pub use control::{
    Barrier, CloseListeners, CloseSessions, Remove, RemoveDestination, SendGoAway, SetNodes,
    SetPlan, SetRemoteActive, UpdateRecord, UpsertDestination,
};
pub use sessions::{Authenticate, Authenticated, KillClient, ReportHealth, SessionDown, SessionUp};
pub use views::{GatewayMetrics, GetMetrics, GetStats, ListClients};

use super::admission::{ConnectionGuard, LiveCounters};
use super::client_book::{ClientBook, GoneClient};
use super::destination::{self, DestinationActor};
use super::NodeShared;
use crate::records::{DestinationRecord, EventKind, GatewayRecord, Plan};
use crate::selection::SessionSet;
use crate::time::rfc3339;
use crate::workers::Worker;
use actix::prelude::*;
use sg_proto::driver::SessionHandle;
use sg_proto::frame::{Frame, GatewayConfig, NodeList, Notice, NoticeKind};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The list of open connections is swept of finished ones once it is this long (and then
/// when it doubles), so keeping it costs O(1) per connection.
const OPEN_SWEEP_MIN: usize = 64;

/// Clients hear about refused connections at most this often (F7).
pub const LIMIT_NOTICE_INTERVAL: Duration = Duration::from_secs(30);

pub struct Gateway {
    shared: Arc<NodeShared>,
    /// The worker arbiter this gateway (and its cloud ports) runs on.
    worker: usize,
    record: GatewayRecord,
    plan: Plan,
    destinations: HashMap<String, Slot>,
    sessions: SessionSet<SessionEntry>,
    /// Live connection figures, shared with every connection's guard: a finished
    /// connection gives its slot back without a message to this actor.
    live: Arc<LiveCounters>,
    notice: LimitNotice,
    /// The configuration sessions were last sent: a change clients cannot see (IP rules,
    /// cloud TLS, a port) sends nothing.
    pushed: Option<GatewayConfig>,
    /// Connections the gateway has open on the other nodes of the cluster, as they last
    /// published it; counted against the concurrency limit with this node's own.
    remote_active: u32,
    /// The cluster's live nodes, as clients are told.
    nodes: Arc<NodeList>,
    /// Each client's view of the destinations' health, and the clients gone lately.
    book: ClientBook,
    /// The guards of the connections carried now, whose bytes the figures include before
    /// they close (a week-long connection shows its bytes as they flow).
    open: Vec<std::sync::Weak<ConnectionGuard>>,
    /// When `open` is next swept of finished connections.
    sweep_at: usize,
}

struct Slot {
    record: DestinationRecord,
    /// The listening actor and the port it serves.
    listener: Option<(u16, Addr<DestinationActor>)>,
}

#[derive(Default)]
struct LimitNotice {
    pending: u64,
    last: Option<Instant>,
    scheduled: bool,
}

/// A client session registered for this gateway.
pub struct SessionEntry {
    pub session_id: String,
    pub client_id: String,
    pub client_version: String,
    pub hostname: String,
    pub peer: SocketAddr,
    pub connected_at: u64,
    pub handle: SessionHandle,
    pub worker: Worker,
    /// The token hash the session authenticated against; stale after regeneration.
    pub token_hash: String,
    /// The protocol minor the client speaks (what frames it understands).
    pub protocol_minor: u16,
}

/// What a new Gateway actor starts from, besides its record.
pub struct GatewayStart {
    pub plan: Plan,
    pub worker: usize,
    /// Its counters, which the Node keeps too (to publish them to the cluster).
    pub live: Arc<LiveCounters>,
    pub remote_active: u32,
    pub nodes: Arc<NodeList>,
}

impl Gateway {
    pub fn new(shared: Arc<NodeShared>, record: GatewayRecord, start: GatewayStart) -> Self {
        Gateway {
            shared,
            worker: start.worker,
            record,
            plan: start.plan,
            destinations: HashMap::new(),
            sessions: SessionSet::default(),
            live: start.live,
            notice: LimitNotice::default(),
            pushed: None,
            remote_active: start.remote_active,
            nodes: start.nodes,
            book: ClientBook::default(),
            open: Vec::new(),
            sweep_at: OPEN_SWEEP_MIN,
        }
    }

    fn id(&self) -> &str {
        &self.record.id
    }

    /// What every client of this gateway must serve.
    fn client_config(&self) -> GatewayConfig {
        let active = self
            .destinations
            .values()
            .map(|s| &s.record)
            .filter(|d| d.active);
        crate::client_config::client_config(&self.record, active)
    }

    /// Sends the configuration to every session, if it differs from what they have.
    fn push_config(&mut self) {
        let config = self.client_config();
        if self.pushed.as_ref() == Some(&config) {
            return;
        }
        for s in self.sessions.iter() {
            let _ = s
                .handle
                .send_control(Frame::Config(Box::new(config.clone())));
        }
        self.pushed = Some(config);
    }

    fn close_sessions(&mut self, reason: &str) {
        let closed: Vec<SessionEntry> = self.sessions.drain().collect();
        for s in &closed {
            let _ = s.handle.send_control(Frame::Notice(Notice {
                kind: NoticeKind::SessionClosed,
                message: reason.to_string(),
                count: 0,
            }));
            s.handle.close(reason.to_string());
        }
        self.note_gone(closed, reason);
    }

    /// Remembers the clients among `closed` that have no session left, and why they went.
    fn note_gone(&mut self, closed: Vec<SessionEntry>, reason: &str) {
        for s in closed {
            if self.sessions.iter().any(|o| o.client_id == s.client_id) {
                continue;
            }
            self.book.gone(GoneClient {
                client_id: s.client_id,
                version: s.client_version,
                hostname: s.hostname,
                address: s.peer.ip().to_string(),
                connected_at: rfc3339(s.connected_at),
                disconnected_at: String::new(),
                reason: reason.to_string(),
            });
        }
    }

    fn sync_listener(&mut self, id: &str, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient();
        let shared = self.shared.clone();
        let Some(slot) = self.destinations.get_mut(id) else {
            return;
        };
        let want = if slot.record.active {
            slot.record.cloud_port
        } else {
            None
        };
        if let Some((port, addr)) = &slot.listener {
            if want == Some(*port) {
                addr.do_send(destination::UpdateRecord(slot.record.clone()));
                return;
            }
        }
        if let Some((_, addr)) = slot.listener.take() {
            addr.do_send(destination::Stop);
            shared.listening.closed(id);
        }
        if shared.status.listeners_closed() {
            // Draining: the cloud ports are closed for good.
            return;
        }
        if let Some(port) = want {
            let record = slot.record.clone();
            let bound = destination::bind(shared.cloud_bind, port);
            match &bound {
                Ok(_) => shared.listening.listening(id),
                Err(e) => shared.listening.failed(id, e.to_string()),
            }
            if let Err(e) = &bound {
                shared.event(
                    &record.gateway_id,
                    EventKind::PortBindFailed,
                    format!(
                        "cannot listen on cloud port {port} for destination {}: {e}; retrying",
                        record.id
                    ),
                    Some(&record.id),
                    None,
                );
            }
            let listener = bound.ok();
            let (worker, live) = (self.worker, self.live.clone());
            slot.listener = Some((
                port,
                Supervisor::start(move |_| {
                    DestinationActor::new(shared, me, record, listener, worker, live)
                }),
            ));
        }
    }

    fn refuse_over_limit(&mut self, ctx: &mut Context<Self>) {
        self.notice.pending += 1;
        let due = self
            .notice
            .last
            .is_none_or(|t| t.elapsed() >= LIMIT_NOTICE_INTERVAL);
        if due {
            self.send_limit_notice();
        } else if !self.notice.scheduled {
            self.notice.scheduled = true;
            let wait = self
                .notice
                .last
                .map(|t| LIMIT_NOTICE_INTERVAL.saturating_sub(t.elapsed()))
                .unwrap_or_default();
            ctx.run_later(wait, |act, _| {
                act.notice.scheduled = false;
                if act.notice.pending > 0 {
                    act.send_limit_notice();
                }
            });
        }
    }

    fn send_limit_notice(&mut self) {
        let count = std::mem::take(&mut self.notice.pending);
        self.notice.last = Some(Instant::now());
        let limit = self.plan.max_connections_per_gateway;
        let message = format!(
            "{count} connection(s) to gateway {} refused: the limit of {limit} concurrent connections was reached",
            self.record.id
        );
        // One notice per client process, not per session: each client logs one line.
        let mut told: Vec<&str> = Vec::new();
        for s in self.sessions.iter() {
            if told.contains(&s.client_id.as_str()) {
                continue;
            }
            told.push(&s.client_id);
            let _ = s.handle.send_control(Frame::Notice(Notice {
                kind: NoticeKind::ConnectionLimit,
                message: message.clone(),
                count,
            }));
        }
    }
}

impl Actor for Gateway {
    type Context = Context<Self>;

    /// Debug builds only: `SG_DEBUG_PANIC_GATEWAY=NAME` makes the actor of the gateway
    /// named NAME panic as it starts, so tests can prove the panic policy.
    #[cfg(debug_assertions)]
    fn started(&mut self, _: &mut Self::Context) {
        if std::env::var("SG_DEBUG_PANIC_GATEWAY").is_ok_and(|n| n == self.record.name) {
            panic!(
                "SG_DEBUG_PANIC_GATEWAY: a panic injected into gateway {}",
                self.record.name
            );
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for (id, slot) in self.destinations.iter_mut() {
            if let Some((_, addr)) = slot.listener.take() {
                addr.do_send(destination::Stop);
                self.shared.listening.closed(id);
            }
        }
    }
}
