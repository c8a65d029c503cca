//! Starting and stopping a node: data dir, store, certificates, actors, listeners, and the
//! `node.json` file that tells local tools (sgctl, tests) where everything listens.

use crate::actors::node::{Apply, Barrier, Node, SetFleet};
use crate::actors::state::{AttachNode, Read, StateActor};
use crate::actors::{NodeIdentity, NodeShared};
use crate::api::{self, ApiState};
use crate::config::NodeConfig;
use crate::drain::drain;
use crate::etcd::boot::ClusterLink;
use crate::fleet::{Fleet, NodeRecord};
use crate::ids::{hash_token, new_id};
use crate::pki::{self, write_private, NodePki};
use crate::ports::PortPool;
use crate::state::{Issuer, State};
use crate::status::{NodeStatus, StoreHealth};
use crate::store::{SledStore, Store};
use crate::tunnel::TunnelListener;
use crate::workers::Workers;
use actix::prelude::*;
use sg_proto::secret::Secret;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File in the data dir that says where a running node listens.
pub use sg_api::node_file::{ADMIN_TOKEN_FILE, CA_FILE, NODE_FILE};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("state store in {path}: {source}")]
    Store {
        path: String,
        source: crate::store::StoreError,
    },
    #[error("TLS: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("cannot listen on {what} {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("the node's actors did not start")]
    Actors,
    #[error("cluster: {0}")]
    Cluster(String),
}

pub use sg_api::node_file::NodeFile;

/// The data dir holds the state (uploaded private keys among it), the CA key and the admin
/// token: it is 0700 however it was made, and the state's files are 0600.
fn prepare_data_dir(dir: &Path) -> Result<(), NodeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source| NodeError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        tracing::warn!(
            "the data dir {} was readable by others (mode {:o}); it is 0700 now",
            dir.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Makes every directory under `dir` 0700 and every file 0600 (sled creates its files with
/// the umask's mode).
fn keep_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            keep_private(&path)?;
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Runs a node until SIGINT/SIGTERM, then drains it. Call inside an actix `System`.
pub async fn run(config: NodeConfig) -> Result<(), NodeError> {
    run_until(config, sg_proto::shutdown::signal()).await
}

/// Runs a node until `shutdown` resolves, then drains it.
pub async fn run_until(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    prepare_data_dir(&config.data_dir)?;
    let store_path = config.data_dir.join("state");
    let store_err = |source| NodeError::Store {
        path: store_path.display().to_string(),
        source,
    };
    let local = SledStore::open(&store_path).map_err(store_err)?;
    keep_private(&store_path).map_err(|source| NodeError::DataDir {
        path: store_path.display().to_string(),
        source,
    })?;
    let node_id = match local.meta("node_id").map_err(store_err)? {
        Some(id) => id,
        None => {
            let id = new_id("nd");
            local.set_meta("node_id", &id).map_err(store_err)?;
            id
        }
    };

    // The cluster, if any: which one, and its admin token and CA.
    let (local, cluster) = match config.etcd.clone() {
        None => (local, None),
        Some(etcd_config) => {
            let (cfg, id) = (config.clone(), node_id.clone());
            actix_rt::task::spawn_blocking(move || {
                let link = ClusterLink::establish(&etcd_config, &local, &cfg, &id);
                (local, link)
            })
            .await
            .map(|(local, link)| link.map(|l| (local, Some(l))))
            .map_err(|_| NodeError::Actors)?
            .map_err(|e| NodeError::Cluster(e.to_string()))?
        }
    };
    let admin_token_hash = match &cluster {
        Some(link) => link.membership.admin_token_hash.clone(),
        None => {
            let (token, note) = crate::ids::admin_token(
                &config.data_dir,
                config.admin_token.as_ref().map(Secret::expose),
            )?;
            if let Some(note) = note {
                tracing::info!("{note}");
            }
            hash_token(&token)
        }
    };
    let NodePki {
        ca,
        ca_path,
        server,
        notes,
    } = match &config.tls {
        Some((cert, key)) => pki::load_operator_identity(cert, key)?,
        None => pki::load_or_create(&config.data_dir, &config.certificate_names())?,
    };
    for note in notes {
        tracing::info!("{note}");
    }
    let status = Arc::new(NodeStatus::new(match &cluster {
        Some(link) => link.initial_health(),
        None => StoreHealth::Local,
    }));
    let store: Box<dyn Store> = match &cluster {
        Some(link) => Box::new(link.store(local, status.clone(), &node_id)),
        None => Box::new(local),
    };
    let state = State::open(
        store,
        PortPool::new(config.cloud_ports.clone(), config.cloud_bind),
        Issuer {
            cloud_host: config.cloud_host.clone(),
            ca: ca.map(Arc::new),
            node: node_endpoints(&config),
        },
    )
    .map_err(store_err)?;

    // Actors.
    let workers = Workers::start(config.workers);
    let cell = Arc::new(Mutex::new(Some(StateActor::new(state))));
    // The factory runs once (one sync thread, never restarted), so the cell is full then.
    #[allow(clippy::expect_used)]
    let state_addr = SyncArbiter::start(1, move || {
        cell.lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("the state actor is created once")
    });
    let shared = Arc::new(NodeShared::new(
        NodeIdentity {
            node_id: node_id.clone(),
            region: config.region.clone(),
            cloud_host: config.cloud_host.clone(),
            cloud_bind: config.cloud_bind,
            max_sessions_per_gateway: config.max_sessions_per_gateway,
            endpoints: node_endpoints(&config),
        },
        workers,
        state_addr.clone(),
        status.clone(),
        cluster.as_ref().map(|c| c.replication.clone()),
    ));
    let node = Node::new(shared.clone(), Fleet::default()).start();
    state_addr
        .send(AttachNode(node.clone()))
        .await
        .map_err(|_| NodeError::Actors)?;
    let snapshot = state_addr
        .send(Read(Box::new(|s: &State| s.snapshot())))
        .await
        .map_err(|_| NodeError::Actors)?;
    node.send(Apply(snapshot))
        .await
        .map_err(|_| NodeError::Actors)?;
    node.send(Barrier).await.map_err(|_| NodeError::Actors)?;
    if let Some(link) = &cluster {
        link.start_replication(state_addr.clone(), status.clone())
            .await;
    }

    // Tunnel port.
    let tunnel_tls = sg_proto::tls::server_config(server.chain.clone(), server.key.clone_key())
        .map_err(pki::PkiError::from)?;
    let tunnel = tokio::net::TcpListener::bind(config.tunnel_listen)
        .await
        .map_err(|source| NodeError::Listen {
            what: "tunnel address",
            addr: config.tunnel_listen.to_string(),
            source,
        })?;
    let tunnel_addr = tunnel.local_addr().map_err(|source| NodeError::Listen {
        what: "tunnel address",
        addr: config.tunnel_listen.to_string(),
        source,
    })?;
    actix_rt::spawn(
        TunnelListener {
            listener: tunnel,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tunnel_tls)),
            shared: shared.clone(),
            node: node.clone(),
            limiter: shared.handshakes.clone(),
        }
        .run(),
    );

    // API.
    let api_listen_err = |source| NodeError::Listen {
        what: "API address",
        addr: config.api_listen.to_string(),
        source,
    };
    let api_listener = std::net::TcpListener::bind(config.api_listen).map_err(api_listen_err)?;
    let api_addr = api_listener.local_addr().map_err(api_listen_err)?;
    let api_tls = sg_proto::tls::server_config(server.chain.clone(), server.key.clone_key())
        .map_err(pki::PkiError::from)?;
    let peers = match (&ca_path, server.chain.last()) {
        (Some(p), _) => sg_proto::tls::read_file(p)
            .and_then(|pem| sg_proto::tls::certs_from_pem("the cluster CA", &pem))
            .map_err(pki::PkiError::from)?,
        (None, Some(root)) => vec![root.clone()],
        (None, None) => Vec::new(),
    };
    let api_data = actix_web::web::Data::new(ApiState {
        state: state_addr.clone(),
        node: node.clone(),
        shared: shared.clone(),
        admin_token_hash,
        peers: sg_proto::tls::ServerTrust::Roots(peers),
        document: api::openapi::document().into_bytes().into(),
    });
    let api_server = api::serve(api_data.clone(), api_listener, api_tls).map_err(api_listen_err)?;
    let api_handle = api_server.handle();
    actix_rt::spawn(api_server);
    let metrics_handle = match config.metrics_listen {
        None => None,
        Some(addr) => {
            let err = |source| NodeError::Listen {
                what: "metrics address",
                addr: addr.to_string(),
                source,
            };
            let listener = std::net::TcpListener::bind(addr).map_err(err)?;
            let bound = listener.local_addr().map_err(err)?;
            let server = api::serve_metrics(api_data, listener).map_err(err)?;
            tracing::info!("metrics on http://{bound}/metrics (no token)");
            let handle = server.handle();
            actix_rt::spawn(server);
            Some(handle)
        }
    };

    // Presence: the fleet is this node, or what the cluster's registry says.
    let me = NodeRecord {
        v: 1,
        id: node_id.clone(),
        region: config.region.clone(),
        tunnel: with_port(&config.advertise_tunnel, tunnel_addr.port()),
        api: with_port(&config.advertise_api, api_addr.port()),
        cloud_host: config.cloud_host.clone(),
        version: sg_proto::version::PRODUCT_VERSION.to_string(),
        protocol: sg_proto::version::ProtocolVersion::current(),
        draining: false,
        started_at: crate::time::now_secs(),
    };
    let registry = match &cluster {
        Some(link) => Some(link.register(node.clone(), me)),
        None => {
            node.do_send(SetFleet(Arc::new(Fleet { nodes: vec![me] })));
            None
        }
    };

    let node_file = NodeFile {
        pid: std::process::id(),
        version: sg_proto::version::PRODUCT_VERSION.to_string(),
        region: config.region.clone(),
        node_id: node_id.clone(),
        tunnel: tunnel_addr.to_string(),
        api: format!("https://{api_addr}"),
        ca: ca_path.as_ref().map(|p| absolute(p).display().to_string()),
        fingerprint: server.fingerprint.clone(),
    };
    let node_file_path = config.data_dir.join(NODE_FILE);
    if let Ok(json) = serde_json::to_vec_pretty(&node_file) {
        write_private(&node_file_path, &json, 0o644)?;
    }
    if config.cloud_host == "localhost" {
        tracing::warn!("cloud host is \"localhost\"; set --cloud-host to the name cloud applications use to reach this node");
    }
    tracing::info!(
        region = %config.region,
        node = %node_id,
        "sg-node {} ready: tunnel {tunnel_addr} (TLS), API https://{api_addr}, cloud ports {}-{} on {}{}",
        sg_proto::version::PRODUCT_VERSION,
        config.cloud_ports.start(),
        config.cloud_ports.end(),
        config.cloud_bind,
        match &cluster {
            Some(link) => format!(", cluster {} in etcd", link.membership.cluster_id),
            None => String::new(),
        }
    );

    shutdown.await;
    tracing::info!("shutting down: draining");
    drain(&node, &shared, config.drain, async {
        if let Some(r) = &registry {
            r.set_draining().await;
        }
    })
    .await;
    api_handle.stop(true).await;
    if let Some(h) = metrics_handle {
        h.stop(true).await;
    }
    if let Some(r) = &registry {
        r.leave().await;
    }
    let _ = std::fs::remove_file(&node_file_path);
    shared.workers.stop();
    tracing::info!("drained; exiting");
    Ok(())
}

/// An advertised address whose port was left to the kernel (`:0`) gets the real one.
/// The node's own listeners, which cloud destinations may not point at.
fn node_endpoints(config: &NodeConfig) -> crate::cloud_dest::NodeEndpoints {
    crate::cloud_dest::NodeEndpoints {
        tunnel: config.tunnel_listen,
        api: config.api_listen,
        cloud_host: config.cloud_host.clone(),
    }
}

fn with_port(advertised: &str, port: u16) -> String {
    match advertised.strip_suffix(":0") {
        Some(host) => format!("{host}:{port}"),
        None => advertised.to_string(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
