//! The Connection actor: one per carried cloud connection, living on its session's arbiter.
//! It owns the connection's pump (a plain future, not a message per chunk) and its
//! [`ConnectionGuard`], whose drop returns the concurrency slot to the gateway.

use super::gateway::{ConnectionGuard, Ticket};
use actix::prelude::*;
use sg_proto::pump::{Pump, PumpOptions, PumpOutcome, StreamHandle};
use std::net::SocketAddr;

/// A cloud connection's socket: already on this arbiter, or moving to it from another.
pub enum Socket {
    Here(tokio::net::TcpStream),
    Moved(std::net::TcpStream),
}

pub struct Connection {
    socket: Option<Socket>,
    stream: Option<StreamHandle>,
    peer: SocketAddr,
    destination: String,
    number: u64,
    _guard: ConnectionGuard,
}

impl Connection {
    pub fn new(socket: Socket, peer: SocketAddr, destination: String, ticket: Ticket) -> Self {
        Connection {
            socket: Some(socket),
            stream: Some(ticket.stream),
            peer,
            destination,
            number: ticket.connection,
            _guard: ticket.guard,
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (Some(socket), Some(stream)) = (self.socket.take(), self.stream.take()) else {
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
        let pump = Pump::with_options(
            socket,
            stream,
            PumpOptions {
                counters: Some(self._guard.counters.clone()),
                trace_id: Some(self.number),
            },
        );
        pump.into_actor(self)
            .map(|outcome, act, ctx| {
                match outcome {
                    PumpOutcome::Closed => {
                        tracing::debug!("Connection #{} closed", act.number)
                    }
                    PumpOutcome::ResetByPeer(r) => tracing::info!(
                        "Connection #{} from {} closed by the client: {} ({:?})",
                        act.number,
                        act.peer,
                        r.message,
                        r.code
                    ),
                    PumpOutcome::SessionLost => tracing::info!(
                        "Connection #{} from {} lost its client session",
                        act.number,
                        act.peer
                    ),
                    PumpOutcome::Io(e) => {
                        tracing::debug!("Connection #{} ended: {e}", act.number)
                    }
                }
                ctx.stop();
            })
            .spawn(ctx);
    }
}
