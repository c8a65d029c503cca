//! Logs operators can collect and tune: JSON lines on both binaries, per-module filters
//! from RUST_LOG, and the node's level changed while it runs.

use serde_json::Value;
use sg_api::ErrorBody;
use sg_e2e::*;
use std::process::Command;
use std::time::Duration;

/// Every non-empty line of `log` as JSON; panics on a line that is not.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or("")
}

#[test]
fn json_logs_and_a_level_changed_at_run_time() {
    let node = Node::start_with(NodeOptions {
        extra: vec!["--log-format".into(), "json".into()],
        ..NodeOptions::default()
    });
    let lines = json_lines(&node.log());
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && message(l).contains("ready")),
        "{}",
        node.log()
    );
    let shown = node.sgctl_ok(&["log-level"]);
    assert!(shown.contains("INFO"), "{shown}");
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("logs");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let client = Client::start(&node, &[(&gw, &token)], &["--log-format", "json"]);
    assert!(wait_echo(port), "{}", client.log());
    assert!(
        !node.log().contains("\"level\":\"DEBUG\""),
        "no DEBUG line at INFO"
    );
    let set = node.sgctl_ok(&["log-level", "debug"]);
    assert!(set.contains("DEBUG"), "{set}");
    assert!(wait_echo(port));
    let debug = wait_until(Duration::from_secs(5), || {
        json_lines(&node.log())
            .iter()
            .any(|l| l["level"] == "DEBUG" && message(l).contains("opened"))
    });
    assert!(
        debug,
        "a DEBUG line once the level is DEBUG:\n{}",
        node.log()
    );
    let e: ErrorBody = node.call_as(
        "PUT",
        "/v1/log-level",
        Some(serde_json::json!({"level": "loud"})),
        400,
    );
    assert!(e.message.contains("level"), "{e:?}");
    // The client's lines are JSON too, with the gateway as a field, and what a session
    // logs carries the session's span (gateway, session, node).
    let lines = json_lines(&client.log());
    assert!(
        lines
            .iter()
            .any(|l| message(l).contains("connected to node")
                && l["fields"]["gateway"] == gw.as_str()
                && l["span"]["name"] == "session"
                && l["span"]["session"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("ss_"))),
        "{}",
        client.log()
    );
}

#[test]
fn rust_log_filters_by_module_and_a_bad_one_is_a_start_up_error() {
    let node = Node::start_with(NodeOptions {
        env: vec![("RUST_LOG".into(), "warn".into())],
        ..NodeOptions::default()
    });
    assert!(
        !node.log().contains("ready"),
        "INFO lines are filtered out:\n{}",
        node.log()
    );
    let shown = node.sgctl_ok(&["log-level"]);
    assert!(shown.contains("warn"), "the filters are shown: {shown}");
    let out = Command::new(bin("sg-node"))
        .args(["--region", "t", "--data-dir"])
        .arg(node.dir.join("other"))
        .env("RUST_LOG", "sg_cluster=loudest")
        .output()
        .expect("sg-node");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("RUST_LOG"), "{said}");
}
