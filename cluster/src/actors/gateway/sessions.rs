//! A Gateway's client sessions: a client proving it may serve the gateway, sessions coming
//! and going, the destinations' health as clients see it (F31), and an operator ending a
//! client (F30).

use super::{Gateway, SessionEntry};
use crate::ids::token_matches;
use crate::records::EventKind;
use crate::time::{now_secs, rfc3339};
use actix::prelude::*;
use sg_proto::frame::{Frame, GatewayConfig, Notice, NoticeKind, Refusal, RefuseCode};
use sg_proto::health::HealthReport;
use sg_proto::version::{HEALTH_REPORTS_SINCE, NODE_LIST_SINCE};
use std::net::SocketAddr;

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
