//! The frames of the sg wire and their payloads.
//!
//! Every frame is `length: u32 | kind: u8 | stream: u32 | payload`. Data frames carry raw
//! bytes; Credit, Ping and Pong carry big-endian integers; every other payload is a small
//! JSON document, which keeps the control plane readable and lets it grow fields without a
//! new major version (unknown fields are ignored, unknown codes map to `Unknown`).

use crate::version::ProtocolVersion;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Stream identifier. Stream 0 is the session itself; the node opens odd ids.
pub type StreamId = u32;

/// The one-byte kind of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Hello = 1,
    Welcome = 2,
    Refuse = 3,
    Open = 4,
    Data = 5,
    Fin = 6,
    Reset = 7,
    Credit = 8,
    Ping = 9,
    Pong = 10,
    GoAway = 11,
    Config = 12,
    Notice = 13,
    Report = 14,
    AclUpdate = 15,
    NodeList = 16,
    Health = 17,
}

impl FrameKind {
    pub fn from_u8(b: u8) -> Option<Self> {
        use FrameKind::*;
        Some(match b {
            1 => Hello,
            2 => Welcome,
            3 => Refuse,
            4 => Open,
            5 => Data,
            6 => Fin,
            7 => Reset,
            8 => Credit,
            9 => Ping,
            10 => Pong,
            11 => GoAway,
            12 => Config,
            13 => Notice,
            14 => Report,
            15 => AclUpdate,
            16 => NodeList,
            17 => Health,
            _ => return None,
        })
    }

    /// Whether frames of this kind belong to a stream (non-zero id) rather than the session.
    pub fn is_stream_frame(self) -> bool {
        matches!(
            self,
            FrameKind::Open | FrameKind::Data | FrameKind::Fin | FrameKind::Reset
        )
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello(Hello),
    Welcome(Box<Welcome>),
    Refuse(Refusal),
    Open {
        stream: StreamId,
        open: OpenStream,
    },
    Data {
        stream: StreamId,
        payload: Bytes,
    },
    Fin {
        stream: StreamId,
    },
    Reset {
        stream: StreamId,
        reset: ResetReason,
    },
    /// Window update; stream 0 grants session-wide credit.
    Credit {
        stream: StreamId,
        increment: u32,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    GoAway(GoAway),
    Config(Box<GatewayConfig>),
    Notice(Notice),
    Report(Report),
    /// Client → node: replace the gateway's ACL (edited at a client's console).
    AclUpdate(AclUpdate),
    /// Node → client: the cluster's live nodes (protocol 1.8 and later).
    NodeList(NodeList),
    /// Client → node: which destinations the client can reach (protocol 1.10 and later).
    Health(crate::health::HealthReport),
}

impl Frame {
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Hello(_) => FrameKind::Hello,
            Frame::Welcome(_) => FrameKind::Welcome,
            Frame::Refuse(_) => FrameKind::Refuse,
            Frame::Open { .. } => FrameKind::Open,
            Frame::Data { .. } => FrameKind::Data,
            Frame::Fin { .. } => FrameKind::Fin,
            Frame::Reset { .. } => FrameKind::Reset,
            Frame::Credit { .. } => FrameKind::Credit,
            Frame::Ping { .. } => FrameKind::Ping,
            Frame::Pong { .. } => FrameKind::Pong,
            Frame::GoAway(_) => FrameKind::GoAway,
            Frame::Config(_) => FrameKind::Config,
            Frame::Notice(_) => FrameKind::Notice,
            Frame::Report(_) => FrameKind::Report,
            Frame::AclUpdate(_) => FrameKind::AclUpdate,
            Frame::NodeList(_) => FrameKind::NodeList,
            Frame::Health(_) => FrameKind::Health,
        }
    }

    /// The stream id the frame travels on (0 for session frames).
    pub fn stream(&self) -> StreamId {
        match self {
            Frame::Open { stream, .. }
            | Frame::Data { stream, .. }
            | Frame::Fin { stream }
            | Frame::Reset { stream, .. }
            | Frame::Credit { stream, .. } => *stream,
            _ => 0,
        }
    }
}

/// First frame from a client: who it is and which gateway it serves with what token.
/// One session serves one gateway, so a refusal or a token change on one gateway never
/// disturbs another gateway served by the same process.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: ProtocolVersion,
    pub client_version: String,
    /// Random id of the client process, stable across its reconnects.
    pub client_id: String,
    pub hostname: String,
    pub gateway_id: String,
    pub token: String,
}

impl fmt::Debug for Hello {
    // Tokens never reach a log: the Debug form leaves it out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("protocol", &self.protocol)
            .field("client_version", &self.client_version)
            .field("client_id", &self.client_id)
            .field("hostname", &self.hostname)
            .field("gateway_id", &self.gateway_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The node's answer to an accepted Hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub session_id: String,
    pub node_id: String,
    pub region: String,
    pub node_version: String,
    pub protocol: ProtocolVersion,
    /// How often the node pings; the client uses the same interval.
    pub heartbeat_ms: u64,
    pub gateway: GatewayConfig,
}

/// What a client must serve for one gateway. Sent in Welcome and again (as Config)
/// whenever it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayConfig {
    pub gateway_id: String,
    pub name: String,
    pub enabled: bool,
    pub destinations: Vec<DestinationSpec>,
    /// The gateway's ACL rules in console syntax (`acl allow HOST:PORT`).
    #[serde(default)]
    pub acl: Vec<String>,
}

/// One private service the client connects to on behalf of a destination.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationSpec {
    pub id: String,
    pub name: String,
    pub resource_host: String,
    pub resource_port: u16,
    #[serde(default)]
    pub protocol: AppProtocol,
    #[serde(default)]
    pub resource_tls: Option<ResourceTls>,
    /// A PROXY protocol header the client sends the service before any byte (F26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<crate::proxy_header::ProxyProtocol>,
    /// HTTP destinations: the client replaces every request's Host header with the
    /// private host (and port) (F28).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_rewrite: bool,
    /// A cloud destination (F29) runs the other way: the client listens on `client_port`
    /// and the node connects to the resource, which is then a cloud address the client
    /// never dials itself.
    #[serde(default, skip_serializing_if = "DestinationKind::is_on_premises")]
    pub kind: DestinationKind,
    /// Cloud destinations: the local port the client listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// How the client checks the private service (F31); `None` is the default TCP check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<crate::health::HealthCheck>,
}

/// Which way a destination carries connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// Cloud applications reach a private service (a cloud port on the node, the client
    /// dials the service).
    #[default]
    OnPremises,
    /// Private applications reach a cloud resource (a client port on the client, the node
    /// dials the resource an admin configured).
    Cloud,
}

impl DestinationKind {
    pub fn is_on_premises(&self) -> bool {
        *self == DestinationKind::OnPremises
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::OnPremises => "on_premises",
            DestinationKind::Cloud => "cloud",
        }
    }
}

impl fmt::Debug for DestinationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationSpec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field(
                "resource",
                &format_args!("{}:{}", self.resource_host, self.resource_port),
            )
            .field("protocol", &self.protocol)
            .field(
                "resource_tls",
                &self.resource_tls.as_ref().map(|t| t.enabled),
            )
            .field("proxy_protocol", &self.proxy_protocol)
            .field("host_rewrite", &self.host_rewrite)
            .field("kind", &self.kind)
            .field("client_port", &self.client_port)
            .field("health_check", &self.health_check)
            .finish()
    }
}

/// The application protocol of a destination, for ACL route rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppProtocol {
    #[default]
    Tcp,
    Http,
}

/// How the client reaches the private service over TLS (resource-side authentication).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceTls {
    pub enabled: bool,
    #[serde(default)]
    pub reject_unauthorized: bool,
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub client_cert_pem: Option<String>,
    #[serde(default)]
    pub client_key_pem: Option<String>,
}

impl fmt::Debug for ResourceTls {
    // The client key never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceTls")
            .field("enabled", &self.enabled)
            .field("reject_unauthorized", &self.reject_unauthorized)
            .field("server_name", &self.server_name)
            .field("client_cert", &self.client_cert_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a node refused a Hello. The message says what to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefuseCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseCode {
    BadToken,
    TokenExpired,
    UnknownGateway,
    GatewayInactive,
    GatewayDisabled,
    VersionTooOld,
    VersionIncompatible,
    TooManySessions,
    /// The gateway has as many clients as the plan's `max_clients_per_gateway` allows.
    LimitReached,
    Draining,
    Malformed,
    Internal,
    #[serde(other)]
    Unknown,
}

impl RefuseCode {
    /// Whether retrying the same Hello can ever succeed without an operator's action.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            RefuseCode::BadToken
                | RefuseCode::TokenExpired
                | RefuseCode::UnknownGateway
                | RefuseCode::VersionTooOld
                | RefuseCode::VersionIncompatible
                | RefuseCode::Malformed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefuseCode::BadToken => "bad_token",
            RefuseCode::TokenExpired => "token_expired",
            RefuseCode::UnknownGateway => "unknown_gateway",
            RefuseCode::GatewayInactive => "gateway_inactive",
            RefuseCode::GatewayDisabled => "gateway_disabled",
            RefuseCode::VersionTooOld => "version_too_old",
            RefuseCode::VersionIncompatible => "version_incompatible",
            RefuseCode::TooManySessions => "too_many_sessions",
            RefuseCode::LimitReached => "limit_reached",
            RefuseCode::Draining => "draining",
            RefuseCode::Malformed => "malformed",
            RefuseCode::Internal => "internal",
            RefuseCode::Unknown => "unknown",
        }
    }
}

/// Carry a new connection on this stream: node → client for a cloud connection to a
/// private service; client → node (protocol 1.9 and later) for a private application's
/// connection to one of the client's ports, bound for a cloud destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenStream {
    pub destination_id: String,
    /// The requesting application's address, for logs, IP rules and ACL reports.
    pub peer: String,
    /// The opener's connection number, so both ends log the same `Connection #N`.
    pub connection: u64,
    /// The cloud addresses (`host:port`) the application may have dialled for this
    /// destination, so an HTTP gate can tell its own Host from another virtual host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<String>,
    /// The cloud address the application reached (`ip:port`), for a PROXY protocol header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
}

/// Why a stream was aborted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetReason {
    pub code: ResetCode,
    pub message: String,
}

impl ResetReason {
    pub fn new(code: ResetCode, message: impl Into<String>) -> Self {
        ResetReason {
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetCode {
    /// The client's ACL refused the target.
    AclRefused,
    /// The client could not reach the private service.
    ConnectFailed,
    /// The destination is unknown to the client or disabled.
    UnknownDestination,
    /// One side's socket failed or was aborted.
    Aborted,
    /// The receiver holds too many streams already.
    TooManyStreams,
    /// The session is shutting down.
    Shutdown,
    /// The node refused a client-opened stream: not a cloud destination of the gateway,
    /// disabled, outside its IP rules, or over the gateway's limit (the message says which).
    Refused,
    #[serde(other)]
    Unknown,
}

/// Node → client: this node is going away; move to another one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoAway {
    pub reason: String,
    #[serde(default)]
    pub reconnect_after_ms: u64,
}

/// Node → client: something the client's operator should see in its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub message: String,
    #[serde(default)]
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Connections were refused at the cloud port because of the concurrency limit.
    ConnectionLimit,
    /// The session is closed on purpose (token regenerated, gateway deleted, ...).
    SessionClosed,
    /// An operator ended this client (F30): it stops serving and exits, on every node.
    ClientKilled,
    #[serde(other)]
    Unknown,
}

/// Client → node: the gateway's new ACL, in console syntax. The node validates it, stores
/// it, and sends it to every client of the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AclUpdate {
    pub rules: Vec<String>,
}

/// A session may send an [`AclUpdate`] at most this often: each is a durable write and a
/// push to every client of the gateway. The node ignores (and says so) what comes sooner;
/// the client spaces its own changes out so none is lost.
pub const ACL_UPDATE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Node → client: every live node of the cluster, sent after Welcome and whenever the
/// fleet changes. The client holds sessions to each node that is not draining, so one
/// region's loss does not stop its gateways (F20, F32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    pub nodes: Vec<NodeEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node_id: String,
    pub region: String,
    /// `host:port` of the node's tunnel port.
    pub tunnel: String,
    #[serde(default)]
    pub draining: bool,
}

/// Client → node: an event the node records in the gateway's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub kind: ReportKind,
    pub message: String,
    #[serde(default)]
    pub destination_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    AclRefused,
    ConnectFailed,
    AclChanged,
    #[serde(other)]
    Unknown,
}
