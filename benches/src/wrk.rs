//! wrk (Debian's `wrk`) as a second, independent HTTP load generator: the harness's figures
//! must hold with someone else's client too. [`run`] starts it against a target, and
//! [`parse`] reads the figures it prints with `--latency`.

use serde::Serialize;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// What one wrk run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WrkResult {
    pub mode: &'static str,
    pub connections: usize,
    pub threads: usize,
    pub requests: u64,
    /// Socket errors and non-2xx/3xx answers together.
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// Why wrk gave no figures.
#[derive(Debug, thiserror::Error)]
pub enum WrkError {
    #[error("cannot run wrk (install Debian's wrk): {0}")]
    Spawn(#[from] std::io::Error),
    #[error("wrk failed: {0}")]
    Failed(String),
    #[error("wrk's output has no {0} line:\n{1}")]
    Unreadable(&'static str, String),
}

/// Keep-alive GETs of `/` with `connections` connections over `threads` threads.
pub fn run(
    target: SocketAddr,
    connections: usize,
    threads: usize,
    duration: Duration,
) -> Result<WrkResult, WrkError> {
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency")
        .arg(format!("http://{target}/"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(WrkError::Failed(format!(
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    parse(&text, connections, threads)
}

/// The figures of wrk's `--latency` report.
pub fn parse(text: &str, connections: usize, threads: usize) -> Result<WrkResult, WrkError> {
    let unreadable = |what| WrkError::Unreadable(what, text.to_string());
    // "  123456 requests in 10.00s, 17.51MB read"
    let (requests, seconds) = text
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(" requests in ")?;
            let secs = rest.split(',').next()?;
            Some((
                n.trim().parse::<u64>().ok()?,
                duration_us(secs)? as f64 / 1e6,
            ))
        })
        .ok_or_else(|| unreadable("requests"))?;
    let percentile = |p: &str| {
        text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == p).then(|| it.next().and_then(duration_us))?
        })
    };
    let p50_us = percentile("50%").ok_or_else(|| unreadable("50%"))?;
    let p99_us = percentile("99%").ok_or_else(|| unreadable("99%"))?;
    // "  Socket errors: connect 0, read 0, write 0, timeout 0" and
    // "  Non-2xx or 3xx responses: 12"
    let mut errors = 0u64;
    for l in text.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(n) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        }
    }
    Ok(WrkResult {
        mode: "keep_alive",
        connections,
        threads,
        requests,
        errors,
        seconds,
        requests_per_s: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        p50_us,
        p99_us,
    })
}

/// `812.00us`, `1.23ms`, `2.00s`, `1.50m` in microseconds.
fn duration_us(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some((n * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:31000/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.90ms  611.48us  19.88ms   88.75%
    Req/Sec     8.66k   520.33     9.67k    71.50%
  Latency Distribution
     50%    2.81ms
     75%    3.03ms
     90%    3.38ms
     99%    4.95ms
  172411 requests in 10.00s, 30.09MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  17236.42
Transfer/sec:      3.01MB
";

    #[test]
    fn reads_wrks_latency_report() {
        let r = parse(SAMPLE, 50, 2).unwrap();
        assert_eq!(r.requests, 172_411);
        assert_eq!(r.seconds, 10.0);
        assert_eq!(r.p50_us, 2810);
        assert_eq!(r.p99_us, 4950);
        assert_eq!(r.errors, 7);
        assert!((r.requests_per_s - 17_241.1).abs() < 0.1);
    }

    #[test]
    fn output_without_figures_is_an_error() {
        assert!(matches!(
            parse("wrk: something odd\n", 50, 2),
            Err(WrkError::Unreadable("requests", _))
        ));
        assert_eq!(duration_us("812.00us"), Some(812));
        assert_eq!(duration_us("1.5m"), Some(90_000_000));
        assert_eq!(duration_us("12xs"), None);
    }
}
