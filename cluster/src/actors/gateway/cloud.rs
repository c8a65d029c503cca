//! Connections a client asks the node to carry to a cloud destination (F29): only what
//! the admin configured may be dialled.

use super::Gateway;
use crate::actors::admission::{ConnectionGuard, Refused};
use crate::controls::IpRules;
use crate::records::EventKind;
use actix::prelude::*;
use sg_proto::frame::DestinationKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
