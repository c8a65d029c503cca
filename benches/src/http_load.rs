//! HTTP load: `connections` concurrent clients, each sending GET requests back to back —
//! on one keep-alive connection each, or on a new connection per request — for a fixed
//! time after a warm-up. Latency is recorded per request in an HDR histogram.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Serialize)]
pub struct HttpResult {
    pub mode: &'static str,
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

/// Latencies in µs (also the control plane's, in [`crate::control`]).
pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits. The bounds are constants known to be valid.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Reads one HTTP response (headers and a Content-Length body) from `sock`, using `buf`
/// for leftovers. Returns false on EOF.
async fn read_response(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let mut chunk = [0u8; 16 * 1024];
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(false);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(true);
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// How long past the end of a run an exchange already under way may take.
const GRACE: Duration = Duration::from_secs(2);

/// `fut`, or `None` once `deadline` has passed: a path that accepts a connection and then
/// never answers (a peer out of descriptors) cannot hold a run past its end.
async fn by<T>(deadline: Instant, fut: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(deadline.into(), fut).await.ok()
}

async fn keepalive_worker(
    target: SocketAddr,
    start_at: Instant,
    end: Instant,
) -> (Histogram<u64>, u64, u64) {
    let mut h = histogram();
    let mut errors = 0u64;
    let mut count = 0u64;
    let request = b"GET / HTTP/1.1\r\nHost: sg-load\r\n\r\n";
    let deadline = end + GRACE;
    'outer: while Instant::now() < end {
        let Some(Ok(mut sock)) = by(deadline, TcpStream::connect(target)).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = sock.set_nodelay(true);
        let mut buf = Vec::with_capacity(4096);
        while Instant::now() < end {
            let t0 = Instant::now();
            if sock.write_all(request).await.is_err() {
                errors += 1;
                continue 'outer;
            }
            match by(deadline, read_response(&mut sock, &mut buf)).await {
                Some(Ok(true)) => {
                    if t0 >= start_at {
                        let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
                        count += 1;
                    }
                }
                _ => {
                    errors += 1;
                    continue 'outer;
                }
            }
        }
    }
    (h, count, errors)
}

async fn new_conn_worker(
    target: SocketAddr,
    start_at: Instant,
    end: Instant,
) -> (Histogram<u64>, u64, u64) {
    let mut h = histogram();
    let mut errors = 0u64;
    let mut count = 0u64;
    let request = b"GET / HTTP/1.1\r\nHost: sg-load\r\nConnection: close\r\n\r\n";
    let deadline = end + GRACE;
    while Instant::now() < end {
        let t0 = Instant::now();
        let ok = by(deadline, async {
            let mut sock = TcpStream::connect(target).await?;
            sock.set_nodelay(true)?;
            sock.write_all(request).await?;
            let mut buf = Vec::with_capacity(1024);
            read_response(&mut sock, &mut buf).await
        })
        .await;
        match ok {
            Some(Ok(true)) => {
                if t0 >= start_at {
                    let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
                    count += 1;
                }
            }
            _ => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    (h, count, errors)
}

pub async fn run(
    target: SocketAddr,
    connections: usize,
    duration: Duration,
    new_conn: bool,
) -> HttpResult {
    let warmup = Duration::from_secs(1);
    let start_at = Instant::now() + warmup;
    let end = start_at + duration;
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|_| {
            if new_conn {
                tokio::spawn(new_conn_worker(target, start_at, end))
            } else {
                tokio::spawn(keepalive_worker(target, start_at, end))
            }
        })
        .collect();
    let mut all = histogram();
    let (mut requests, mut errors) = (0u64, 0u64);
    for t in tasks {
        if let Ok((h, n, e)) = t.await {
            let _ = all.add(&h);
            requests += n;
            errors += e;
        }
    }
    let seconds = duration.as_secs_f64();
    HttpResult {
        mode: if new_conn {
            "new_connection"
        } else {
            "keep_alive"
        },
        connections,
        requests,
        errors,
        seconds,
        requests_per_s: requests as f64 / seconds,
        p50_us: all.value_at_quantile(0.50),
        p99_us: all.value_at_quantile(0.99),
        p999_us: all.value_at_quantile(0.999),
    }
}
