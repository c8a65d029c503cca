//! Every failure of the API is a status and an [`ErrorBody`]: `{"error": "<machine code>",
//! "message": "<what to do>"}`. Scripts branch on the code, people read the message.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The machine code of an API error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no admin token, or not this node's.
    Unauthorized,
    /// 404: the gateway, destination or connected client does not exist.
    NotFound,
    /// 404: no such method and path.
    NoSuchEndpoint,
    /// 400: a field's value is refused; the message names the field.
    InvalidField,
    /// 400: the body is not JSON of the expected shape, or too large.
    InvalidBody,
    /// 409: the plan's limit would be passed.
    LimitReached,
    /// 409: the gateway's configuration would not fit in one frame to its clients.
    ConfigTooLarge,
    /// 409: the node has no room for another destination.
    TooManyDestinations,
    /// 409: the cloud port asked for is taken.
    PortInUse,
    /// 409: the gateway is inactive, so this cannot be done now.
    GatewayInactive,
    /// 503: every cloud port of the node's range is taken.
    NoFreePort,
    /// 500: the node's store failed; the message says how.
    StorageError,
    /// 503: the cluster's store cannot take changes now; nothing was changed.
    StoreUnavailable,
    /// 503: other nodes did not answer, and the answer depends on them.
    NodesUnreachable,
    /// 503: the node is starting or stopping.
    Unavailable,
    /// A code this build does not know (from a newer node).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NoSuchEndpoint => "no_such_endpoint",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::ConfigTooLarge => "config_too_large",
            ErrorCode::TooManyDestinations => "too_many_destinations",
            ErrorCode::PortInUse => "port_in_use",
            ErrorCode::GatewayInactive => "gateway_inactive",
            ErrorCode::NoFreePort => "no_free_port",
            ErrorCode::StorageError => "storage_error",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::NodesUnreachable => "nodes_unreachable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_serde_writes_them() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::NoSuchEndpoint,
            ErrorCode::InvalidField,
            ErrorCode::InvalidBody,
            ErrorCode::LimitReached,
            ErrorCode::ConfigTooLarge,
            ErrorCode::TooManyDestinations,
            ErrorCode::PortInUse,
            ErrorCode::GatewayInactive,
            ErrorCode::NoFreePort,
            ErrorCode::StorageError,
            ErrorCode::StoreUnavailable,
            ErrorCode::NodesUnreachable,
            ErrorCode::Unavailable,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
        }
        let newer: ErrorCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(newer, ErrorCode::Unknown);
    }
}
