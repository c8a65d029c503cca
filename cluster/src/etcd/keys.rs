//! The cluster's key layout in etcd, in one place: one key per object, whole-object JSON
//! values (the same versioned records sled holds), all under the cluster's prefix.
//!
//! ```text
//! PREFIX/cluster                  who the cluster is: id, admin-token hash, CA, port range
//! PREFIX/config/marker            rewritten by every configuration write (see `store`)
//! PREFIX/config/plan              the plan
//! PREFIX/config/gw/GW             a gateway
//! PREFIX/config/gw/GW/ds/DS       one of its destinations (a gateway's delete is a prefix)
//! PREFIX/nodes/NODE               a live node, under its lease
//! PREFIX/load/NODE                that node's open connections per gateway, under its lease
//! ```
//!
//! A destination's record carries its cloud port, and every configuration write is a
//! compare-and-swap on the marker, so two nodes can never hand out one port twice.

use crate::records::{DestinationRecord, GatewayRecord, Plan};
use crate::store::Op;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// What a key under `PREFIX/config/` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigKey {
    Marker,
    Plan,
    Gateway(String),
    Destination { gateway_id: String, id: String },
}

/// A configuration key or value that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown key {0:?} under the configuration prefix")]
    UnknownKey(String),
    #[error("stored {what} at {key:?} is corrupt: {detail}")]
    Corrupt {
        what: &'static str,
        key: String,
        detail: String,
    },
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn cluster(&self) -> String {
        format!("{}/cluster", self.prefix)
    }

    /// Everything the configuration watch covers (ends with `/`).
    pub fn config(&self) -> String {
        format!("{}/config/", self.prefix)
    }

    pub fn marker(&self) -> String {
        format!("{}/config/marker", self.prefix)
    }

    pub fn plan(&self) -> String {
        format!("{}/config/plan", self.prefix)
    }

    pub fn gateway(&self, id: &str) -> String {
        format!("{}/config/gw/{id}", self.prefix)
    }

    /// Every destination of a gateway (ends with `/`).
    pub fn destinations_of(&self, gateway_id: &str) -> String {
        format!("{}/config/gw/{gateway_id}/ds/", self.prefix)
    }

    pub fn destination(&self, gateway_id: &str, id: &str) -> String {
        format!("{}/config/gw/{gateway_id}/ds/{id}", self.prefix)
    }

    /// Live nodes (ends with `/`).
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    pub fn node(&self, id: &str) -> String {
        format!("{}/nodes/{id}", self.prefix)
    }

    /// Published connection counts (ends with `/`).
    pub fn loads(&self) -> String {
        format!("{}/load/", self.prefix)
    }

    pub fn load(&self, node_id: &str) -> String {
        format!("{}/load/{node_id}", self.prefix)
    }

    /// The id at the end of a key under `under` (a node or load key).
    pub fn id_under<'k>(&self, under: &str, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(under).filter(|id| !id.contains('/'))
    }

    /// What a key under the configuration prefix names.
    pub fn parse_config(&self, key: &str) -> Result<ConfigKey, DecodeError> {
        let unknown = || DecodeError::UnknownKey(key.to_string());
        let rest = key.strip_prefix(&self.config()).ok_or_else(unknown)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["marker"] => Ok(ConfigKey::Marker),
            ["plan"] => Ok(ConfigKey::Plan),
            ["gw", gw] if !gw.is_empty() => Ok(ConfigKey::Gateway(gw.to_string())),
            ["gw", gw, "ds", ds] if !gw.is_empty() && !ds.is_empty() => {
                Ok(ConfigKey::Destination {
                    gateway_id: gw.to_string(),
                    id: ds.to_string(),
                })
            }
            _ => Err(unknown()),
        }
    }

    /// The op a put of `value` at `key` means; `None` for the marker.
    pub fn decode_put(&self, key: &str, value: &[u8]) -> Result<Option<Op>, DecodeError> {
        Ok(match self.parse_config(key)? {
            ConfigKey::Marker => None,
            ConfigKey::Plan => Some(Op::PutPlan(decode::<Plan>("plan", key, value)?)),
            ConfigKey::Gateway(_) => Some(Op::PutGateway(decode::<GatewayRecord>(
                "gateway", key, value,
            )?)),
            ConfigKey::Destination { .. } => Some(Op::PutDestination(decode::<DestinationRecord>(
                "destination",
                key,
                value,
            )?)),
        })
    }

    /// The op a delete of `key` means; `None` for the marker or the plan (a plan is never
    /// deleted; a missing one is the default).
    pub fn decode_delete(&self, key: &str) -> Result<Option<Op>, DecodeError> {
        Ok(match self.parse_config(key)? {
            ConfigKey::Marker | ConfigKey::Plan => None,
            ConfigKey::Gateway(id) => Some(Op::DeleteGateway(id)),
            ConfigKey::Destination { gateway_id, id } => {
                Some(Op::DeleteDestination { gateway_id, id })
            }
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: &str,
    value: &[u8],
) -> Result<T, DecodeError> {
    serde_json::from_slice(value).map_err(|e| DecodeError::Corrupt {
        what,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_strangers_are_refused() {
        let k = Keys::new("/sg/");
        assert_eq!(k.gateway("gw_1"), "/sg/config/gw/gw_1");
        assert_eq!(
            k.parse_config(&k.destination("gw_1", "ds_2")).unwrap(),
            ConfigKey::Destination {
                gateway_id: "gw_1".into(),
                id: "ds_2".into()
            }
        );
        assert_eq!(
            k.parse_config(&k.gateway("gw_1")).unwrap(),
            ConfigKey::Gateway("gw_1".into())
        );
        assert_eq!(k.parse_config(&k.marker()).unwrap(), ConfigKey::Marker);
        for bad in [
            "/sg/config/gw/",
            "/sg/config/what",
            "/sg/config/gw/a/ds/",
            "/other/x",
        ] {
            assert!(k.parse_config(bad).is_err(), "{bad}");
        }
        assert!(k.destinations_of("gw_1").starts_with(&k.gateway("gw_1")));
        assert_eq!(k.id_under(&k.nodes(), "/sg/nodes/nd_1"), Some("nd_1"));
        assert_eq!(k.id_under(&k.nodes(), "/sg/nodes/a/b"), None);
    }

    #[test]
    fn a_corrupt_value_is_a_typed_error() {
        let k = Keys::new("/sg");
        assert!(matches!(
            k.decode_put(&k.gateway("gw_1"), b"{not json"),
            Err(DecodeError::Corrupt { .. })
        ));
    }
}
