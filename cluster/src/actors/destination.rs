//! The Destination actor: one per provisioned cloud port. It accepts cloud connections,
//! applies the checks that need no one else (IP rules), asks its Gateway for a ticket (through
//! [`super::admission`], so it needs nothing else of the Gateway), and
//! hands the socket to a Connection actor on the chosen session's arbiter.
//!
//! Supervised: if the actor stops for any reason other than [`Stop`], it is restarted in
//! place and binds the same port again; a port that cannot be bound is retried with backoff.

use super::admission::{LiveCounters, OpenConnection, Refused, SourceCounts};
use super::connection::{Carry, Connection, Socket};
use super::NodeShared;
use crate::controls::IpRules;
use crate::records::{DestinationRecord, EventKind};
use actix::prelude::*;
use sg_proto::backoff::Backoff;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Pause after an accept error such as "too many open files", so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
const FIRST_BIND_RETRY: Duration = Duration::from_millis(500);
const MAX_BIND_RETRY: Duration = Duration::from_secs(30);

/// Binds a cloud port (see [`sg_proto::listener::bind`]).
pub fn bind(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    sg_proto::listener::bind(SocketAddr::new(ip, port))
}

/// What a cloud port speaks, ready to use.
enum CloudSide {
    Plain,
    Tls(TlsAcceptor),
    /// The stored TLS settings do not load (they were valid when stored): refuse rather
    /// than carry connections in the clear.
    Broken(String),
}

impl CloudSide {
    fn of(record: &DestinationRecord) -> CloudSide {
        match record.cloud_tls.server_config() {
            Ok(None) => CloudSide::Plain,
            Ok(Some(config)) => CloudSide::Tls(TlsAcceptor::from(config)),
            Err(e) => CloudSide::Broken(format!("{}: {}", e.field, e.reason)),
        }
    }
}

pub struct DestinationActor {
    shared: Arc<NodeShared>,
    /// Connections open now per source address (for `max_connections_per_source`).
    sources: Arc<SourceCounts>,
    live: Arc<LiveCounters>,
    rules: IpRules,
    cloud: CloudSide,
    /// The worker arbiter this listener runs on (its gateway's).
    worker: usize,
    /// Where connections ask to be admitted (the destination's Gateway).
    gateway: Recipient<OpenConnection>,
    record: DestinationRecord,
    listener: Option<TcpListener>,
    /// Waits between attempts to bind a port that is taken.
    retry: Backoff,
    stopping: bool,
}

impl DestinationActor {
    pub fn new(
        shared: Arc<NodeShared>,
        gateway: Recipient<OpenConnection>,
        record: DestinationRecord,
        listener: Option<TcpListener>,
        worker: usize,
        live: Arc<LiveCounters>,
    ) -> Self {
        let rules = IpRules::from_stored(&record.ip_rules);
        let cloud = CloudSide::of(&record);
        if let CloudSide::Broken(why) = &cloud {
            tracing::error!(destination = %record.id, "cloud TLS settings do not load ({why}); refusing connections");
        }
        DestinationActor {
            shared,
            sources: Arc::new(SourceCounts::default()),
            live,
            rules,
            cloud,
            worker,
            gateway,
            record,
            listener,
            retry: Backoff::new(FIRST_BIND_RETRY, MAX_BIND_RETRY),
            stopping: false,
        }
    }

    fn port(&self) -> Option<u16> {
        self.record.cloud_port
    }

    fn serve(&mut self, ctx: &mut Context<Self>) {
        let listener = match self.listener.take() {
            Some(l) => l,
            None => {
                let Some(port) = self.port() else {
                    return;
                };
                match bind(self.shared.cloud_bind, port) {
                    Ok(l) => {
                        self.shared.listening.listening(&self.record.id);
                        l
                    }
                    Err(e) => {
                        let wait = self.retry.next_wait();
                        self.shared.listening.failed(&self.record.id, e.to_string());
                        tracing::warn!(
                            destination = %self.record.id,
                            port,
                            "cannot listen on cloud port: {e}; retrying in {wait:?}"
                        );
                        ctx.run_later(wait, |act, ctx| act.serve(ctx));
                        return;
                    }
                }
            }
        };
        self.retry.reset();
        tracing::info!(
            destination = %self.record.id,
            gateway = %self.record.gateway_id,
            "cloud port {}:{} listening for {}:{}",
            self.shared.cloud_host,
            self.port().unwrap_or(0),
            self.record.resource_host,
            self.record.resource_port
        );
        let accepts = futures_util::stream::unfold(listener, |l| async move {
            loop {
                match l.accept().await {
                    Ok(conn) => return Some((conn, l)),
                    Err(e) => {
                        tracing::warn!("accept failed on a cloud port: {e}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                }
            }
        });
        ctx.add_stream(accepts);
    }

    fn admit(&mut self, sock: TcpStream, peer: SocketAddr, ctx: &mut Context<Self>) {
        // Dead peers behind a NAT or a crashed host are found even on an idle connection.
        sg_proto::limits::set_keepalive(&sock);
        if !self.rules.allows(peer) {
            // Closed before a single byte is read or forwarded.
            drop(sock);
            self.live.refuse(Refused::IpRule);
            self.shared.event(
                &self.record.gateway_id,
                EventKind::IpRefused,
                format!(
                    "refused a connection from {peer} to destination {}: not allowed by its IP rules",
                    self.record.id
                ),
                Some(&self.record.id),
                None,
            );
            return;
        }
        let tls = match &self.cloud {
            CloudSide::Plain => None,
            CloudSide::Tls(acceptor) => Some(acceptor.clone()),
            CloudSide::Broken(_) => return,
        };
        let cap = self.record.max_connections_per_source;
        let source = if cap > 0 {
            match self.sources.try_take(peer.ip(), cap) {
                Some(slot) => Some(slot),
                None => {
                    drop(sock);
                    self.live.refuse(Refused::SourceLimit);
                    self.shared.event(
                        &self.record.gateway_id,
                        EventKind::LimitReached,
                        format!(
                            "refused a connection from {peer} to destination {}: {cap} connections from one address is its limit",
                            self.record.id
                        ),
                        Some(&self.record.id),
                        None,
                    );
                    return;
                }
            }
        } else {
            None
        };
        let carry = Carry {
            defer_slot: tls.is_some(),
            tls,
            idle_timeout: (self.record.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(u64::from(self.record.idle_timeout_secs))),
            _source: source,
        };
        let shared = self.shared.clone();
        let open = OpenConnection {
            destination_id: self.record.id.clone(),
            peer,
            local: sock.local_addr().ok(),
            defer_slot: carry.defer_slot,
        };
        let destination = self.record.id.clone();
        let here = self.worker;
        self.gateway
            .send(open)
            .into_actor(self)
            .map(move |answer, _act, _ctx| {
                let Ok(Ok(ticket)) = answer else {
                    // Refused: the gateway logged why; closing the socket tells the app.
                    return;
                };
                if ticket.worker.index == here {
                    // The session lives on this thread: no hand-over at all.
                    Connection::new(Socket::Here(sock), peer, destination, ticket, carry, shared)
                        .start();
                    return;
                }
                let std_sock = match sock.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("could not hand over a cloud connection: {e}");
                        return;
                    }
                };
                let worker = ticket.worker.handle.clone();
                Connection::start_in_arbiter(&worker, move |_| {
                    Connection::new(
                        Socket::Moved(std_sock),
                        peer,
                        destination,
                        ticket,
                        carry,
                        shared,
                    )
                });
            })
            .spawn(ctx);
    }
}

impl Actor for DestinationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.serve(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.stopping {
            tracing::info!(destination = %self.record.id, "cloud port {} released", self.port().unwrap_or(0));
        }
    }
}

impl Supervised for DestinationActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(destination = %self.record.id, "restarting the cloud port listener");
        self.listener = None;
    }
}

impl StreamHandler<(TcpStream, SocketAddr)> for DestinationActor {
    fn handle(&mut self, (sock, peer): (TcpStream, SocketAddr), ctx: &mut Self::Context) {
        self.admit(sock, peer, ctx);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The accept loop never ends on its own; if it does, restart and rebind.
        if !self.stopping {
            ctx.stop();
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateRecord(pub DestinationRecord);

impl Handler<UpdateRecord> for DestinationActor {
    type Result = ();
    fn handle(&mut self, msg: UpdateRecord, _: &mut Self::Context) {
        self.rules = IpRules::from_stored(&msg.0.ip_rules);
        self.cloud = CloudSide::of(&msg.0);
        self.record = msg.0;
    }
}

/// Release the port for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for DestinationActor {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.stopping = true;
        ctx.stop();
        ctx.terminate();
    }
}
