//! The one shared harness of the end-to-end tests: start real `sg-node` and `sg-client`
//! processes on loopback with ephemeral ports and temporary data dirs, make gateways and
//! destinations through the real API, run small real servers, and clean every process up
//! on drop — so each test reads like a user story.
//!
//! The binaries come from `target/<profile>/` (next to the test executable) or from
//! `SG_BIN_DIR`; `scripts/test.sh` builds them before running the tests.

pub use sg_api::client::{ApiClient, ApiResponse};
pub use sg_api::clients::{ClientState, ClientView};
pub use sg_api::events::{EventKind, EventView};

pub mod cluster;
pub mod netns;

mod client;
mod net;
mod node;
mod openssl;
mod process;
mod servers;

pub use client::Client;
pub use net::{
    closed_by_node, connect, connect_from, echo_at, echo_once, echoes, pattern, refused,
    refused_at, sha256, sha256_of, wait_echo,
};
pub use node::{has_event, Node, NodeOptions};
pub use openssl::{openssl_ca, openssl_cert, openssl_echo, CertUse, OpensslRun};
pub use process::{
    artifacts_dir, bin, env_or, free_port, run_cmd, run_with_timeout, send_signal, wait_until,
};
pub(crate) use process::{free_block, kill, read_log};
pub use servers::{http_get, http_request, EchoServer, EchoTunnel, PathServer};
