//! One tunnel: a gateway's session to one node, kept alive.
//!
//! [`run`] dials the node (TCP, TLS verified against the CA or the pinned fingerprint),
//! says Hello, and serves the session until it ends; then it waits (exponential backoff
//! with jitter, logged) and dials again, for as many attempts as `--reconnect` allows. A
//! refusal that retrying cannot fix (wrong token, unknown gateway, expired token, version
//! too old) ends the tunnel with the node's message.

use crate::config::{ClientConfig, Reconnect, ServerAddr};
use crate::egress::{self, ProxyError};
use crate::fleet_link::{FleetEvent, TunnelEnd, TunnelSpec};
use crate::registry::{GatewayRuntime, SessionInfo};
use crate::serve::{self, Current, ServeContext};
use sg_proto::backoff::Backoff;
use sg_proto::driver::{self, DriverConfig, SessionEnd, SessionEvent};
use sg_proto::frame::{Frame, GatewayConfig, Hello, NoticeKind, Welcome};
use sg_proto::handshake::{self, Established, HandshakeError};
use sg_proto::limits::HANDSHAKE_TIMEOUT;
use sg_proto::mux::Role;
use sg_proto::tls;
use sg_proto::version::{ProtocolVersion, HEALTH_REPORTS_SINCE, PRODUCT_VERSION};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The first wait before dialling a node again; it doubles, with jitter, while dials fail.
const RECONNECT_BASE: Duration = Duration::from_millis(500);
/// No wait is longer than this, so a client is back within a minute of its node (F15).
const RECONNECT_CAP: Duration = Duration::from_secs(60);

/// A session that lived this long resets the backoff: the node was healthy.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

/// What every tunnel of this process shares.
pub struct ClientContext {
    pub client_id: String,
    pub hostname: String,
    pub tls: TlsConnector,
    pub config: ClientConfig,
    /// Set (with the operator's reason) when a node says an operator ended this client
    /// (F30): every tunnel stops and the process exits with its own status.
    pub killed: watch::Sender<Option<String>>,
}

impl ClientContext {
    pub fn is_killed(&self) -> bool {
        self.killed.borrow().is_some()
    }
}

#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("timed out")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

type Tunnel = TlsStream<TcpStream>;

/// A TCP connection to `server`, from `--client-bind` when given.
async fn connect(server: &ServerAddr, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(bind) = bind else {
        return TcpStream::connect((server.host.as_str(), server.port)).await;
    };
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{server} has no address of the family of --client-bind {bind}"),
    );
    for addr in tokio::net::lookup_host((server.host.as_str(), server.port)).await? {
        if addr.is_ipv4() != bind.is_ipv4() {
            continue;
        }
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(bind, 0))?;
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn dial(
    ctx: &ClientContext,
    gw: &GatewayRuntime,
    server: &ServerAddr,
) -> Result<(Welcome, Established<Tunnel>), DialError> {
    let tcp = match ctx.config.proxy.for_host(&server.host) {
        Some(proxy) => {
            egress::connect(proxy, &server.host, server.port, ctx.config.client_bind).await?
        }
        None => connect(server, ctx.config.client_bind)
            .await
            .map_err(DialError::Connect)?,
    };
    let _ = tcp.set_nodelay(true);
    let name = tls::server_name(&server.host).map_err(|e| {
        DialError::Tls(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            e.to_string(),
        ))
    })?;
    let stream = ctx.tls.connect(name, tcp).await.map_err(DialError::Tls)?;
    let hello = Hello {
        protocol: ProtocolVersion::current(),
        client_version: PRODUCT_VERSION.to_string(),
        client_id: ctx.client_id.clone(),
        hostname: ctx.hostname.clone(),
        gateway_id: gw.creds.id.clone(),
        token: gw.creds.token.expose().to_string(),
    };
    Ok(handshake::client(stream, hello).await?)
}

/// Keeps one session of `gw` to its target alive until refused, out of attempts, retired
/// (its node left the cluster) or shut down.
pub async fn run(
    ctx: Arc<ClientContext>,
    gw: Arc<GatewayRuntime>,
    spec: TunnelSpec,
    mut shutdown: watch::Receiver<bool>,
) -> TunnelEnd {
    let id = gw.creds.id.clone();
    let server = spec.target.addr().clone();
    let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
    let mut failures: u64 = 0;
    loop {
        if ctx.is_killed() {
            return TunnelEnd::Shutdown;
        }
        if !spec.may_dial() {
            return TunnelEnd::Retired;
        }
        let dialed = tokio::select! {
            r = tokio::time::timeout(HANDSHAKE_TIMEOUT, dial(&ctx, &gw, &server)) => r,
            _ = shutdown.changed() => return TunnelEnd::Shutdown,
        };
        match dialed {
            Ok(Ok((welcome, established))) => {
                let started = Instant::now();
                let span = tracing::info_span!(
                    "session",
                    gateway = %id,
                    session = %welcome.session_id,
                    node = %welcome.node_id
                );
                let serving = serve_session(&ctx, &gw, &spec, welcome, established, &mut shutdown);
                let end = tracing::Instrument::instrument(serving, span).await;
                match end {
                    None => return TunnelEnd::Shutdown,
                    Some(end) => tracing::warn!(gateway = %id, "session to {server} ended: {end}"),
                }
                if started.elapsed() >= HEALTHY_SESSION {
                    backoff.reset();
                    failures = 0;
                }
            }
            Ok(Err(DialError::Handshake(HandshakeError::Refused(refusal)))) => {
                if refusal.code.is_permanent() {
                    tracing::error!(
                        gateway = %id,
                        "refused by the node at {server} ({}): {}",
                        refusal.code.as_str(),
                        refusal.message
                    );
                    return TunnelEnd::Refused(refusal);
                }
                tracing::warn!(gateway = %id, "the node at {server} refused for now ({}): {}", refusal.code.as_str(), refusal.message);
            }
            Ok(Err(e)) => tracing::warn!(gateway = %id, "cannot open a session to {server}: {e}"),
            Err(_) => {
                tracing::warn!(gateway = %id, "cannot open a session to {server}: {}", DialError::Timeout)
            }
        }
        failures += 1;
        if let Reconnect::Attempts(max) = ctx.config.reconnect {
            if failures > max {
                tracing::error!(gateway = %id, "giving up on {server} after {max} reconnect attempt(s) (--reconnect {max})");
                return TunnelEnd::GaveUp { attempts: max };
            }
        }
        let wait = backoff.next_wait();
        let of = match ctx.config.reconnect {
            Reconnect::Forever => String::new(),
            Reconnect::Attempts(max) => format!(" of {max}"),
        };
        tracing::info!(
            gateway = %id,
            "reconnecting to {server} in {:.1}s (attempt {failures}{of})",
            wait.as_secs_f64()
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return TunnelEnd::Shutdown,
        }
    }
}

/// Serves one established session. `None` means we were asked to shut down.
async fn serve_session(
    ctx: &Arc<ClientContext>,
    gw: &Arc<GatewayRuntime>,
    spec: &TunnelSpec,
    welcome: Welcome,
    established: Established<Tunnel>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<SessionEnd> {
    let id = gw.creds.id.clone();
    let server = spec.target.addr();
    let _ = spec.events.send(FleetEvent::Welcomed {
        tunnel: spec.id,
        node_id: welcome.node_id.clone(),
    });
    let (handle, mut events, driver) = driver::start(
        established.io,
        established.leftover,
        DriverConfig::new(Role::Client),
    );
    let mut driver = tokio::spawn(driver);
    log_config(&id, &welcome.gateway, true);
    let config = Arc::new(welcome.gateway);
    gw.set_config(config.clone());
    gw.session_up(SessionInfo {
        session_id: welcome.session_id.clone(),
        server: server.to_string(),
        node_id: welcome.node_id.clone(),
        region: welcome.region.clone(),
        connected_at: std::time::SystemTime::now(),
        protocol_minor: welcome.protocol.minor,
        handle: handle.clone(),
    });
    if let Some(rules) = gw.pending_acl_file() {
        let n = rules.len();
        match gw.push_acl(rules) {
            Ok(()) => {
                gw.acl_file_sent();
                tracing::info!(gateway = %id, "sent the {n} rule(s) of --acl-file to the node")
            }
            // Kept for the next session.
            Err(e) => tracing::error!(gateway = %id, "could not apply --acl-file yet: {e}"),
        }
    }
    tracing::info!(
        gateway = %id,
        "connected to node {} (region {}, sg {}) at {server}; session {}",
        welcome.node_id,
        welcome.region,
        welcome.node_version,
        welcome.session_id
    );
    let current = Arc::new(RwLock::new(Arc::new(Current::new(config))));
    let serve_ctx = Arc::new(ServeContext::new(
        gw.clone(),
        handle.clone(),
        current.clone(),
        ctx.config.connect_timeout,
    ));
    let session_id = welcome.session_id.clone();
    // Nodes from protocol 1.10 steer connections by what the client reaches (F31).
    let health_reports = welcome.protocol.minor >= HEALTH_REPORTS_SINCE;
    let mut health = gw.health.subscribe();
    if health_reports {
        health.mark_changed();
    }
    loop {
        tokio::select! {
            Ok(()) = health.changed(), if health_reports => {
                let _ = handle.send_control(Frame::Health(gw.health.report()));
            }
            event = events.recv() => match event {
                Some(SessionEvent::Incoming { stream, open }) => {
                    let span = tracing::debug_span!("connection", id = open.connection);
                    let serving = serve::serve_stream(serve_ctx.clone(), stream, open);
                    tokio::spawn(tracing::Instrument::instrument(serving, span));
                }
                Some(SessionEvent::Control(frame)) => {
                    on_control(ctx, gw, &current, frame, &spec.events, &welcome.node_id)
                }
                None => break,
            },
            _ = shutdown.changed() => {
                handle.close("the client is shutting down");
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut driver).await;
                gw.session_down(&session_id);
                return None;
            }
        }
    }
    gw.session_down(&session_id);
    match driver.await {
        Ok(end) => Some(end),
        Err(e) => Some(SessionEnd::Closed(format!("session task failed: {e}"))),
    }
}

fn on_control(
    ctx: &ClientContext,
    gw: &GatewayRuntime,
    current: &RwLock<Arc<Current>>,
    frame: Frame,
    fleet: &mpsc::UnboundedSender<FleetEvent>,
    node_id: &str,
) {
    let id = gw.id();
    match frame {
        Frame::Config(new) => {
            let mut cur = current.write().unwrap_or_else(|p| p.into_inner());
            if *cur.config != *new {
                log_config(id, &new, false);
                if cur.config.acl != new.acl {
                    tracing::info!(gateway = %id, "ACL now has {} rule(s)", new.acl.len());
                }
                let new = Arc::new(*new);
                gw.set_config(new.clone());
                *cur = Arc::new(Current::new(new));
            }
        }
        Frame::Notice(n) => match n.kind {
            // One line per notice; the node sends at most one every 30 seconds (F7).
            NoticeKind::ConnectionLimit => {
                tracing::error!(gateway = %id, refused = n.count, "{}", n.message)
            }
            NoticeKind::SessionClosed => {
                tracing::warn!(gateway = %id, "the node closed the session: {}", n.message)
            }
            NoticeKind::ClientKilled => {
                tracing::error!(gateway = %id, "{}; exiting", n.message);
                ctx.killed.send_if_modified(|k| {
                    let first = k.is_none();
                    if first {
                        *k = Some(n.message.clone());
                    }
                    first
                });
            }
            NoticeKind::Unknown => {
                tracing::info!(gateway = %id, "notice from the node: {}", n.message)
            }
        },
        Frame::GoAway(g) => {
            tracing::warn!(gateway = %id, "the node asks clients to move: {}", g.reason);
            let _ = fleet.send(FleetEvent::GoAway {
                node_id: node_id.to_string(),
            });
        }
        Frame::NodeList(list) => {
            let _ = fleet.send(FleetEvent::Nodes(list));
        }
        _ => {}
    }
}

fn log_config(id: &str, c: &GatewayConfig, first: bool) {
    let verb = if first { "serving" } else { "now serving" };
    tracing::info!(
        gateway = %id,
        "{verb} {} destination(s) of gateway \"{}\"{}",
        c.destinations.len(),
        c.name,
        if c.enabled { "" } else { " (the gateway is disabled: no connections)" }
    );
    for d in &c.destinations {
        tracing::debug!(gateway = %id, "destination {} ({}) -> {}:{}", d.id, d.name, d.resource_host, d.resource_port);
    }
}
