//! A cloud destination's connection (F29): a stream a client opened for a private
//! application's connection to one of its client ports. The Gateway admits it (the
//! destination is one of its cloud destinations, enabled, within its IP rules and the
//! concurrency limit); then, on the session's arbiter, the node dials the resource the
//! admin configured — never an address the client names — and pumps until both sides are
//! done or the destination's idle timeout passes.

use super::connection::idle_for;
use super::gateway::CloudTicket;
use super::NodeShared;
use crate::cloud_dest;
use crate::records::EventKind;
use sg_proto::frame::{OpenStream, ResetCode};
use sg_proto::pump::{LocalEnd, Pump, PumpOptions, PumpOutcome, StreamHandle};
use std::sync::Arc;

/// Dials the ticket's resource and carries the stream to it.
pub async fn carry(
    shared: Arc<NodeShared>,
    gateway_id: String,
    client_id: String,
    open: OpenStream,
    stream: StreamHandle,
    ticket: CloudTicket,
) {
    let n = ticket.connection;
    let dest = open.destination_id.as_str();
    // The client reports the application's address: bounded before logs and events.
    let peer: String = open.peer.chars().take(64).collect();
    let socket = match cloud_dest::dial(
        &ticket.resource_host,
        ticket.resource_port,
        &shared.endpoints,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            let message = format!(
                "Connection #{n} from {peer} (client {client_id}) to cloud destination {dest}: {e}"
            );
            shared.event(
                &gateway_id,
                EventKind::ConnectFailed,
                message.clone(),
                Some(dest),
                Some(&client_id),
            );
            stream.reset(ResetCode::ConnectFailed, message);
            return;
        }
    };
    let _ = socket.set_nodelay(true);
    sg_proto::limits::set_keepalive(&socket);
    tracing::debug!(
        gateway = %gateway_id,
        "Connection #{n} (the client's #{}) from {} (client {client_id}) to cloud destination {dest} ({}:{}) opened",
        open.connection,
        peer,
        ticket.resource_host,
        ticket.resource_port
    );
    let options = PumpOptions {
        counters: Some(ticket.guard.counters.clone()),
        trace_id: Some(n),
        local: LocalEnd::Destination,
    };
    let pump = Pump::with_options(socket, stream, options);
    let outcome = match ticket.idle_timeout {
        None => Some(pump.await),
        Some(limit) => tokio::select! {
            outcome = pump => Some(outcome),
            () = idle_for(ticket.guard.counters.clone(), limit) => None,
        },
    };
    match outcome {
        Some(PumpOutcome::Closed) => tracing::debug!("Connection #{n} closed"),
        Some(PumpOutcome::ResetByPeer(r)) => {
            tracing::debug!("Connection #{n} reset by the client: {}", r.message)
        }
        Some(PumpOutcome::SessionLost) => {
            tracing::info!("Connection #{n} to cloud destination {dest} lost its client session")
        }
        Some(PumpOutcome::Io(e)) => tracing::debug!("Connection #{n} ended: {e}"),
        None => {
            ticket.guard.closed_idle();
            tracing::debug!("Connection #{n} to cloud destination {dest} closed: idle")
        }
    }
}
