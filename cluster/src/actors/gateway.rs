//! The Gateway actor: one per gateway. It owns the gateway's live state — its record, its
//! destinations' listeners, its client sessions and its concurrency count — and makes the
//! per-connection decision: admit or refuse, and on which session.

use super::client_book::{ClientBook, GoneClient};
use super::destination::{self, DestinationActor};
use super::NodeShared;
use crate::controls::IpRules;
use crate::ids::token_matches;
use crate::records::{DestinationRecord, EventKind, GatewayRecord, Plan};
use crate::selection::SessionSet;
use crate::time::{now_secs, rfc3339};
use crate::tracker::Tracked;
use crate::workers::Worker;
use actix::prelude::*;
use sg_api::clients::{ClientDestinationHealth, ClientState, ClientView, GatewayStats};
use sg_proto::driver::SessionHandle;
use sg_proto::frame::{
    DestinationKind, Frame, GatewayConfig, GoAway, NodeList, Notice, NoticeKind, OpenStream,
    Refusal, RefuseCode,
};
use sg_proto::health::HealthReport;
use sg_proto::limits::SESSION_SUSPECT_AFTER;
use sg_proto::pump::PumpCounters;
use sg_proto::version::{HEALTH_REPORTS_SINCE, NODE_LIST_SINCE};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

/// Why a cloud connection was refused (counted per reason for /metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    IpRule,
    DestinationDisabled,
    GatewayDisabled,
    Limit,
    NoClient,
    Tls,
    /// The source address already holds the destination's per-source share.
    SourceLimit,
}

impl Refused {
    pub const ALL: [Refused; 7] = [
        Refused::IpRule,
        Refused::DestinationDisabled,
        Refused::GatewayDisabled,
        Refused::Limit,
        Refused::NoClient,
        Refused::Tls,
        Refused::SourceLimit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refused::IpRule => "ip_rule",
            Refused::DestinationDisabled => "destination_disabled",
            Refused::GatewayDisabled => "gateway_disabled",
            Refused::Limit => "limit",
            Refused::NoClient => "no_client",
            Refused::Tls => "tls",
            Refused::SourceLimit => "source_limit",
        }
    }

    /// The reason in words, for a client told why its connection was refused.
    pub fn describe(self) -> &'static str {
        match self {
            Refused::IpRule => "not allowed by its IP rules",
            Refused::DestinationDisabled => "the destination is disabled",
            Refused::GatewayDisabled => "the gateway is disabled",
            Refused::Limit => "the gateway reached its concurrency limit",
            Refused::NoClient => "no client is connected",
            Refused::Tls => "the TLS handshake failed",
            Refused::SourceLimit => "its source address holds its share of connections",
        }
    }
}

/// A gateway's connection counters, updated from whatever thread a connection runs on.
#[derive(Debug, Default)]
pub struct LiveCounters {
    active: AtomicU32,
    total: AtomicU64,
    to_resources: AtomicU64,
    to_cloud: AtomicU64,
    refused: [AtomicU64; 7],
    /// Connections closed because they carried nothing for their destination's idle timeout.
    idle_closed: AtomicU64,
    /// The byte totals last reported (closed connections plus open ones): never less than
    /// before, so a counter read while a connection is closing cannot step back.
    reported_to_resources: AtomicU64,
    reported_to_cloud: AtomicU64,
}

impl LiveCounters {
    /// Connections open now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    pub fn refuse(&self, why: Refused) {
        if let Some(i) = Refused::ALL.iter().position(|r| *r == why) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn refused(&self, why: Refused) -> u64 {
        Refused::ALL
            .iter()
            .position(|r| *r == why)
            .map_or(0, |i| self.refused[i].load(Ordering::Relaxed))
    }

    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Ordering::Relaxed)
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.iter().map(|r| r.load(Ordering::Relaxed)).sum()
    }
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
        let me = ctx.address();
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

#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateRecord(pub GatewayRecord);

impl Handler<UpdateRecord> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: UpdateRecord, _: &mut Self::Context) {
        let old = std::mem::replace(&mut self.record, msg.0);
        if old.active && !self.record.active {
            self.close_sessions("the gateway was deactivated");
        } else {
            self.push_config();
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPlan(pub Plan);

impl Handler<SetPlan> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SetPlan, _: &mut Self::Context) {
        self.plan = msg.0;
    }
}

/// The gateway was deleted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove;

impl Handler<Remove> for Gateway {
    type Result = ();
    fn handle(&mut self, _: Remove, ctx: &mut Self::Context) {
        self.close_sessions("the gateway was deleted");
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSessions {
    pub reason: String,
}

impl Handler<CloseSessions> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: CloseSessions, _: &mut Self::Context) {
        let id = self.record.id.clone();
        let n = self.sessions.len();
        self.close_sessions(&msg.reason);
        if n > 0 {
            self.shared.event(
                &id,
                EventKind::SessionClosed,
                format!("closed {n} client session(s): {}", msg.reason),
                None,
                None,
            );
        }
    }
}

/// The node is draining: tell every client to make sure it is connected elsewhere.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct SendGoAway(pub GoAway);

impl Handler<SendGoAway> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SendGoAway, _: &mut Self::Context) {
        for s in self.sessions.iter() {
            let _ = s.handle.send_control(Frame::GoAway(msg.0.clone()));
        }
    }
}

/// The cluster's live nodes changed: every client that understands it hears of it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetNodes(pub Arc<NodeList>);

impl Handler<SetNodes> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SetNodes, _: &mut Self::Context) {
        if *self.nodes == *msg.0 {
            return;
        }
        self.nodes = msg.0;
        for s in self.sessions.iter() {
            if s.protocol_minor >= NODE_LIST_SINCE {
                let _ = s
                    .handle
                    .send_control(Frame::NodeList((*self.nodes).clone()));
            }
        }
    }
}

/// Connections the gateway has open on the other nodes changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRemoteActive(pub u32);

impl Handler<SetRemoteActive> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SetRemoteActive, _: &mut Self::Context) {
        self.remote_active = msg.0;
    }
}

/// Late in a drain: stop accepting on every cloud port. Carried connections go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseListeners;

impl Handler<CloseListeners> for Gateway {
    type Result = ();
    fn handle(&mut self, _: CloseListeners, _: &mut Self::Context) {
        for (id, slot) in self.destinations.iter_mut() {
            if let Some((_, addr)) = slot.listener.take() {
                addr.do_send(destination::Stop);
                self.shared.listening.closed(id);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UpsertDestination(pub DestinationRecord);

impl Handler<UpsertDestination> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: UpsertDestination, ctx: &mut Self::Context) {
        let id = msg.0.id.clone();
        match self.destinations.get_mut(&id) {
            Some(slot) => slot.record = msg.0,
            None => {
                self.destinations.insert(
                    id.clone(),
                    Slot {
                        record: msg.0,
                        listener: None,
                    },
                );
            }
        }
        self.sync_listener(&id, ctx);
        self.push_config();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveDestination(pub String);

impl Handler<RemoveDestination> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: RemoveDestination, _: &mut Self::Context) {
        if let Some(mut slot) = self.destinations.remove(&msg.0) {
            self.book.forget_destination(&msg.0);
            if let Some((_, addr)) = slot.listener.take() {
                addr.do_send(destination::Stop);
                self.shared.listening.closed(&msg.0);
            }
            self.push_config();
        }
    }
}

/// Answers after every earlier message to this gateway was handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier;

impl Handler<Barrier> for Gateway {
    type Result = ();
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

/// A client proving it may serve this gateway.
#[derive(Message)]
#[rtype(result = "Result<Authenticated, Refusal>")]
pub struct Authenticate {
    pub token: String,
    pub client_id: String,
    pub peer: SocketAddr,
}

/// What an accepted client gets.
pub struct Authenticated {
    pub config: GatewayConfig,
    pub token_hash: String,
}

impl Handler<Authenticate> for Gateway {
    type Result = Result<Authenticated, Refusal>;
    fn handle(&mut self, msg: Authenticate, _: &mut Self::Context) -> Self::Result {
        let id = self.record.id.clone();
        if !token_matches(&msg.token, &self.record.token_hash) {
            self.shared.event(
                &id,
                EventKind::BadToken,
                format!("refused a client from {}: wrong token", msg.peer),
                None,
                Some(&msg.client_id),
            );
            return Err(Refusal {
                code: RefuseCode::BadToken,
                message: format!(
                    "the token for gateway {id} is not valid; use the token shown when the gateway \
                     was created, or issue a new one with `sgctl gateway token {id}`"
                ),
            });
        }
        if now_secs() >= self.record.token_expires_at {
            let at = rfc3339(self.record.token_expires_at);
            self.shared.event(
                &id,
                EventKind::TokenExpired,
                format!("refused a client from {}: token expired at {at}", msg.peer),
                None,
                Some(&msg.client_id),
            );
            return Err(Refusal {
                code: RefuseCode::TokenExpired,
                message: format!(
                    "the token of gateway {id} expired at {at}; issue a new one with \
                     `sgctl gateway token {id}` and restart the client with it"
                ),
            });
        }
        if !self.record.active {
            self.shared.event(
                &id,
                EventKind::SessionRefused,
                format!("refused a client from {}: gateway inactive", msg.peer),
                None,
                Some(&msg.client_id),
            );
            return Err(Refusal {
                code: RefuseCode::GatewayInactive,
                message: format!(
                    "gateway {id} is inactive; activate it with `sgctl gateway update {id} --active true`"
                ),
            });
        }
        let cap = self.shared.max_sessions_per_gateway;
        if self.sessions.len() >= cap {
            self.shared.event(
                &id,
                EventKind::SessionRefused,
                format!(
                    "refused a client from {}: the gateway already has {cap} sessions on this node",
                    msg.peer
                ),
                None,
                Some(&msg.client_id),
            );
            return Err(Refusal {
                code: RefuseCode::TooManySessions,
                message: format!(
                    "gateway {id} already has {cap} client sessions on this node (its limit, \
                     --max-sessions-per-gateway); stop some clients or lower their --sessions"
                ),
            });
        }
        self.check_client_limit(&msg.client_id, msg.peer)?;
        Ok(Authenticated {
            config: self.client_config(),
            token_hash: self.record.token_hash.clone(),
        })
    }
}

impl Gateway {
    /// The plan's `max_clients_per_gateway` (F30): a client process not yet connected is
    /// refused once the gateway has that many. Its further sessions are always welcome.
    fn check_client_limit(&self, client_id: &str, peer: SocketAddr) -> Result<(), Refusal> {
        let max = self.plan.max_clients_per_gateway;
        if max == 0 || self.sessions.iter().any(|s| s.client_id == client_id) {
            return Ok(());
        }
        let clients = self.client_count();
        if clients < max as usize {
            return Ok(());
        }
        let id = &self.record.id;
        self.shared.event(
            id,
            EventKind::LimitReached,
            format!(
                "refused client {client_id} from {peer}: gateway {id} has {clients} client(s), \
                 the plan's max_clients_per_gateway is {max}"
            ),
            None,
            Some(client_id),
        );
        Err(Refusal {
            code: RefuseCode::LimitReached,
            message: format!(
                "gateway {id} already has {clients} client(s) and the plan allows {max} \
                 (max_clients_per_gateway); stop another client of it, or raise the limit with \
                 `sgctl plan set --max-clients-per-gateway N`"
            ),
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionUp(pub SessionEntry);

impl Handler<SessionUp> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SessionUp, _: &mut Self::Context) {
        let entry = msg.0;
        if entry.token_hash != self.record.token_hash || !self.record.active {
            // The token changed (or the gateway went inactive) while it was authenticating.
            entry.handle.close("token regenerated");
            return;
        }
        if self.sessions.len() >= self.shared.max_sessions_per_gateway {
            // Several authenticated at once, past the cap.
            entry
                .handle
                .close("the gateway has as many sessions as it may hold");
            return;
        }
        if let Err(refusal) = self.check_client_limit(&entry.client_id, entry.peer) {
            // Several new clients authenticated at once, past the plan's limit.
            let _ = entry.handle.send_control(Frame::Notice(Notice {
                kind: NoticeKind::SessionClosed,
                message: refusal.message.clone(),
                count: 0,
            }));
            entry.handle.close(refusal.message);
            return;
        }
        tracing::info!(
            gateway = %self.record.id,
            session = %entry.session_id,
            client = %entry.client_id,
            peer = %entry.peer,
            version = %entry.client_version,
            "client session up"
        );
        // The config may have changed between authentication and now.
        let _ = entry
            .handle
            .send_control(Frame::Config(Box::new(self.client_config())));
        if entry.protocol_minor >= NODE_LIST_SINCE {
            let _ = entry
                .handle
                .send_control(Frame::NodeList((*self.nodes).clone()));
        }
        self.sessions.insert(entry.session_id.clone(), entry);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionDown {
    pub session_id: String,
    /// How the session ended, for the list of recently disconnected clients.
    pub reason: String,
}

impl Handler<SessionDown> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: SessionDown, _: &mut Self::Context) {
        if let Some(entry) = self.sessions.remove(&msg.session_id) {
            tracing::info!(gateway = %self.record.id, session = %msg.session_id, "client session down");
            self.note_gone(vec![entry], &msg.reason);
        }
    }
}

/// A client's view of the destinations' health (F31), from one of its sessions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportHealth {
    pub client_id: String,
    pub report: HealthReport,
}

impl Handler<ReportHealth> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: ReportHealth, _: &mut Self::Context) {
        if !self.sessions.iter().any(|s| s.client_id == msg.client_id) {
            return;
        }
        let destinations = &self.destinations;
        let changes = self.book.report(&msg.client_id, msg.report, |id| {
            destinations.contains_key(id)
        });
        for c in changes {
            let name = self
                .destinations
                .get(&c.destination_id)
                .map_or("", |s| s.record.name.as_str());
            let message = if c.healthy {
                format!(
                    "client {} reaches destination {} ({name}) again: it gets new connections",
                    msg.client_id, c.destination_id
                )
            } else {
                format!(
                    "client {} cannot reach destination {} ({name}): {}; new connections go to \
                     the gateway's other clients",
                    msg.client_id, c.destination_id, c.reason
                )
            };
            self.shared.event(
                &self.record.id,
                EventKind::HealthChanged,
                message,
                Some(&c.destination_id),
                Some(&msg.client_id),
            );
        }
    }
}

/// An operator ends a client (F30): its sessions here close with `reason`, and a client
/// that understands it exits rather than reconnect.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct KillClient {
    pub client_id: String,
    pub reason: String,
}

impl Handler<KillClient> for Gateway {
    type Result = usize;
    fn handle(&mut self, msg: KillClient, _: &mut Self::Context) -> usize {
        let ids: Vec<String> = self
            .sessions
            .iter()
            .filter(|s| s.client_id == msg.client_id)
            .map(|s| s.session_id.clone())
            .collect();
        let closed: Vec<SessionEntry> = ids
            .iter()
            .filter_map(|id| self.sessions.remove(id))
            .collect();
        if closed.is_empty() {
            return 0;
        }
        let said = format!("an operator ended this client: {}", msg.reason);
        for s in &closed {
            let kind = if s.protocol_minor >= HEALTH_REPORTS_SINCE {
                NoticeKind::ClientKilled
            } else {
                NoticeKind::SessionClosed
            };
            let _ = s.handle.send_control(Frame::Notice(Notice {
                kind,
                message: said.clone(),
                count: 0,
            }));
            s.handle.close(said.clone());
        }
        let n = closed.len();
        self.shared.event(
            &self.record.id,
            EventKind::ClientKilled,
            format!(
                "client {} ended by an operator ({n} session(s) on this node): {}",
                msg.client_id, msg.reason
            ),
            None,
            Some(&msg.client_id),
        );
        self.note_gone(closed, &format!("ended by an operator: {}", msg.reason));
        n
    }
}

/// A cloud connection asking to be carried.
#[derive(Message)]
#[rtype(result = "Result<Ticket, Refused>")]
pub struct OpenConnection {
    pub destination_id: String,
    pub peer: SocketAddr,
    /// The cloud address the connection reached (for a PROXY protocol header).
    pub local: Option<SocketAddr>,
    /// The connection takes its concurrency slot later, once it is real (after its TLS
    /// handshake): see [`ConnectionGuard::take_slot`].
    pub defer_slot: bool,
}

/// Permission to carry one connection: the session to carry it on, what to tell the
/// client, where to run it, and a guard that gives the concurrency slot back however the
/// connection ends. The stream itself is opened by the connection, once it is ready (after
/// its TLS handshake, for a TLS cloud port), so a refused handshake never reaches the
/// private service.
pub struct Ticket {
    pub session: SessionHandle,
    pub open: OpenStream,
    pub worker: Worker,
    pub gateway_id: String,
    pub guard: Arc<ConnectionGuard>,
}

/// Returns the connection's slot to its gateway when dropped, and adds its bytes to the
/// gateway's totals.
pub struct ConnectionGuard {
    live: Arc<LiveCounters>,
    pub counters: Arc<PumpCounters>,
    /// Whether the connection holds one of the gateway's concurrency slots. A TLS cloud
    /// connection takes it only once its handshake is done, so sockets that never finish
    /// one cannot use up the gateway's limit.
    holds_slot: std::sync::atomic::AtomicBool,
    /// The slots this node may fill for the gateway (its limit less the other nodes' use).
    limit: u32,
    /// A cloud destination's connection: its pump's writes go towards the resource.
    reversed: bool,
    /// Counts the connection in the node's total, which a drain waits on.
    _tracked: Tracked,
    /// When it was admitted, and where its duration goes when it ends.
    started: Instant,
    timings: Arc<super::Timings>,
}

impl ConnectionGuard {
    /// Counts the connection as refused (it ends before carrying anything).
    pub fn refuse(&self, why: Refused) {
        self.live.refuse(why);
    }

    /// Takes the concurrency slot of a connection that is now real; `false` (and counted
    /// as refused) if the gateway reached its limit meanwhile.
    pub fn take_slot(&self) -> bool {
        if self.holds_slot.load(Ordering::Acquire) {
            return true;
        }
        let taken = self
            .live
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        if taken {
            self.holds_slot.store(true, Ordering::Release);
            self.live.total.fetch_add(1, Ordering::Relaxed);
        } else {
            self.live.refuse(Refused::Limit);
        }
        taken
    }
}

impl ConnectionGuard {
    /// Counts the connection as closed by its destination's idle timeout.
    pub fn closed_idle(&self) {
        self.live.idle_closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl ConnectionGuard {
    /// Bytes carried so far: (towards the resource, towards the cloud application).
    fn bytes(&self) -> (u64, u64) {
        let (read, written) = (
            self.counters.sent.load(Ordering::Relaxed),
            self.counters.received.load(Ordering::Relaxed),
        );
        if self.reversed {
            (written, read)
        } else {
            (read, written)
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let (to_resources, to_cloud) = self.bytes();
        self.live
            .to_resources
            .fetch_add(to_resources, Ordering::Relaxed);
        self.live.to_cloud.fetch_add(to_cloud, Ordering::Relaxed);
        if self.holds_slot.load(Ordering::Acquire) {
            self.live.active.fetch_sub(1, Ordering::Release);
            self.timings.connection.observe(self.started.elapsed());
        }
    }
}

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

    fn refuse(&self, why: Refused, kind: EventKind, dest: &str, message: String) -> Refused {
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
    fn admit(&mut self, dest: &str, from: &str, ctx: &mut Context<Self>) -> Result<(), Refused> {
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
    fn bytes_now(&mut self) -> (u64, u64) {
        // Hold every open guard while the totals are read, so none adds itself to them
        // in between (it would be counted twice); one that finished just before is in
        // neither sum for a moment, which `reported_*` (never lower) hides.
        let held: Vec<Arc<ConnectionGuard>> = self
            .open
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        self.open = held.iter().map(Arc::downgrade).collect();
        let (mut to_resources, mut to_cloud) = held
            .iter()
            .map(|g| g.bytes())
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        to_resources += self.live.to_resources.load(Ordering::Relaxed);
        to_cloud += self.live.to_cloud.load(Ordering::Relaxed);
        drop(held);
        let up =
            |reported: &AtomicU64, now: u64| reported.fetch_max(now, Ordering::Relaxed).max(now);
        (
            up(&self.live.reported_to_resources, to_resources),
            up(&self.live.reported_to_cloud, to_cloud),
        )
    }

    /// The guard of an admitted connection; `reversed` for a cloud destination's, whose
    /// bytes towards the resource are the ones its pump writes.
    fn guard(&mut self, reversed: bool) -> Arc<ConnectionGuard> {
        if self.open.len() >= self.sweep_at {
            self.open.retain(|g| g.strong_count() > 0);
            self.sweep_at = (self.open.len() * 2).max(OPEN_SWEEP_MIN);
        }
        let guard = Arc::new(self.new_guard(reversed));
        self.open.push(Arc::downgrade(&guard));
        guard
    }

    fn new_guard(&self, reversed: bool) -> ConnectionGuard {
        ConnectionGuard {
            live: self.live.clone(),
            counters: Arc::new(PumpCounters::default()),
            holds_slot: false.into(),
            limit: self
                .plan
                .max_connections_per_gateway
                .saturating_sub(self.remote_active),
            reversed,
            _tracked: self.shared.connections.enter(),
            started: Instant::now(),
            timings: self.shared.timings.clone(),
        }
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

/// A client asks the node to carry a private application's connection to a cloud
/// destination (a stream the client opened, F29).
#[derive(Message)]
#[rtype(result = "Result<CloudTicket, String>")]
pub struct OpenCloudConnection {
    pub destination_id: String,
    /// The application's address as the client saw it.
    pub peer: String,
    pub client_id: String,
}

/// How much of an id or address a client names is repeated in an event.
const MAX_NAMED_ID: usize = 64;

/// Permission to dial a cloud destination's resource: only what the admin configured.
pub struct CloudTicket {
    pub resource_host: String,
    pub resource_port: u16,
    pub idle_timeout: Option<Duration>,
    pub connection: u64,
    pub guard: Arc<ConnectionGuard>,
}

impl Handler<OpenCloudConnection> for Gateway {
    /// The error is the reason the client is told (and the event says).
    type Result = Result<CloudTicket, String>;
    fn handle(&mut self, msg: OpenCloudConnection, ctx: &mut Self::Context) -> Self::Result {
        let dest = msg.destination_id.as_str();
        // The peer and the id come from the client: shortened where events repeat them.
        let peer: String = msg.peer.chars().take(MAX_NAMED_ID).collect();
        let from = format!("{peer} (client {})", msg.client_id);
        let Some(record) = self
            .destinations
            .get(dest)
            .map(|slot| slot.record.clone())
            .filter(|d| d.kind == DestinationKind::Cloud)
        else {
            let shown: String = dest.chars().take(MAX_NAMED_ID).collect();
            let why = format!(
                "refused a connection from {from}: {shown:?} is not a cloud destination of this gateway"
            );
            // Not filed under a destination: the id may name none.
            self.live.refuse(Refused::DestinationDisabled);
            self.shared.event(
                &self.record.id,
                EventKind::StreamRefused,
                why.clone(),
                None,
                Some(&msg.client_id),
            );
            return Err(why);
        };
        let refusal = |what: &str| {
            format!("refused a connection from {from} to cloud destination {dest}: {what}")
        };
        self.admit(dest, &from, ctx)
            .map_err(|why| refusal(why.describe()))?;
        let allowed = msg
            .peer
            .parse::<SocketAddr>()
            .is_ok_and(|peer| IpRules::from_stored(&record.ip_rules).allows(peer));
        if !allowed {
            let why = refusal("not allowed by its IP rules");
            self.refuse(Refused::IpRule, EventKind::IpRefused, dest, why.clone());
            return Err(why);
        }
        let guard = self.guard(true);
        if !guard.take_slot() {
            return Err(refusal(Refused::Limit.describe()));
        }
        Ok(CloudTicket {
            resource_host: record.resource_host,
            resource_port: record.resource_port,
            idle_timeout: (record.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(u64::from(record.idle_timeout_secs))),
            connection: self.shared.next_connection(),
            guard,
        })
    }
}

#[derive(Message)]
#[rtype(result = "Vec<ClientView>")]
pub struct ListClients;

impl Handler<ListClients> for Gateway {
    type Result = MessageResult<ListClients>;
    fn handle(&mut self, _: ListClients, _: &mut Self::Context) -> Self::Result {
        let mut views: Vec<ClientView> = Vec::new();
        for s in self.sessions.iter() {
            let st = s.handle.stats();
            let rtt = st.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0;
            let total = st.total_streams.load(Ordering::Relaxed);
            match views.iter_mut().find(|v| v.client_id == s.client_id) {
                Some(v) => {
                    v.sessions += 1;
                    v.active_streams += s.handle.active_streams();
                    v.total_streams += total;
                    if rtt > 0.0 && (v.rtt_ms == 0.0 || rtt < v.rtt_ms) {
                        v.rtt_ms = rtt;
                    }
                }
                None => views.push(ClientView {
                    state: ClientState::Connected,
                    destinations: self
                        .book
                        .view_of(&s.client_id)
                        .into_iter()
                        .map(|h| ClientDestinationHealth {
                            destination_id: h.destination_id,
                            healthy: h.healthy,
                            reason: h.reason,
                            since: h.since,
                        })
                        .collect(),
                    disconnected_at: None,
                    reason: None,
                    client_id: s.client_id.clone(),
                    version: s.client_version.clone(),
                    hostname: s.hostname.clone(),
                    address: s.peer.ip().to_string(),
                    region: self.shared.region.clone(),
                    node_id: self.shared.node_id.clone(),
                    connected_at: rfc3339(s.connected_at),
                    sessions: 1,
                    active_streams: s.handle.active_streams(),
                    total_streams: total,
                    rtt_ms: rtt,
                }),
            }
        }
        let gone: Vec<ClientView> = self
            .book
            .recent()
            .filter(|g| !views.iter().any(|v| v.client_id == g.client_id))
            .map(|g| ClientView {
                state: ClientState::Disconnected,
                client_id: g.client_id.clone(),
                version: g.version.clone(),
                hostname: g.hostname.clone(),
                address: g.address.clone(),
                region: self.shared.region.clone(),
                node_id: self.shared.node_id.clone(),
                connected_at: g.connected_at.clone(),
                sessions: 0,
                active_streams: 0,
                total_streams: 0,
                rtt_ms: 0.0,
                destinations: Vec::new(),
                disconnected_at: Some(g.disconnected_at.clone()),
                reason: Some(g.reason.clone()),
            })
            .collect();
        views.extend(gone);
        MessageResult(views)
    }
}

impl Gateway {
    /// Each client's shortest session round trip (clients with a measured one).
    fn shortest_rtts(&self) -> Vec<(String, Duration)> {
        let mut out: Vec<(String, Duration)> = Vec::new();
        for s in self.sessions.iter() {
            let us = s.handle.stats().rtt_us.load(Ordering::Relaxed);
            if us == 0 {
                continue;
            }
            let rtt = Duration::from_micros(us);
            match out.iter_mut().find(|(c, _)| *c == s.client_id) {
                Some((_, best)) => *best = (*best).min(rtt),
                None => out.push((s.client_id.clone(), rtt)),
            }
        }
        out.sort();
        out
    }

    /// Distinct client processes connected for this gateway.
    fn client_count(&self) -> usize {
        let mut ids: Vec<&str> = self.sessions.iter().map(|s| s.client_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

/// What `/metrics` shows of one gateway.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub gateway_id: String,
    pub name: String,
    pub active: bool,
    pub enabled: bool,
    pub clients: usize,
    pub sessions: usize,
    pub active_connections: u32,
    pub total_connections: u64,
    pub refused: Vec<(Refused, u64)>,
    pub bytes_to_resources: u64,
    pub bytes_to_cloud: u64,
    pub idle_closed: u64,
    /// (client id, destination id, healthy) for every state a client reported.
    pub health: Vec<(String, String, bool)>,
    /// (client id, its sessions' shortest round trip) for every connected client.
    pub rtt: Vec<(String, Duration)>,
}

#[derive(Message)]
#[rtype(result = "GatewayMetrics")]
pub struct GetMetrics;

impl Handler<GetMetrics> for Gateway {
    type Result = MessageResult<GetMetrics>;
    fn handle(&mut self, _: GetMetrics, _: &mut Self::Context) -> Self::Result {
        let (bytes_to_resources, bytes_to_cloud) = self.bytes_now();
        MessageResult(GatewayMetrics {
            gateway_id: self.record.id.clone(),
            name: self.record.name.clone(),
            active: self.record.active,
            enabled: self.record.enabled,
            clients: self.client_count(),
            sessions: self.sessions.len(),
            active_connections: self.live.active.load(Ordering::Acquire),
            total_connections: self.live.total.load(Ordering::Relaxed),
            refused: Refused::ALL
                .iter()
                .map(|r| (*r, self.live.refused(*r)))
                .collect(),
            bytes_to_resources,
            bytes_to_cloud,
            idle_closed: self.live.idle_closed(),
            health: self
                .book
                .all()
                .map(|(c, d)| (c.to_string(), d.destination_id.clone(), d.healthy))
                .collect(),
            rtt: self.shortest_rtts(),
        })
    }
}

#[derive(Message)]
#[rtype(result = "GatewayStats")]
pub struct GetStats;

impl Handler<GetStats> for Gateway {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let (bytes_to_resources, bytes_to_cloud) = self.bytes_now();
        let mut client_ids: Vec<String> =
            self.sessions.iter().map(|s| s.client_id.clone()).collect();
        client_ids.sort_unstable();
        client_ids.dedup();
        MessageResult(GatewayStats {
            gateway_id: self.id().to_string(),
            clients: client_ids.len(),
            client_ids,
            active_connections: self.live.active.load(Ordering::Acquire),
            total_connections: self.live.total.load(Ordering::Relaxed),
            refused_connections: self.live.refused_total(),
            bytes_to_resources,
            bytes_to_cloud,
            idle_closed_connections: self.live.idle_closed(),
            max_connections: self.plan.max_connections_per_gateway,
            nodes: Vec::new(),
            unreachable_nodes: Vec::new(),
        })
    }
}
