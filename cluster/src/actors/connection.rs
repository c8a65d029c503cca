//! The Connection actor: one per carried cloud connection, living on its session's arbiter.
//! It terminates user-side TLS when its cloud port asks for it, then opens the stream to the
//! client and runs the connection's pump (a plain future, not a message per chunk). Its
//! [`ConnectionGuard`] gives the concurrency slot back when it ends, however it ends.

use super::admission::{ConnectionGuard, Refused, SourceSlot, Ticket};
use super::NodeShared;
use crate::records::EventKind;
use actix::prelude::*;
use sg_proto::driver::SessionHandle;
use sg_proto::frame::OpenStream;
use sg_proto::pump::{LocalEnd, Pump, PumpCounters, PumpOptions, PumpOutcome, ReadReady};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

/// One deadline for a cloud application's TLS handshake.
const CLOUD_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A cloud connection's socket: already on this arbiter, or moving to it from another.
pub enum Socket {
    Here(tokio::net::TcpStream),
    Moved(std::net::TcpStream),
}

/// How one cloud connection is carried, as its destination says.
pub struct Carry {
    /// Terminate TLS on the cloud side first.
    pub tls: Option<TlsAcceptor>,
    /// Take the gateway's concurrency slot only once the TLS handshake is done.
    pub defer_slot: bool,
    /// Close the connection after this long without a byte either way.
    pub idle_timeout: Option<Duration>,
    /// The connection's share of its source address's cap, held while it lives.
    pub _source: Option<SourceSlot>,
}

pub struct Connection {
    socket: Option<Socket>,
    session: SessionHandle,
    open: Option<OpenStream>,
    tls: Option<TlsAcceptor>,
    idle_timeout: Option<Duration>,
    _source: Option<SourceSlot>,
    shared: Arc<NodeShared>,
    gateway_id: String,
    peer: SocketAddr,
    destination: String,
    number: u64,
    guard: Arc<ConnectionGuard>,
}

/// How carrying a connection ended.
enum Ended {
    Pump(PumpOutcome),
    SessionGone,
    TlsFailed(String),
    /// Over the gateway's limit once the TLS handshake was done.
    OverLimit,
    /// Nothing either way for the destination's idle timeout.
    Idle(Duration),
}

impl Connection {
    pub fn new(
        socket: Socket,
        peer: SocketAddr,
        destination: String,
        ticket: Ticket,
        carry: Carry,
        shared: Arc<NodeShared>,
    ) -> Self {
        Connection {
            socket: Some(socket),
            session: ticket.session,
            number: ticket.open.connection,
            open: Some(ticket.open),
            tls: carry.tls,
            idle_timeout: carry.idle_timeout,
            _source: carry._source,
            shared,
            gateway_id: ticket.gateway_id,
            peer,
            destination,
            guard: ticket.guard,
        }
    }
}

/// Opens the stream and pumps until both directions are done.
async fn carry<IO>(io: IO, session: SessionHandle, open: OpenStream, options: PumpOptions) -> Ended
where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin,
{
    match session.open_stream(open) {
        Ok(stream) => Ended::Pump(Pump::with_options(io, stream, options).await),
        Err(_) => Ended::SessionGone,
    }
}

/// Terminates user-side TLS, then carries the connection.
/// Terminates user-side TLS, takes the connection's concurrency slot (it is real now),
/// then carries it.
async fn carry_tls(
    acceptor: TlsAcceptor,
    socket: tokio::net::TcpStream,
    session: SessionHandle,
    open: OpenStream,
    options: PumpOptions,
    guard: Arc<ConnectionGuard>,
) -> Ended {
    match tokio::time::timeout(CLOUD_TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) if guard.take_slot() => carry(stream, session, open, options).await,
        Ok(Ok(_)) => Ended::OverLimit,
        Ok(Err(e)) => Ended::TlsFailed(e.to_string()),
        Err(_) => Ended::TlsFailed(format!(
            "no TLS handshake within {}s",
            CLOUD_TLS_HANDSHAKE_TIMEOUT.as_secs()
        )),
    }
}

/// Resolves once the connection has carried nothing, either way, for `limit`. It looks at
/// the byte counters every quarter of the limit, so the byte path pays nothing for it.
pub(super) async fn idle_for(counters: Arc<PumpCounters>, limit: Duration) {
    let tick = (limit / 4).max(Duration::from_millis(250));
    let bytes =
        || counters.sent.load(Ordering::Relaxed) + counters.received.load(Ordering::Relaxed);
    let (mut seen, mut quiet_since) = (bytes(), tokio::time::Instant::now());
    loop {
        tokio::time::sleep(tick).await;
        let now = bytes();
        if now != seen {
            (seen, quiet_since) = (now, tokio::time::Instant::now());
        } else if quiet_since.elapsed() >= limit {
            return;
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (Some(socket), Some(open)) = (self.socket.take(), self.open.take()) else {
            ctx.stop();
            return;
        };
        let socket = match socket {
            Socket::Here(s) => s,
            // The socket moves to this arbiter's runtime here.
            Socket::Moved(s) => match tokio::net::TcpStream::from_std(s) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("Connection #{}: cannot adopt the socket: {e}", self.number);
                    ctx.stop();
                    return;
                }
            },
        };
        // TCP_NODELAY comes from the listener (see destination::bind).
        tracing::debug!(
            "Connection #{} from {} to destination {} opened",
            self.number,
            self.peer,
            self.destination
        );
        let options = PumpOptions {
            counters: Some(self.guard.counters.clone()),
            trace_id: Some(self.number),
            local: LocalEnd::CloudApplication,
        };
        let session = self.session.clone();
        let tls = self.tls.clone();
        let counters = self.guard.counters.clone();
        let guard = self.guard.clone();
        let idle = self.idle_timeout;
        // The slot is taken after the handshake: the actor's own state is needed for that,
        // so a TLS connection runs in two steps (handshake, then carry).
        let work = async move {
            match tls {
                None => carry(socket, session, open, options).await,
                // Boxed: a TLS connection's state is a few KiB, which a plain connection's
                // future would otherwise reserve too (idle connections must stay small).
                Some(acceptor) => {
                    Box::pin(carry_tls(acceptor, socket, session, open, options, guard)).await
                }
            }
        };
        // A debug span: free at the usual levels, the ids on every line at DEBUG and below.
        let span = tracing::debug_span!(
            "connection",
            id = self.number,
            gateway = %self.gateway_id,
            destination = %self.destination
        );
        let carried = async move {
            match idle {
                None => work.await,
                Some(limit) => tokio::select! {
                    ended = work => ended,
                    () = idle_for(counters, limit) => Ended::Idle(limit),
                },
            }
        };
        tracing::Instrument::instrument(carried, span)
            .into_actor(self)
            .map(|ended, act, ctx| {
                act.report(ended);
                ctx.stop();
            })
            .spawn(ctx);
    }
}

impl Connection {
    fn report(&self, ended: Ended) {
        let n = self.number;
        match ended {
            Ended::Pump(PumpOutcome::Closed) => tracing::debug!("Connection #{n} closed"),
            Ended::Pump(PumpOutcome::ResetByPeer(r)) => tracing::info!(
                "Connection #{n} from {} closed by the client: {} ({:?})",
                self.peer,
                r.message,
                r.code
            ),
            Ended::Pump(PumpOutcome::SessionLost) | Ended::SessionGone => {
                tracing::info!("Connection #{n} from {} lost its client session", self.peer)
            }
            Ended::Pump(PumpOutcome::Io(e)) => tracing::debug!("Connection #{n} ended: {e}"),
            Ended::TlsFailed(why) => {
                self.guard.refuse(Refused::Tls);
                self.shared.event(
                    &self.gateway_id,
                    EventKind::TlsRefused,
                    format!(
                        "refused a connection from {} to destination {}: TLS handshake failed: {why}",
                        self.peer, self.destination
                    ),
                    Some(&self.destination),
                    None,
                );
            }
            Ended::OverLimit => self.shared.event(
                &self.gateway_id,
                EventKind::LimitReached,
                format!(
                    "refused a connection from {} to destination {} after its TLS handshake: the gateway reached its concurrency limit",
                    self.peer, self.destination
                ),
                Some(&self.destination),
                None,
            ),
            Ended::Idle(limit) => {
                self.guard.closed_idle();
                tracing::debug!(
                    "Connection #{n} from {} closed: idle for {}s",
                    self.peer,
                    limit.as_secs()
                )
            }
        }
    }
}
