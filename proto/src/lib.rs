//! # sg-proto — the sg wire, in one place
//!
//! Everything both ends of a tunnel must agree on lives here and only here, so the node
//! and the client can never disagree about a byte:
//!
//! - [`frame`]: the frame types and their payloads;
//! - [`codec`]: length-prefixed framing with a hard size cap, checked before allocating;
//! - [`version`] and [`handshake`]: protocol versioning and the Hello/Welcome/Refuse exchange;
//! - [`mux`]: the stream multiplexer as a state machine without I/O (frames in, frames and
//!   events out, every window accounted in one place);
//! - [`driver`] and [`pump`]: the thin tokio adapter that runs a [`mux::Mux`] over a socket
//!   and moves bytes between a stream and a TCP/TLS connection; [`stream_contract`] is what
//!   the two agree on (stream events, stream commands, the stream handle);
//! - [`tls`]: rustls configuration shared by both ends (TLS 1.2 and 1.3 only, ring provider),
//!   built from [`tls_material`] (PEM, fingerprints, server names) and, for private services'
//!   own certificates, [`service_trust`];
//! - [`backoff`], [`shutdown`], [`ids`], [`secret`]: what both binaries need the same way
//!   (jittered reconnect waits, the SIGINT/SIGTERM wait, random hex ids, redacted secrets);
//! - [`loglevel`], [`logging`] and [`config_file`]: the log level words, the logger set-up
//!   (text or JSON, `RUST_LOG`, a level that changes at run time) and the TOML config file
//!   handling both binaries share;
//! - [`acl`]: the access control list's syntax and decisions (the node validates, clients enforce).
//!
//! The crate knows nothing of actors, sled or HTTP.

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod acl;
pub mod backoff;
pub mod cli_docs;
pub mod codec;
pub mod config_file;
pub mod driver;
pub mod frame;
pub mod handshake;
pub mod health;
pub mod hostport;
pub mod ids;
pub mod limits;
pub mod listener;
pub mod log_throttle;
pub mod logging;
pub mod loglevel;
pub mod mux;
pub mod prometheus;
pub mod proxy_header;
pub mod pump;
pub mod secret;
pub mod service_trust;
pub mod shutdown;
pub mod stream_contract;
mod stream_inbox;
pub mod tls;
pub mod tls_material;
pub mod transmit;
pub mod version;

pub use codec::{FrameCodec, FrameError};
pub use driver::{SessionEvent, SessionHandle, SessionStats};
pub use frame::{Frame, StreamId};
pub use mux::{Mux, MuxEvent, ProtocolError, Role};
pub use pump::{Pump, PumpOutcome, StreamHandle};

/// For [`throttled_warn!`] in other crates.
#[doc(hidden)]
pub use tracing as __tracing;
