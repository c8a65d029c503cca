//! Holds many idle connections open and measures what they cost the processes that carry
//! them: RSS before, RSS with every connection established end to end (one echo round
//! trip each), divided by the number held; and, optionally, a keep-alive HTTP load's
//! latency while they are held (idle connections must not slow the busy ones).

use crate::http_load;
use crate::procstat::rss_kib;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Serialize)]
pub struct HoldResult {
    pub connections: usize,
    pub established: usize,
    pub rss_before_kib: Vec<(u32, u64)>,
    pub rss_held_kib: Vec<(u32, u64)>,
    /// Sum over the watched processes of (held - before) / established, in bytes.
    pub bytes_per_connection: f64,
    /// The keep-alive load's p99 while the connections were held, if one ran.
    pub p99_while_held_us: Option<u64>,
    pub requests_while_held: Option<u64>,
}

/// A keep-alive HTTP load to run while the connections are held.
#[derive(Debug, Clone, Copy)]
pub struct LoadWhileHeld {
    pub target: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
}

/// Longest one held connection may take to be established end to end.
const OPEN_BOUND: Duration = Duration::from_secs(10);

pub async fn run(
    target: SocketAddr,
    connections: usize,
    pids: &[u32],
    settle: Duration,
    load: Option<LoadWhileHeld>,
) -> std::io::Result<HoldResult> {
    // Let allocators settle, then take the baseline.
    tokio::time::sleep(settle).await;
    let before: Vec<(u32, u64)> = pids
        .iter()
        .filter_map(|p| rss_kib(*p).map(|r| (*p, r)))
        .collect();
    let mut held = Vec::with_capacity(connections);
    let batch = 100;
    for chunk_start in (0..connections).step_by(batch) {
        let n = batch.min(connections - chunk_start);
        let opens: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(async move {
                    // Bounded as a whole: a path out of descriptors stops accepting, and a
                    // connect to a full backlog would otherwise wait out the SYN retries.
                    tokio::time::timeout(OPEN_BOUND, async {
                        let mut s = TcpStream::connect(target).await?;
                        s.write_all(b"x").await?;
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await?;
                        Ok::<TcpStream, std::io::Error>(s)
                    })
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no echo"))?
                })
            })
            .collect();
        let before = held.len();
        for o in opens {
            if let Ok(Ok(s)) = o.await {
                held.push(s);
            }
        }
        if held.len() == before {
            // A whole batch failed: the path holds no more (`established` says how many).
            break;
        }
    }
    tokio::time::sleep(settle).await;
    let after: Vec<(u32, u64)> = pids
        .iter()
        .filter_map(|p| rss_kib(*p).map(|r| (*p, r)))
        .collect();
    let established = held.len();
    if established < connections {
        // The path holds no more (a peer at its descriptor limit): free room for the load's
        // connections, or it would measure only refusals.
        if let Some(l) = &load {
            held.truncate(established.saturating_sub(l.connections + 100));
        }
    }
    let busy = match load {
        Some(l) => Some(http_load::run(l.target, l.connections, l.duration, false).await),
        None => None,
    };
    let delta_kib: i64 = after
        .iter()
        .map(|(p, a)| {
            let b = before
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, b)| *b)
                .unwrap_or(*a);
            *a as i64 - b as i64
        })
        .sum();
    drop(held);
    Ok(HoldResult {
        connections,
        established,
        rss_before_kib: before,
        rss_held_kib: after,
        bytes_per_connection: (delta_kib as f64 * 1024.0) / established.max(1) as f64,
        p99_while_held_us: busy.as_ref().map(|b| b.p99_us),
        requests_while_held: busy.as_ref().map(|b| b.requests),
    })
}
