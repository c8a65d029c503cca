//! A gateway's event log (`/v1/gateways/{id}/events`, F19).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What happened. Stored with each event, so a name once written stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    BadToken,
    TokenExpired,
    TokenRegenerated,
    SessionRefused,
    SessionOpened,
    SessionClosed,
    LimitReached,
    IpRefused,
    AclRefused,
    ConnectFailed,
    DestinationDisabled,
    GatewayDisabled,
    TlsRefused,
    AclChanged,
    PortBindFailed,
    /// A client asked for a connection the node would not make (not a cloud destination,
    /// or its resource could not be reached).
    StreamRefused,
    /// A client's view of a destination changed: it can reach it, or not (F31).
    HealthChanged,
    /// An operator ended a client (F30).
    ClientKilled,
    /// A kind this build does not know (written by a newer node).
    #[serde(other)]
    Other,
}

/// An event, tagged with the node that recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// RFC 3339 with milliseconds.
    pub at: String,
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub region: String,
    pub kind: EventKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Most events one request returns.
pub const MAX_EVENTS: usize = 1000;

/// `?limit=&scope=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// 1-1000, newest first (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub scope: Option<crate::clients::Scope>,
}
