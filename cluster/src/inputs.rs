//! What the API's request spellings (sg-api) mean for the node's records. The API owns its
//! names; the records and the wire keep theirs; these are the only crossings.

use sg_api::destinations::{DestinationType, HealthKind, Protocol, ProxySetting, ResourceTlsInput};
use sg_proto::frame::{AppProtocol, DestinationKind, ResourceTls};
use sg_proto::health;
use sg_proto::proxy_header::ProxyProtocol;

pub fn protocol(p: Protocol) -> AppProtocol {
    match p {
        Protocol::Tcp => AppProtocol::Tcp,
        Protocol::Http => AppProtocol::Http,
    }
}

pub fn kind(k: DestinationType) -> DestinationKind {
    match k {
        DestinationType::OnPremises => DestinationKind::OnPremises,
        DestinationType::Cloud => DestinationKind::Cloud,
    }
}

/// `off` is no header.
pub fn proxy(p: ProxySetting) -> Option<ProxyProtocol> {
    match p {
        ProxySetting::Off => None,
        ProxySetting::V1 => Some(ProxyProtocol::V1),
        ProxySetting::V2 => Some(ProxyProtocol::V2),
    }
}

pub fn health_kind(k: HealthKind) -> health::HealthKind {
    match k {
        HealthKind::Tcp => health::HealthKind::Tcp,
        HealthKind::Http => health::HealthKind::Http,
        HealthKind::Off => health::HealthKind::Off,
    }
}

pub fn resource_tls(t: &ResourceTlsInput) -> ResourceTls {
    ResourceTls {
        enabled: t.enabled,
        reject_unauthorized: t.reject_unauthorized,
        ca_pem: t.ca_pem.clone(),
        server_name: t.server_name.clone(),
        client_cert_pem: t.client_cert_pem.clone(),
        client_key_pem: t.client_key_pem.clone(),
    }
}
