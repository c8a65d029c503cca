//! # sg-client — the on-prem side of sg
//!
//! Runs inside the private network, dials **out** to one or more relay nodes over TLS,
//! proves each gateway's token, and carries the streams the node opens to the private
//! services the gateway's destinations name.
//!
//! - [`config`]: flags and TOML, parsed once;
//! - [`fleet`]: one gateway's sessions across the cluster's nodes (seeds, then discovered);
//! - [`tunnel`]: one session per gateway per node, with reconnects (backoff and jitter);
//! - [`egress`]: the way to the nodes through an HTTP CONNECT or SOCKS5 proxy;
//! - [`workers`]: the threads tunnels run on;
//! - [`serve`]: one incoming stream → one connection to a private service;
//! - [`health`]: whether this client reaches each destination's service (probes and
//!   carried connections), told to the node so it steers connections (F31);
//! - [`resource_tls`]: TLS to private services, shared by streams and health checks;
//! - [`http_gate`]: ACL path rules on HTTP destinations, request by request;
//! - [`client_ports`]: the listeners of cloud destinations, whose streams the client opens;
//! - [`registry`], [`console`], [`ui`], [`metrics`]: what operators see and change;
//! - [`service`]: the `--service` supervisor;
//! - [`fleet_link`], [`node_book`], [`health_book`], [`admission`], [`stats`]: the small
//!   contracts and books the tasks above share (retry delays, ids and the stop signal are
//!   in sg-proto, shared with the node).

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod admission;
pub mod client_ports;
pub mod config;
pub mod console;
pub mod egress;
pub mod fleet;
pub mod fleet_link;
pub mod health;
pub mod health_book;
pub mod http_gate;
pub mod http_head;
pub mod metrics;
pub mod node_book;
pub mod registry;
pub mod resource_tls;
pub mod serve;
pub mod service;
pub mod stats;
pub mod tunnel;
pub mod ui;
pub mod ui_auth;
pub mod workers;
