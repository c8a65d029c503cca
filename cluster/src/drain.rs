//! The drain that SIGTERM starts (F20): the node tells everyone it is leaving, keeps
//! serving for a short grace so load balancers and clients move, then stops accepting and
//! lets what is open finish, up to a deadline.
//!
//! 1. Draining is marked: `/healthz` answers 503 `draining`, the cluster registry shows
//!    it, and the tunnel port refuses new sessions with the `draining` code.
//! 2. Every session gets a `GoAway`; clients make sure they are connected elsewhere.
//! 3. Cloud ports keep accepting for `grace`.
//! 4. Cloud ports close; open connections finish, up to `timeout`.
//! 5. Sessions close; the caller then stops the API and leaves the cluster.
//!
//! No step polls: the node counts its connections and sessions ([`Tracker`]) and waits for
//! them to reach zero.

use crate::actors::gateway::{CloseListeners, CloseSessions, SendGoAway};
use crate::actors::node::{AllGateways, Node};
use crate::actors::NodeShared;
use crate::config::DrainTimes;
use actix::Addr;
use futures_util::future::join_all;
use sg_proto::frame::GoAway;
use std::time::Duration;

/// Closing sessions flushes their last frames; this bounds how long that may take.
const SESSION_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Runs steps 1–5. `on_draining` publishes the draining mark (the cluster registry).
pub async fn drain(
    node: &Addr<Node>,
    shared: &NodeShared,
    times: DrainTimes,
    on_draining: impl std::future::Future<Output = ()>,
) {
    shared.status.set_draining();
    on_draining.await;
    let gateways = node.send(AllGateways).await.unwrap_or_default();
    let open = shared.connections.live();
    tracing::info!(
        "draining: {} client session(s) told to move, {open} connection(s) open; cloud ports \
         close in {:.1}s",
        shared.sessions.live(),
        times.grace.as_secs_f64()
    );
    let go_away = SendGoAway(GoAway {
        reason: format!(
            "node {} (region {}) is shutting down",
            shared.node_id, shared.region
        ),
        reconnect_after_ms: (times.grace + times.timeout).as_millis() as u64,
    });
    join_all(gateways.iter().map(|g| g.send(go_away.clone()))).await;

    tokio::time::sleep(times.grace).await;
    shared.status.close_listeners();
    join_all(gateways.iter().map(|g| g.send(CloseListeners))).await;
    let open = shared.connections.live();
    if open > 0 {
        tracing::info!(
            "cloud ports closed; waiting up to {}s for {open} open connection(s)",
            times.timeout.as_secs()
        );
    }
    if tokio::time::timeout(times.timeout, shared.connections.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connection(s) still open at the drain deadline; closing them",
            shared.connections.live()
        );
    }
    join_all(gateways.iter().map(|g| {
        g.send(CloseSessions {
            reason: "the node is shutting down".into(),
        })
    }))
    .await;
    let _ = tokio::time::timeout(SESSION_CLOSE_WAIT, shared.sessions.idle()).await;
}
