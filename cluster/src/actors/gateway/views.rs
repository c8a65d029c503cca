//! What the API and `/metrics` read of a Gateway: its clients, its counters, its stats.

use super::Gateway;
use crate::actors::admission::Refused;
use crate::time::rfc3339;
use actix::prelude::*;
use sg_api::clients::{ClientDestinationHealth, ClientState, ClientView, GatewayStats};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Message)]
#[rtype(result = "Vec<ClientView>")]
pub struct ListClients;

impl Handler<ListClients> for Gateway {
    type Result = MessageResult<ListClients>;
    fn handle(&mut self, _: ListClients, _: &mut Self::Context) -> Self::Result {
        let mut views: Vec<ClientView> = Vec::new();
        for s in self.sessions.iter() {
            let st = s.handle.stats();
            let rtt = st.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0;
            let total = st.total_streams.load(Ordering::Relaxed);
            match views.iter_mut().find(|v| v.client_id == s.client_id) {
                Some(v) => {
                    v.sessions += 1;
                    v.active_streams += s.handle.active_streams();
                    v.total_streams += total;
                    if rtt > 0.0 && (v.rtt_ms == 0.0 || rtt < v.rtt_ms) {
                        v.rtt_ms = rtt;
                    }
                }
                None => views.push(ClientView {
                    state: ClientState::Connected,
                    destinations: self
                        .book
                        .view_of(&s.client_id)
                        .into_iter()
                        .map(|h| ClientDestinationHealth {
                            destination_id: h.destination_id,
                            healthy: h.healthy,
                            reason: h.reason,
                            since: h.since,
                        })
                        .collect(),
                    disconnected_at: None,
                    reason: None,
                    client_id: s.client_id.clone(),
                    version: s.client_version.clone(),
                    hostname: s.hostname.clone(),
                    address: s.peer.ip().to_string(),
                    region: self.shared.region.clone(),
                    node_id: self.shared.node_id.clone(),
                    connected_at: rfc3339(s.connected_at),
                    sessions: 1,
                    active_streams: s.handle.active_streams(),
                    total_streams: total,
                    rtt_ms: rtt,
                }),
            }
        }
        let gone: Vec<ClientView> = self
            .book
            .recent()
            .filter(|g| !views.iter().any(|v| v.client_id == g.client_id))
            .map(|g| ClientView {
                state: ClientState::Disconnected,
                client_id: g.client_id.clone(),
                version: g.version.clone(),
                hostname: g.hostname.clone(),
                address: g.address.clone(),
                region: self.shared.region.clone(),
                node_id: self.shared.node_id.clone(),
                connected_at: g.connected_at.clone(),
                sessions: 0,
                active_streams: 0,
                total_streams: 0,
                rtt_ms: 0.0,
                destinations: Vec::new(),
                disconnected_at: Some(g.disconnected_at.clone()),
                reason: Some(g.reason.clone()),
            })
            .collect();
        views.extend(gone);
        MessageResult(views)
    }
}

impl Gateway {
    /// Each client's shortest session round trip (clients with a measured one).
    fn shortest_rtts(&self) -> Vec<(String, Duration)> {
        let mut out: Vec<(String, Duration)> = Vec::new();
        for s in self.sessions.iter() {
            let us = s.handle.stats().rtt_us.load(Ordering::Relaxed);
            if us == 0 {
                continue;
            }
            let rtt = Duration::from_micros(us);
            match out.iter_mut().find(|(c, _)| *c == s.client_id) {
                Some((_, best)) => *best = (*best).min(rtt),
                None => out.push((s.client_id.clone(), rtt)),
            }
        }
        out.sort();
        out
    }

    /// Distinct client processes connected for this gateway.
    pub(super) fn client_count(&self) -> usize {
        let mut ids: Vec<&str> = self.sessions.iter().map(|s| s.client_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

/// What `/metrics` shows of one gateway.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub gateway_id: String,
    pub name: String,
    pub active: bool,
    pub enabled: bool,
    pub clients: usize,
    pub sessions: usize,
    pub active_connections: u32,
    pub total_connections: u64,
    pub refused: Vec<(Refused, u64)>,
    pub bytes_to_resources: u64,
    pub bytes_to_cloud: u64,
    pub idle_closed: u64,
    /// (client id, destination id, healthy) for every state a client reported.
    pub health: Vec<(String, String, bool)>,
    /// (client id, its sessions' shortest round trip) for every connected client.
    pub rtt: Vec<(String, Duration)>,
}

#[derive(Message)]
#[rtype(result = "GatewayMetrics")]
pub struct GetMetrics;

impl Handler<GetMetrics> for Gateway {
    type Result = MessageResult<GetMetrics>;
    fn handle(&mut self, _: GetMetrics, _: &mut Self::Context) -> Self::Result {
        let (bytes_to_resources, bytes_to_cloud) = self.bytes_now();
        MessageResult(GatewayMetrics {
            gateway_id: self.record.id.clone(),
            name: self.record.name.clone(),
            active: self.record.active,
            enabled: self.record.enabled,
            clients: self.client_count(),
            sessions: self.sessions.len(),
            active_connections: self.live.active(),
            total_connections: self.live.total(),
            refused: Refused::ALL
                .iter()
                .map(|r| (*r, self.live.refused(*r)))
                .collect(),
            bytes_to_resources,
            bytes_to_cloud,
            idle_closed: self.live.idle_closed(),
            health: self
                .book
                .all()
                .map(|(c, d)| (c.to_string(), d.destination_id.clone(), d.healthy))
                .collect(),
            rtt: self.shortest_rtts(),
        })
    }
}

#[derive(Message)]
#[rtype(result = "GatewayStats")]
pub struct GetStats;

impl Handler<GetStats> for Gateway {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let (bytes_to_resources, bytes_to_cloud) = self.bytes_now();
        let mut client_ids: Vec<String> =
            self.sessions.iter().map(|s| s.client_id.clone()).collect();
        client_ids.sort_unstable();
        client_ids.dedup();
        MessageResult(GatewayStats {
            gateway_id: self.id().to_string(),
            clients: client_ids.len(),
            client_ids,
            active_connections: self.live.active(),
            total_connections: self.live.total(),
            refused_connections: self.live.refused_total(),
            bytes_to_resources,
            bytes_to_cloud,
            idle_closed_connections: self.live.idle_closed(),
            max_connections: self.plan.max_connections_per_gateway,
            nodes: Vec::new(),
            unreachable_nodes: Vec::new(),
        })
    }
}
