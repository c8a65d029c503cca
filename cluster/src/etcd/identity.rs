//! Who the cluster is, decided once at start-up.
//!
//! The first node on an empty prefix creates the cluster: its admin token (the hash of
//! it) and its CA become the cluster's, with its cloud-port range, and — if it ran alone
//! before — its gateways and destinations. Every other node joins: it installs the
//! cluster's CA into its data dir (so its own server certificate is issued from it, and one
//! `ca.pem` verifies every node) and takes the cluster's admin-token hash (so one token
//! works on every node's API).
//!
//! A node that already belongs to a cluster starts from its local copy when etcd is
//! unreachable. A node whose copy belongs to a cluster etcd no longer holds keeps that copy
//! and refuses changes (the replicator says so); it never wipes itself.

use super::keys::Keys;
use super::txn::chunks;
use super::{Etcd, EtcdError};
use crate::config::NodeConfig;
use crate::ids::{hash_token, new_id};
use crate::pki::{self, PkiError};
use crate::records::Plan;
use crate::status::StoreHealth;
use crate::store::{Op, SledStore, Store, StoreError};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use sg_proto::secret::Secret;
use sg_proto::version::PROTOCOL_MAJOR;
use std::fmt;
use std::time::Duration;

/// Data format of the cluster's records; a node refuses a cluster newer than it reads.
pub const CLUSTER_FORMAT: u32 = 1;

/// `meta` keys of the cluster identity in the local copy.
const META_CLUSTER: &str = "cluster_id";
const META_ADMIN_HASH: &str = "cluster_admin_token_hash";
/// How often a node with no copy asks an unreachable etcd again.
const JOIN_RETRY: Duration = Duration::from_secs(2);

/// `PREFIX/cluster`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    #[serde(default = "one")]
    pub v: u32,
    pub id: String,
    pub created_at: u64,
    pub created_by: String,
    pub admin_token_hash: String,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// `LOW-HIGH`: every node allocates cloud ports from this one range.
    pub cloud_ports: String,
    pub protocol_major: u16,
    pub format: u32,
}

fn one() -> u32 {
    1
}

impl fmt::Debug for ClusterRecord {
    // The CA key never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterRecord")
            .field("id", &self.id)
            .field("created_by", &self.created_by)
            .field("cloud_ports", &self.cloud_ports)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
}

/// The cluster this node serves, and how its store stands at start-up.
#[derive(Debug)]
pub struct Membership {
    pub cluster_id: String,
    pub admin_token_hash: String,
    pub health: StoreHealth,
    /// This node's copy has never been filled from etcd (it waits for that before serving).
    pub fresh: bool,
}

/// Joins (or creates) the cluster; blocks until etcd has answered once, unless the local
/// copy already belongs to a cluster.
pub fn establish(
    etcd: &Etcd,
    local: &SledStore,
    config: &NodeConfig,
    node_id: &str,
    reseed: bool,
) -> Result<Membership, IdentityError> {
    let known = local.meta(META_CLUSTER)?;
    let mut waiting_logged = false;
    let remote = loop {
        match etcd.block_on(read_record(etcd)) {
            Ok(r) => break r,
            Err(e) => {
                if let Some(id) = &known {
                    tracing::warn!(
                        "etcd at {} is unreachable ({e}); starting from the local copy of \
                         cluster {id}, changes are refused until etcd is back",
                        etcd.endpoints
                    );
                    return Ok(Membership {
                        cluster_id: id.clone(),
                        admin_token_hash: cached_admin_hash(local)?,
                        health: StoreHealth::Unreachable,
                        fresh: false,
                    });
                }
                if !waiting_logged {
                    tracing::warn!(
                        "waiting for etcd at {} to join or create the cluster ({e})",
                        etcd.endpoints
                    );
                    waiting_logged = true;
                }
                std::thread::sleep(JOIN_RETRY);
            }
        }
    };
    match (remote, known) {
        (Some(record), Some(id)) if record.id == id => {
            check_compatible(&record, config)?;
            remember(local, &record)?;
            Ok(Membership {
                cluster_id: id,
                admin_token_hash: record.admin_token_hash,
                health: StoreHealth::Synced,
                fresh: false,
            })
        }
        (None, Some(id)) if reseed => reseed_from_copy(etcd, local, config, node_id, id),
        (remote, Some(id)) => {
            // Wiped etcd, or another cluster: keep the copy; the replicator explains.
            if let Some(r) = &remote {
                tracing::error!(
                    "etcd under {} holds cluster {}, this node's copy belongs to cluster {id}",
                    etcd.keys.prefix(),
                    r.id
                );
            }
            Ok(Membership {
                cluster_id: id,
                admin_token_hash: cached_admin_hash(local)?,
                health: StoreHealth::Detached,
                fresh: false,
            })
        }
        (Some(record), None) => join(local, record, config),
        (None, None) => match create(etcd, local, config, node_id)? {
            Some(m) => Ok(m),
            // Another node created it first: join that one.
            None => match etcd.block_on(read_record(etcd))? {
                Some(record) => join(local, record, config),
                None => Err(IdentityError::Refused(
                    "the cluster record vanished while this node was joining; start it again"
                        .into(),
                )),
            },
        },
    }
}

async fn read_record(etcd: &Etcd) -> Result<Option<ClusterRecord>, IdentityError> {
    let mut kv = etcd.client.kv_client();
    let resp = etcd.timed(kv.get(etcd.keys.cluster(), None)).await?;
    match resp.kvs().first() {
        None => Ok(None),
        Some(kv) => serde_json::from_slice(kv.value()).map(Some).map_err(|e| {
            IdentityError::Refused(format!(
                "the cluster record at {} cannot be read: {e}",
                etcd.keys.cluster()
            ))
        }),
    }
}

fn cached_admin_hash(local: &SledStore) -> Result<String, IdentityError> {
    local.meta(META_ADMIN_HASH)?.ok_or_else(|| {
        IdentityError::Refused(
            "the local copy has no admin token of its cluster; start the node once while etcd \
             is reachable"
                .into(),
        )
    })
}

fn remember(local: &SledStore, record: &ClusterRecord) -> Result<(), IdentityError> {
    local.set_meta(META_CLUSTER, &record.id)?;
    local.set_meta(META_ADMIN_HASH, &record.admin_token_hash)?;
    Ok(())
}

fn check_compatible(record: &ClusterRecord, config: &NodeConfig) -> Result<(), IdentityError> {
    if record.protocol_major != PROTOCOL_MAJOR || record.format > CLUSTER_FORMAT {
        return Err(IdentityError::Refused(format!(
            "cluster {} speaks protocol {}.x with data format {}; this sg-node {} speaks {}.x \
             and reads format {CLUSTER_FORMAT}: run a matching sg-node release",
            record.id,
            record.protocol_major,
            record.format,
            sg_proto::version::PRODUCT_VERSION,
            PROTOCOL_MAJOR
        )));
    }
    let ours = format!(
        "{}-{}",
        config.cloud_ports.start(),
        config.cloud_ports.end()
    );
    if record.cloud_ports != ours {
        return Err(IdentityError::Refused(format!(
            "--cloud-ports {ours} differs from cluster {}'s range {} (a destination has the \
             same cloud port on every node): start this node with --cloud-ports {}",
            record.id, record.cloud_ports, record.cloud_ports
        )));
    }
    if let Some(t) = &config.admin_token {
        if hash_token(t.expose()) != record.admin_token_hash {
            return Err(IdentityError::Refused(format!(
                "--admin-token is not the admin token of cluster {} (set by its first node, \
                 {}); pass that one, or none",
                record.id, record.created_by
            )));
        }
    }
    Ok(())
}

fn join(
    local: &SledStore,
    record: ClusterRecord,
    config: &NodeConfig,
) -> Result<Membership, IdentityError> {
    check_compatible(&record, config)?;
    let held = local.gateways()?.len();
    if held > 0 {
        return Err(IdentityError::Refused(format!(
            "this data dir ({}) holds {held} gateway(s) of its own; it cannot join cluster {} \
             without losing them. Start this node with a fresh --data-dir, or point it at an \
             empty --etcd-prefix to make its gateways a new cluster",
            config.data_dir.display(),
            record.id
        )));
    }
    pki::install_ca(&config.data_dir, &record.ca_cert_pem, &record.ca_key_pem)?;
    remember(local, &record)?;
    let token_file = config.data_dir.join(crate::ids::ADMIN_TOKEN_FILE);
    if token_file.exists() && config.admin_token.is_none() {
        tracing::warn!(
            "{} is not the admin token of cluster {}: sgctl on this machine needs the \
             cluster's token (--admin-token or SG_ADMIN_TOKEN)",
            token_file.display(),
            record.id
        );
    }
    tracing::info!(
        "joined cluster {} (created by node {}); the API takes the cluster's admin token and \
         this node's certificate is issued from the cluster's CA",
        record.id,
        record.created_by
    );
    Ok(Membership {
        cluster_id: record.id,
        admin_token_hash: record.admin_token_hash,
        health: StoreHealth::Synced,
        fresh: true,
    })
}

/// Creates the cluster from this node, uploading what its copy holds. `None` if another
/// node created it first.
fn create(
    etcd: &Etcd,
    local: &SledStore,
    config: &NodeConfig,
    node_id: &str,
) -> Result<Option<Membership>, IdentityError> {
    let (token, note) = crate::ids::admin_token(
        &config.data_dir,
        config.admin_token.as_ref().map(Secret::expose),
    )?;
    if let Some(note) = note {
        tracing::info!("{note}");
    }
    let record = new_record(config, node_id, new_id("cl"), hash_token(&token))?;
    let membership = seed(etcd, local, record)?;
    if let Some(m) = &membership {
        tracing::info!(
            "created cluster {} in etcd at {} under {}",
            m.cluster_id,
            etcd.endpoints,
            etcd.keys.prefix()
        );
    }
    Ok(membership)
}

/// `--etcd-reseed`: etcd lost the cluster this copy belongs to; write the copy back under
/// the same cluster id, so nodes that kept their copies follow it again.
fn reseed_from_copy(
    etcd: &Etcd,
    local: &SledStore,
    config: &NodeConfig,
    node_id: &str,
    cluster_id: String,
) -> Result<Membership, IdentityError> {
    let record = new_record(config, node_id, cluster_id, cached_admin_hash(local)?)?;
    match seed(etcd, local, record)? {
        Some(m) => {
            tracing::warn!(
                "--etcd-reseed: wrote this node's copy of cluster {} back into etcd at {} under {}",
                m.cluster_id,
                etcd.endpoints,
                etcd.keys.prefix()
            );
            Ok(m)
        }
        None => Err(IdentityError::Refused(
            "--etcd-reseed: etcd holds a cluster again (another node reseeded it); start \
             without --etcd-reseed"
                .into(),
        )),
    }
}

/// A cluster record naming this node's CA (made now if it has none) and port range.
fn new_record(
    config: &NodeConfig,
    node_id: &str,
    id: String,
    admin_token_hash: String,
) -> Result<ClusterRecord, IdentityError> {
    let (ca, note) = pki::load_or_create_ca(&config.data_dir)?;
    if let Some(note) = note {
        tracing::info!("{note}");
    }
    let (low, high) = (config.cloud_ports.start(), config.cloud_ports.end());
    Ok(ClusterRecord {
        v: 1,
        id,
        created_at: crate::time::now_secs(),
        created_by: node_id.to_string(),
        admin_token_hash,
        ca_cert_pem: ca.cert_pem.clone(),
        ca_key_pem: ca.key_pem(),
        cloud_ports: format!("{low}-{high}"),
        protocol_major: PROTOCOL_MAJOR,
        format: CLUSTER_FORMAT,
    })
}

/// Writes `record` and everything the local copy holds into an empty prefix. `None` if a
/// cluster record appeared meanwhile.
fn seed(
    etcd: &Etcd,
    local: &SledStore,
    record: ClusterRecord,
) -> Result<Option<Membership>, IdentityError> {
    // What this node held alone becomes the cluster's.
    let mut ops = vec![Op::PutPlan(local.plan()?.unwrap_or_else(Plan::default))];
    ops.extend(local.gateways()?.into_iter().map(Op::PutGateway));
    ops.extend(local.destinations()?.into_iter().map(Op::PutDestination));
    let uploaded = ops.len() - 1;
    let Some(revision) = etcd.block_on(upload(etcd, &record, &ops))? else {
        return Ok(None);
    };
    local.commit_at(&[], Some(revision))?;
    remember(local, &record)?;
    if uploaded > 0 {
        tracing::info!("wrote this node's {uploaded} gateway(s) and destination(s) into etcd");
    }
    Ok(Some(Membership {
        cluster_id: record.id,
        admin_token_hash: record.admin_token_hash,
        health: StoreHealth::Synced,
        fresh: false,
    }))
}

/// Writes `ops` and then the cluster record, each transaction only while no cluster record
/// exists. Returns the last revision, or `None` if another node created the cluster first.
/// The record comes last: an upload cut short is simply redone at the next start.
async fn upload(
    etcd: &Etcd,
    record: &ClusterRecord,
    ops: &[Op],
) -> Result<Option<i64>, IdentityError> {
    let keys: &Keys = &etcd.keys;
    let absent = || Compare::create_revision(keys.cluster(), CompareOp::Equal, 0);
    let mut kv = etcd.client.kv_client();
    let value = serde_json::to_string(record).map_err(|e| StoreError::Encode {
        what: "cluster record",
        detail: e.to_string(),
    })?;
    let mut batches = chunks(keys, ops)?;
    if let Some(last) = batches.last_mut() {
        last.push(TxnOp::put(keys.marker(), "{}", None));
        last.push(TxnOp::put(keys.cluster(), value, None));
    }
    let mut revision = 0;
    for batch in batches {
        let txn = Txn::new().when([absent()]).and_then(batch);
        let resp = etcd.timed(kv.txn(txn)).await?;
        if !resp.succeeded() {
            return Ok(None);
        }
        revision = resp.header().map_or(0, |h| h.revision());
    }
    Ok(Some(revision))
}
