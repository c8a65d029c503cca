//! Presence: each node registers itself under a lease, publishes how many connections it
//! carries per gateway (under the same lease), and watches the others — so every node
//! knows the live fleet (for `GET /v1/nodes` and for clients, which connect to each node)
//! and the cluster-wide connection count of every gateway (for its concurrency limit).
//!
//! Leases carry liveness, never configuration: a node that dies leaves `nodes/` and
//! `load/` when its lease runs out; one that drains says so in its record; one that stops
//! revokes its lease and is gone at once.

use super::Etcd;
use crate::actors::node::{LocalLoads, Node, SetFleet, SetRemoteLoads};
use crate::fleet::{Fleet, LoadRecord, NodeRecord};
use actix::Addr;
use etcd_client::{EventType, GetOptions, PutOptions, WatchOptions};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Lease of a node's presence: a node killed without a word leaves the fleet this long
/// after its last keep-alive.
pub const NODE_LEASE_TTL: Duration = Duration::from_secs(5);
/// Keep-alives per lease period.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);
/// How often the node's connection counts are checked and, when they changed, published.
/// Other nodes see a count at most about this much plus one etcd round trip old.
pub const LOAD_PUBLISH_EVERY: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_secs(1);

enum Command {
    Draining(oneshot::Sender<()>),
    Leave(oneshot::Sender<()>),
}

/// Talks to the registry task.
#[derive(Clone)]
pub struct RegistryHandle {
    cmd: mpsc::UnboundedSender<Command>,
}

impl RegistryHandle {
    /// Marks this node draining in its record; resolves once etcd has it (or it failed).
    pub async fn set_draining(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Draining(tx)).is_ok() {
            let _ = tokio::time::timeout(super::REQUEST_TIMEOUT, rx).await;
        }
    }

    /// Revokes the lease: the node leaves the fleet at once.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Leave(tx)).is_ok() {
            let _ = tokio::time::timeout(super::REQUEST_TIMEOUT, rx).await;
        }
    }
}

/// Starts the registry task on the etcd runtime.
pub fn start(etcd: Etcd, node: Addr<Node>, me: NodeRecord) -> RegistryHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    etcd.clone().spawn(
        Registry {
            etcd,
            node,
            me,
            cmd: rx,
            nodes: BTreeMap::new(),
            loads: HashMap::new(),
        }
        .run(),
    );
    RegistryHandle { cmd: tx }
}

struct Registry {
    etcd: Etcd,
    node: Addr<Node>,
    me: NodeRecord,
    cmd: mpsc::UnboundedReceiver<Command>,
    nodes: BTreeMap<String, NodeRecord>,
    /// Other nodes' counts.
    loads: HashMap<String, LoadRecord>,
}

#[derive(Debug, thiserror::Error)]
enum RegistryError {
    #[error("{0}")]
    Etcd(#[from] super::EtcdError),
    #[error("{0}")]
    Client(#[from] etcd_client::Error),
    #[error("{0}")]
    Ended(&'static str),
}

impl Registry {
    async fn run(mut self) {
        // Until etcd says otherwise, the fleet is this node.
        self.publish_fleet();
        let mut warned = false;
        loop {
            match self.round().await {
                Ok(()) => return,
                Err(e) => {
                    if !warned {
                        tracing::warn!("cannot keep this node registered in etcd: {e}; retrying");
                        warned = true;
                    }
                }
            }
            // Commands still count while etcd is away.
            let retry = tokio::time::sleep(RETRY);
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    _ = &mut retry => break,
                    cmd = self.cmd.recv() => match cmd {
                        Some(Command::Draining(done)) => {
                            self.me.draining = true;
                            let _ = done.send(());
                        }
                        Some(Command::Leave(done)) => {
                            let _ = done.send(());
                            return;
                        }
                        None => return,
                    },
                }
            }
        }
    }

    /// One lease's life. `Ok` only when the node left.
    async fn round(&mut self) -> Result<(), RegistryError> {
        let mut lease = self.etcd.client.lease_client();
        let grant = self
            .etcd
            .timed(lease.grant(NODE_LEASE_TTL.as_secs() as i64, None))
            .await?;
        let id = grant.id();
        let (mut keeper, mut acks) = self.etcd.timed(lease.keep_alive(id)).await?;
        self.put_me(id).await?;
        let mut published = self.local_load().await;
        self.put_load(id, &published).await?;
        let revision = self.list().await?;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut watch = self.etcd.client.watch_client();
        let (_nodes_watcher, mut nodes) = self
            .etcd
            .timed(watch.watch(self.etcd.keys.nodes(), Some(options.clone())))
            .await?
            .split();
        let (_loads_watcher, mut loads) = self
            .etcd
            .timed(watch.watch(self.etcd.keys.loads(), Some(options)))
            .await?
            .split();
        tracing::info!(
            "registered in etcd as node {} (region {}); {} node(s) live",
            self.me.id,
            self.me.region,
            self.nodes.len()
        );
        let mut alive = tokio::time::interval(KEEPALIVE_EVERY);
        let mut publish = tokio::time::interval(LOAD_PUBLISH_EVERY);
        loop {
            tokio::select! {
                _ = alive.tick() => {
                    self.etcd.timed(async { keeper.keep_alive().await }).await?;
                }
                ack = acks.message() => match ack? {
                    Some(a) if a.ttl() > 0 => {}
                    _ => return Err(RegistryError::Ended("the lease expired")),
                },
                _ = publish.tick() => {
                    let now = self.local_load().await;
                    if now != published {
                        self.put_load(id, &now).await?;
                        published = now;
                    }
                }
                msg = nodes.message() => {
                    let resp = msg?.ok_or(RegistryError::Ended("the node watch closed"))?;
                    for ev in resp.events() {
                        self.on_node_event(ev);
                    }
                    self.publish_fleet();
                }
                msg = loads.message() => {
                    let resp = msg?.ok_or(RegistryError::Ended("the load watch closed"))?;
                    for ev in resp.events() {
                        self.on_load_event(ev);
                    }
                    self.publish_loads();
                }
                cmd = self.cmd.recv() => match cmd {
                    Some(Command::Draining(done)) => {
                        self.me.draining = true;
                        let put = self.put_me(id).await;
                        let _ = done.send(());
                        put?;
                    }
                    Some(Command::Leave(done)) => {
                        let _ = self.etcd.timed(lease.revoke(id)).await;
                        let _ = done.send(());
                        return Ok(());
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    async fn put_me(&self, lease: i64) -> Result<(), RegistryError> {
        let value = serde_json::to_string(&self.me).unwrap_or_default();
        let mut kv = self.etcd.client.kv_client();
        let options = PutOptions::new().with_lease(lease);
        self.etcd
            .timed(kv.put(self.etcd.keys.node(&self.me.id), value, Some(options)))
            .await?;
        Ok(())
    }

    async fn put_load(&self, lease: i64, load: &LoadRecord) -> Result<(), RegistryError> {
        let value = serde_json::to_string(load).unwrap_or_default();
        let mut kv = self.etcd.client.kv_client();
        let options = PutOptions::new().with_lease(lease);
        self.etcd
            .timed(kv.put(self.etcd.keys.load(&self.me.id), value, Some(options)))
            .await?;
        Ok(())
    }

    /// Reads every node and load; returns the revision to watch from.
    async fn list(&mut self) -> Result<i64, RegistryError> {
        let mut kv = self.etcd.client.kv_client();
        let keys = self.etcd.keys.clone();
        let resp = self
            .etcd
            .timed(kv.get(keys.nodes(), Some(GetOptions::new().with_prefix())))
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        self.nodes.clear();
        for item in resp.kvs() {
            if let Ok(n) = serde_json::from_slice::<NodeRecord>(item.value()) {
                self.nodes.insert(n.id.clone(), n);
            }
        }
        let options = GetOptions::new().with_prefix().with_revision(revision);
        let resp = self.etcd.timed(kv.get(keys.loads(), Some(options))).await?;
        self.loads.clear();
        for item in resp.kvs() {
            let Ok(key) = item.key_str() else { continue };
            let Some(node) = keys.id_under(&keys.loads(), key) else {
                continue;
            };
            if node == self.me.id {
                continue;
            }
            if let Ok(l) = serde_json::from_slice::<LoadRecord>(item.value()) {
                self.loads.insert(node.to_string(), l);
            }
        }
        self.publish_fleet();
        self.publish_loads();
        Ok(revision)
    }

    fn on_node_event(&mut self, ev: &etcd_client::Event) {
        let keys = &self.etcd.keys;
        let Some(kv) = ev.kv() else { return };
        let Ok(key) = kv.key_str() else { return };
        let Some(id) = keys.id_under(&keys.nodes(), key) else {
            return;
        };
        match ev.event_type() {
            EventType::Put => match serde_json::from_slice::<NodeRecord>(kv.value()) {
                Ok(n) => {
                    self.nodes.insert(id.to_string(), n);
                }
                Err(e) => tracing::warn!("ignoring an unreadable node record at {key}: {e}"),
            },
            EventType::Delete => {
                self.nodes.remove(id);
            }
        }
    }

    fn on_load_event(&mut self, ev: &etcd_client::Event) {
        let keys = &self.etcd.keys;
        let Some(kv) = ev.kv() else { return };
        let Ok(key) = kv.key_str() else { return };
        let Some(node) = keys.id_under(&keys.loads(), key) else {
            return;
        };
        if node == self.me.id {
            return;
        }
        match ev.event_type() {
            EventType::Put => {
                if let Ok(l) = serde_json::from_slice::<LoadRecord>(kv.value()) {
                    self.loads.insert(node.to_string(), l);
                }
            }
            EventType::Delete => {
                self.loads.remove(node);
            }
        }
    }

    /// The fleet as the node's actors see it: this node always in it, with its own view of
    /// itself (etcd may not have its latest record yet).
    fn publish_fleet(&self) {
        let mut nodes: Vec<NodeRecord> = self
            .nodes
            .values()
            .filter(|n| n.id != self.me.id)
            .cloned()
            .collect();
        nodes.push(self.me.clone());
        nodes.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
        self.node.do_send(SetFleet(Arc::new(Fleet { nodes })));
    }

    fn publish_loads(&self) {
        let mut sums: HashMap<String, u32> = HashMap::new();
        for l in self.loads.values() {
            for (gw, n) in &l.gateways {
                *sums.entry(gw.clone()).or_default() += n;
            }
        }
        self.node.do_send(SetRemoteLoads(sums));
    }

    async fn local_load(&self) -> LoadRecord {
        let gateways = self.node.send(LocalLoads).await.unwrap_or_default();
        LoadRecord {
            gateways: gateways.into_iter().filter(|(_, n)| *n > 0).collect(),
        }
    }
}
