//! The cluster's shared configuration in etcd (F20, F21, F32).
//!
//! sled stays each node's store; with `--etcd` it becomes the node's local copy of what
//! etcd holds, so a node starts and serves from it while etcd is unreachable.
//!
//! - [`keys`]: the key layout under the cluster's prefix;
//! - [`store`]: [`ClusterStore`], the `Store` whose writes are compare-and-swap
//!   transactions in etcd, then applied to the local copy;
//! - [`replicator`]: list-then-watch from the last applied revision into the local copy,
//!   with a full resync after a compaction or a restore;
//! - [`identity`]: who the cluster is (first node creates it: admin token, CA, port range);
//! - [`registry`]: each node under a lease, its connection counts, the live node list.
//!
//! All etcd I/O runs on one small runtime of its own ([`EtcdRuntime`]), so a slow or
//! absent etcd never stalls the node's event loops; the state thread blocks on it only for
//! writes, which are refused fast once etcd is known to be unreachable.

pub mod boot;
pub mod identity;
pub mod keys;
pub mod registry;
pub mod replicator;
pub mod store;
pub mod txn;

use crate::config::EtcdConfig;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use keys::Keys;
use std::future::Future;
use std::time::Duration;

/// Longest wait for one etcd request. Past it, etcd counts as unreachable for that request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings on every etcd connection, so a partition breaks a watch within seconds.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot read {what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("etcd client: {0}")]
    Client(#[from] etcd_client::Error),
    #[error("cannot start the etcd runtime: {0}")]
    Runtime(std::io::Error),
    #[error("etcd at {endpoints} did not answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { endpoints: String },
}

/// The runtime all etcd I/O runs on; shut down in the background when dropped.
pub struct EtcdRuntime(Option<tokio::runtime::Runtime>);

impl EtcdRuntime {
    pub fn start() -> Result<Self, EtcdError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sg-etcd")
            .enable_all()
            .build()
            .map(|rt| EtcdRuntime(Some(rt)))
            .map_err(EtcdError::Runtime)
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            // Only `drop` takes the runtime out.
            None => unreachable!("the etcd runtime is used after it was dropped"),
        }
    }
}

impl Drop for EtcdRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A connection to the cluster's etcd. Cheap to clone.
#[derive(Clone)]
pub struct Etcd {
    pub client: Client,
    pub keys: Keys,
    pub endpoints: String,
    rt: tokio::runtime::Handle,
}

impl Etcd {
    /// Sets up the client. Connections are made lazily, so this succeeds while etcd is
    /// down; each request then fails (or times out) on its own.
    pub fn connect(config: &EtcdConfig, rt: &EtcdRuntime) -> Result<Etcd, EtcdError> {
        let mut options = ConnectOptions::new()
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            .with_keep_alive_while_idle(true)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_require_leader(true);
        if config.ca.is_some() || config.identity.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &config.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read("--etcd-ca", ca)?));
            }
            if let Some((cert, key)) = &config.identity {
                tls = tls.identity(Identity::from_pem(
                    read("--etcd-cert", cert)?,
                    read("--etcd-key", key)?,
                ));
            }
            options = options.with_tls(tls);
        }
        let handle = rt.handle();
        let endpoints = config.endpoints.clone();
        let client = handle.block_on(Client::connect(endpoints, Some(options)))?;
        Ok(Etcd {
            client,
            keys: Keys::new(&config.prefix),
            endpoints: config.endpoints.join(","),
            rt: handle,
        })
    }

    /// Runs `f` on the etcd runtime and waits for it, from a thread outside any runtime
    /// (start-up, the state thread).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(f)
    }

    /// `f` with the request deadline.
    pub async fn timed<T, F>(&self, f: F) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(EtcdError::Timeout {
                endpoints: self.endpoints.clone(),
            }),
        }
    }
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::File {
        what,
        path: path.display().to_string(),
        source,
    })
}
