//! What a running node writes into its data dir so that `sgctl` on the same machine finds
//! it without flags: `node.json` (where its API is, how to trust it), `admin.token` and
//! `ca.pem`.

use serde::{Deserialize, Serialize};

/// Where a node keeps its state when no `--data-dir` is given (and where sgctl looks).
pub const DEFAULT_DATA_DIR: &str = "sg-data";
/// The node's API address when no `--api-listen` is given (and where sgctl asks).
pub const DEFAULT_API: &str = "127.0.0.1:9090";

/// The file that says where the node's API is.
pub const NODE_FILE: &str = "node.json";
/// The admin token (0600).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The CA that signed the node's API and tunnel certificates.
pub const CA_FILE: &str = "ca.pem";

/// What `node.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFile {
    pub pid: u32,
    pub version: String,
    pub region: String,
    pub node_id: String,
    pub tunnel: String,
    pub api: String,
    pub ca: Option<String>,
    pub fingerprint: String,
}
