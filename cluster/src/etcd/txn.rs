//! Translating between the store's operations and etcd's: a batch of [`Op`]s into
//! transactions etcd accepts (etcd refuses more than 128 operations or 1.5 MiB in one),
//! watched events back into ops, and the marker's revision out of a transaction's answer.
//! Both the store (which writes) and the replicator (which watches) use it.

use super::keys::Keys;
use crate::store::{Op, Replicated, StoreError};
use etcd_client::{DeleteOptions, EventType, TxnOp, TxnOpResponse, TxnResponse};
use std::collections::HashSet;

/// Operations per transaction, below etcd's default `--max-txn-ops` of 128 (the marker
/// takes one more).
const MAX_OPS_PER_TXN: usize = 100;
/// Bytes of values per transaction, below etcd's default `--max-request-bytes` (1.5 MiB).
const MAX_BYTES_PER_TXN: usize = 1024 * 1024;

/// The marker's revision, from a transaction that read it (0 if it does not exist yet).
pub(crate) fn marker_revision(resp: &TxnResponse) -> i64 {
    resp.op_responses()
        .into_iter()
        .find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        })
        .unwrap_or(0)
}

/// The etcd operations of a batch, in chunks that etcd accepts.
pub(crate) fn chunks(keys: &Keys, ops: &[Op]) -> Result<Vec<Vec<TxnOp>>, StoreError> {
    let deleted_gateways: HashSet<&str> = ops
        .iter()
        .filter_map(|op| match op {
            Op::DeleteGateway(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let mut out: Vec<Vec<TxnOp>> = vec![Vec::new()];
    let mut bytes = 0usize;
    for op in ops {
        let (txn_ops, size): (Vec<TxnOp>, usize) = match op {
            Op::PutGateway(g) => {
                let v = json("gateway", g)?;
                let n = v.len();
                (vec![TxnOp::put(keys.gateway(&g.id), v, None)], n)
            }
            Op::DeleteGateway(id) => (
                vec![
                    TxnOp::delete(keys.gateway(id), None),
                    // Its destinations go in the same operation, however many they are.
                    TxnOp::delete(
                        keys.destinations_of(id),
                        Some(DeleteOptions::new().with_prefix()),
                    ),
                ],
                0,
            ),
            Op::PutDestination(d) => {
                let v = json("destination", d)?;
                let n = v.len();
                (
                    vec![TxnOp::put(keys.destination(&d.gateway_id, &d.id), v, None)],
                    n,
                )
            }
            Op::DeleteDestination { gateway_id, id } => {
                if deleted_gateways.contains(gateway_id.as_str()) {
                    continue;
                }
                (
                    vec![TxnOp::delete(keys.destination(gateway_id, id), None)],
                    0,
                )
            }
            Op::PutPlan(p) => {
                let v = json("plan", p)?;
                let n = v.len();
                (vec![TxnOp::put(keys.plan(), v, None)], n)
            }
        };
        let full = out.last().is_some_and(|c| {
            !c.is_empty()
                && (c.len() + txn_ops.len() > MAX_OPS_PER_TXN || bytes + size > MAX_BYTES_PER_TXN)
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = out.last_mut() {
            chunk.extend(txn_ops);
        }
    }
    Ok(out)
}

fn json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode {
        what,
        detail: e.to_string(),
    })
}

/// Watched configuration events as ops, each with the revision that made it. An event that
/// cannot be read is logged and skipped.
pub(crate) fn decode_events(keys: &Keys, events: &[etcd_client::Event]) -> Replicated {
    let mut changes = Vec::with_capacity(events.len());
    let mut through = 0;
    for ev in events {
        let Some(kv) = ev.kv() else { continue };
        through = through.max(kv.mod_revision());
        let Ok(key) = kv.key_str() else { continue };
        let op = match ev.event_type() {
            EventType::Put => keys.decode_put(key, kv.value()),
            EventType::Delete => keys.decode_delete(key),
        };
        match op {
            Ok(Some(op)) => changes.push((kv.mod_revision(), op)),
            Ok(None) => {}
            Err(e) => tracing::error!("skipping a configuration change: {e}"),
        }
    }
    Replicated::Changes { through, changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{DestinationRecord, RECORD_VERSION};

    fn dest(i: usize) -> DestinationRecord {
        DestinationRecord {
            v: RECORD_VERSION,
            id: format!("ds_{i}"),
            gateway_id: "gw_a".into(),
            name: "d".into(),
            resource_host: "10.0.0.1".into(),
            resource_port: 80,
            protocol: Default::default(),
            cloud_port: None,
            last_cloud_port: None,
            active: false,
            enabled: true,
            suspended: false,
            created_at: 0,
            ip_rules: vec![],
            cloud_tls: Default::default(),
            resource_tls: None,
            epoch: 0,
            idle_timeout_secs: 0,
            max_connections_per_source: 0,
            proxy_protocol: None,
            host_rewrite: false,
            kind: Default::default(),
            client_port: None,
            health_check: None,
        }
    }

    #[test]
    fn large_batches_are_split_below_etcds_limits() {
        let keys = Keys::new("/sg");
        let ops: Vec<Op> = (0..250).map(|i| Op::PutDestination(dest(i))).collect();
        let c = chunks(&keys, &ops).unwrap();
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| c.len() <= MAX_OPS_PER_TXN));
        assert_eq!(c.iter().map(Vec::len).sum::<usize>(), 250);
    }

    #[test]
    fn a_gateway_delete_is_two_operations_whatever_it_holds() {
        let keys = Keys::new("/sg");
        let mut ops: Vec<Op> = (0..500)
            .map(|i| Op::DeleteDestination {
                gateway_id: "gw_a".into(),
                id: format!("ds_{i}"),
            })
            .collect();
        ops.push(Op::DeleteGateway("gw_a".into()));
        let c = chunks(&keys, &ops).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len(), 2);
    }
}
