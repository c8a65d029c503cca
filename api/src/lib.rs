//! The sg REST contract, in one place.
//!
//! Every request body, every view the node answers with and every machine error code of
//! `/v1` is a type here. The node's handlers deserialize and serialize these types, `sgctl`
//! and the end-to-end tests read them back, and the OpenAPI document (`GET
//! /v1/openapi.json`, `docs/openapi.json`) is generated from them: a renamed field breaks
//! the build of every user instead of printing `-`.
//!
//! Field names are binding (SPEC.md); new fields may be added. Views accept unknown fields
//! when read back (a newer node may send more), requests refuse them (a typo is an error).
//!
//! - [`error`]: the error body and its [`ErrorCode`]s.
//! - [`gateways`], [`destinations`], [`clients`], [`events`], [`node`]: requests and views by
//!   resource.
//! - [`node_file`]: what a running node writes into its data dir for `sgctl` to find it.
//! - `client` (feature `client`): a blocking HTTPS client for the API.

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "client")]
pub mod client;
pub mod clients;
pub mod destinations;
pub mod error;
pub mod events;
pub mod gateways;
pub mod node;
pub mod node_file;

pub use error::{ErrorBody, ErrorCode};
