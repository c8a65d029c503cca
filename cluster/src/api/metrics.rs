//! `GET /metrics`: the node's figures in the Prometheus text format.

use crate::actors::admission::Refused;
use crate::actors::gateway::GatewayMetrics;
use crate::records::Plan;
use std::fmt::Write as _;

/// Everything one scrape shows.
pub struct Snapshot {
    pub node_id: String,
    pub region: String,
    pub version: &'static str,
    pub plan: Plan,
    pub active_gateways: u32,
    pub active_destinations: u32,
    pub gateways: Vec<GatewayMetrics>,
    pub handshakes_refused: u64,
    pub handshakes_evicted: u64,
    pub handshakes_pending: usize,
    /// `local`, `synced`, `unreachable` or `detached`.
    pub store: &'static str,
    /// etcd revision the local copy has applied (0 outside a cluster).
    pub applied_revision: i64,
    pub live_nodes: usize,
    pub draining: bool,
    pub timings: std::sync::Arc<crate::actors::Timings>,
}

/// A per-gateway family: name, type, help, and how to read its value.
type PerGateway = (
    &'static str,
    &'static str,
    &'static str,
    fn(&GatewayMetrics) -> u64,
);

use sg_proto::prometheus::{family, label};

pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "sg_build_info",
        "gauge",
        "Always 1; the build's version and protocol as labels.",
    );
    let _ = writeln!(
        o,
        "sg_build_info{{version=\"{}\",protocol=\"{}.{}\"}} 1",
        s.version,
        sg_proto::version::PROTOCOL_MAJOR,
        sg_proto::version::PROTOCOL_MINOR
    );
    family(&mut o, "sg_node_info", "gauge", "The node's identity.");
    let _ = writeln!(
        o,
        "sg_node_info{{region=\"{}\",node_id=\"{}\",version=\"{}\"}} 1",
        label(&s.region),
        label(&s.node_id),
        s.version
    );
    for (name, help, v) in [
        (
            "sg_plan_max_gateways",
            "Plan limit on active gateways.",
            s.plan.max_gateways,
        ),
        (
            "sg_plan_max_destinations",
            "Plan limit on active destinations.",
            s.plan.max_destinations,
        ),
        (
            "sg_plan_max_connections_per_gateway",
            "Plan limit on concurrent connections per gateway.",
            s.plan.max_connections_per_gateway,
        ),
        (
            "sg_plan_max_clients_per_gateway",
            "Plan limit on client processes per gateway (0: none).",
            s.plan.max_clients_per_gateway,
        ),
        ("sg_gateways_active", "Active gateways.", s.active_gateways),
        (
            "sg_destinations_active",
            "Active destinations.",
            s.active_destinations,
        ),
    ] {
        family(&mut o, name, "gauge", help);
        let _ = writeln!(o, "{name} {v}");
    }
    family(
        &mut o,
        "sg_store_state",
        "gauge",
        "1 for the state the configuration store is in (local, synced, unreachable, detached).",
    );
    for state in ["local", "synced", "unreachable", "detached"] {
        let _ = writeln!(
            o,
            "sg_store_state{{state=\"{state}\"}} {}",
            u8::from(s.store == state)
        );
    }
    for (name, help, v) in [
        (
            "sg_store_applied_revision",
            "etcd revision this node's copy has applied (0 for a single node).",
            s.applied_revision,
        ),
        (
            "sg_cluster_nodes",
            "Live nodes this node knows of, itself included.",
            s.live_nodes as i64,
        ),
        (
            "sg_node_draining",
            "1 while the node drains.",
            i64::from(s.draining),
        ),
    ] {
        family(&mut o, name, "gauge", help);
        let _ = writeln!(o, "{name} {v}");
    }
    // One family per fact, so a query never has to unpick a folded value; the name (which
    // an operator may change) is an info label alone, joined on `gateway` when wanted.
    family(
        &mut o,
        "sg_gateway_info",
        "gauge",
        "Always 1; the gateway's name as a label.",
    );
    for g in &s.gateways {
        let _ = writeln!(
            o,
            "sg_gateway_info{{gateway=\"{}\",name=\"{}\"}} 1",
            label(&g.gateway_id),
            label(&g.name)
        );
    }
    for (name, help, get) in [
        (
            "sg_gateway_active",
            "1 when the gateway is active (its destinations have cloud ports).",
            (|g| g.active) as fn(&GatewayMetrics) -> bool,
        ),
        (
            "sg_gateway_enabled",
            "1 when the gateway is enabled (it carries connections).",
            |g| g.enabled,
        ),
    ] {
        family(&mut o, name, "gauge", help);
        for g in &s.gateways {
            let _ = writeln!(
                o,
                "{name}{{gateway=\"{}\"}} {}",
                label(&g.gateway_id),
                u8::from(get(g))
            );
        }
    }
    let per_gateway: [PerGateway; 4] = [
        (
            "sg_gateway_clients",
            "gauge",
            "Client processes connected.",
            |g| g.clients as u64,
        ),
        (
            "sg_gateway_sessions",
            "gauge",
            "Client sessions connected.",
            |g| g.sessions as u64,
        ),
        (
            "sg_gateway_connections_active",
            "gauge",
            "Connections being carried.",
            |g| u64::from(g.active_connections),
        ),
        (
            "sg_gateway_connections_total",
            "counter",
            "Connections admitted.",
            |g| g.total_connections,
        ),
    ];
    for (name, kind, help, get) in per_gateway {
        family(&mut o, name, kind, help);
        for g in &s.gateways {
            let _ = writeln!(
                o,
                "{name}{{gateway=\"{}\"}} {}",
                label(&g.gateway_id),
                get(g)
            );
        }
    }
    family(
        &mut o,
        "sg_gateway_connections_refused_total",
        "counter",
        "Cloud connections refused, by reason.",
    );
    for g in &s.gateways {
        for r in Refused::ALL {
            let n = g
                .refused
                .iter()
                .find(|(why, _)| *why == r)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(
                o,
                "sg_gateway_connections_refused_total{{gateway=\"{}\",reason=\"{}\"}} {n}",
                label(&g.gateway_id),
                r.label()
            );
        }
    }
    family(
        &mut o,
        "sg_gateway_bytes_total",
        "counter",
        "Bytes carried, open connections included, by direction: to_resources is data the cloud applications sent (transmitted), to_cloud is data the destinations sent (received).",
    );
    for g in &s.gateways {
        let id = label(&g.gateway_id);
        let _ = writeln!(
            o,
            "sg_gateway_bytes_total{{gateway=\"{id}\",direction=\"to_resources\"}} {}",
            g.bytes_to_resources
        );
        let _ = writeln!(
            o,
            "sg_gateway_bytes_total{{gateway=\"{id}\",direction=\"to_cloud\"}} {}",
            g.bytes_to_cloud
        );
    }
    family(
        &mut o,
        "sg_gateway_connections_idle_closed_total",
        "counter",
        "Cloud connections closed because they carried nothing for their destination's idle timeout.",
    );
    for g in &s.gateways {
        let _ = writeln!(
            o,
            "sg_gateway_connections_idle_closed_total{{gateway=\"{}\"}} {}",
            label(&g.gateway_id),
            g.idle_closed
        );
    }
    family(
        &mut o,
        "sg_client_destination_healthy",
        "gauge",
        "Whether a client reaches a destination's private service (1) or not (0), as it reported; a destination a client did not report on counts as healthy.",
    );
    for g in &s.gateways {
        for (client, destination, healthy) in &g.health {
            let _ = writeln!(
                o,
                "sg_client_destination_healthy{{gateway=\"{}\",client=\"{}\",destination=\"{}\"}} {}",
                label(&g.gateway_id),
                label(client),
                label(destination),
                u8::from(*healthy)
            );
        }
    }
    family(
        &mut o,
        "sg_session_rtt_seconds",
        "gauge",
        "Each connected client's shortest session round trip (ping to pong).",
    );
    for g in &s.gateways {
        for (client, rtt) in &g.rtt {
            let _ = writeln!(
                o,
                "sg_session_rtt_seconds{{gateway=\"{}\",client=\"{}\"}} {}",
                label(&g.gateway_id),
                label(client),
                rtt.as_secs_f64()
            );
        }
    }
    s.timings.handshake.render(
        &mut o,
        "sg_tunnel_handshake_seconds",
        "From a tunnel connection's accept to its Welcome (TLS and Hello), for accepted sessions.",
    );
    s.timings.connection.render(
        &mut o,
        "sg_connection_duration_seconds",
        "How long carried connections lasted, counted as they close.",
    );
    family(
        &mut o,
        "sg_tunnel_handshakes_refused_total",
        "counter",
        "Tunnel connections closed at once because their network (/24, /64) had too many handshakes pending.",
    );
    let _ = writeln!(
        o,
        "sg_tunnel_handshakes_refused_total {}",
        s.handshakes_refused
    );
    family(
        &mut o,
        "sg_tunnel_handshakes_evicted_total",
        "counter",
        "Pending tunnel handshakes closed to make room for newer peers.",
    );
    let _ = writeln!(
        o,
        "sg_tunnel_handshakes_evicted_total {}",
        s.handshakes_evicted
    );
    family(
        &mut o,
        "sg_tunnel_handshakes_pending",
        "gauge",
        "Tunnel handshakes in progress.",
    );
    let _ = writeln!(o, "sg_tunnel_handshakes_pending {}", s.handshakes_pending);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_escapes_labels() {
        let s = Snapshot {
            node_id: "nd_1".into(),
            region: "us-south".into(),
            version: "0.6.0",
            plan: Plan::default(),
            active_gateways: 1,
            active_destinations: 2,
            gateways: vec![GatewayMetrics {
                gateway_id: "gw_1".into(),
                name: "a \"quoted\" name".into(),
                active: true,
                enabled: true,
                clients: 1,
                sessions: 2,
                active_connections: 3,
                total_connections: 4,
                refused: vec![(Refused::Limit, 5)],
                bytes_to_resources: 6,
                bytes_to_cloud: 7,
                idle_closed: 8,
                health: vec![("cl_1".into(), "ds_1".into(), false)],
                rtt: vec![("cl_1".into(), std::time::Duration::from_micros(1500))],
            }],
            handshakes_refused: 0,
            handshakes_evicted: 0,
            handshakes_pending: 0,
            store: "synced",
            applied_revision: 42,
            live_nodes: 3,
            draining: false,
            timings: Default::default(),
        };
        s.timings
            .handshake
            .observe(std::time::Duration::from_millis(3));
        let text = render(&s);
        assert!(
            text.contains("sg_session_rtt_seconds{gateway=\"gw_1\",client=\"cl_1\"} 0.0015"),
            "{text}"
        );
        assert!(
            text.contains("sg_tunnel_handshake_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sg_connection_duration_seconds_count 0"),
            "{text}"
        );
        assert!(
            text.contains("sg_gateway_active{gateway=\"gw_1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sg_gateway_enabled{gateway=\"gw_1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sg_build_info{version=\"0.6.0\",protocol=\"1."),
            "{text}"
        );
        assert!(
            text.contains(
                "sg_client_destination_healthy{gateway=\"gw_1\",client=\"cl_1\",destination=\"ds_1\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains("sg_store_state{state=\"synced\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sg_store_state{state=\"unreachable\"} 0"),
            "{text}"
        );
        assert!(text.contains("sg_cluster_nodes 3"), "{text}");
        assert!(
            text.contains("sg_gateway_connections_idle_closed_total{gateway=\"gw_1\"} 8"),
            "{text}"
        );
        assert!(
            text.contains("sg_gateway_info{gateway=\"gw_1\",name=\"a \\\"quoted\\\" name\"} 1"),
            "{text}"
        );
        assert!(text
            .contains("sg_gateway_connections_refused_total{gateway=\"gw_1\",reason=\"limit\"} 5"));
        assert!(text.contains(
            "sg_gateway_connections_refused_total{gateway=\"gw_1\",reason=\"ip_rule\"} 0"
        ));
        assert!(text.contains("# TYPE sg_gateway_connections_total counter"));
        assert!(text.contains("sg_destinations_active 2"));
    }
}
