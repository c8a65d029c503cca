//! The API's views (sg-api) built from the node's records: the one place that knows both.

use crate::controls::{first_fingerprint, CloudTls};
use crate::fleet::{Fleet, NodeRecord};
use crate::listening::Listen;
use crate::records::{DestinationRecord, EventRecord, GatewayRecord, Plan};
use crate::time::{now_secs, rfc3339, rfc3339_millis};
use sg_api::destinations::{
    CloudAddress, CloudTlsView, DestinationType, DestinationView, HealthCheckView, HealthKind,
    Protocol, ProxySetting, ResourceTlsView,
};
use sg_api::events::EventView;
use sg_api::gateways::GatewayView;
use sg_api::node::{NodeView, PlanView, Usage};
use sg_proto::frame::{AppProtocol, DestinationKind, ResourceTls};
use sg_proto::health::{self, HealthCheck};
use sg_proto::proxy_header::ProxyProtocol;

pub fn gateway_view(g: &GatewayRecord, token: Option<String>) -> GatewayView {
    GatewayView {
        id: g.id.clone(),
        name: g.name.clone(),
        token,
        token_expires_at: rfc3339(g.token_expires_at),
        token_expired: now_secs() >= g.token_expires_at,
        active: g.active,
        enabled: g.enabled,
        created_at: rfc3339(g.created_at),
    }
}

pub fn destination_view(d: &DestinationRecord, cloud_host: &str, fleet: &Fleet) -> DestinationView {
    let cloud_addresses = match d.cloud_port {
        Some(port) => fleet
            .nodes
            .iter()
            .filter(|n| !n.draining)
            .map(|n| CloudAddress {
                region: n.region.clone(),
                node_id: n.id.clone(),
                host: n.cloud_host.clone(),
                port,
            })
            .collect(),
        None => Vec::new(),
    };
    DestinationView {
        cloud_addresses,
        listening: false,
        listen_error: None,
        id: d.id.clone(),
        gateway_id: d.gateway_id.clone(),
        name: d.name.clone(),
        kind: match d.kind {
            DestinationKind::OnPremises => DestinationType::OnPremises,
            DestinationKind::Cloud => DestinationType::Cloud,
        },
        client_port: d.client_port,
        resource_host: d.resource_host.clone(),
        resource_port: d.resource_port,
        protocol: match d.protocol {
            AppProtocol::Tcp => Protocol::Tcp,
            AppProtocol::Http => Protocol::Http,
        },
        cloud_host: cloud_host.to_string(),
        cloud_port: d.cloud_port,
        active: d.active,
        enabled: d.enabled,
        created_at: rfc3339(d.created_at),
        ip_rules: d.ip_rules.clone(),
        idle_timeout_secs: d.idle_timeout_secs,
        max_connections_per_source: d.max_connections_per_source,
        proxy_protocol: match d.proxy_protocol {
            None => ProxySetting::Off,
            Some(ProxyProtocol::V1) => ProxySetting::V1,
            Some(ProxyProtocol::V2) => ProxySetting::V2,
        },
        host_rewrite: d.host_rewrite,
        health_check: d
            .has_cloud_port()
            .then(|| health_check_view(&d.health_check.clone().unwrap_or_default())),
        cloud_tls: cloud_tls_view(&d.cloud_tls),
        resource_tls: d.resource_tls.as_ref().map(resource_tls_view),
    }
}

/// Adds what this node knows of the destination's cloud port listener.
pub fn with_listen(mut view: DestinationView, state: Option<Listen>) -> DestinationView {
    match state {
        Some(Listen::Listening) => view.listening = true,
        Some(Listen::Failed(why)) => {
            view.listen_error = Some(format!(
                "cannot listen on cloud port {}: {why} (retrying)",
                view.cloud_port.unwrap_or(0)
            ))
        }
        None => {}
    }
    view
}

fn health_check_view(c: &HealthCheck) -> HealthCheckView {
    HealthCheckView {
        kind: match c.kind {
            health::HealthKind::Http => HealthKind::Http,
            health::HealthKind::Off => HealthKind::Off,
            // A kind only a newer node knows is checked as TCP here: shown as such.
            health::HealthKind::Tcp | health::HealthKind::Unknown => HealthKind::Tcp,
        },
        path: c.path.clone(),
        interval_secs: c.interval_secs,
        timeout_secs: c.timeout_secs,
        unhealthy_after: c.unhealthy_after,
        healthy_after: c.healthy_after,
    }
}

/// User-side TLS without the key: fingerprints instead of PEM.
pub fn cloud_tls_view(t: &CloudTls) -> CloudTlsView {
    CloudTlsView {
        mode: t.mode,
        cert_fingerprint: first_fingerprint(t.cert_pem.as_deref()),
        issued_by_node: t.issued_by_node,
        client_ca_fingerprint: first_fingerprint(t.client_ca_pem.as_deref()),
    }
}

/// Resource-side TLS without the key.
pub fn resource_tls_view(t: &ResourceTls) -> ResourceTlsView {
    ResourceTlsView {
        enabled: t.enabled,
        reject_unauthorized: t.reject_unauthorized,
        server_name: t.server_name.clone(),
        ca_fingerprint: first_fingerprint(t.ca_pem.as_deref()),
        client_cert_fingerprint: first_fingerprint(t.client_cert_pem.as_deref()),
    }
}

pub fn plan_view(p: Plan, usage: Usage) -> PlanView {
    PlanView {
        max_gateways: p.max_gateways,
        max_destinations: p.max_destinations,
        max_connections_per_gateway: p.max_connections_per_gateway,
        max_clients_per_gateway: p.max_clients_per_gateway,
        usage,
    }
}

pub fn event_view(e: EventRecord, node_id: &str, region: &str) -> EventView {
    EventView {
        at: rfc3339_millis(e.at),
        node_id: node_id.to_string(),
        region: region.to_string(),
        kind: e.kind,
        message: e.message,
        destination_id: e.destination_id,
        client_id: e.client_id,
    }
}

pub fn node_view(n: &NodeRecord, me: &str) -> NodeView {
    NodeView {
        id: n.id.clone(),
        region: n.region.clone(),
        tunnel: n.tunnel.clone(),
        api: n.api.clone(),
        cloud_host: n.cloud_host.clone(),
        version: n.version.clone(),
        draining: n.draining,
        started_at: rfc3339(n.started_at),
        this_node: n.id == me,
    }
}
