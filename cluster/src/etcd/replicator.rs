//! Keeps the local copy equal to what etcd holds: list-then-watch from the last applied
//! revision, applied through the state actor like any change.
//!
//! Each round (after start-up, and after anything goes wrong):
//! 1. read the cluster record: none, or another cluster's, means etcd was wiped or is not
//!    ours — the node keeps its copy, refuses changes and says what to do (never wipes
//!    itself);
//! 2. a revision lower than the one applied means etcd was restored from a backup: full
//!    resync;
//! 3. watch the configuration from the applied revision + 1; a watch cancelled because that
//!    revision was compacted means a full resync, then a new watch;
//! 4. every two seconds a probe reads the marker: no answer means etcd is unreachable (or
//!    has no quorum); a marker newer than the copy that the watch does not deliver means
//!    the watch is stuck. Either starts a new round.
//!
//! A full resync reads the whole configuration at one revision, in pages, and makes the
//! copy exactly that — deleting what is gone, so deletes missed during a compaction are
//! not kept forever.

use super::identity::ClusterRecord;
use super::Etcd;
use crate::state::StateError;
use crate::status::{NodeStatus, StoreHealth};
use crate::store::{Op, Replicated, Snapshot, StoreError};
use actix::{Message, Recipient};
use etcd_client::{GetOptions, Txn, TxnOp, WatchOptions};
use sg_proto::backoff::Backoff;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::store::Replication;
use super::txn::{decode_events, marker_revision};

/// How often the watch is checked.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Keys read per page of a full resync (a page stays far below gRPC's 4 MiB message cap).
const PAGE: i64 = 500;
/// Waits between rounds while etcd is away (jittered, so the nodes of a cluster do not
/// come back to etcd in lockstep).
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Etcd(#[from] super::EtcdError),
    #[error("{0}")]
    Client(#[from] etcd_client::Error),
    #[error("{0}")]
    Detached(String),
    #[error("the watch ended: {0}")]
    WatchEnded(String),
    #[error("the node is stopping")]
    Stopping,
}

/// Brings the local copy up to what the cluster's store replicated; the changes go to the
/// Node like any other. Sent to the state actor, which handles it.
#[derive(Message)]
#[rtype(result = "Result<(), StateError>")]
pub struct Replicate(pub Replicated);

pub struct Replicator {
    pub etcd: Etcd,
    /// The state actor, which applies what was replicated.
    pub state: Recipient<Replicate>,
    pub replication: Arc<Replication>,
    pub status: Arc<NodeStatus>,
    /// The sg cluster this copy belongs to.
    pub cluster_id: String,
}

impl Replicator {
    /// Runs until the node stops.
    pub async fn run(self) {
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        let mut last_error = String::new();
        loop {
            let started = Instant::now();
            let err = self.round().await;
            if matches!(err, RoundError::Stopping) {
                return;
            }
            let health = match &err {
                RoundError::Detached(_) => StoreHealth::Detached,
                _ => StoreHealth::Unreachable,
            };
            let before = self.status.set_store(health);
            let text = err.to_string();
            if before != health || text != last_error {
                match health {
                    StoreHealth::Detached => tracing::error!("{text}"),
                    _ => tracing::warn!(
                        "etcd at {} is unreachable ({text}): serving from the local copy \
                         (revision {}), changes are refused until it is back",
                        self.etcd.endpoints,
                        self.replication.applied()
                    ),
                }
                last_error = text;
            }
            if started.elapsed() > RETRY_MAX {
                // The round ran a while before it ended: a new outage, not the same one.
                backoff.reset();
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// One connection's worth of replication; returns why it ended.
    async fn round(&self) -> RoundError {
        match self.replicate().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn replicate(&self) -> Result<std::convert::Infallible, RoundError> {
        let revision = self.check_identity().await?;
        let applied = self.replication.applied();
        if revision < applied {
            tracing::warn!(
                "etcd's revision {revision} is older than this node's copy ({applied}): etcd was \
                 restored from a backup; resynchronizing to what it holds now"
            );
            self.resync(true).await?;
        } else if applied == 0 {
            // A new copy: one read of everything beats replaying etcd's whole history.
            self.resync(false).await?;
        }
        loop {
            let start = self.replication.applied() + 1;
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(start)
                .with_progress_notify();
            let mut watch = self.etcd.client.watch_client();
            let (mut watcher, mut stream) = self
                .etcd
                .timed(watch.watch(self.etcd.keys.config(), Some(options)))
                .await?
                .split();
            let mut in_sync_logged = false;
            let mut probe = tokio::time::interval(PROBE_INTERVAL);
            probe.tick().await;
            let mut lagging_since: Option<Instant> = None;
            let compacted = loop {
                tokio::select! {
                    message = stream.message() => {
                        let Some(resp) = message? else {
                            return Err(RoundError::WatchEnded("etcd closed it".into()));
                        };
                        if resp.canceled() {
                            if resp.compact_revision() > 0 {
                                break true;
                            }
                            return Err(RoundError::WatchEnded(format!(
                                "cancelled by etcd: {}",
                                resp.cancel_reason()
                            )));
                        }
                        if resp.created() && !in_sync_logged {
                            in_sync_logged = true;
                            self.now_synced();
                        }
                        self.forward(resp.events()).await?;
                    }
                    _ = probe.tick() => {
                        let (marker, revision) = self.probe().await?;
                        // etcd answers with quorum: writes may go again (a failed write
                        // marks the store unreachable until a probe says otherwise).
                        self.now_synced();
                        if revision < self.replication.applied() {
                            return Err(RoundError::WatchEnded("etcd went back in time".into()));
                        }
                        if marker > self.replication.applied() {
                            let since = *lagging_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= PROBE_INTERVAL {
                                return Err(RoundError::WatchEnded(format!(
                                    "it delivered nothing up to revision {marker}"
                                )));
                            }
                        } else {
                            lagging_since = None;
                        }
                        let _ = watcher.request_progress().await;
                    }
                }
            };
            if compacted {
                tracing::info!(
                    "etcd compacted the history past this node's copy (revision {}): full resync",
                    self.replication.applied()
                );
                self.resync(false).await?;
            }
        }
    }

    fn now_synced(&self) {
        let before = self.status.set_store(StoreHealth::Synced);
        if before != StoreHealth::Synced {
            tracing::info!(
                "in sync with etcd at {} (revision {})",
                self.etcd.endpoints,
                self.replication.applied()
            );
        }
    }

    /// The cluster record must be ours. Returns etcd's current revision.
    async fn check_identity(&self) -> Result<i64, RoundError> {
        let mut kv = self.etcd.client.kv_client();
        let resp = self
            .etcd
            .timed(kv.get(self.etcd.keys.cluster(), None))
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let record = resp
            .kvs()
            .first()
            .map(|kv| serde_json::from_slice::<ClusterRecord>(kv.value()));
        match record {
            None => Err(RoundError::Detached(format!(
                "etcd at {} holds no sg cluster under {} (wiped, or a new etcd): this node keeps \
                 serving its copy of cluster {} and refuses changes. Restore etcd from a \
                 snapshot, or restart one node with --etcd-reseed to write its copy back",
                self.etcd.endpoints,
                self.etcd.keys.prefix(),
                self.cluster_id
            ))),
            Some(Err(e)) => Err(RoundError::Detached(format!(
                "the cluster record at {} cannot be read ({e}); this node keeps serving its copy",
                self.etcd.keys.cluster()
            ))),
            Some(Ok(r)) if r.id != self.cluster_id => Err(RoundError::Detached(format!(
                "etcd under {} holds cluster {}, but this node's copy belongs to cluster {}: it \
                 keeps serving its copy and refuses changes. Give it a fresh --data-dir to join \
                 cluster {}, or point --etcd/--etcd-prefix at its own cluster",
                self.etcd.keys.prefix(),
                r.id,
                self.cluster_id,
                r.id
            ))),
            Some(Ok(_)) => Ok(revision),
        }
    }

    /// The marker's revision and etcd's, in one linearizable read (it fails without quorum).
    async fn probe(&self) -> Result<(i64, i64), RoundError> {
        let mut kv = self.etcd.client.kv_client();
        let txn = Txn::new().and_then([TxnOp::get(self.etcd.keys.marker(), None)]);
        let resp = self.etcd.timed(kv.txn(txn)).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        Ok((marker_revision(&resp), revision))
    }

    /// Hands watched events to the state actor, in order.
    async fn forward(&self, events: &[etcd_client::Event]) -> Result<(), RoundError> {
        if events.is_empty() {
            return Ok(());
        }
        self.send(decode_events(&self.etcd.keys, events)).await
    }

    async fn send(&self, replicated: Replicated) -> Result<(), RoundError> {
        match self.state.send(Replicate(replicated)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(StateError::Store(StoreError::Stale { .. }))) => Err(RoundError::WatchEnded(
                "this node wrote something newer meanwhile".into(),
            )),
            Ok(Err(e)) => Err(RoundError::WatchEnded(format!(
                "the local copy could not take a change: {e}"
            ))),
            Err(_) => Err(RoundError::Stopping),
        }
    }

    /// Reads the whole configuration at one revision and makes the copy exactly that.
    async fn resync(&self, restored: bool) -> Result<(), RoundError> {
        let keys = &self.etcd.keys;
        let prefix = keys.config();
        let end = prefix_end(&prefix);
        let mut kv = self.etcd.client.kv_client();
        let mut snapshot = Snapshot {
            restored,
            ..Default::default()
        };
        let mut from = prefix.clone().into_bytes();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if snapshot.revision > 0 {
                options = options.with_revision(snapshot.revision);
            }
            let resp = self.etcd.timed(kv.get(from.clone(), Some(options))).await?;
            if snapshot.revision == 0 {
                snapshot.revision = resp.header().map_or(0, |h| h.revision());
            }
            for item in resp.kvs() {
                let Ok(key) = item.key_str() else { continue };
                match keys.decode_put(key, item.value()) {
                    Ok(Some(Op::PutPlan(p))) => snapshot.plan = Some(p),
                    Ok(Some(Op::PutGateway(g))) => snapshot.gateways.push(g),
                    Ok(Some(Op::PutDestination(d))) => snapshot.destinations.push(d),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!("keeping the local copy of an unreadable record: {e}");
                        if let Some(id) = key.rsplit('/').next() {
                            snapshot.unreadable.insert(id.to_string());
                        }
                    }
                }
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        let (revision, gateways) = (snapshot.revision, snapshot.gateways.len());
        self.send(Replicated::Snapshot(snapshot)).await?;
        tracing::info!("resynchronized with etcd at revision {revision} ({gateways} gateway(s))");
        Ok(())
    }
}

/// The end of the key range that starts with `prefix` (its last byte plus one).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_range_end_of_a_prefix() {
        assert_eq!(super::prefix_end("/sg/config/"), b"/sg/config0".to_vec());
    }
}
