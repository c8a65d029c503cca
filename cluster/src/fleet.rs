//! Who is in the cluster: the record each node publishes about itself, its connection
//! counts, and the fleet a node assembles from them. Plain data, written and watched by
//! [`crate::etcd::registry`] and read by the node actor and the API.

use serde::{Deserialize, Serialize};
use sg_proto::version::ProtocolVersion;
use std::collections::BTreeMap;

/// `PREFIX/nodes/NODE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    #[serde(default = "one")]
    pub v: u32,
    pub id: String,
    pub region: String,
    /// `host:port` clients dial.
    pub tunnel: String,
    /// `https://host:port` of the REST API.
    pub api: String,
    /// Host name of this node's cloud ports.
    pub cloud_host: String,
    pub version: String,
    pub protocol: ProtocolVersion,
    pub draining: bool,
    pub started_at: u64,
}

fn one() -> u32 {
    1
}

/// `PREFIX/load/NODE`: open connections per gateway on that node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadRecord {
    #[serde(default)]
    pub gateways: BTreeMap<String, u32>,
}

/// The live nodes as this node knows them, itself included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    pub nodes: Vec<NodeRecord>,
}
