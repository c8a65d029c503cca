//! Failover timeline: what a cloud application sees, 100 ms at a time, while something in
//! the fleet fails (a client killed, a node drained or killed).
//!
//! Why a separate tool: the other measurements report one figure for a whole run, which
//! hides a failover — a second of refused connections disappears into an average. Here
//! every request is a new connection (so every request is a fresh routing decision by the
//! node) and is recorded with its start time and outcome. The script that breaks things
//! appends `EPOCH_MS LABEL` lines to a marks file as it acts; after the run the marks split
//! the run into phases, and each phase says how many requests failed and how long after
//! its mark the last failure started — the figure a failover is judged by.
//!
//! The math (buckets, marks, phases) is plain functions over recorded samples, so it is
//! tested without sockets or clocks; [`run`] is the only part that does I/O.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Longest run accepted, in seconds.
pub const MAX_DURATION_S: u64 = 120;
/// Most concurrent workers accepted.
pub const MAX_CONNECTIONS: usize = 512;
/// Connect timeout, and the time allowed for the status line once connected.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(1);

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An `HTTP/1.x 200` status line was read.
    Ok,
    /// The connection was refused or failed (nothing listens, or an I/O error while connecting).
    Refused,
    /// Connecting, or waiting for the status line, took longer than [`STEP_TIMEOUT`].
    Timeout,
    /// The connection was closed or reset before a status line arrived.
    Closed,
    /// A status line other than 200.
    Status,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Closed => "closed",
            Outcome::Status => "status",
        }
    }
}

/// One request: when it started (from the run's start), which target, how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_us: u64,
    pub target: u16,
    pub outcome: Outcome,
}

/// Something that happened during the run, placed relative to its start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    pub at_ms: i64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub from_ms: u64,
    pub requests: u64,
    pub failures: u64,
}

/// The part of the run between two marks (the first phase starts with the run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub label: String,
    pub from_s: f64,
    pub to_s: f64,
    pub requests: u64,
    pub failures: u64,
    pub requests_per_s: f64,
    /// Start of the first and of the last failed request, from the phase's start.
    pub first_failure_after_mark_ms: Option<u64>,
    pub last_failure_after_mark_ms: Option<u64>,
    /// Failures by kind (`refused`, `timeout`, `closed`, `status`).
    pub failures_by_kind: BTreeMap<&'static str, u64>,
    /// Per target, in `--target` order: requests and failures.
    pub requests_by_target: Vec<u64>,
    pub failures_by_target: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub targets: Vec<String>,
    pub connections: usize,
    pub duration_s: f64,
    pub bucket_ms: u64,
    pub started_at_epoch_ms: u64,
    pub requests: u64,
    pub failures: u64,
    pub buckets: Vec<Bucket>,
    pub marks: Vec<Mark>,
    pub phases: Vec<Phase>,
    /// Marks file lines that were not `EPOCH_MS LABEL`, or fell outside the run.
    pub marks_ignored: usize,
}

/// Parses `EPOCH_MS LABEL...` lines and places them relative to `start_epoch_ms`; marks
/// outside `[0, duration_ms]` and malformed lines are counted in the second value.
/// The result is sorted by time.
pub fn parse_marks(text: &str, start_epoch_ms: u64, duration_ms: u64) -> (Vec<Mark>, usize) {
    let mut marks = Vec::new();
    let mut ignored = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (ms, label) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let Ok(ms) = ms.parse::<i64>() else {
            ignored += 1;
            continue;
        };
        let at_ms = ms - start_epoch_ms as i64;
        if at_ms < 0 || at_ms > duration_ms as i64 {
            ignored += 1;
            continue;
        }
        let label = match label.trim() {
            "" => "mark".to_string(),
            l => l.to_string(),
        };
        marks.push(Mark { at_ms, label });
    }
    marks.sort_by_key(|m| m.at_ms);
    (marks, ignored)
}

/// Counts requests and failures per `bucket_ms` by start time, over `duration_ms`. A
/// sample past the end (a request that started on the last instant) goes to the last bucket.
pub fn buckets(samples: &[Sample], bucket_ms: u64, duration_ms: u64) -> Vec<Bucket> {
    let bucket_ms = bucket_ms.max(1);
    let n = duration_ms.div_ceil(bucket_ms).max(1) as usize;
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            from_ms: i as u64 * bucket_ms,
            requests: 0,
            failures: 0,
        })
        .collect();
    for s in samples {
        let i = ((s.at_us / 1000 / bucket_ms) as usize).min(n - 1);
        out[i].requests += 1;
        if s.outcome != Outcome::Ok {
            out[i].failures += 1;
        }
    }
    out
}

/// Splits the run at the marks: phase 0 ("start") from the run's start to the first mark,
/// then one phase per mark, named after it, up to the next mark or the end.
pub fn phases(samples: &[Sample], marks: &[Mark], targets: usize, duration_ms: u64) -> Vec<Phase> {
    let mut bounds: Vec<(String, u64)> = vec![("start".into(), 0)];
    for m in marks {
        bounds.push((m.label.clone(), m.at_ms.max(0) as u64));
    }
    let mut out = Vec::new();
    for (i, (label, from_ms)) in bounds.iter().enumerate() {
        let to_ms = bounds.get(i + 1).map_or(duration_ms, |b| b.1);
        let last = i + 1 == bounds.len();
        let (from_us, to_us) = (from_ms * 1000, to_ms * 1000);
        let inside: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at_us >= from_us && (s.at_us < to_us || last))
            .collect();
        let mut p = Phase {
            label: label.clone(),
            from_s: *from_ms as f64 / 1000.0,
            to_s: to_ms as f64 / 1000.0,
            requests: inside.len() as u64,
            failures: 0,
            requests_per_s: 0.0,
            first_failure_after_mark_ms: None,
            last_failure_after_mark_ms: None,
            failures_by_kind: BTreeMap::new(),
            requests_by_target: vec![0; targets],
            failures_by_target: vec![0; targets],
        };
        for s in inside {
            let t = s.target as usize;
            if let Some(n) = p.requests_by_target.get_mut(t) {
                *n += 1;
            }
            if s.outcome == Outcome::Ok {
                continue;
            }
            p.failures += 1;
            *p.failures_by_kind.entry(s.outcome.name()).or_default() += 1;
            if let Some(n) = p.failures_by_target.get_mut(t) {
                *n += 1;
            }
            let after = (s.at_us - from_us) / 1000;
            p.first_failure_after_mark_ms = Some(
                p.first_failure_after_mark_ms
                    .map_or(after, |f| f.min(after)),
            );
            p.last_failure_after_mark_ms =
                Some(p.last_failure_after_mark_ms.map_or(after, |l| l.max(after)));
        }
        let seconds = (to_ms - from_ms) as f64 / 1000.0;
        if seconds > 0.0 {
            p.requests_per_s = p.requests as f64 / seconds;
        }
        out.push(p);
    }
    out
}

/// Builds the whole timeline from a run's samples and the marks file's text.
pub fn build(
    samples: &[Sample],
    targets: &[SocketAddr],
    connections: usize,
    duration: Duration,
    bucket_ms: u64,
    started_at_epoch_ms: u64,
    marks_text: &str,
) -> Timeline {
    let duration_ms = duration.as_millis() as u64;
    let (marks, marks_ignored) = parse_marks(marks_text, started_at_epoch_ms, duration_ms);
    Timeline {
        targets: targets.iter().map(ToString::to_string).collect(),
        connections,
        duration_s: duration.as_secs_f64(),
        bucket_ms,
        started_at_epoch_ms,
        requests: samples.len() as u64,
        failures: samples.iter().filter(|s| s.outcome != Outcome::Ok).count() as u64,
        buckets: buckets(samples, bucket_ms, duration_ms),
        phases: phases(samples, &marks, targets.len(), duration_ms),
        marks,
        marks_ignored,
    }
}

fn ms_or_dash(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// The printed report: phases, then the buckets that had failures or lie within three
/// buckets of a mark.
pub fn table(t: &Timeline) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "timeline: {} workers, a new connection per request, {} s over {}",
        t.connections,
        t.duration_s,
        t.targets.join(", ")
    );
    let _ = writeln!(s, "{} requests, {} failed\n", t.requests, t.failures);
    let _ = writeln!(
        s,
        "{:<24} {:>6} {:>6} {:>9} {:>8} {:>8} {:>14} {:>13}",
        "phase", "from s", "to s", "requests", "failures", "req/s", "first fail ms", "last fail ms"
    );
    for p in &t.phases {
        let _ = writeln!(
            s,
            "{:<24} {:>6.1} {:>6.1} {:>9} {:>8} {:>8.0} {:>14} {:>13}",
            p.label,
            p.from_s,
            p.to_s,
            p.requests,
            p.failures,
            p.requests_per_s,
            ms_or_dash(p.first_failure_after_mark_ms),
            ms_or_dash(p.last_failure_after_mark_ms)
        );
    }
    let _ = writeln!(
        s,
        "(first/last fail ms: start of the first/last failed request after the phase's mark)"
    );
    for p in t.phases.iter().filter(|p| p.failures > 0) {
        let kinds: Vec<String> = p
            .failures_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let by_target: Vec<String> = t
            .targets
            .iter()
            .zip(p.failures_by_target.iter().zip(&p.requests_by_target))
            .map(|(a, (f, r))| format!("{a} {f}/{r}"))
            .collect();
        let _ = writeln!(
            s,
            "  {}: {}; failed/requests by target: {}",
            p.label,
            kinds.join(", "),
            by_target.join(", ")
        );
    }
    if t.marks_ignored > 0 {
        let _ = writeln!(
            s,
            "({} marks-file lines ignored: malformed or outside the run)",
            t.marks_ignored
        );
    }

    let step = t.bucket_ms.max(1) as i64;
    let near_mark = |b: &Bucket| {
        let i = b.from_ms as i64 / step;
        t.marks.iter().any(|m| (i - m.at_ms / step).abs() <= 3)
    };
    let _ = writeln!(
        s,
        "\n{:>8} {:>9} {:>8} {:>8} {:>10}",
        "t s", "requests", "failures", "req/s", "failures/s"
    );
    let per_s = 1000.0 / step as f64;
    let mut last_shown: Option<usize> = None;
    for (i, b) in t.buckets.iter().enumerate() {
        if b.failures == 0 && !near_mark(b) {
            continue;
        }
        if last_shown.is_some_and(|l| l + 1 != i) {
            let _ = writeln!(s, "{:>8}", "...");
        }
        last_shown = Some(i);
        let labels: Vec<&str> = t
            .marks
            .iter()
            .filter(|m| m.at_ms / step == i as i64)
            .map(|m| m.label.as_str())
            .collect();
        let _ = writeln!(
            s,
            "{:>8.1} {:>9} {:>8} {:>8.0} {:>10.0}{}",
            b.from_ms as f64 / 1000.0,
            b.requests,
            b.failures,
            b.requests as f64 * per_s,
            b.failures as f64 * per_s,
            if labels.is_empty() {
                String::new()
            } else {
                format!("   <- {}", labels.join(", "))
            }
        );
    }
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Requests/s and failures/s per bucket as two lines, a vertical line at each mark.
pub fn svg(t: &Timeline) -> String {
    let (w, h) = (960.0, 380.0);
    let (left, right, top, bottom) = (70.0, 20.0, 50.0, 40.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let per_s = 1000.0 / t.bucket_ms.max(1) as f64;
    let max = t
        .buckets
        .iter()
        .map(|b| b.requests as f64 * per_s)
        .fold(1.0, f64::max);
    let duration_ms = (t.duration_s * 1000.0).max(1.0);
    let x = |ms: f64| left + pw * ms / duration_ms;
    let y = |v: f64| top + ph - ph * v / max;
    let line = |f: &dyn Fn(&Bucket) -> u64| -> String {
        t.buckets
            .iter()
            .map(|b| {
                let mid = b.from_ms as f64 + t.bucket_ms as f64 / 2.0;
                format!("{:.1},{:.1}", x(mid), y(f(b) as f64 * per_s))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="18" font-size="14">Failover timeline: {} workers, new connection per request, per {} ms</text>"#,
        t.connections, t.bucket_ms
    );
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="34"><tspan fill="#1f77b4">requests/s</tspan>  <tspan fill="#d62728">failures/s</tspan></text>"##
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            left + pw,
            left - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    let step_s = if t.duration_s > 30.0 {
        10
    } else if t.duration_s > 10.0 {
        2
    } else {
        1
    };
    let mut sec = 0;
    while sec as f64 <= t.duration_s {
        let xs = x(sec as f64 * 1000.0);
        let _ = writeln!(
            s,
            r#"<text x="{xs:.1}" y="{:.1}" text-anchor="middle">{sec} s</text>"#,
            top + ph + 18.0
        );
        sec += step_s;
    }
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        line(&|b| b.requests)
    );
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{}"/>"##,
        line(&|b| b.failures)
    );
    for (i, m) in t.marks.iter().enumerate() {
        let xm = x(m.at_ms as f64);
        let ly = top + 14.0 + 14.0 * (i % 3) as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{xm:.1}" x2="{xm:.1}" y1="{top}" y2="{:.1}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{ly:.1}">{}</text>"##,
            top + ph,
            xm + 4.0,
            escape(&m.label)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    s.push_str("</svg>\n");
    s
}

/// Live figures, updated by the workers: per target, requests that succeeded and failed.
pub struct Counters {
    pub ok: Vec<AtomicU64>,
    pub failed: Vec<AtomicU64>,
}

impl Counters {
    pub fn new(targets: usize) -> Counters {
        Counters {
            ok: (0..targets).map(|_| AtomicU64::new(0)).collect(),
            failed: (0..targets).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn snapshot(&self) -> Vec<(u64, u64)> {
        self.ok
            .iter()
            .zip(&self.failed)
            .map(|(o, f)| (o.load(Ordering::Relaxed), f.load(Ordering::Relaxed)))
            .collect()
    }
}

async fn one_request(target: SocketAddr) -> Outcome {
    let request = b"GET / HTTP/1.1\r\nHost: sg-load\r\nConnection: close\r\n\r\n";
    let mut sock = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(target)).await {
        Err(_) => return Outcome::Timeout,
        Ok(Err(_)) => return Outcome::Refused,
        Ok(Ok(s)) => s,
    };
    let _ = sock.set_nodelay(true);
    let read_status = async {
        sock.write_all(request).await?;
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        std::io::Result::Ok(head)
    };
    let head = match tokio::time::timeout(STEP_TIMEOUT, read_status).await {
        Err(_) => return Outcome::Timeout,
        Ok(Err(_)) => return Outcome::Closed,
        Ok(Ok(h)) => h,
    };
    let Some(line) = head
        .split(|b| *b == b'\n')
        .next()
        .filter(|_| head.contains(&b'\n'))
    else {
        return Outcome::Closed;
    };
    let mut words = line.split(|b| *b == b' ');
    let (version, code) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    if !version.starts_with(b"HTTP/1.") {
        return Outcome::Closed;
    }
    if code != b"200" {
        return Outcome::Status;
    }
    // Read the rest so the connection ends with a FIN rather than a reset; the outcome
    // is already decided.
    let _ = tokio::time::timeout(STEP_TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        while matches!(sock.read(&mut chunk).await, Ok(n) if n > 0) {}
    })
    .await;
    Outcome::Ok
}

/// How the workers share the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Every worker goes round-robin over all targets (one application using every address).
    RoundRobin,
    /// Worker `i` sticks to target `i mod T` (one application per address): a dead target
    /// then costs only its own workers' time.
    Pinned,
}

async fn worker(
    first: usize,
    spread: Spread,
    targets: Arc<Vec<SocketAddr>>,
    start: Instant,
    end: Instant,
    counters: Arc<Counters>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut next = first;
    let mut failed_in_a_row = 0;
    // Back off a little once every target this worker uses failed in a row, rather than spin.
    let backoff_after = match spread {
        Spread::RoundRobin => targets.len(),
        Spread::Pinned => 1,
    };
    while Instant::now() < end {
        let t = next % targets.len();
        if spread == Spread::RoundRobin {
            next += 1;
        }
        let at = Instant::now();
        let outcome = one_request(targets[t]).await;
        samples.push(Sample {
            at_us: at.duration_since(start).as_micros() as u64,
            target: t as u16,
            outcome,
        });
        if outcome == Outcome::Ok {
            counters.ok[t].fetch_add(1, Ordering::Relaxed);
            failed_in_a_row = 0;
        } else {
            counters.failed[t].fetch_add(1, Ordering::Relaxed);
            failed_in_a_row += 1;
            if failed_in_a_row >= backoff_after {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    samples
}

/// Prints one line a second to stderr until `duration`: totals, and per target the
/// requests that succeeded and failed in the last second.
async fn report_progress(
    targets: Arc<Vec<SocketAddr>>,
    counters: Arc<Counters>,
    start: Instant,
    duration: Duration,
) {
    let mut before = counters.snapshot();
    for second in 1..=duration.as_secs() {
        tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
        let now = counters.snapshot();
        let (ok, failed) = now.iter().fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
        let per: Vec<String> = targets
            .iter()
            .zip(now.iter().zip(&before))
            .map(|(a, (n, b))| format!("{a} ok {} failed {}", n.0 - b.0, n.1 - b.1))
            .collect();
        eprintln!(
            "{second:>3} s: ok {ok}, failed {failed} | last second: {}",
            per.join(" | ")
        );
        before = now;
    }
}

/// Runs `connections` workers for `duration`, each sending one request per new connection
/// back to back over `targets` as `spread` says. With `progress`, prints one line a second
/// to stderr. Returns the samples and the run's start as unix epoch milliseconds.
pub async fn run(
    targets: Vec<SocketAddr>,
    connections: usize,
    duration: Duration,
    spread: Spread,
    progress: bool,
) -> (Vec<Sample>, u64) {
    let targets = Arc::new(targets);
    let counters = Arc::new(Counters::new(targets.len()));
    let epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|i| {
            let (targets, counters) = (targets.clone(), counters.clone());
            tokio::spawn(worker(i, spread, targets, start, end, counters))
        })
        .collect();
    let reporter = progress.then(|| {
        tokio::spawn(report_progress(
            targets.clone(),
            counters.clone(),
            start,
            duration,
        ))
    });
    let mut samples = Vec::new();
    for t in tasks {
        if let Ok(s) = t.await {
            samples.extend(s);
        }
    }
    if let Some(r) = reporter {
        let _ = r.await;
    }
    samples.sort_by_key(|s| s.at_us);
    (samples, epoch_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, target: u16, outcome: Outcome) -> Sample {
        Sample {
            at_us: at_ms * 1000 + 250,
            target,
            outcome,
        }
    }

    #[test]
    fn marks_are_placed_relative_to_the_start_and_sorted() {
        let text = "1000500 node r2 drains\ngarbage\n\n1000300 client killed -9\n999000 before\n1009000 after\n1000100\n";
        let (marks, ignored) = parse_marks(text, 1_000_000, 5_000);
        assert_eq!(
            marks,
            vec![
                Mark {
                    at_ms: 100,
                    label: "mark".into()
                },
                Mark {
                    at_ms: 300,
                    label: "client killed -9".into()
                },
                Mark {
                    at_ms: 500,
                    label: "node r2 drains".into()
                },
            ]
        );
        assert_eq!(ignored, 3);
    }

    #[test]
    fn buckets_and_phases_split_at_marks() {
        // 1 s run, 100 ms buckets, two targets; a mark at 400 ms and one at 700 ms.
        let samples = vec![
            s(0, 0, Outcome::Ok),
            s(50, 1, Outcome::Ok),
            s(150, 0, Outcome::Ok),
            s(399, 1, Outcome::Ok),
            s(400, 0, Outcome::Closed),
            s(420, 1, Outcome::Ok),
            s(530, 0, Outcome::Refused),
            s(600, 1, Outcome::Ok),
            s(700, 0, Outcome::Ok),
            s(910, 1, Outcome::Timeout),
            s(1000, 0, Outcome::Ok), // started on the last instant: last bucket, last phase
        ];
        let b = buckets(&samples, 100, 1000);
        assert_eq!(b.len(), 10);
        assert_eq!(
            b[0],
            Bucket {
                from_ms: 0,
                requests: 2,
                failures: 0
            }
        );
        assert_eq!((b[3].requests, b[3].failures), (1, 0));
        assert_eq!((b[4].requests, b[4].failures), (2, 1));
        assert_eq!((b[5].requests, b[5].failures), (1, 1));
        assert_eq!((b[9].requests, b[9].failures), (2, 1));
        assert_eq!(
            b.iter().map(|b| b.requests).sum::<u64>(),
            samples.len() as u64
        );

        let marks = vec![
            Mark {
                at_ms: 400,
                label: "client killed -9".into(),
            },
            Mark {
                at_ms: 700,
                label: "node r2 drains".into(),
            },
        ];
        let p = phases(&samples, &marks, 2, 1000);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].label, "start");
        assert_eq!((p[0].from_s, p[0].to_s), (0.0, 0.4));
        assert_eq!((p[0].requests, p[0].failures), (4, 0));
        assert_eq!(p[0].requests_per_s, 10.0);
        assert_eq!(p[0].last_failure_after_mark_ms, None);

        assert_eq!(p[1].label, "client killed -9");
        assert_eq!((p[1].requests, p[1].failures), (4, 2));
        assert_eq!(p[1].first_failure_after_mark_ms, Some(0));
        assert_eq!(p[1].last_failure_after_mark_ms, Some(130));
        assert_eq!(p[1].failures_by_kind.get("closed"), Some(&1));
        assert_eq!(p[1].failures_by_kind.get("refused"), Some(&1));
        assert_eq!(p[1].failures_by_target, vec![2, 0]);
        assert_eq!(p[1].requests_by_target, vec![2, 2]);

        assert_eq!((p[2].from_s, p[2].to_s), (0.7, 1.0));
        assert_eq!((p[2].requests, p[2].failures), (3, 1));
        assert_eq!(p[2].last_failure_after_mark_ms, Some(210));
        assert_eq!(p[2].failures_by_target, vec![0, 1]);
    }

    #[test]
    fn the_table_shows_failing_buckets_and_those_near_marks() {
        let samples = vec![s(100, 0, Outcome::Ok), s(1500, 0, Outcome::Refused)];
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("address");
        let t = build(
            &samples,
            &[addr],
            1,
            Duration::from_secs(2),
            100,
            1_000_000,
            "1001000 kill\n",
        );
        let text = table(&t);
        assert!(text.contains("<- kill"), "{text}");
        // 0.7 .. 1.3 around the mark, 1.5 for the failure; 0.1 is neither.
        assert!(text.contains("     0.7 "), "{text}");
        assert!(text.contains("     1.5 "), "{text}");
        assert!(!text.contains("     0.1 "), "{text}");
        assert!(svg(&t).contains(">kill</text>"));
    }
}
