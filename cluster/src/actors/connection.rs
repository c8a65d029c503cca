//! The Connection actor: one per carried cloud connection, living on its session's arbiter.
//! It terminates user-side TLS when its cloud port asks for it, then opens the stream to the
//! client and runs the connection's pump (a plain future, not a message per chunk). Its
//! [`ConnectionGuard`] gives the concurrency slot back when it ends, however it ends.

use super::gateway::{ConnectionGuard, Refused, Ticket};
use super::NodeShared;
use crate::records::EventKind;
use actix::prelude::*;
use sg_proto::driver::SessionHandle;
use sg_proto::frame::OpenStream;
use sg_proto::pump::{Pump, PumpOptions, PumpOutcome, ReadReady};
use std::net::SocketAddr;
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

pub struct Connection {
    socket: Option<Socket>,
    session: SessionHandle,
    open: Option<OpenStream>,
    tls: Option<TlsAcceptor>,
    shared: Arc<NodeShared>,
    gateway_id: String,
    peer: SocketAddr,
    destination: String,
    number: u64,
    guard: ConnectionGuard,
}

/// How carrying a connection ended.
enum Ended {
    Pump(PumpOutcome),
    SessionGone,
    TlsFailed(String),
}

impl Connection {
    pub fn new(
        socket: Socket,
        peer: SocketAddr,
        destination: String,
        ticket: Ticket,
        tls: Option<TlsAcceptor>,
        shared: Arc<NodeShared>,
    ) -> Self {
        Connection {
            socket: Some(socket),
            session: ticket.session,
            number: ticket.open.connection,
            open: Some(ticket.open),
            tls,
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
async fn carry_tls(
    acceptor: TlsAcceptor,
    socket: tokio::net::TcpStream,
    session: SessionHandle,
    open: OpenStream,
    options: PumpOptions,
) -> Ended {
    match tokio::time::timeout(CLOUD_TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => carry(stream, session, open, options).await,
        Ok(Err(e)) => Ended::TlsFailed(e.to_string()),
        Err(_) => Ended::TlsFailed("no TLS handshake within 10s".into()),
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
        };
        let session = self.session.clone();
        let tls = self.tls.clone();
        async move {
            match tls {
                None => carry(socket, session, open, options).await,
                // Boxed: a TLS connection's state is a few KiB, which a plain connection's
                // future would otherwise reserve too (idle connections must stay small).
                Some(acceptor) => {
                    Box::pin(carry_tls(acceptor, socket, session, open, options)).await
                }
            }
        }
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
        }
    }
}
