//! Destinations (`/v1/gateways/{id}/destinations`): what a gateway carries, and how.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the destination's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    /// HTTP/1.x: ACL path rules and host rewriting apply.
    Http,
}

/// Which way a destination carries connections (F29).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationType {
    /// Cloud applications reach a private service: a cloud port on every node, the client
    /// dials the service.
    #[default]
    OnPremises,
    /// Private applications reach a cloud resource: a client port on every client, the node
    /// dials the resource.
    Cloud,
}

/// The PROXY protocol header sent to the private service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxySetting {
    #[default]
    Off,
    V1,
    V2,
}

/// One allowed source: a CIDR range and, optionally, a source port range (`1024-65535`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRule {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
}

/// What the cloud port speaks to cloud applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloudTlsMode {
    /// Plain TCP.
    #[default]
    None,
    /// The node terminates TLS with the destination's certificate.
    Tls,
    /// TLS, and the application must present a certificate signed by the uploaded CA.
    Mutual,
}

/// User-side TLS as the API takes it. Without a certificate the node issues one from its CA.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudTlsInput {
    pub mode: CloudTlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
    /// `mutual`: the CA that signs the applications' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_pem: Option<String>,
}

impl std::fmt::Debug for CloudTlsInput {
    // The key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTlsInput")
            .field("mode", &self.mode)
            .field("cert", &self.cert_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// User-side TLS as the API shows it: no key, fingerprints instead of PEM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CloudTlsView {
    pub mode: CloudTlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_fingerprint: Option<String>,
    pub issued_by_node: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_fingerprint: Option<String>,
}

/// How the client reaches the private service over TLS (resource-side authentication).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceTlsInput {
    pub enabled: bool,
    /// Verify the service's certificate (against `ca_pem`, else the system's roots).
    #[serde(default)]
    pub reject_unauthorized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
}

impl std::fmt::Debug for ResourceTlsInput {
    // The client key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceTlsInput")
            .field("enabled", &self.enabled)
            .field("reject_unauthorized", &self.reject_unauthorized)
            .field("server_name", &self.server_name)
            .field("client_cert", &self.client_cert_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Resource-side TLS as the API shows it: no key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceTlsView {
    pub enabled: bool,
    pub reject_unauthorized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_fingerprint: Option<String>,
}

/// How clients probe the private service (F31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    /// Connect and close.
    #[default]
    Tcp,
    /// `GET path` (over TLS when the resource side is); 2xx or 3xx is healthy.
    Http,
    /// No probes while healthy: carried connections count; once unhealthy, a TCP connect
    /// every interval lets it come back.
    Off,
}

/// A health check as the API takes it: what is left out keeps its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<HealthKind>,
    /// `http` checks: the path requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Seconds between probes (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u32>,
    /// Seconds one probe may take (default 3, at most the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    /// Failures in a row that make it unhealthy (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_after: Option<u32>,
    /// Successes in a row that make it healthy again (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_after: Option<u32>,
}

/// A destination's health check as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthCheckView {
    pub kind: HealthKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

/// `POST /v1/gateways/{id}/destinations`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDestination {
    pub name: String,
    pub resource_host: String,
    /// 1-65535.
    pub resource_port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Ask for a specific cloud port inside the node's range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_port: Option<u32>,
    /// Sources allowed on the cloud port (none: every source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_rules: Option<Vec<IpRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_tls: Option<CloudTlsInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tls: Option<ResourceTlsInput>,
    /// Close connections idle this long (0 = never, else 1-3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u32>,
    /// Cap on connections open at once from one source address (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_source: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxySetting>,
    /// HTTP destinations: rewrite every request's Host to the private host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<bool>,
    /// `on_premises` (default) or `cloud`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<DestinationType>,
    /// Cloud destinations: the port clients listen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u32>,
    /// How clients check the private service (default: a TCP connect every 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckInput>,
}

/// `PATCH /v1/gateways/{id}/destinations/{did}`: the fields given change, the others stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Replaces the rules; `[]` removes them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_rules: Option<Vec<IpRule>>,
    /// Replaces user-side TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_tls: Option<CloudTlsInput>,
    /// Replaces resource-side TLS (`{"enabled": false}` turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tls: Option<ResourceTlsInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_source: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxySetting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<bool>,
    /// A destination's type is fixed when it is created; naming another one is an error.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<DestinationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u32>,
    /// Replaces the health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckInput>,
}

/// A destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DestinationView {
    pub id: String,
    pub gateway_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DestinationType,
    /// Cloud destinations: the port every client of the gateway listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    pub resource_host: String,
    pub resource_port: u16,
    pub protocol: Protocol,
    pub cloud_host: String,
    /// `null` while the destination is inactive: it has no port then.
    pub cloud_port: Option<u16>,
    /// Where cloud applications reach it: the same port on every live node of the cluster,
    /// so one DNS name over all regions keeps working when a region is lost.
    pub cloud_addresses: Vec<CloudAddress>,
    /// Whether this node's cloud port for it is listening now (false while inactive, or
    /// when the port could not be bound: `listen_error` says why, and it is retried).
    pub listening: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_error: Option<String>,
    pub active: bool,
    pub enabled: bool,
    /// RFC 3339.
    pub created_at: String,
    pub ip_rules: Vec<IpRule>,
    /// Seconds without a byte either way before a connection is closed (0: never).
    pub idle_timeout_secs: u32,
    /// Connections one source address may hold open at once (0: no cap).
    pub max_connections_per_source: u32,
    pub proxy_protocol: ProxySetting,
    pub host_rewrite: bool,
    /// How clients check the private service (the default TCP check when none was set;
    /// `null` for a cloud destination).
    pub health_check: Option<HealthCheckView>,
    pub cloud_tls: CloudTlsView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tls: Option<ResourceTlsView>,
}

/// One node's cloud address of a destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CloudAddress {
    pub region: String,
    pub node_id: String,
    pub host: String,
    pub port: u16,
}
