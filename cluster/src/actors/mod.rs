//! The node as actors.
//!
//! ```text
//! Node ─┬─ Gateway (one per gateway) ── Destination (one per active cloud port)
//!       │        ▲ sessions register, connections are admitted here
//!       ├─ Session (one per client tunnel, on a worker arbiter)
//!       │        ├─ Connection (one per carried connection, same arbiter)
//!       │        └─ cloud connection (a client-opened stream to a cloud destination:
//!       │           admitted by the Gateway, dialled and pumped on the session's arbiter)
//!       └─ StateActor (sync thread: the single writer of sled)
//! ```
//!
//! Control travels as messages; bytes travel in each Connection's pump, never through a
//! mailbox.

pub mod admission;
pub mod client_book;
pub mod cloud_connection;
pub mod connection;
pub mod destination;
pub mod gateway;
pub mod node;
pub mod session;
pub mod state;

use crate::etcd::store::Replication;
use crate::events::EventThrottle;
use crate::limiter::HandshakeLimiter;
use crate::records::{EventKind, EventRecord, RECORD_VERSION};
use crate::status::NodeStatus;
use crate::tracker::Tracker;
use crate::workers::Workers;
use actix::Addr;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Read-only facts and shared services every actor of the node may use.
pub struct NodeShared {
    pub node_id: String,
    pub region: String,
    pub cloud_host: String,
    pub cloud_bind: IpAddr,
    /// Client sessions one gateway may hold on this node.
    pub max_sessions_per_gateway: usize,
    pub workers: Workers,
    pub state: Addr<state::StateActor>,
    pub throttle: EventThrottle,
    /// Caps on unauthenticated tunnel connections (shared with the tunnel listener).
    pub handshakes: Arc<HandshakeLimiter>,
    /// Draining, cloud ports closed, store health.
    pub status: Arc<NodeStatus>,
    /// Which cloud ports are really listening, for the API.
    pub listening: Arc<crate::listening::ListenBook>,
    /// Carried connections and client sessions alive now, so a drain can wait for them.
    pub connections: Arc<Tracker>,
    pub sessions: Arc<Tracker>,
    /// In a cluster: how far the local copy has caught up with etcd.
    pub replication: Option<Arc<Replication>>,
    /// The node's own listeners, which a cloud destination's dial must never reach.
    pub endpoints: crate::cloud_dest::NodeEndpoints,
    /// How long tunnel handshakes and carried connections take, for `/metrics`.
    pub timings: Arc<Timings>,
    next_connection: AtomicU64,
}

/// Upper bounds of the tunnel handshake histogram, in seconds.
const HANDSHAKE_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the connection duration histogram, in seconds (a minute to a day).
const DURATION_BOUNDS: &[f64] = &[
    0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0,
];

/// Histograms the node keeps for `/metrics`.
pub struct Timings {
    /// From a tunnel connection's accept to its Welcome (TLS and Hello), accepted ones.
    pub handshake: sg_proto::prometheus::Histogram,
    /// How long carried connections lasted, once closed.
    pub connection: sg_proto::prometheus::Histogram,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            handshake: sg_proto::prometheus::Histogram::new(HANDSHAKE_BOUNDS),
            connection: sg_proto::prometheus::Histogram::new(DURATION_BOUNDS),
        }
    }
}

/// Who and where the node is, and the per-gateway caps it enforces.
pub struct NodeIdentity {
    pub node_id: String,
    pub region: String,
    pub cloud_host: String,
    pub cloud_bind: IpAddr,
    pub max_sessions_per_gateway: usize,
    pub endpoints: crate::cloud_dest::NodeEndpoints,
}

impl NodeShared {
    pub fn new(
        identity: NodeIdentity,
        workers: Workers,
        state: Addr<state::StateActor>,
        status: Arc<NodeStatus>,
        replication: Option<Arc<Replication>>,
    ) -> Self {
        let NodeIdentity {
            node_id,
            region,
            cloud_host,
            cloud_bind,
            max_sessions_per_gateway,
            endpoints,
        } = identity;
        NodeShared {
            node_id,
            region,
            cloud_host,
            cloud_bind,
            max_sessions_per_gateway,
            workers,
            state,
            throttle: EventThrottle::default(),
            handshakes: Arc::new(HandshakeLimiter::default()),
            status,
            listening: Arc::default(),
            connections: Arc::new(Tracker::default()),
            sessions: Arc::new(Tracker::default()),
            replication,
            endpoints,
            timings: Arc::default(),
            next_connection: AtomicU64::new(1),
        }
    }

    /// The `host:port` names a cloud application may use for a cloud port of this node:
    /// `--cloud-host`, and the address the port listens on when that is another.
    pub fn cloud_authorities(&self, port: u16) -> Vec<String> {
        let with_port = |host: &str| sg_proto::hostport::host_port(host, port);
        let mut names = vec![with_port(&self.cloud_host)];
        let bind = self.cloud_bind.to_string();
        if !self.cloud_bind.is_unspecified() && bind != self.cloud_host {
            names.push(with_port(&bind));
        }
        names
    }

    /// Node-wide connection number (`Connection #N` in both ends' logs).
    pub fn next_connection(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Logs a refusal or notable event once (throttled) and records it in the gateway's
    /// event log.
    pub fn event(
        &self,
        gateway_id: &str,
        kind: EventKind,
        message: String,
        destination_id: Option<&str>,
        client_id: Option<&str>,
    ) {
        let Some(message) = self.throttle.admit(gateway_id, kind, message) else {
            return;
        };
        tracing::warn!(gateway = gateway_id, kind = ?kind, "{message}");
        self.state.do_send(state::RecordEvent(EventRecord {
            v: RECORD_VERSION,
            at: crate::time::now_millis(),
            gateway_id: gateway_id.to_string(),
            kind,
            message,
            destination_id: destination_id.map(str::to_string),
            client_id: client_id.map(str::to_string),
        }));
    }
}
