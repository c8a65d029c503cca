//! Asking the other nodes: a gateway's clients, figures and events live on the nodes its
//! clients are connected to, so `/clients`, `/stats` and `/events` ask every live node for
//! its part (`?scope=node`) and merge the answers. A node that does not answer in time is
//! named in the reply instead of stalling it.

use super::ApiState;
use crate::fleet::{Fleet, NodeRecord};
use actix_web::web;
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use sg_api::client::ApiClient;
use std::time::Duration;

/// How long one node gets to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// What the other nodes answered.
pub struct Gathered<T> {
    pub answers: Vec<(NodeRecord, T)>,
    /// Ids of the nodes that did not answer, with why.
    pub unreachable: Vec<(String, String)>,
}

/// `GET path?scope=node` on every other node of `fleet`, in parallel.
pub async fn gather<T>(api: &ApiState, fleet: &Fleet, token: &str, path: &str) -> Gathered<T>
where
    T: DeserializeOwned + Send + 'static,
{
    ask(api, fleet, token, "GET", path).await
}

/// `METHOD path?scope=node` (no body) on every other node of `fleet`, in parallel.
pub async fn ask<T>(
    api: &ApiState,
    fleet: &Fleet,
    token: &str,
    method: &'static str,
    path: &str,
) -> Gathered<T>
where
    T: DeserializeOwned + Send + 'static,
{
    let peers: Vec<NodeRecord> = fleet
        .nodes
        .iter()
        .filter(|n| n.id != api.shared.node_id)
        .cloned()
        .collect();
    let sep = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{sep}scope=node");
    let asks = peers.into_iter().map(|peer| {
        let (trust, token, path) = (api.peers.clone(), token.to_string(), path.clone());
        async move {
            let url = peer.api.clone();
            let answer = web::block(move || -> Result<T, String> {
                let client = ApiClient::new(&url, Some(token), Some(trust))
                    .map_err(|e| e.to_string())?
                    .with_timeout(PEER_TIMEOUT);
                let resp = client
                    .request(method, &path, None)
                    .map_err(|e| e.to_string())?;
                if !resp.is_success() {
                    return Err(format!("answered {}: {}", resp.status, resp.body));
                }
                serde_json::from_value(resp.body).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            (peer, answer)
        }
    });
    let mut out = Gathered {
        answers: Vec::new(),
        unreachable: Vec::new(),
    };
    for (peer, answer) in join_all(asks).await {
        match answer {
            Ok(v) => out.answers.push((peer, v)),
            Err(e) => {
                tracing::warn!(node = %peer.id, "node at {} did not answer: {e}", peer.api);
                out.unreachable.push((peer.id, e));
            }
        }
    }
    out
}
