//! What a gateway's clients are told: its destinations (with resource-side TLS, PEMs
//! included) and its ACL, in one `Welcome` or `Config` frame. Built here for the Gateway
//! actor that sends it and for the state that refuses a change which would make it too
//! large for one frame — so it is never dropped on the way.

use crate::records::{DestinationRecord, GatewayRecord};
use sg_proto::frame::{DestinationSpec, GatewayConfig};
use sg_proto::limits::MAX_FRAME_LEN;

/// Largest configuration a gateway may have, as JSON: one frame, less room for the rest of
/// a `Welcome` (ids, versions, a few hundred bytes).
pub const MAX_CLIENT_CONFIG: usize = MAX_FRAME_LEN - 64 * 1024;

/// The configuration clients of `gateway` get, from `destinations` (the caller chooses which:
/// the active ones to send, all of them to check the worst case).
pub fn client_config<'a>(
    gateway: &GatewayRecord,
    destinations: impl Iterator<Item = &'a DestinationRecord>,
) -> GatewayConfig {
    let mut destinations: Vec<DestinationSpec> = destinations
        .map(|d| DestinationSpec {
            id: d.id.clone(),
            name: d.name.clone(),
            resource_host: d.resource_host.clone(),
            resource_port: d.resource_port,
            protocol: d.protocol,
            resource_tls: d.resource_tls.clone().filter(|t| t.enabled),
            proxy_protocol: d.proxy_protocol,
            host_rewrite: d.host_rewrite,
            kind: d.kind,
            client_port: d.client_port,
            health_check: d.health_check.clone(),
        })
        .collect();
    destinations.sort_by(|a, b| a.id.cmp(&b.id));
    GatewayConfig {
        gateway_id: gateway.id.clone(),
        name: gateway.name.clone(),
        enabled: gateway.enabled,
        destinations,
        acl: gateway.acl.clone(),
    }
}

/// The size of a configuration on the wire.
pub fn encoded_len(config: &GatewayConfig) -> usize {
    serde_json::to_vec(config).map_or(usize::MAX, |v| v.len())
}
