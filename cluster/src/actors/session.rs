//! The Session actor: one per authenticated client tunnel, living on a worker arbiter. It
//! runs the session's driver, registers the session with its Gateway while it lives,
//! records what the client reports (ACL refusals) in the gateway's event log, and carries
//! the streams the client opens for cloud destinations.

use super::cloud_connection;
use super::gateway::{
    Gateway, OpenCloudConnection, ReportHealth, SessionDown, SessionEntry, SessionUp,
};
use super::state::mutate;
use super::NodeShared;
use crate::records::EventKind;
use crate::state::State;
use crate::tracker::Tracked;
use actix::prelude::*;
use sg_proto::driver::{SessionDriver, SessionEvent, SessionHandle};
use sg_proto::frame::{Frame, Notice, NoticeKind, ReportKind, ResetCode, ACL_UPDATE_EVERY};
use sg_proto::health::MAX_REPORTED_DESTINATIONS;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedReceiver;

/// Longest message from a client report kept in the event log.
const MAX_REPORT_LEN: usize = 500;

pub struct Session<IO> {
    handle: SessionHandle,
    shared: Arc<NodeShared>,
    gateway: Addr<Gateway>,
    gateway_id: String,
    entry: Option<SessionEntry>,
    session_id: String,
    client_id: String,
    driver: Option<SessionDriver<IO>>,
    events: Option<UnboundedReceiver<SessionEvent>>,
    /// Counts the session in the node's total, which a drain waits on.
    _tracked: Tracked,
    /// When this session last replaced the ACL.
    last_acl_update: Option<std::time::Instant>,
    /// How the session ended, once it has.
    ended: Option<String>,
}

impl<IO> Session<IO> {
    pub fn new(
        shared: Arc<NodeShared>,
        gateway: Addr<Gateway>,
        gateway_id: String,
        entry: SessionEntry,
        driver: SessionDriver<IO>,
        events: UnboundedReceiver<SessionEvent>,
    ) -> Self {
        Session {
            handle: entry.handle.clone(),
            _tracked: shared.sessions.enter(),
            shared,
            gateway,
            gateway_id,
            session_id: entry.session_id.clone(),
            client_id: entry.client_id.clone(),
            entry: Some(entry),
            driver: Some(driver),
            events: Some(events),
            last_acl_update: None,
            ended: None,
        }
    }
}

impl<IO> Actor for Session<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(mut events) = self.events.take() {
            ctx.add_stream(futures_util::stream::poll_fn(move |cx| {
                events.poll_recv(cx)
            }));
        }
        if let Some(driver) = self.driver.take() {
            // Whatever the session's driver logs carries its gateway, session and client.
            let span = tracing::info_span!(
                "session",
                gateway = %self.gateway_id,
                session = %self.session_id,
                client = %self.client_id
            );
            tracing::Instrument::instrument(driver, span)
                .into_actor(self)
                .map(|end, act, ctx| {
                    tracing::info!(
                        gateway = %act.gateway_id,
                        session = %act.session_id,
                        "session ended: {end}"
                    );
                    act.ended = Some(end.to_string());
                    ctx.stop();
                })
                .spawn(ctx);
        }
        if let Some(entry) = self.entry.take() {
            // If the gateway went away during the handshake, nobody would ever close this
            // session: close it now.
            self.gateway
                .send(SessionUp(entry))
                .into_actor(self)
                .map(|answer, act, _| {
                    if answer.is_err() {
                        act.handle.close("the gateway no longer exists");
                    }
                })
                .spawn(ctx);
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.gateway.do_send(SessionDown {
            session_id: self.session_id.clone(),
            reason: self
                .ended
                .take()
                .unwrap_or_else(|| "the session ended".to_string()),
        });
    }
}

impl<IO> StreamHandler<SessionEvent> for Session<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn handle(&mut self, event: SessionEvent, ctx: &mut Self::Context) {
        match event {
            SessionEvent::Control(Frame::Report(report)) => {
                let kind = match report.kind {
                    ReportKind::AclRefused => EventKind::AclRefused,
                    ReportKind::ConnectFailed => EventKind::ConnectFailed,
                    _ => EventKind::Other,
                };
                let mut message = report.message;
                if message.len() > MAX_REPORT_LEN {
                    let cut = (0..=MAX_REPORT_LEN)
                        .rev()
                        .find(|i| message.is_char_boundary(*i))
                        .unwrap_or(0);
                    message.truncate(cut);
                    message.push('…');
                }
                self.shared.event(
                    &self.gateway_id,
                    kind,
                    message,
                    report.destination_id.as_deref(),
                    Some(&self.client_id),
                );
            }
            SessionEvent::Control(Frame::AclUpdate(update)) => {
                if self
                    .last_acl_update
                    .is_some_and(|t| t.elapsed() < ACL_UPDATE_EVERY)
                {
                    let _ = self.handle.send_control(Frame::Notice(Notice {
                        kind: NoticeKind::Unknown,
                        message: format!(
                            "ACL change ignored: a client may change the ACL at most once every {}s",
                            ACL_UPDATE_EVERY.as_secs()
                        ),
                        count: 0,
                    }));
                    return;
                }
                self.last_acl_update = Some(std::time::Instant::now());
                // An operator edited the ACL at this client's console: validate, store,
                // and let the gateway send it to every client.
                let gateway_id = self.gateway_id.clone();
                let client_id = self.client_id.clone();
                let shared = self.shared.clone();
                let rules = update.rules;
                let count = rules.len();
                let set = move |s: &mut State| s.set_acl(&gateway_id, &rules).map(|(_, c)| ((), c));
                let gateway_id = self.gateway_id.clone();
                async move {
                    let answer = mutate(&shared.state, shared.replication.as_deref(), set).await;
                    let message = match answer {
                        Ok(()) => format!("ACL replaced from a client's console ({count} rule(s))"),
                        Err(e) => format!("refused an ACL from a client's console: {e}"),
                    };
                    shared.event(
                        &gateway_id,
                        EventKind::AclChanged,
                        message,
                        None,
                        Some(&client_id),
                    );
                }
                .into_actor(self)
                .spawn(ctx);
            }
            SessionEvent::Control(Frame::Health(report)) => {
                if report.destinations.len() > MAX_REPORTED_DESTINATIONS {
                    self.handle
                        .close("a health report listed too many destinations");
                    return;
                }
                self.gateway.do_send(ReportHealth {
                    client_id: self.client_id.clone(),
                    report,
                });
            }
            SessionEvent::Control(_) => {}
            SessionEvent::Incoming { stream, open } => {
                // A private application's connection to a client port (F29): the gateway
                // decides, then this arbiter dials the configured resource.
                let ask = OpenCloudConnection {
                    destination_id: open.destination_id.clone(),
                    peer: open.peer.clone(),
                    client_id: self.client_id.clone(),
                };
                let (shared, gateway_id, client_id) = (
                    self.shared.clone(),
                    self.gateway_id.clone(),
                    self.client_id.clone(),
                );
                self.gateway
                    .send(ask)
                    .into_actor(self)
                    .map(move |answer, act, ctx| match answer {
                        Ok(Ok(ticket)) => {
                            let work = cloud_connection::carry(
                                shared, gateway_id, client_id, open, stream, ticket,
                            );
                            ctx.spawn(work.into_actor(act));
                        }
                        Ok(Err(why)) => stream.reset(ResetCode::Refused, why),
                        Err(_) => stream.reset(ResetCode::Shutdown, "the gateway is going away"),
                    })
                    .spawn(ctx);
            }
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The event channel closes with the driver; the driver's end stops the actor.
    }
}
