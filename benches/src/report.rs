//! Turns the measurements of one run (JSON lines written by the other subcommands) into
//! the table printed at the end, a JSON summary and an SVG chart of the ratios.

use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// One figure for the three paths.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: String,
    /// Whether bigger is better (throughput) or smaller (latency, memory).
    pub higher_is_better: bool,
    pub direct: Option<f64>,
    pub sg: Option<f64>,
    pub peer: Option<f64>,
    pub sg_vs_peer: Option<f64>,
    pub sg_vs_direct: Option<f64>,
}

/// A target of issue 3, checked against the peer in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub wanted: String,
    pub got: Option<f64>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub peer: Option<String>,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub node_cpu_cores: Option<f64>,
    pub node_busy_threads: Option<f64>,
    pub records: Vec<Value>,
}

fn find<'a>(records: &'a [Value], path: &str, test: &str) -> Option<&'a Value> {
    records
        .iter()
        .rev()
        .find(|r| r["path"] == path && r["test"] == test)
}

fn number(records: &[Value], path: &str, test: &str, field: &str) -> Option<f64> {
    find(records, path, test)?["result"][field].as_f64()
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

pub fn summarize(records: Vec<Value>) -> Summary {
    let peer = records
        .iter()
        .filter_map(|r| r["path"].as_str())
        .find(|p| *p != "direct" && *p != "sg")
        .map(str::to_string);
    let peer_name = peer.clone().unwrap_or_default();
    let specs: [(&str, &str, &str, &str, f64, bool); 9] = [
        (
            "keep-alive HTTP",
            "req/s",
            "keep_alive",
            "requests_per_s",
            1.0,
            true,
        ),
        ("keep-alive p50", "ms", "keep_alive", "p50_us", 1e-3, false),
        ("keep-alive p99", "ms", "keep_alive", "p99_us", 1e-3, false),
        (
            "keep-alive p99.9",
            "ms",
            "keep_alive",
            "p999_us",
            1e-3,
            false,
        ),
        (
            "new connection per request",
            "req/s",
            "new_connection",
            "requests_per_s",
            1.0,
            true,
        ),
        (
            "new connection p99",
            "ms",
            "new_connection",
            "p99_us",
            1e-3,
            false,
        ),
        ("bulk upload", "Gbit/s", "bulk_up", "gbit_per_s", 1.0, true),
        (
            "bulk download",
            "Gbit/s",
            "bulk_down",
            "gbit_per_s",
            1.0,
            true,
        ),
        (
            "RSS per held idle connection (both ends)",
            "KiB",
            "hold",
            "bytes_per_connection",
            1.0 / 1024.0,
            false,
        ),
    ];
    let rows: Vec<Row> = specs
        .iter()
        .map(|(metric, unit, test, field, scale, higher)| {
            let get = |path: &str| number(&records, path, test, field).map(|v| v * scale);
            let (direct, sg, p) = (
                if *test == "hold" { None } else { get("direct") },
                get("sg"),
                get(&peer_name),
            );
            Row {
                metric: metric.to_string(),
                unit: unit.to_string(),
                higher_is_better: *higher,
                direct,
                sg,
                peer: p,
                sg_vs_peer: ratio(sg, p),
                sg_vs_direct: ratio(sg, direct),
            }
        })
        .collect();
    let row = |m: &str| rows.iter().find(|r| r.metric == m);
    let target = |name: &str, wanted: &str, got: Option<f64>, ok: &dyn Fn(f64) -> bool| Target {
        name: name.into(),
        wanted: wanted.into(),
        got,
        met: got.map(ok),
    };
    let bulk = |m: &str| row(m).and_then(|r| r.sg_vs_peer);
    let bulk_min = match (bulk("bulk upload"), bulk("bulk download")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let node_cpu = records
        .iter()
        .filter(|r| r["path"] == "sg")
        .filter_map(|r| r["node_cpu_cores"].as_f64())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    // Threads of the node doing real work (>= 10% of a core) in its busiest test: two or
    // more means the node spreads its load over both cores.
    let node_threads = records
        .iter()
        .filter(|r| r["path"] == "sg")
        .filter_map(|r| r["cpu"][0]["threads"].as_array())
        .map(|ts| {
            ts.iter()
                .filter(|t| t["cores"].as_f64().unwrap_or(0.0) >= 0.10)
                .count() as f64
        })
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let targets = vec![
        target(
            "keep-alive req/s vs peer",
            ">= 1.30x",
            row("keep-alive HTTP").and_then(|r| r.sg_vs_peer),
            &|v| v >= 1.3,
        ),
        target(
            "keep-alive p99 vs peer",
            "<= 1.00x",
            row("keep-alive p99").and_then(|r| r.sg_vs_peer),
            &|v| v <= 1.0,
        ),
        target(
            "new connections/s vs peer",
            ">= 10x",
            row("new connection per request").and_then(|r| r.sg_vs_peer),
            &|v| v >= 10.0,
        ),
        target(
            "bulk throughput vs peer (worse direction)",
            ">= 1.25x",
            bulk_min,
            &|v| v >= 1.25,
        ),
        target(
            "RSS per idle connection vs peer",
            "<= 0.33x",
            row("RSS per held idle connection (both ends)").and_then(|r| r.sg_vs_peer),
            &|v| v <= 0.33,
        ),
        target(
            "node threads each using >= 10% of a core",
            ">= 2",
            node_threads,
            &|v| v >= 2.0,
        ),
    ];
    Summary {
        peer,
        rows,
        targets,
        node_cpu_cores: node_cpu,
        node_busy_threads: node_threads,
        records,
    }
}

fn cell(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1000.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn times(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into())
}

/// The table printed at the end of a run (Markdown, so it pastes into docs).
pub fn table(s: &Summary) -> String {
    let peer = s.peer.clone().unwrap_or_else(|| "peer".into());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| metric | unit | direct | sg | {peer} | sg/{peer} | sg/direct |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for r in &s.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.metric,
            r.unit,
            cell(r.direct),
            cell(r.sg),
            cell(r.peer),
            times(r.sg_vs_peer),
            times(r.sg_vs_direct)
        );
    }
    if let Some(c) = s.node_cpu_cores {
        let _ = writeln!(
            out,
            "\nsg-node CPU under load: {c:.2} cores (peak over the tests)"
        );
    }
    if let Some(rec) = s
        .records
        .iter()
        .rfind(|r| r["path"] == "sg" && r["test"] == "keep_alive")
    {
        let threads: Vec<String> = rec["cpu"][0]["threads"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        format!(
                            "{} {:.2}",
                            t["name"].as_str().unwrap_or("?"),
                            t["cores"].as_f64().unwrap_or(0.0)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "sg-node threads during keep-alive (cores): {}",
            threads.join(", ")
        );
    }
    if s.peer.is_some() {
        let _ = writeln!(out, "\n| target | wanted | got | met |\n|---|---|---:|---|");
        for t in &s.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name,
                t.wanted,
                t.got
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into()),
                match t.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                }
            );
        }
    }
    out
}

/// A horizontal bar chart of sg/peer and sg/direct per metric, 1.0 marked.
pub fn svg(s: &Summary) -> String {
    let bars: Vec<(&str, Option<f64>, Option<f64>, bool)> = s
        .rows
        .iter()
        .map(|r| {
            (
                r.metric.as_str(),
                r.sg_vs_peer,
                r.sg_vs_direct,
                r.higher_is_better,
            )
        })
        .collect();
    let max = bars
        .iter()
        .flat_map(|(_, a, b, _)| [*a, *b])
        .flatten()
        .fold(2.0f64, f64::max)
        .min(40.0);
    let (left, width, row_h) = (300.0, 560.0, 44.0);
    let height = 90.0 + row_h * bars.len() as f64;
    let x = |v: f64| left + width * (v.min(max) / max);
    let peer = s.peer.clone().unwrap_or_else(|| "peer".into());
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">sg load test: ratios (blue sg/{peer}, grey sg/direct; right of the line is "more")</text>
<line x1="{one}" y1="40" x2="{one}" y2="{bottom}" stroke="black" stroke-dasharray="4 3"/>
<text x="{one}" y="36" text-anchor="middle">1.0</text>
"##,
        w = left + width + 80.0,
        one = x(1.0),
        bottom = height - 20.0
    );
    for (i, (name, vs_peer, vs_direct, higher)) in bars.iter().enumerate() {
        let y = 50.0 + i as f64 * row_h;
        let better = if *higher {
            "higher is better"
        } else {
            "lower is better"
        };
        let _ = writeln!(
            out,
            r##"<text x="10" y="{}">{name}</text><text x="10" y="{}" fill="#666" font-size="10">{better}</text>"##,
            y + 14.0,
            y + 27.0
        );
        for (j, (v, color)) in [(vs_peer, "#1f6feb"), (vs_direct, "#9aa0a6")]
            .iter()
            .enumerate()
        {
            if let Some(v) = v {
                let yy = y + j as f64 * 16.0;
                let _ = writeln!(
                    out,
                    r##"<rect x="{left}" y="{yy}" width="{bw:.1}" height="13" fill="{color}"/><text x="{tx:.1}" y="{ty}">{v:.2}x</text>"##,
                    bw = x(*v) - left,
                    tx = x(*v) + 4.0,
                    ty = yy + 11.0
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}
