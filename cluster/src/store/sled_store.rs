//! The sled-backed [`Store`]: one tree per entity, JSON values, explicit flushes.

use super::{Op, Replicated, Store, StoreError};
use crate::records::{DestinationRecord, EventRecord, GatewayRecord, Plan};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Schema of the data dir; bump when a migration is needed.
pub const SCHEMA_VERSION: u32 = 1;
const PLAN_KEY: &[u8] = b"plan";
/// `meta` key of the etcd revision a cluster node's copy has applied.
const REVISION_KEY: &str = "etcd_revision";

pub struct SledStore {
    db: sled::Db,
    gateways: sled::Tree,
    destinations: sled::Tree,
    plan: sled::Tree,
    events: sled::Tree,
    meta: sled::Tree,
    event_seq: AtomicU64,
    /// Events held per gateway, counted once per gateway from disk and then kept up to
    /// date, so trimming the oldest costs one lookup rather than a walk of the whole log.
    event_counts: Mutex<HashMap<String, usize>>,
}

impl SledStore {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(500))
            .open()?;
        let store = SledStore {
            gateways: db.open_tree("gateways")?,
            destinations: db.open_tree("destinations")?,
            plan: db.open_tree("plan")?,
            events: db.open_tree("events")?,
            meta: db.open_tree("meta")?,
            event_seq: AtomicU64::new(0),
            event_counts: Mutex::new(HashMap::new()),
            db,
        };
        match store.meta("schema")? {
            Some(found) => {
                let found: u32 = found.parse().unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
            None => store.set_meta("schema", &SCHEMA_VERSION.to_string())?,
        }
        Ok(store)
    }
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode {
        what,
        detail: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

fn all<T: DeserializeOwned>(what: &'static str, tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
    tree.iter()
        .map(|item| {
            let (k, v) = item?;
            decode(what, &k, &v)
        })
        .collect()
}

/// Events are keyed `gateway_id 0x00 millis(8) seq(8)`, so a prefix scan in reverse is
/// newest-first.
fn event_prefix(gateway_id: &str) -> Vec<u8> {
    let mut k = gateway_id.as_bytes().to_vec();
    k.push(0);
    k
}

impl SledStore {
    /// Applies `ops` atomically and flushes. With `revision`, the batch also records the
    /// etcd revision the local copy has reached (a cluster node's copy).
    pub fn commit_at(&self, ops: &[Op], revision: Option<i64>) -> Result<(), StoreError> {
        // Encode first, so the transaction itself cannot fail half-way on our side.
        let mut encoded = Vec::with_capacity(ops.len());
        for op in ops {
            encoded.push(match op {
                Op::PutGateway(g) => (0u8, g.id.as_bytes().to_vec(), Some(encode("gateway", g)?)),
                Op::DeleteGateway(id) => (0, id.as_bytes().to_vec(), None),
                Op::PutDestination(d) => {
                    (1, d.id.as_bytes().to_vec(), Some(encode("destination", d)?))
                }
                Op::DeleteDestination { id, .. } => (1, id.as_bytes().to_vec(), None),
                Op::PutPlan(p) => (2, PLAN_KEY.to_vec(), Some(encode("plan", p)?)),
            });
        }
        let revision = revision.map(|r| r.to_string());
        (&self.gateways, &self.destinations, &self.plan, &self.meta)
            .transaction(|(g, d, p, m)| {
                if let Some(r) = &revision {
                    m.insert(REVISION_KEY, r.as_bytes())?;
                }
                for (tree, key, value) in &encoded {
                    let t = match tree {
                        0 => g,
                        1 => d,
                        _ => p,
                    };
                    match value {
                        Some(v) => {
                            t.insert(key.as_slice(), v.as_slice())?;
                        }
                        None => {
                            t.remove(key.as_slice())?;
                        }
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => {
                    StoreError::Sled(sled::Error::Unsupported("transaction aborted".into()))
                }
            })?;
        self.db.flush().map_err(StoreError::NotDurable)?;
        Ok(())
    }
}

impl Store for SledStore {
    fn gateways(&self) -> Result<Vec<GatewayRecord>, StoreError> {
        all("gateway", &self.gateways)
    }

    fn destinations(&self) -> Result<Vec<DestinationRecord>, StoreError> {
        all("destination", &self.destinations)
    }

    fn plan(&self) -> Result<Option<Plan>, StoreError> {
        match self.plan.get(PLAN_KEY)? {
            Some(bytes) => Ok(Some(decode("plan", PLAN_KEY, &bytes)?)),
            None => Ok(None),
        }
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.commit_at(ops, None)
    }

    fn apply_replicated(&self, ops: &[Op], revision: i64) -> Result<(), StoreError> {
        self.commit_at(ops, Some(revision))
    }

    fn changes_until(&self, revision: i64) -> Result<Replicated, StoreError> {
        Ok(Replicated::Changes {
            through: revision,
            changes: Vec::new(),
        })
    }

    fn revision(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.meta(REVISION_KEY)?.and_then(|r| r.parse::<i64>().ok()))
    }

    fn append_event(&self, event: &EventRecord, keep: usize) -> Result<(), StoreError> {
        let prefix = event_prefix(&event.gateway_id);
        let mut key = prefix.clone();
        key.extend_from_slice(&event.at.to_be_bytes());
        key.extend_from_slice(&self.event_seq.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let value = encode("event", event)?;
        let mut counts = self.event_counts.lock().unwrap_or_else(|p| p.into_inner());
        let held = match counts.get_mut(&event.gateway_id) {
            Some(n) => n,
            None => {
                let n = self.events.scan_prefix(&prefix).count();
                counts.entry(event.gateway_id.clone()).or_insert(n)
            }
        };
        self.events.insert(key, value)?;
        *held += 1;
        // Trim the oldest beyond `keep` (keys sort by time, then by sequence).
        while *held > keep {
            let Some((oldest, _)) = self.events.scan_prefix(&prefix).next().transpose()? else {
                *held = 0;
                break;
            };
            self.events.remove(oldest)?;
            *held -= 1;
        }
        Ok(())
    }

    fn events(&self, gateway_id: &str, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.events
            .scan_prefix(event_prefix(gateway_id))
            .rev()
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                decode("event", &k, &v)
            })
            .collect()
    }

    fn delete_events(&self, gateway_id: &str) -> Result<(), StoreError> {
        // Held throughout, so an append cannot count an event this delete then removes.
        let mut counts = self.event_counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.remove(gateway_id);
        let keys: Vec<_> = self
            .events
            .scan_prefix(event_prefix(gateway_id))
            .filter_map(|item| item.ok().map(|(k, _)| k))
            .collect();
        for k in keys {
            self.events.remove(k)?;
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.meta.insert(key, value.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::records::{EventKind, RECORD_VERSION};

    fn gateway(id: &str) -> GatewayRecord {
        GatewayRecord {
            v: RECORD_VERSION,
            id: id.into(),
            name: "n".into(),
            token_hash: "h".into(),
            token_expires_at: 1,
            created_at: 1,
            active: true,
            enabled: true,
            acl: vec![],
            epoch: 0,
        }
    }

    /// Opens a store that was just dropped. sled's flusher thread lets go of the directory
    /// lock at its next tick, so a reopen right away may find it still held.
    pub(crate) fn reopen(dir: &Path) -> SledStore {
        for _ in 0..100 {
            if let Ok(s) = SledStore::open(dir) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        SledStore::open(dir).expect("the store reopens")
    }

    #[test]
    fn committed_records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.commit(&[
                Op::PutGateway(gateway("gw_a")),
                Op::PutPlan(Plan::default()),
            ])
            .unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.gateways().unwrap(), vec![gateway("gw_a")]);
        assert_eq!(s.plan().unwrap(), Some(Plan::default()));
    }

    /// Event `i` of gateway `gw_a`, `i` ms after the epoch's first second.
    fn event(i: u64) -> EventRecord {
        EventRecord {
            v: RECORD_VERSION,
            at: 1000 + i,
            gateway_id: "gw_a".into(),
            kind: EventKind::BadToken,
            message: format!("e{i}"),
            destination_id: None,
            client_id: None,
        }
    }

    #[test]
    fn events_come_back_newest_first_and_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        for i in 0..5u64 {
            s.append_event(&event(i), 3).unwrap();
        }
        let got: Vec<_> = s
            .events("gw_a", 10)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(got, vec!["e4", "e3", "e2"]);
        assert!(s.events("gw_b", 10).unwrap().is_empty());
    }

    #[test]
    fn the_event_log_stays_bounded_across_a_reopen_and_a_delete() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            for i in 0..5 {
                s.append_event(&event(i), 3).unwrap();
            }
        }
        let s = SledStore::open(dir.path()).unwrap();
        s.append_event(&event(5), 3).unwrap();
        let got: Vec<_> = s
            .events("gw_a", 10)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(got, vec!["e5", "e4", "e3"]);
        s.delete_events("gw_a").unwrap();
        s.append_event(&event(6), 3).unwrap();
        assert_eq!(s.events("gw_a", 10).unwrap().len(), 1);
    }

    #[test]
    fn a_corrupt_record_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.gateways.insert("gw_x", b"not json".to_vec()).unwrap();
        assert!(matches!(s.gateways(), Err(StoreError::Corrupt { .. })));
    }
}
