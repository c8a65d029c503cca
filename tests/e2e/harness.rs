//! The load harness's control-plane figures (issue 13, goals 4 and 5) come from real nodes:
//! `sg-load control-writes`, `destinations` and `destinations-restart` against a real
//! `sg-node` (and a cluster of two on a real etcd), read back through the API, and
//! summarized by `sg-load report`. Figures are checked for being measured, never for being
//! fast (no wall-clock thresholds in tests).

use serde_json::Value;
use sg_api::destinations::DestinationView;
use sg_api::gateways::GatewayView;
use sg_e2e::cluster::Cluster;
use sg_e2e::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Runs `sg-load ARGS --label sg --out OUT` and answers the JSON line it printed.
fn sg_load(args: &[&str], out: &Path) -> Value {
    let (code, output) = run_with_timeout(
        Command::new(bin("sg-load"))
            .args(args)
            .args(["--label", "sg", "--out"])
            .arg(out)
            .env("RUST_BACKTRACE", "0"),
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "sg-load {args:?} failed:\n{output}");
    let line = output
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("sg-load {args:?} printed no JSON:\n{output}"));
    serde_json::from_str(line).expect("sg-load prints JSON")
}

/// `sg-load control-writes`: `writes` timed creates on the node of `data_dir`, and with
/// `peer` each timed until that node shows it.
fn control_writes(out: &Path, data_dir: &str, peer: Option<&str>, gw: &str, writes: u32) -> Value {
    let writes = writes.to_string();
    let mut args = vec!["control-writes", "--data-dir", data_dir, "--gateway", gw];
    args.extend(["--resource", "127.0.0.1:9", "--writes", &writes]);
    if let Some(peer) = peer {
        args.extend(["--peer-data-dir", peer]);
    }
    sg_load(&args, out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

#[test]
fn control_plane_figures_are_measured_on_a_real_node_and_a_real_cluster() {
    let temp = tempfile::tempdir().expect("temp dir");
    let out = temp.path().join("run.jsonl");
    let mut node = Node::start();
    let dir = node.dir.display().to_string();
    let (gw, _) = node.create_gateway("writes");

    // Timed writes: each create answered, then each deleted again.
    let w = control_writes(&out, &dir, None, &gw, 20);
    assert_eq!(w["test"], "control_write");
    assert_eq!(w["result"]["write"]["count"], 20);
    assert_eq!(w["result"]["delete"]["count"], 20);
    assert!(w["result"]["write"]["p99_ms"].as_f64().unwrap() > 0.0);
    let left: Vec<DestinationView> = node.fetch(&format!("/v1/gateways/{gw}/destinations"));
    assert!(
        left.is_empty(),
        "every timed write was deleted again: {left:?}"
    );

    // Many destinations over as many gateways as the per-gateway cap needs.
    let pid = node.pid().expect("node pid").to_string();
    let filled = sg_load(
        &[
            "destinations",
            "--data-dir",
            &dir,
            "--resource",
            "127.0.0.1:9",
            "--count",
            "90",
            "--per-gateway",
            "40",
            "--requests",
            "5",
            "--watch",
            &pid,
        ],
        &out,
    );
    let r = &filled["result"];
    assert_eq!(r["destinations"], 90);
    assert_eq!(r["gateways"], 3);
    assert_eq!(
        r["list"]["destinations"], 40,
        "the listed gateway is a full one"
    );
    assert!(r["rss_before_kib"].as_u64().unwrap() > 0);
    let gateways: Vec<GatewayView> = node.fetch("/v1/gateways");
    let mut ports = Vec::new();
    for g in gateways.iter().filter(|g| g.id != gw) {
        let list: Vec<DestinationView> = node.fetch(&format!("/v1/gateways/{}/destinations", g.id));
        ports.extend(list.iter().filter_map(|d| d.cloud_port));
    }
    assert_eq!(ports.len(), 90, "the node holds what sg-load says it made");
    let range = format!(
        "{}-{}",
        ports.iter().min().unwrap(),
        ports.iter().max().unwrap()
    );

    // A restart, timed until every one of those cloud ports listens again.
    let started = now_ms().to_string();
    node.restart();
    let pid = node.pid().expect("node pid").to_string();
    let list_gw = r["list_gateway"].as_str().unwrap().to_string();
    let baseline = r["rss_before_kib"].to_string();
    let back = sg_load(
        &[
            "destinations-restart",
            "--data-dir",
            &dir,
            "--gateway",
            &list_gw,
            "--ports",
            &range,
            "--count",
            "90",
            "--started-ms",
            &started,
            "--baseline-rss-kib",
            &baseline,
            "--requests",
            "5",
            "--watch",
            &pid,
        ],
        &out,
    );
    let r = &back["result"];
    assert!(r["restart_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["list"]["destinations"], 40);
    assert!(r["rss_bytes_per_destination"].is_number());

    // Propagation between two nodes of one cluster.
    let c = Cluster::start(2);
    let (cgw, _) = c.nodes[0].create_gateway("propagation");
    let a = c.nodes[0].dir.display().to_string();
    let b = c.nodes[1].dir.display().to_string();
    let p = control_writes(&out, &a, Some(&b), &cgw, 10);
    assert_eq!(p["test"], "control_write_cluster");
    assert_eq!(p["result"]["propagation"]["count"], 10);

    // The report reads every one of them and checks the bounds.
    let (code, table) = run_with_timeout(
        Command::new(bin("sg-load"))
            .args(["report", "--input"])
            .arg(&out)
            .arg("--json")
            .arg(temp.path().join("s.json"))
            .arg("--svg")
            .arg(temp.path().join("s.svg")),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{table}");
    for row in [
        "config write (create destination), one node, p99",
        "write seen by the other node, p99",
        "many destinations: restart until every cloud port listens",
        "many destinations: node RSS per destination",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {row} |")))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{table}"));
        // | metric | unit | direct | haproxy | sg | ...
        let sg = line.split('|').nth(5).map(str::trim);
        assert!(
            sg.is_some_and(|v| v.parse::<f64>().is_ok()),
            "{row} was measured: {line}"
        );
    }
}
