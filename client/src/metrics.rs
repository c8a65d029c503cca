//! The client's `/metrics` (on the web UI's port, behind its password when it has one):
//! per gateway its sessions, connections, refusals, bytes each way and what its health
//! checks find, in the Prometheus text format.

use crate::registry::Registry;
use sg_proto::prometheus::{family, label};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

pub fn render(r: &Registry) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "sg_client_info",
        "gauge",
        "Always 1; the client's id and version as labels.",
    );
    let _ = writeln!(
        o,
        "sg_client_info{{client=\"{}\",version=\"{}\",protocol=\"{}.{}\"}} 1",
        label(&r.client_id),
        sg_proto::version::PRODUCT_VERSION,
        sg_proto::version::PROTOCOL_MAJOR,
        sg_proto::version::PROTOCOL_MINOR
    );
    type Get = fn(&crate::registry::GatewayRuntime) -> u64;
    let per_gateway: [(&str, &str, &str, Get); 4] = [
        (
            "sg_client_sessions",
            "gauge",
            "Sessions to nodes open now.",
            |g| {
                g.sessions()
                    .iter()
                    .filter(|s| !s.handle.is_closed())
                    .count() as u64
            },
        ),
        (
            "sg_client_connections_active",
            "gauge",
            "Connections being carried.",
            |g| g.figures().active_connections,
        ),
        (
            "sg_client_connections_total",
            "counter",
            "Connections carried.",
            |g| g.figures().total_connections,
        ),
        (
            "sg_client_connections_refused_total",
            "counter",
            "Streams this client could not serve (ACL refusals, unreachable services).",
            |g| g.stats.refused_connections.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, get) in per_gateway {
        family(&mut o, name, kind, help);
        for g in &r.gateways {
            let _ = writeln!(o, "{name}{{gateway=\"{}\"}} {}", label(g.id()), get(g));
        }
    }
    family(
        &mut o,
        "sg_client_bytes_total",
        "counter",
        "Bytes carried, open connections included: transmitted is data from the requesting applications, received is data from the destinations.",
    );
    for g in &r.gateways {
        let f = g.figures();
        let id = label(g.id());
        let _ = writeln!(
            o,
            "sg_client_bytes_total{{gateway=\"{id}\",direction=\"transmitted\"}} {}",
            f.transmitted
        );
        let _ = writeln!(
            o,
            "sg_client_bytes_total{{gateway=\"{id}\",direction=\"received\"}} {}",
            f.received
        );
    }
    family(
        &mut o,
        "sg_client_destination_healthy",
        "gauge",
        "Whether this client reaches a destination's private service (1) or not (0), as its health checks and connections find.",
    );
    for g in &r.gateways {
        let config = g.config();
        let on_premises = config
            .iter()
            .flat_map(|c| c.destinations.iter())
            .filter(|d| d.kind.is_on_premises());
        let views = g.health.views();
        for d in on_premises {
            let healthy = views
                .iter()
                .find(|h| h.destination_id == d.id)
                .is_none_or(|h| h.healthy);
            let _ = writeln!(
                o,
                "sg_client_destination_healthy{{gateway=\"{}\",destination=\"{}\"}} {}",
                label(g.id()),
                label(&d.id),
                u8::from(healthy)
            );
        }
    }
    o
}
