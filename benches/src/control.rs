//! The control plane under measurement (issue 13, goals 4 and 5): how long a configuration
//! write takes to be answered (the node flushes it to disk before it answers), how long it
//! takes to reach another node of a cluster, and what many destinations cost a node: the
//! time a restart takes until every cloud port listens, the latency of listing them, and the
//! memory each one holds.
//!
//! Everything here talks to the node's real API with the same client `sgctl` uses, found
//! the way `sgctl` finds it: the node's data dir (`node.json`, `admin.token`, `ca.pem`).

use crate::http_load::histogram;
use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use sg_api::client::ApiClient;
use sg_api::destinations::DestinationView;
use sg_api::node_file::{NodeFile, ADMIN_TOKEN_FILE, CA_FILE, NODE_FILE};
use sg_proto::tls::ServerTrust;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest a write may take to show on the other node before the run calls it lost.
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);
/// Longest a restart may take until every cloud port listens before the run gives up.
const LISTEN_BOUND: Duration = Duration::from_secs(120);
/// Most destinations one run creates (the node's default plan allows 10,000).
pub const MAX_DESTINATIONS: usize = 10_000;

fn read(data_dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// The admin token in a node's data dir (the node that made the cluster's keeps it).
pub fn admin_token_of(data_dir: &Path) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&read(data_dir, ADMIN_TOKEN_FILE)?)
        .trim()
        .to_string())
}

/// The API of the node whose data dir this is, as the admin whose token is given.
pub fn api_of(data_dir: &Path, token: &str) -> anyhow::Result<ApiClient> {
    let node: NodeFile =
        serde_json::from_slice(&read(data_dir, NODE_FILE)?).context("node.json")?;
    let trust = ServerTrust::from_ca_file(&data_dir.join(CA_FILE))?;
    Ok(ApiClient::new(
        &node.api,
        Some(token.to_string()),
        Some(trust),
    )?)
}

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn summarize(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

fn record(h: &mut Histogram<u64>, took: Duration) {
    h.saturating_record(took.as_micros().max(1) as u64);
}

fn destination_body(name: &str, resource: &str) -> anyhow::Result<serde_json::Value> {
    let (host, port) = resource
        .rsplit_once(':')
        .context("--resource is HOST:PORT")?;
    let port: u16 = port.parse().context("--resource is HOST:PORT")?;
    Ok(json!({ "name": name, "resource_host": host, "resource_port": port }))
}

/// A run-unique prefix for the names this run creates.
fn run_tag() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("cp{ms:x}")
}

fn create(api: &ApiClient, gateway: &str, body: &serde_json::Value) -> anyhow::Result<String> {
    let d: DestinationView = api.call(
        "POST",
        &format!("/v1/gateways/{gateway}/destinations"),
        Some(body),
    )?;
    Ok(d.id)
}

/// One untimed request, so that what is timed after it runs on a connection that is up
/// (TCP and TLS handshakes are not the control plane's latency).
fn warm_up(api: &ApiClient) -> anyhow::Result<()> {
    let resp = api.get("/v1/gateways")?;
    if !resp.is_success() {
        return Err(resp.error().into());
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct WriteResult {
    /// Creating a destination, from sending the request to the answer (the node has flushed
    /// the change to disk, and with etcd the cluster has committed it).
    pub write: Latency,
    /// From sending the request until the other node answers the new destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Latency>,
    /// Deleting each destination again, measured like the write.
    pub delete: Latency,
}

/// `writes` destination creates one after the other, each timed; with `peer`, each is also
/// timed until the peer node shows it. Every destination made is deleted again.
pub fn writes(
    api: &ApiClient,
    peer: Option<&ApiClient>,
    gateway: &str,
    resource: &str,
    writes: usize,
) -> anyhow::Result<WriteResult> {
    warm_up(api)?;
    if let Some(peer) = peer {
        warm_up(peer)?;
    }
    let tag = run_tag();
    let (mut write, mut propagation, mut delete) = (histogram(), histogram(), histogram());
    let mut made = Vec::with_capacity(writes);
    for i in 0..writes {
        let body = destination_body(&format!("{tag}-{i}"), resource)?;
        let sent = Instant::now();
        let id = create(api, gateway, &body)?;
        record(&mut write, sent.elapsed());
        if let Some(peer) = peer {
            let path = format!("/v1/gateways/{gateway}/destinations/{id}");
            loop {
                if peer.get(&path)?.is_success() {
                    record(&mut propagation, sent.elapsed());
                    break;
                }
                if sent.elapsed() > PROPAGATION_BOUND {
                    bail!("destination {id} did not reach the other node in {PROPAGATION_BOUND:?}");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        made.push(id);
    }
    for id in made {
        let sent = Instant::now();
        let resp = api.delete(&format!("/v1/gateways/{gateway}/destinations/{id}"))?;
        if !resp.is_success() {
            return Err(resp.error().into());
        }
        record(&mut delete, sent.elapsed());
    }
    Ok(WriteResult {
        write: summarize(&write),
        propagation: peer.map(|_| summarize(&propagation)),
        delete: summarize(&delete),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ListResult {
    /// Destinations in the list.
    pub destinations: usize,
    /// Size of one answer.
    pub bytes: usize,
    pub latency: Latency,
}

/// `requests` GETs of the gateway's destination list, one after the other.
pub fn list_latency(api: &ApiClient, gateway: &str, requests: usize) -> anyhow::Result<ListResult> {
    let path = format!("/v1/gateways/{gateway}/destinations");
    warm_up(api)?;
    let mut h = histogram();
    let (mut destinations, mut bytes) = (0, 0);
    for _ in 0..requests.max(1) {
        let sent = Instant::now();
        let (status, text) = api.get_text(&path)?;
        record(&mut h, sent.elapsed());
        if status != 200 {
            bail!("GET {path}: HTTP {status}: {text}");
        }
        let list: Vec<DestinationView> =
            serde_json::from_str(&text).context("the destination list")?;
        (destinations, bytes) = (list.len(), text.len());
    }
    Ok(ListResult {
        destinations,
        bytes,
        latency: summarize(&h),
    })
}

/// What [`fill`] made.
#[derive(Debug, Clone, Serialize)]
pub struct Filled {
    /// The gateways made, each holding up to `per_gateway` destinations.
    pub gateways: Vec<String>,
    pub destinations: usize,
    pub seconds: f64,
}

/// Makes `count` destinations over as many new gateways as `per_gateway` (the most a
/// gateway may hold) needs, `writers` API connections creating at once.
pub fn fill(
    api: &ApiClient,
    resource: &str,
    count: usize,
    per_gateway: usize,
    writers: usize,
) -> anyhow::Result<Filled> {
    let per_gateway = per_gateway.max(1);
    let tag = run_tag();
    let gateways = (0..count.div_ceil(per_gateway))
        .map(|g| {
            let v: sg_api::gateways::GatewayView = api.call(
                "POST",
                "/v1/gateways",
                Some(&json!({ "name": format!("{tag}-{g}") })),
            )?;
            Ok(v.id)
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..writers.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(());
                        }
                        let gateway = &gateways[i / per_gateway];
                        let body = destination_body(&format!("{tag}-{i}"), resource)?;
                        create(api, gateway, &body).with_context(|| {
                            format!("creating destination {} of {count}", i + 1)
                        })?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a creating thread panicked"))??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(Filled {
        gateways,
        destinations: count,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Ports in `range` with a listening TCP socket on this host (IPv4 and IPv6), from
/// /proc/net/tcp{,6}: no connection is made, so counting does not disturb the node.
pub fn listening_ports(range: &RangeInclusive<u16>) -> usize {
    let mut ports = std::collections::HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let mut f = line.split_whitespace();
            let (Some(local), Some(state)) = (f.nth(1), f.nth(1)) else {
                continue;
            };
            // State 0A is LISTEN; the local address is HEXADDR:HEXPORT.
            if state != "0A" {
                continue;
            }
            let port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if let Some(p) = port.filter(|p| range.contains(p)) {
                ports.insert(p);
            }
        }
    }
    ports.len()
}

/// Waits until `count` ports in `range` listen; answers the time since `started_ms` (a Unix
/// time in milliseconds: when the node was started).
pub fn wait_listening(
    range: &RangeInclusive<u16>,
    count: usize,
    started_ms: u64,
) -> anyhow::Result<Duration> {
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    };
    loop {
        let listening = listening_ports(range);
        let since = Duration::from_millis(now_ms().saturating_sub(started_ms));
        if listening >= count {
            return Ok(since);
        }
        if since > LISTEN_BOUND {
            bail!(
                "only {listening} of {count} cloud ports listen {LISTEN_BOUND:?} after the start"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Parses `A-B` (a port range).
pub fn port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (a, b) = s.split_once('-').ok_or("a port range is A-B")?;
    let a: u16 = a.trim().parse().map_err(|_| "a port range is A-B")?;
    let b: u16 = b.trim().parse().map_err(|_| "a port range is A-B")?;
    if a > b {
        return Err("a port range is A-B with A <= B".into());
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_refuse() {
        assert_eq!(port_range("20000-29999"), Ok(20000..=29999));
        assert!(port_range("2-1").is_err());
        assert!(port_range("20000").is_err());
        assert!(port_range("a-b").is_err());
    }

    #[test]
    fn a_listener_is_counted_and_a_closed_one_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listening_ports(&(port..=port)), 1);
        drop(l);
        assert_eq!(listening_ports(&(port..=port)), 0);
    }

    #[test]
    fn percentiles_come_from_what_was_recorded() {
        let mut h = histogram();
        for ms in 1..=100 {
            record(&mut h, Duration::from_millis(ms));
        }
        let l = summarize(&h);
        assert_eq!(l.count, 100);
        assert!((l.p50_ms - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p99_ms - 99.0).abs() < 0.1, "{l:?}");
        assert!((l.max_ms - 100.0).abs() < 0.1, "{l:?}");
    }
}
