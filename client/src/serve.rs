//! One incoming stream: find its destination in the gateway's current configuration, check
//! the ACL, connect to the private service (plain TCP or TLS), and pump bytes until both
//! sides are done. A stream that cannot be served is reset with a reason the node logs,
//! and reported to the node's event log.

use crate::admission::{decide, resolve};
use crate::http_gate::{GatePolicy, HttpGate};
use crate::http_head::Authorities;
use crate::registry::GatewayRuntime;
use crate::stats::ActiveGuard;
use sg_proto::acl::Acl;
use sg_proto::driver::SessionHandle;
use sg_proto::frame::{
    AppProtocol, DestinationKind, DestinationSpec, Frame, GatewayConfig, OpenStream, Report,
    ReportKind, ResetCode, ResourceTls,
};
use sg_proto::proxy_header::{self, ProxyProtocol};
use sg_proto::pump::{LocalEnd, Pump, PumpOptions, PumpOutcome, ReadReady, StreamHandle};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Warnings that any cloud application can cause, one per connection (refusals, a
/// service that is down): a flood of them is cut to a few lines and a count.
static CLOUD_CAUSED: sg_proto::log_throttle::LogThrottle =
    sg_proto::log_throttle::LogThrottle::new();
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A session's view of its gateway: the configuration the node sent, with its ACL parsed.
pub struct Current {
    pub config: Arc<GatewayConfig>,
    pub acl: Acl,
}

impl Current {
    pub fn new(config: Arc<GatewayConfig>) -> Self {
        let acl = Acl::from_strings(&config.acl);
        Current { config, acl }
    }
}

/// What serving a stream needs from its session.
pub struct ServeContext {
    pub gateway: Arc<GatewayRuntime>,
    pub session: SessionHandle,
    pub current: Arc<RwLock<Arc<Current>>>,
    pub connect_timeout: Duration,
}

impl ServeContext {
    pub fn new(
        gateway: Arc<GatewayRuntime>,
        session: SessionHandle,
        current: Arc<RwLock<Arc<Current>>>,
        connect_timeout: Duration,
    ) -> Self {
        ServeContext {
            gateway,
            session,
            current,
            connect_timeout,
        }
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn report(&self, kind: ReportKind, destination: &str, message: String) {
        let _ = self.session.send_control(Frame::Report(Report {
            kind,
            message,
            destination_id: Some(destination.to_string()),
        }));
    }

    fn gateway_id(&self) -> &str {
        self.gateway.id()
    }
}

pub async fn serve_stream(ctx: Arc<ServeContext>, stream: StreamHandle, open: OpenStream) {
    let n = open.connection;
    let current = ctx.current();
    let Some(dest) = current
        .config
        .destinations
        .iter()
        .find(|d| d.id == open.destination_id)
    else {
        sg_proto::throttled_warn!(CLOUD_CAUSED, "unknown destination", gateway = %ctx.gateway_id(), "Connection #{n}: unknown destination {}", open.destination_id);
        stream.reset(
            ResetCode::UnknownDestination,
            format!(
                "the client does not know destination {}",
                open.destination_id
            ),
        );
        return;
    };
    if !current.config.enabled {
        stream.reset(ResetCode::UnknownDestination, "the gateway is disabled");
        return;
    }
    if dest.kind == DestinationKind::Cloud {
        // A cloud destination's resource is the node's to dial, never this client's.
        stream.reset(
            ResetCode::UnknownDestination,
            format!(
                "{} is a cloud destination: the client does not dial it",
                dest.id
            ),
        );
        return;
    }
    let target = format!("{}:{}", dest.resource_host, dest.resource_port);
    // The ACL decides on the address that will be dialled, not only on the name: a name
    // that resolves to a denied or sensitive address, or an address written another way
    // (`10.5`, `0x0a000005`), is caught here, and the connection goes to exactly the
    // address that was checked.
    let addresses =
        match resolve(&dest.resource_host, dest.resource_port, ctx.connect_timeout).await {
            Ok(a) => a,
            Err(why) => return refuse_connect(&ctx, stream, dest, &target, n, why.to_string()),
        };
    let mut refusal = None;
    let mut chosen = None;
    for addr in addresses {
        match decide(&ctx.gateway, &current.acl, dest, addr) {
            Ok(path_rules) => {
                chosen = Some((addr, path_rules));
                break;
            }
            Err(reason) => {
                refusal.get_or_insert(reason);
            }
        }
    }
    let Some((addr, path_rules)) = chosen else {
        let reason = refusal.map_or_else(|| "no address to dial".into(), |r| r.to_string());
        let message = format!(
            "connection from {} to {} ({target}) refused by the ACL: {reason}",
            open.peer, dest.name
        );
        return refuse_acl(&ctx, stream, dest, n, message);
    };
    let has_path_rules = path_rules.iter().any(|set| !set.is_empty());
    if has_path_rules && dest.protocol != AppProtocol::Http {
        // Path rules cannot be checked on a plain TCP destination: refuse rather than open
        // the whole service.
        let message = format!(
            "connection to {} ({target}) refused: ACL path rules apply to it but it is not an HTTP destination (set \"protocol\": \"http\")",
            dest.name
        );
        return refuse_acl(&ctx, stream, dest, n, message);
    }
    // The gate reads HTTP requests where path rules apply or the Host is rewritten.
    let rewrite_host =
        (dest.host_rewrite && dest.protocol == AppProtocol::Http).then(|| private_authority(dest));
    let gate = (has_path_rules || rewrite_host.is_some()).then(|| GatePolicy {
        rules: path_rules,
        authorities: match rewrite_host {
            Some(_) => authorities(dest, &open).host_replaced(),
            None => authorities(dest, &open),
        },
        rewrite_host,
    });

    let connect = TcpStream::connect(addr);
    let socket = match tokio::time::timeout(ctx.connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return refuse_connect(&ctx, stream, dest, &target, n, e.to_string()),
        Err(_) => {
            let why = format!("no answer within {}s", ctx.connect_timeout.as_secs());
            return refuse_connect(&ctx, stream, dest, &target, n, why);
        }
    };
    let _ = socket.set_nodelay(true);
    sg_proto::limits::set_keepalive(&socket);
    let mut socket = socket;
    if let Some(version) = dest.proxy_protocol {
        // Before any byte (and before a TLS handshake): the cloud application's address.
        if let Err(why) = send_proxy_header(&mut socket, version, &open, &ctx).await {
            return refuse_connect(&ctx, stream, dest, &target, n, why);
        }
    }
    match dest.resource_tls.as_ref().filter(|t| t.enabled) {
        None => carry(ctx, stream, socket, gate, dest, &target, n).await,
        // Boxed: TLS state is a few KiB that plain connections must not reserve.
        Some(t) => Box::pin(serve_tls(ctx, stream, socket, gate, dest, &target, n, t)).await,
    }
}

/// Refuses a stream the ACL does not allow: a (throttled) log line, a report the node
/// records as an `acl_refused` event, and the stream reset with the reason.
fn refuse_acl(
    ctx: &ServeContext,
    stream: StreamHandle,
    dest: &DestinationSpec,
    n: u64,
    message: String,
) {
    sg_proto::throttled_warn!(CLOUD_CAUSED, "ACL refusal", gateway = %ctx.gateway_id(), "Connection #{n}: {message}");
    ctx.report(ReportKind::AclRefused, &dest.id, message.clone());
    stream.reset(ResetCode::AclRefused, message);
}

/// The private service as a Host header names it: its host, and its port unless that is
/// the scheme's default.
fn private_authority(dest: &DestinationSpec) -> String {
    let tls = dest.resource_tls.as_ref().is_some_and(|t| t.enabled);
    let default = if tls { 443 } else { 80 };
    if dest.resource_port == default {
        sg_proto::hostport::bracketed(&dest.resource_host).into_owned()
    } else {
        sg_proto::hostport::host_port(&dest.resource_host, dest.resource_port)
    }
}

/// Writes the PROXY protocol header for the stream's cloud application to the service.
/// A node too old to say which cloud address the application reached gives the
/// service's own address as the destination, which servers log but do not act on.
async fn send_proxy_header(
    socket: &mut TcpStream,
    version: ProxyProtocol,
    open: &OpenStream,
    ctx: &ServeContext,
) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let source: SocketAddr = open.peer.parse().map_err(|_| {
        format!(
            "PROXY header: the node sent no usable peer address ({:?})",
            open.peer
        )
    })?;
    let destination = match open.local.as_deref().and_then(|l| l.parse().ok()) {
        Some(a) => a,
        None => socket
            .peer_addr()
            .map_err(|e| format!("PROXY header: {e}"))?,
    };
    let header = proxy_header::header(version, source, destination);
    match tokio::time::timeout(ctx.connect_timeout, socket.write_all(&header)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("could not send the PROXY header: {e}")),
        Err(_) => Err("could not send the PROXY header within the connect timeout".into()),
    }
}

/// What a gated request's Host may name: the private service as configured, and the
/// cloud addresses the node says the application could have used.
fn authorities(dest: &DestinationSpec, open: &OpenStream) -> Authorities {
    let own = sg_proto::hostport::host_port(&dest.resource_host, dest.resource_port);
    Authorities::new(
        std::iter::once(own.as_str()).chain(open.authorities.iter().map(String::as_str)),
    )
}

/// Connects to the service over TLS, then carries the stream.
#[allow(clippy::too_many_arguments)]
async fn serve_tls(
    ctx: Arc<ServeContext>,
    stream: StreamHandle,
    socket: TcpStream,
    gate: Option<GatePolicy>,
    dest: &DestinationSpec,
    target: &str,
    n: u64,
    t: &ResourceTls,
) {
    let tls = ctx
        .gateway
        .resource_tls
        .connect(dest, t, socket, ctx.connect_timeout);
    match tls.await {
        Ok(tls_stream) => carry(ctx, stream, tls_stream, gate, dest, target, n).await,
        Err(why) => refuse_connect(&ctx, stream, dest, target, n, why),
    }
}

/// Pumps the stream to the connected service, through the HTTP gate when path rules apply.
async fn carry<IO>(
    ctx: Arc<ServeContext>,
    stream: StreamHandle,
    io: IO,
    gate: Option<GatePolicy>,
    dest: &DestinationSpec,
    target: &str,
    n: u64,
) where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin,
{
    // Passive health checking (F31): a connection whose whole set-up worked (connect,
    // PROXY header, TLS) counts as a success.
    ctx.gateway.health.connected(dest);
    let _active = ActiveGuard::new(ctx.gateway.stats.clone());
    tracing::debug!(gateway = %ctx.gateway_id(), "Connection #{n} to {} ({target}) opened", dest.name);
    let options = PumpOptions {
        counters: Some(ctx.gateway.stats.bytes.clone()),
        trace_id: Some(n),
        local: LocalEnd::Destination,
    };
    let outcome = match gate {
        None => Pump::with_options(io, stream, options).await,
        Some(policy) => {
            let (reporter, dest_id, name) = (ctx.clone(), dest.id.clone(), dest.name.clone());
            let on_refuse = Box::new(move |path: &str, why: &str| {
                let message = if path.is_empty() {
                    format!("a request to {name} refused by the ACL: {why}")
                } else {
                    format!("request for {path} to {name} refused by the ACL: {why}")
                };
                sg_proto::throttled_warn!(CLOUD_CAUSED, "HTTP request refusal", gateway = %reporter.gateway_id(), "Connection #{n}: {message}");
                reporter.report(ReportKind::AclRefused, &dest_id, message);
            });
            Pump::with_options(HttpGate::new(io, policy, on_refuse), stream, options).await
        }
    };
    match outcome {
        PumpOutcome::Closed => {
            tracing::debug!(gateway = %ctx.gateway_id(), "Connection #{n} closed")
        }
        PumpOutcome::ResetByPeer(r) => {
            tracing::debug!(gateway = %ctx.gateway_id(), "Connection #{n} reset by the node: {}", r.message)
        }
        PumpOutcome::SessionLost => {
            tracing::info!(gateway = %ctx.gateway_id(), "Connection #{n} lost its session")
        }
        PumpOutcome::Io(e) => {
            tracing::debug!(gateway = %ctx.gateway_id(), "Connection #{n} to {target}: {e}")
        }
    }
}

fn refuse_connect(
    ctx: &ServeContext,
    stream: StreamHandle,
    dest: &DestinationSpec,
    target: &str,
    n: u64,
    why: String,
) {
    ctx.gateway
        .stats
        .refused_connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let message = format!("cannot reach {} at {target}: {why}", dest.name);
    // Passive health checking (F31): so does one that cannot.
    ctx.gateway.health.connect_failed(dest, &why);
    sg_proto::throttled_warn!(CLOUD_CAUSED, "private service unreachable", gateway = %ctx.gateway_id(), "Connection #{n}: {message}");
    ctx.report(ReportKind::ConnectFailed, &dest.id, message.clone());
    stream.reset(ResetCode::ConnectFailed, message);
}
