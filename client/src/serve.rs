//! One incoming stream: find its destination in the gateway's current configuration,
//! connect to the private service, and pump bytes until both sides are done. A stream that
//! cannot be served is reset with a reason the node logs, and reported to the node's event
//! log.

use crate::stats::{ActiveGuard, GatewayStats};
use sg_proto::driver::SessionHandle;
use sg_proto::frame::{Frame, GatewayConfig, OpenStream, Report, ReportKind, ResetCode};
use sg_proto::pump::{Pump, PumpOptions, PumpOutcome, StreamHandle};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// What serving a stream needs from its session.
pub struct ServeContext {
    pub gateway_id: String,
    pub session: SessionHandle,
    pub config: Arc<RwLock<Arc<GatewayConfig>>>,
    pub stats: Arc<GatewayStats>,
    pub connect_timeout: Duration,
}

impl ServeContext {
    fn current(&self) -> Arc<GatewayConfig> {
        self.config
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
}

pub async fn serve_stream(ctx: Arc<ServeContext>, stream: StreamHandle, open: OpenStream) {
    let n = open.connection;
    let config = ctx.current();
    let Some(dest) = config
        .destinations
        .iter()
        .find(|d| d.id == open.destination_id)
    else {
        tracing::warn!(gateway = %ctx.gateway_id, "Connection #{n}: unknown destination {}", open.destination_id);
        stream.reset(
            ResetCode::UnknownDestination,
            format!(
                "the client does not know destination {}",
                open.destination_id
            ),
        );
        return;
    };
    if !config.enabled {
        stream.reset(ResetCode::UnknownDestination, "the gateway is disabled");
        return;
    }
    let target = format!("{}:{}", dest.resource_host, dest.resource_port);
    let connect = TcpStream::connect((dest.resource_host.as_str(), dest.resource_port));
    let socket = match tokio::time::timeout(ctx.connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return refuse_connect(
                &ctx,
                stream,
                &dest.id,
                &dest.name,
                &target,
                n,
                e.to_string(),
            )
        }
        Err(_) => {
            let why = format!("no answer within {}s", ctx.connect_timeout.as_secs());
            return refuse_connect(&ctx, stream, &dest.id, &dest.name, &target, n, why);
        }
    };
    let _ = socket.set_nodelay(true);
    let _active = ActiveGuard::new(ctx.stats.clone());
    tracing::debug!(gateway = %ctx.gateway_id, "Connection #{n} from {} to {} ({target}) opened", open.peer, dest.name);
    let outcome = Pump::with_options(
        socket,
        stream,
        PumpOptions {
            counters: Some(ctx.stats.bytes.clone()),
            trace_id: Some(n),
        },
    )
    .await;
    match outcome {
        PumpOutcome::Closed => tracing::debug!(gateway = %ctx.gateway_id, "Connection #{n} closed"),
        PumpOutcome::ResetByPeer(r) => {
            tracing::debug!(gateway = %ctx.gateway_id, "Connection #{n} reset by the node: {}", r.message)
        }
        PumpOutcome::SessionLost => {
            tracing::info!(gateway = %ctx.gateway_id, "Connection #{n} lost its session")
        }
        PumpOutcome::Io(e) => {
            tracing::debug!(gateway = %ctx.gateway_id, "Connection #{n} to {target}: {e}")
        }
    }
}

fn refuse_connect(
    ctx: &ServeContext,
    stream: StreamHandle,
    dest_id: &str,
    dest_name: &str,
    target: &str,
    n: u64,
    why: String,
) {
    ctx.stats
        .refused_connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let message = format!("cannot reach {dest_name} at {target}: {why}");
    tracing::warn!(gateway = %ctx.gateway_id, "Connection #{n}: {message}");
    ctx.report(ReportKind::ConnectFailed, dest_id, message.clone());
    stream.reset(ResetCode::ConnectFailed, message);
}
