//! Turns the measurements of one run (JSON lines written by the other subcommands) into
//! the table printed at the end, a JSON summary and an SVG chart of the ratios.

use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// What a row's ratio must reach, against which path; or, against `sg`, a bound on sg's
/// own figure (the control plane's goals).
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// `peer`, `direct`, `onehop`, or `sg` for a bound in the row's unit.
    pub against: &'static str,
    /// The ratio sg/that path must reach (at least when higher is better, else at most),
    /// or for `sg` the figure itself.
    pub ratio: f64,
}

/// One figure for every path of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: String,
    /// Whether bigger is better (throughput) or smaller (latency, memory, CPU).
    pub higher_is_better: bool,
    pub direct: Option<f64>,
    /// The one-hop plain TCP proxy (haproxy): the near-limit reference of a relay.
    pub onehop: Option<f64>,
    pub sg: Option<f64>,
    pub peer: Option<f64>,
    pub sg_vs_peer: Option<f64>,
    pub sg_vs_direct: Option<f64>,
    pub sg_vs_onehop: Option<f64>,
    pub goals: Vec<Goal>,
}

impl Row {
    fn ratio_against(&self, against: &str) -> Option<f64> {
        match against {
            "peer" => self.sg_vs_peer,
            "direct" => self.sg_vs_direct,
            "sg" => self.sg,
            _ => self.sg_vs_onehop,
        }
    }
}

/// A goal of the run, checked against the other paths in the same run.
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

/// The label of the one-hop proxy path in the records.
pub const ONEHOP: &str = "haproxy";

fn find<'a>(records: &'a [Value], path: &str, test: &str) -> Option<&'a Value> {
    records
        .iter()
        .rev()
        .find(|r| r["path"] == path && r["test"] == test)
}

/// A figure of the latest record of `path` and `test`: a field of its result (`a/b` for a
/// nested one), or of the record itself (`cpu_us_per_request`).
fn number(records: &[Value], path: &str, test: &str, field: &str) -> Option<f64> {
    let r = find(records, path, test)?;
    r["result"]
        .pointer(&format!("/{field}"))
        .and_then(Value::as_f64)
        .or_else(|| r[field].as_f64())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// One row to read from the records.
struct Spec {
    metric: &'static str,
    unit: &'static str,
    test: &'static str,
    field: &'static str,
    scale: f64,
    higher: bool,
    goals: &'static [(&'static str, f64)],
}

const fn spec(
    metric: &'static str,
    unit: &'static str,
    test: &'static str,
    field: &'static str,
    scale: f64,
    higher: bool,
    goals: &'static [(&'static str, f64)],
) -> Spec {
    Spec {
        metric,
        unit,
        test,
        field,
        scale,
        higher,
        goals,
    }
}

/// The rows, with the goals of issue 13 (efficiency) on those that have one.
const SPECS: &[Spec] = &[
    spec(
        "keep-alive HTTP",
        "req/s",
        "keep_alive",
        "requests_per_s",
        1.0,
        true,
        &[("peer", 1.6)],
    ),
    spec(
        "keep-alive p50",
        "ms",
        "keep_alive",
        "p50_us",
        1e-3,
        false,
        &[],
    ),
    spec(
        "keep-alive p99",
        "ms",
        "keep_alive",
        "p99_us",
        1e-3,
        false,
        &[],
    ),
    spec(
        "keep-alive p99.9",
        "ms",
        "keep_alive",
        "p999_us",
        1e-3,
        false,
        &[],
    ),
    spec(
        "keep-alive CPU per request",
        "µs",
        "keep_alive",
        "cpu_us_per_request",
        1.0,
        false,
        &[("peer", 0.45), ("onehop", 1.3)],
    ),
    spec(
        "wrk keep-alive HTTP",
        "req/s",
        "wrk_keep_alive",
        "requests_per_s",
        1.0,
        true,
        &[("peer", 1.6)],
    ),
    spec(
        "wrk keep-alive p99",
        "ms",
        "wrk_keep_alive",
        "p99_us",
        1e-3,
        false,
        &[],
    ),
    spec(
        "wrk CPU per request",
        "µs",
        "wrk_keep_alive",
        "cpu_us_per_request",
        1.0,
        false,
        &[("peer", 0.45), ("onehop", 1.3)],
    ),
    spec(
        "new connection per request",
        "req/s",
        "new_connection",
        "requests_per_s",
        1.0,
        true,
        &[("peer", 15.0)],
    ),
    spec(
        "new connection p99",
        "ms",
        "new_connection",
        "p99_us",
        1e-3,
        false,
        &[],
    ),
    spec(
        "new connection CPU per request",
        "µs",
        "new_connection",
        "cpu_us_per_request",
        1.0,
        false,
        &[],
    ),
    spec(
        "bulk upload",
        "Gbit/s",
        "bulk_up",
        "gbit_per_s",
        1.0,
        true,
        &[("direct", 0.3)],
    ),
    spec(
        "bulk download",
        "Gbit/s",
        "bulk_down",
        "gbit_per_s",
        1.0,
        true,
        &[("direct", 0.3)],
    ),
    spec(
        "bulk upload, 8 streams",
        "Gbit/s",
        "bulk_up_parallel",
        "gbit_per_s",
        1.0,
        true,
        &[("direct", 0.4)],
    ),
    spec(
        "bulk download, 8 streams",
        "Gbit/s",
        "bulk_down_parallel",
        "gbit_per_s",
        1.0,
        true,
        &[("direct", 0.4)],
    ),
    spec(
        "held idle connections established",
        "connections",
        "hold",
        "established",
        1.0,
        true,
        &[],
    ),
    spec(
        "RSS per held idle connection (both ends)",
        "KiB",
        "hold",
        "bytes_per_connection",
        1.0 / 1024.0,
        false,
        &[],
    ),
    spec(
        "keep-alive p99 while connections are held",
        "ms",
        "hold",
        "p99_while_held_us",
        1e-3,
        false,
        &[],
    ),
    spec(
        "config write (create destination), one node, p50",
        "ms",
        "control_write",
        "write/p50_ms",
        1.0,
        false,
        &[],
    ),
    spec(
        "config write (create destination), one node, p99",
        "ms",
        "control_write",
        "write/p99_ms",
        1.0,
        false,
        &[("sg", 50.0)],
    ),
    spec(
        "config write, cluster of two on etcd, p50",
        "ms",
        "control_write_cluster",
        "write/p50_ms",
        1.0,
        false,
        &[],
    ),
    spec(
        "config write, cluster of two on etcd, p99",
        "ms",
        "control_write_cluster",
        "write/p99_ms",
        1.0,
        false,
        &[],
    ),
    spec(
        "write seen by the other node, p50",
        "ms",
        "control_write_cluster",
        "propagation/p50_ms",
        1.0,
        false,
        &[],
    ),
    spec(
        "write seen by the other node, p99",
        "ms",
        "control_write_cluster",
        "propagation/p99_ms",
        1.0,
        false,
        &[],
    ),
    spec(
        "many destinations: GET of a full gateway's list, p99",
        "ms",
        "destinations",
        "list_p99_ms",
        1.0,
        false,
        &[("sg", 100.0)],
    ),
    spec(
        "many destinations: restart until every cloud port listens",
        "ms",
        "destinations_restart",
        "restart_ms",
        1.0,
        false,
        &[("sg", 3000.0)],
    ),
    spec(
        "many destinations: GET of a full gateway's list after the restart, p99",
        "ms",
        "destinations_restart",
        "list_p99_ms",
        1.0,
        false,
        &[("sg", 100.0)],
    ),
    spec(
        "many destinations: node RSS per destination",
        "KiB",
        "destinations_restart",
        "rss_bytes_per_destination",
        1.0 / 1024.0,
        false,
        &[],
    ),
];

/// Most a held idle connection may cost, both ends together (issue 13, goal 3).
const HOLD_KIB_GOAL: f64 = 8.0;
/// Most a keep-alive load's p99 may grow while the connections are held (issue 13, goal 3).
const HELD_P99_GOAL: f64 = 1.5;

pub fn summarize(records: Vec<Value>) -> Summary {
    let peer = records
        .iter()
        .filter_map(|r| r["path"].as_str())
        .find(|p| !matches!(*p, "direct" | "sg" | ONEHOP))
        .map(str::to_string);
    let peer_name = peer.clone().unwrap_or_default();
    let rows: Vec<Row> = SPECS
        .iter()
        .map(|sp| {
            let get = |path: &str| number(&records, path, sp.test, sp.field).map(|v| v * sp.scale);
            let (direct, onehop, sg, p) = (get("direct"), get(ONEHOP), get("sg"), get(&peer_name));
            Row {
                metric: sp.metric.to_string(),
                unit: sp.unit.to_string(),
                higher_is_better: sp.higher,
                direct,
                onehop,
                sg,
                peer: p,
                sg_vs_peer: ratio(sg, p),
                sg_vs_direct: ratio(sg, direct),
                sg_vs_onehop: ratio(sg, onehop),
                goals: sp
                    .goals
                    .iter()
                    .map(|(against, ratio)| Goal {
                        against,
                        ratio: *ratio,
                    })
                    .collect(),
            }
        })
        .collect();
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
    let peer_label = if peer_name.is_empty() {
        "peer"
    } else {
        peer_name.as_str()
    };
    let mut targets: Vec<Target> = rows
        .iter()
        .flat_map(|r| {
            r.goals.iter().map(move |g| {
                let against = match g.against {
                    "peer" => peer_label,
                    "onehop" => ONEHOP,
                    other => other,
                };
                let got = r.ratio_against(g.against);
                let (op, met): (&str, Option<bool>) = if r.higher_is_better {
                    (">=", got.map(|v| v >= g.ratio))
                } else {
                    ("<=", got.map(|v| v <= g.ratio))
                };
                let (name, wanted) = if g.against == "sg" {
                    (
                        format!("{} ({})", r.metric, r.unit),
                        format!("{op} {:.0}", g.ratio),
                    )
                } else {
                    (
                        format!("{} vs {against}", r.metric),
                        format!("{op} {:.2}x", g.ratio),
                    )
                };
                Target {
                    name,
                    wanted,
                    got,
                    met,
                }
            })
        })
        .collect();
    let held = rows
        .iter()
        .find(|r| r.metric.starts_with("RSS per held"))
        .and_then(|r| r.sg);
    targets.push(Target {
        name: "RSS per held idle connection, both ends (KiB)".into(),
        wanted: format!("<= {HOLD_KIB_GOAL:.0}"),
        got: held,
        met: held.map(|v| v <= HOLD_KIB_GOAL),
    });
    let p99 = |m: &str| rows.iter().find(|r| r.metric == m).and_then(|r| r.sg);
    let held_p99 = ratio(
        p99("keep-alive p99 while connections are held"),
        p99("keep-alive p99"),
    );
    targets.push(Target {
        name: "keep-alive p99 with connections held vs without".into(),
        wanted: format!("<= {HELD_P99_GOAL:.1}x"),
        got: held_p99,
        met: held_p99.map(|v| v <= HELD_P99_GOAL),
    });
    targets.push(Target {
        name: "node threads each using >= 10% of a core".into(),
        wanted: ">= 2".into(),
        got: node_threads,
        met: node_threads.map(|v| v >= 2.0),
    });
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
        "| metric | unit | direct | {ONEHOP} | sg | {peer} | sg/{peer} | sg/direct | sg/{ONEHOP} |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &s.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.metric,
            r.unit,
            cell(r.direct),
            cell(r.onehop),
            cell(r.sg),
            cell(r.peer),
            times(r.sg_vs_peer),
            times(r.sg_vs_direct),
            times(r.sg_vs_onehop)
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
    {
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

/// A horizontal bar chart of sg's ratios per metric on a log scale (so a 13x bar does not
/// drown a 0.3x one), 1.0 marked, and each goal as a red tick on the bar it applies to.
pub fn svg(s: &Summary) -> String {
    const BARS: [(&str, &str); 3] = [
        ("peer", "#1f6feb"),
        ("direct", "#9aa0a6"),
        ("onehop", "#e8912d"),
    ];
    let (lo, hi) = (0.01f64, 100.0f64);
    let (left, width, row_h) = (300.0, 560.0, 60.0);
    let height = 90.0 + row_h * s.rows.len() as f64;
    let x = |v: f64| {
        let v = v.clamp(lo, hi);
        left + width * (v.log10() - lo.log10()) / (hi.log10() - lo.log10())
    };
    let peer = s.peer.clone().unwrap_or_else(|| "peer".into());
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">sg load test: ratios, log scale (blue sg/{peer}, grey sg/direct, orange sg/{ONEHOP}; red tick: the goal)</text>
"##,
        w = left + width + 80.0,
    );
    for tick in [0.01, 0.1, 1.0, 10.0, 100.0] {
        let dash = if tick == 1.0 { "4 3" } else { "1 4" };
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="40" x2="{tx:.1}" y2="{bottom}" stroke="black" stroke-dasharray="{dash}"/><text x="{tx:.1}" y="36" text-anchor="middle">{tick}</text>"##,
            tx = x(tick),
            bottom = height - 20.0
        );
    }
    for (i, r) in s.rows.iter().enumerate() {
        let y = 50.0 + i as f64 * row_h;
        let better = if r.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        let _ = writeln!(
            out,
            r##"<text x="10" y="{}">{}</text><text x="10" y="{}" fill="#666" font-size="10">{better}</text>"##,
            y + 14.0,
            r.metric,
            y + 27.0
        );
        for (j, (against, color)) in BARS.iter().enumerate() {
            let Some(v) = r.ratio_against(against) else {
                continue;
            };
            let yy = y + j as f64 * 16.0;
            let _ = writeln!(
                out,
                r##"<rect x="{left}" y="{yy}" width="{bw:.1}" height="13" fill="{color}"/><text x="{tx:.1}" y="{ty}">{v:.2}x</text>"##,
                bw = x(v) - left,
                tx = x(v) + 4.0,
                ty = yy + 11.0
            );
            for g in r.goals.iter().filter(|g| g.against == *against) {
                let _ = writeln!(
                    out,
                    r##"<line x1="{gx:.1}" y1="{y1}" x2="{gx:.1}" y2="{y2}" stroke="#d00" stroke-width="3"/>"##,
                    gx = x(g.ratio),
                    y1 = yy - 2.0,
                    y2 = yy + 15.0
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(path: &str, test: &str, result: Value, cpu_us: Option<f64>) -> Value {
        json!({ "path": path, "test": test, "result": result, "cpu_us_per_request": cpu_us })
    }

    #[test]
    fn ratios_and_goals_come_from_one_run() {
        let records = vec![
            rec(
                "direct",
                "keep_alive",
                json!({ "requests_per_s": 40000.0 }),
                None,
            ),
            rec(
                "haproxy",
                "keep_alive",
                json!({ "requests_per_s": 20000.0 }),
                Some(36.0),
            ),
            rec(
                "sg",
                "keep_alive",
                json!({ "requests_per_s": 18000.0 }),
                Some(40.0),
            ),
            rec(
                "rathole",
                "keep_alive",
                json!({ "requests_per_s": 10000.0 }),
                Some(100.0),
            ),
        ];
        let s = summarize(records);
        assert_eq!(
            s.peer.as_deref(),
            Some("rathole"),
            "haproxy is not the peer"
        );
        let cpu = s
            .rows
            .iter()
            .find(|r| r.metric == "keep-alive CPU per request")
            .unwrap();
        assert_eq!(cpu.sg_vs_peer, Some(0.4));
        assert!((cpu.sg_vs_onehop.unwrap() - 40.0 / 36.0).abs() < 1e-9);
        let met = |name: &str| s.targets.iter().find(|t| t.name == name).unwrap().met;
        assert_eq!(met("keep-alive CPU per request vs rathole"), Some(true));
        assert_eq!(met("keep-alive CPU per request vs haproxy"), Some(true));
        assert_eq!(met("keep-alive HTTP vs rathole"), Some(true));
        assert_eq!(met("bulk upload vs direct"), None, "not measured");
        let chart = svg(&s);
        assert!(chart.contains("log scale") && chart.contains("#d00"));
        assert!(table(&s).contains("| sg/haproxy |"));
    }

    #[test]
    fn control_plane_figures_are_read_from_nested_results_and_checked_against_their_bounds() {
        let records = vec![
            rec(
                "sg",
                "control_write",
                json!({ "write": { "p50_ms": 4.0, "p99_ms": 61.0 } }),
                None,
            ),
            rec(
                "sg",
                "control_write_cluster",
                json!({ "write": { "p99_ms": 20.0 }, "propagation": { "p50_ms": 9.0, "p99_ms": 30.0 } }),
                None,
            ),
            rec(
                "sg",
                "destinations_restart",
                json!({ "restart_ms": 1200.0, "list_p99_ms": 80.0, "rss_bytes_per_destination": 2048.0 }),
                None,
            ),
        ];
        let s = summarize(records);
        let row = |m: &str| s.rows.iter().find(|r| r.metric == m).unwrap().sg;
        assert_eq!(row("write seen by the other node, p99"), Some(30.0));
        assert_eq!(
            row("many destinations: node RSS per destination"),
            Some(2.0)
        );
        let met = |name: &str| s.targets.iter().find(|t| t.name == name).unwrap().met;
        assert_eq!(
            met("config write (create destination), one node, p99 (ms)"),
            Some(false)
        );
        assert_eq!(
            met("many destinations: restart until every cloud port listens (ms)"),
            Some(true)
        );
        assert_eq!(
            met("many destinations: GET of a full gateway's list, p99 (ms)"),
            None,
            "not measured"
        );
    }
}
