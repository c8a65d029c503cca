//! Gateways (`/v1/gateways`), their tokens and their ACL.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/gateways`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGateway {
    pub name: String,
    /// Days until the token expires (default 365).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_in_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `PATCH /v1/gateways/{id}`: the fields given change, the others stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatewayView {
    pub id: String,
    pub name: String,
    /// Shown only when the token is issued (create, regenerate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// RFC 3339.
    pub token_expires_at: String,
    pub token_expired: bool,
    pub active: bool,
    pub enabled: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/gateways/{id}/token` (the body is optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_in_days: Option<u32>,
}

/// A token just issued: shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub token: String,
    /// RFC 3339.
    pub token_expires_at: String,
}

/// `PUT /v1/gateways/{id}/acl`: replaces the rules (`[]` removes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AclUpdate {
    /// Rules such as `allow 10.0.0.0/8:5432`, `deny db:22`, `allow api:8080/public/`.
    pub rules: Vec<String>,
}

/// What becomes of a target no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnnamedTargets {
    /// There are rules: what none allows is refused.
    Denied,
    /// No rules: clients started with the default `--acl-default` allow the configured
    /// destinations and nothing else.
    ConfiguredDestinations,
}

/// A gateway's ACL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AclView {
    pub rules: Vec<String>,
    pub unnamed_targets: UnnamedTargets,
    /// `unnamed_targets` as a sentence for people.
    pub unnamed_targets_text: String,
}
