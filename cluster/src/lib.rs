//! # sg-cluster — the relay node
//!
//! `sg-node` gives private TCP services a cloud host:port: clients dial its tunnel port,
//! cloud applications connect to its cloud ports, and it carries each connection as a
//! stream through a client's session. See the README for the picture; in short:
//!
//! - [`config`]: flags and TOML, parsed once;
//! - [`state`], [`store`], [`records`]: the authoritative state, its rules, and sled;
//! - [`actors`]: Node, Gateway, Destination, Connection and Session actors;
//! - [`tunnel`]: the tunnel port (TLS, handshake, authentication);
//! - [`api`]: the REST API (its types live in sg-api, `sgctl` in its own crate);
//! - [`inputs`]: what the API's request spellings mean for the records;
//! - [`pki`]: the node's CA and certificates; [`run`]: start-up and shutdown.

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod actors;
pub mod api;
pub mod client_config;
pub mod cloud_dest;
pub mod config;
pub mod controls;
pub mod drain;
pub mod etcd;
pub mod events;
pub mod fleet;
pub mod ids;
pub mod inputs;
pub mod limiter;
pub mod listening;
pub mod memory;
pub mod panics;
pub mod pki;
pub mod ports;
pub mod records;
pub mod run;
pub mod selection;
pub mod state;
pub mod status;
pub mod store;
pub mod time;
pub mod tracker;
pub mod tunnel;
pub mod workers;
