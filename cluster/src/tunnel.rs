//! The tunnel port: where clients dial in.
//!
//! Each accepted connection gets a slot from the [`HandshakeLimiter`] and moves to a worker
//! arbiter, where one deadline covers TLS, the Hello and authentication. Only a client that
//! proved its gateway token becomes a [`Session`]; everything else is refused with a typed
//! reason (if it got as far as speaking our protocol) and logged once.

use crate::actors::gateway::{Authenticate, SessionEntry};
use crate::actors::node::{FindGateway, Node};
use crate::actors::session::Session;
use crate::actors::NodeShared;
use crate::ids::new_id;
use crate::limiter::HandshakeLimiter;
use crate::records::EventKind;
use crate::time::now_secs;
use crate::workers::Worker;
use actix::prelude::*;
use sg_proto::driver::{self, DriverConfig};
use sg_proto::frame::{Refusal, RefuseCode, Welcome};
use sg_proto::handshake::{self, HandshakeError};
use sg_proto::limits::{FIRST_BYTE_TIMEOUT, HANDSHAKE_TIMEOUT, HEARTBEAT_INTERVAL};
use sg_proto::mux::Role;
use sg_proto::version::{check_compatible, ProtocolVersion, VersionMismatch, PRODUCT_VERSION};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Log lines that anyone reaching the tunnel port can cause pass through this.
static STRANGERS: sg_proto::log_throttle::LogThrottle = sg_proto::log_throttle::LogThrottle::new();

/// Why a tunnel connection did not become a session.
#[derive(Debug, thiserror::Error)]
enum TunnelError {
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("handshake timed out after {}s", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
    #[error("nothing arrived within {} ms of connecting", FIRST_BYTE_TIMEOUT.as_millis())]
    Silent,
    #[error("closed to make room: the node's pending handshakes were full")]
    Evicted,
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("refused ({}): {}", .0.code.as_str(), .0.message)]
    Refused(Refusal),
    #[error("socket error: {0}")]
    Socket(std::io::Error),
}

/// Longest client version, client id or gateway id kept from a Hello.
const MAX_PEER_TEXT: usize = 64;
/// Longest host name kept from a Hello (a DNS name's limit).
const MAX_HOSTNAME: usize = 253;

/// `text` cut to `max` characters, with control characters replaced.
fn tame(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

pub struct TunnelListener {
    pub listener: TcpListener,
    pub acceptor: TlsAcceptor,
    pub shared: Arc<NodeShared>,
    pub node: Addr<Node>,
    pub limiter: Arc<HandshakeLimiter>,
}

impl TunnelListener {
    /// Accepts forever (until the system stops).
    pub async fn run(self) {
        let this = Arc::new(self);
        loop {
            let (sock, peer) = match this.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("tunnel accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(permit) = this.limiter.try_acquire(peer.ip()) else {
                tracing::debug!(%peer, "too many pending handshakes; connection closed");
                continue;
            };
            let std_sock = match sock.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, "could not hand over a tunnel connection: {e}");
                    continue;
                }
            };
            let worker = this.shared.workers.pick();
            let me = this.clone();
            let placed = worker.clone();
            worker.handle.spawn(async move {
                let mut permit = permit;
                let establish =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, me.establish(std_sock, peer, placed));
                let outcome = tokio::select! {
                    r = establish => r.unwrap_or(Err(TunnelError::Timeout)),
                    _ = &mut permit.evicted => Err(TunnelError::Evicted),
                };
                drop(permit);
                match outcome {
                    Ok(()) => {}
                    // Refusals were already logged with their gateway.
                    Err(TunnelError::Refused(_)) => {}
                    // What strangers cause is counted (metrics), not logged one by one.
                    Err(
                        e @ (TunnelError::Timeout | TunnelError::Evicted | TunnelError::Silent),
                    ) => {
                        tracing::debug!(%peer, "tunnel connection dropped: {e}")
                    }
                    Err(other) => sg_proto::throttled_warn!(
                        STRANGERS,
                        "tunnel connection failed",
                        %peer,
                        "tunnel connection failed: {other}"
                    ),
                }
            });
        }
    }

    async fn establish(
        &self,
        sock: std::net::TcpStream,
        peer: SocketAddr,
        worker: Worker,
    ) -> Result<(), TunnelError> {
        let started = std::time::Instant::now();
        let sock = TcpStream::from_std(sock).map_err(TunnelError::Socket)?;
        let _ = sock.set_nodelay(true);
        // A client's TLS ClientHello follows its connect at once; a peer that sends nothing
        // gives its slot back quickly.
        tokio::time::timeout(FIRST_BYTE_TIMEOUT, sock.readable())
            .await
            .map_err(|_| TunnelError::Silent)?
            .map_err(TunnelError::Socket)?;
        let tls = self.acceptor.accept(sock).await.map_err(TunnelError::Tls)?;
        let (mut hello, pending) = handshake::node(tls).await?;
        // What a peer says about itself ends up in logs, events and the API: keep it short
        // and printable before anyone reads it.
        hello.client_version = tame(&hello.client_version, MAX_PEER_TEXT);
        hello.client_id = tame(&hello.client_id, MAX_PEER_TEXT);
        hello.hostname = tame(&hello.hostname, MAX_HOSTNAME);
        hello.gateway_id = tame(&hello.gateway_id, MAX_PEER_TEXT);
        let gateway_id = hello.gateway_id.clone();

        let refuse = |code: RefuseCode, message: String| Refusal { code, message };
        let verdict = async {
            if self.shared.status.draining() {
                return Err(refuse(
                    RefuseCode::Draining,
                    format!(
                        "node {} (region {}) is draining before it shuts down; the client \
                         connects to the other nodes of the cluster",
                        self.shared.node_id, self.shared.region
                    ),
                ));
            }
            let node_version = ProtocolVersion::current();
            if let Err(mismatch) = check_compatible(node_version, hello.protocol) {
                let code = match mismatch {
                    VersionMismatch::Major { .. } => RefuseCode::VersionIncompatible,
                    VersionMismatch::TooOld { .. } => RefuseCode::VersionTooOld,
                };
                self.shared.event(
                    &gateway_id,
                    EventKind::SessionRefused,
                    format!(
                        "refused a client from {peer} (sg-client {}): {mismatch}",
                        hello.client_version
                    ),
                    None,
                    Some(&hello.client_id),
                );
                return Err(refuse(code, mismatch.to_string()));
            }
            let Ok(Some(gateway)) = self.node.send(FindGateway(gateway_id.clone())).await else {
                sg_proto::throttled_warn!(
                    STRANGERS,
                    "unknown gateway",
                    %peer,
                    gateway = %gateway_id,
                    "refused a client: unknown gateway"
                );
                if !self.shared.status.store().writable() {
                    // This node's copy may be behind the cluster: not a final answer.
                    return Err(refuse(
                        RefuseCode::Internal,
                        format!(
                            "gateway {gateway_id} is not in this node's copy of the configuration, \
                             which cannot reach etcd right now; retry"
                        ),
                    ));
                }
                return Err(refuse(
                    RefuseCode::UnknownGateway,
                    format!(
                        "gateway {gateway_id} does not exist on this node (region {}); \
                         check the id with `sgctl gateway list`",
                        self.shared.region
                    ),
                ));
            };
            let auth = gateway
                .send(Authenticate {
                    token: hello.token.clone(),
                    client_id: hello.client_id.clone(),
                    peer,
                })
                .await
                .map_err(|_| {
                    refuse(
                        RefuseCode::Internal,
                        "the gateway is being reconfigured; retry".into(),
                    )
                })??;
            Ok((gateway, auth))
        }
        .await;

        let (gateway, auth) = match verdict {
            Ok(v) => v,
            Err(refusal) => {
                let _ = pending.refuse(refusal.clone()).await;
                return Err(TunnelError::Refused(refusal));
            }
        };
        let session_id = new_id("ss");
        let welcome = Welcome {
            session_id: session_id.clone(),
            node_id: self.shared.node_id.clone(),
            region: self.shared.region.clone(),
            node_version: PRODUCT_VERSION.to_string(),
            protocol: ProtocolVersion::current(),
            heartbeat_ms: HEARTBEAT_INTERVAL.as_millis() as u64,
            gateway: auth.config,
        };
        let established = pending.welcome(welcome).await?;
        self.shared.timings.handshake.observe(started.elapsed());
        let (handle, events, driver) = driver::start(
            established.io,
            established.leftover,
            DriverConfig::new(Role::Node),
        );
        let entry = SessionEntry {
            session_id,
            client_id: hello.client_id.clone(),
            client_version: hello.client_version.clone(),
            hostname: hello.hostname.clone(),
            peer,
            connected_at: now_secs(),
            handle,
            worker,
            token_hash: auth.token_hash,
            protocol_minor: hello.protocol.minor,
        };
        // We run on the session's arbiter, so the actor starts here.
        Session::new(
            self.shared.clone(),
            gateway,
            gateway_id,
            entry,
            driver,
            events,
        )
        .start();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn peer_text_is_cut_and_made_printable() {
        let long = format!("\u{1b}[2J{}", "A".repeat(16 * 1024));
        let t = super::tame(&long, 64);
        assert!(t.chars().count() <= 65);
        assert!(!t.chars().any(char::is_control), "{t:?}");
        assert_eq!(super::tame("0.6.0", 64), "0.6.0");
    }
}
