//! Client ports (F29): the listeners of a gateway's cloud destinations.
//!
//! A cloud destination runs the other way round: a private application connects to
//! `--client-bind:client_port` here, and the client carries the connection as a stream it
//! opens on one of the gateway's sessions; the node connects to the cloud resource an
//! admin configured. The stream names the destination only, so what the node dials is
//! never this client's choice.
//!
//! [`run`] keeps the listeners equal to the configuration the nodes send: new cloud
//! destinations get a listener, removed ones lose it, and a port that cannot be bound is
//! logged with the reason and tried again, while every other port and stream keeps working.

use crate::registry::{GatewayRuntime, ListenerView};
use crate::stats::ActiveGuard;
use sg_proto::frame::{DestinationKind, DestinationSpec, GatewayConfig, OpenStream};
use sg_proto::pump::{LocalEnd, Pump, PumpOptions, PumpOutcome};
use sg_proto::version::CLOUD_DESTINATIONS_SINCE;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a client port that could not be bound is tried again.
const BIND_RETRY: Duration = Duration::from_secs(5);
/// Pause after a failed accept (out of descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Warnings any private application can cause, one per connection: cut to a few lines.
static APP_CAUSED: sg_proto::log_throttle::LogThrottle = sg_proto::log_throttle::LogThrottle::new();

/// Client-side connection numbers of cloud destinations' connections, for the log.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// One cloud destination's listener.
struct Port {
    spec: DestinationSpec,
    address: SocketAddr,
    /// The accept loop while listening; `None` while the port could not be bound.
    accepting: Option<JoinHandle<()>>,
    error: Option<String>,
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
    }
}

/// The cloud destinations of a configuration, by id.
fn wanted(config: Option<&GatewayConfig>) -> HashMap<String, (u16, DestinationSpec)> {
    config
        .map(|c| {
            c.destinations
                .iter()
                .filter(|d| d.kind == DestinationKind::Cloud)
                .filter_map(|d| Some((d.id.clone(), (d.client_port?, d.clone()))))
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps `gw`'s client ports equal to its configuration until shut down.
pub async fn run(gw: Arc<GatewayRuntime>, ip: IpAddr, mut shutdown: watch::Receiver<bool>) {
    let mut config = gw.watch_config();
    let mut ports: HashMap<String, Port> = HashMap::new();
    let mut retry = tokio::time::interval(BIND_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let latest = config.borrow_and_update().clone();
        reconcile(&gw, ip, &mut ports, wanted(latest.as_deref()));
        tokio::select! {
            changed = config.changed() => if changed.is_err() { return },
            _ = retry.tick() => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn reconcile(
    gw: &Arc<GatewayRuntime>,
    ip: IpAddr,
    ports: &mut HashMap<String, Port>,
    wanted: HashMap<String, (u16, DestinationSpec)>,
) {
    let id = gw.id().to_string();
    ports.retain(|dest, port| {
        let keep = wanted
            .get(dest)
            .is_some_and(|(p, _)| *p == port.address.port());
        if !keep {
            tracing::info!(gateway = %id, "client port {} of destination {dest} closed", port.address);
        }
        keep
    });
    for (dest, (port, spec)) in wanted {
        let entry = ports.entry(dest.clone()).or_insert_with(|| Port {
            spec: spec.clone(),
            address: SocketAddr::new(ip, port),
            accepting: None,
            error: None,
        });
        entry.spec = spec;
        if entry.accepting.is_some() {
            continue;
        }
        match sg_proto::listener::bind(entry.address) {
            Ok(listener) => {
                tracing::info!(
                    gateway = %id,
                    "client port {} listening for cloud destination {} ({}) at {}:{}",
                    entry.address,
                    dest,
                    entry.spec.name,
                    entry.spec.resource_host,
                    entry.spec.resource_port
                );
                entry.error = None;
                entry.accepting = Some(tokio::spawn(accept(gw.clone(), dest, listener)));
            }
            Err(e) => {
                let why = e.to_string();
                if entry.error.as_deref() != Some(&why) {
                    tracing::warn!(
                        gateway = %id,
                        "cannot listen on client port {} for cloud destination {dest}: {why}; retrying every {}s",
                        entry.address,
                        BIND_RETRY.as_secs()
                    );
                }
                entry.error = Some(why);
            }
        }
    }
    let mut views: Vec<ListenerView> = ports
        .iter()
        .map(|(dest, p)| ListenerView {
            destination_id: dest.clone(),
            name: p.spec.name.clone(),
            address: p.address.to_string(),
            resource: sg_proto::hostport::host_port(&p.spec.resource_host, p.spec.resource_port),
            error: p.error.clone(),
        })
        .collect();
    views.sort_by(|a, b| a.address.cmp(&b.address));
    gw.set_listeners(views);
}

async fn accept(gw: Arc<GatewayRuntime>, dest: String, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                tokio::spawn(carry(gw.clone(), dest.clone(), socket, peer));
            }
            Err(e) => {
                tracing::warn!(gateway = %gw.id(), "accept failed on a client port: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Carries one private application's connection to the node, on the least busy session
/// whose node takes client-opened streams.
async fn carry(gw: Arc<GatewayRuntime>, dest: String, socket: TcpStream, peer: SocketAddr) {
    let n = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let session = gw
        .sessions()
        .into_iter()
        .filter(|s| !s.handle.is_closed() && s.protocol_minor >= CLOUD_DESTINATIONS_SINCE)
        .min_by_key(|s| s.handle.active_streams());
    let Some(session) = session else {
        gw.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
        sg_proto::throttled_warn!(APP_CAUSED, "no session", gateway = %gw.id(), "Connection #{n} from {peer} to cloud destination {dest} closed: no session to a node that carries cloud destinations (protocol 1.9 or later)");
        return;
    };
    sg_proto::limits::set_keepalive(&socket);
    let open = OpenStream {
        destination_id: dest.clone(),
        peer: peer.to_string(),
        connection: n,
        authorities: Vec::new(),
        local: socket.local_addr().ok().map(|a| a.to_string()),
    };
    let Ok(stream) = session.handle.open_stream(open) else {
        tracing::debug!(gateway = %gw.id(), "Connection #{n}: the session closed before the stream opened");
        return;
    };
    let _active = ActiveGuard::new(gw.stats.clone());
    tracing::debug!(gateway = %gw.id(), "Connection #{n} from {peer} to cloud destination {dest} through {}", session.server);
    let options = PumpOptions {
        counters: Some(gw.stats.cloud_bytes.clone()),
        trace_id: Some(n),
        local: LocalEnd::CloudApplication,
    };
    match Pump::with_options(socket, stream, options).await {
        PumpOutcome::ResetByPeer(r) => {
            sg_proto::throttled_warn!(APP_CAUSED, "refused by the node", gateway = %gw.id(), "Connection #{n} from {peer} to cloud destination {dest}: {}", r.message)
        }
        PumpOutcome::SessionLost => {
            tracing::info!(gateway = %gw.id(), "Connection #{n} from {peer} lost its session")
        }
        PumpOutcome::Closed => tracing::debug!(gateway = %gw.id(), "Connection #{n} closed"),
        PumpOutcome::Io(e) => tracing::debug!(gateway = %gw.id(), "Connection #{n} ended: {e}"),
    }
}
