//! The client's web UI (F13, F17) in a real headless browser: Debian's Chromium driven by
//! playwright-core (tests/ui). Log in, see the figures change after traffic, edit the ACL,
//! and keep a screenshot as a test artifact (target/test-artifacts/web-ui.png).

use serde_json::json;
use sg_api::gateways::AclView;
use sg_e2e::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui")
}

/// A raw GET to the UI, returning the status line.
fn ui_status(port: u16, path: &str, header: &str) -> String {
    ui_status_as(port, &format!("127.0.0.1:{port}"), path, header)
}

/// The same with a chosen Host header.
fn ui_status_as(port: u16, host: &str, path: &str, header: &str) -> String {
    ui_request(port, host, "GET", path, header, None).0
}

/// A raw request to the UI: (status line, body).
fn ui_request(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    header: &str,
    body: Option<serde_json::Value>,
) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("UI port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{header}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.lines().next().unwrap_or("").to_string();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_web_ui_logs_in_shows_live_figures_and_edits_the_acl() {
    assert!(
        ui_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: scripts/test.sh installs it (npm ci in tests/ui)"
    );
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("web");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let ui_port = free_port();
    let ui = ui_port.to_string();
    let client = Client::start(
        &node,
        &[(&gw, &token)],
        &["--ui-port", &ui, "--ui-password", "s3cret-pw"],
    );
    assert!(
        client.wait_log("web UI on http://127.0.0.1", Duration::from_secs(10)),
        "{}",
        client.log()
    );
    assert!(wait_echo(port));

    // Every API call needs the password; so does /metrics (a scraper sends it as a bearer).
    assert!(ui_status(ui_port, "/metrics", "").contains("401"));
    let host = format!("127.0.0.1:{ui_port}");
    let (status, metrics) = ui_request(
        ui_port,
        &host,
        "GET",
        "/metrics",
        "Authorization: Bearer s3cret-pw\r\n",
        None,
    );
    assert!(status.contains("200"), "{status}");
    for line in [
        format!("sg_client_sessions{{gateway=\"{gw}\"}} 2"),
        format!("sg_client_connections_total{{gateway=\"{gw}\"}} "),
        format!("sg_client_bytes_total{{gateway=\"{gw}\",direction=\"transmitted\"}} "),
        format!("sg_client_destination_healthy{{gateway=\"{gw}\",destination=\""),
        "sg_client_info{client=\"cl_".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    assert!(ui_status(ui_port, "/api/status", "").contains("401"));
    assert!(ui_status(ui_port, "/api/status", "Authorization: Bearer wrong\r\n").contains("401"));
    assert!(ui_status(
        ui_port,
        "/api/status",
        "Authorization: Bearer s3cret-pw\r\n"
    )
    .contains("200"));

    let work = tempfile::tempdir().unwrap();
    let signal = work.path().join("traffic");
    let shot = artifacts_dir().join("web-ui.png");
    let _ = std::fs::remove_file(&shot);
    let rule = format!("acl allow 127.0.0.1:{}", echo.addr.port());
    let mut browser = Command::new("node")
        .current_dir(ui_dir())
        .arg("ui-test.mjs")
        .arg(format!("http://127.0.0.1:{ui_port}/"))
        .arg("s3cret-pw")
        .arg(&shot)
        .arg(&signal)
        .arg(&rule)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed");
    // When the page has its first figures, make traffic for it to notice.
    assert!(
        wait_until(Duration::from_secs(60), || signal.exists()),
        "the browser never got to the figures"
    );
    for i in 0..5u8 {
        assert!(echo_once(port, &[b'x', i]).is_some());
    }
    let out = browser.wait_with_output_timeout(Duration::from_secs(90));
    assert!(out.0, "the browser script failed:\n{}", out.1);
    for step in [
        "LOGIN PAGE",
        "WRONG PASSWORD REFUSED",
        "BEFORE",
        "AFTER",
        "ACL SAVED",
        "SCREENSHOT",
    ] {
        assert!(out.1.contains(step), "missing step {step}:\n{}", out.1);
    }
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "screenshot kept at {}",
        shot.display()
    );
    let stored: AclView = node.fetch(&format!("/v1/gateways/{gw}/acl"));
    assert_eq!(
        stored.rules,
        vec![rule.clone()],
        "the ACL edited in the UI is stored on the node"
    );
    assert!(client
        .log()
        .contains("a login with a wrong password was refused"));
}

#[test]
fn without_a_password_the_ui_stays_on_localhost_and_says_so() {
    let node = Node::start();
    let (gw, token) = node.create_gateway("local");
    let ui_port = free_port();
    let ui = ui_port.to_string();
    let client = Client::start(&node, &[(&gw, &token)], &["--ui-port", &ui]);
    assert!(
        client.wait_log("(no password: localhost only)", Duration::from_secs(10)),
        "{}",
        client.log()
    );
    assert!(ui_status(ui_port, "/api/status", "").contains("200"));
    // A page elsewhere that rebinds its name to 127.0.0.1 still sends its own Host.
    assert!(ui_status_as(ui_port, "evil.example", "/api/status", "").contains("401"));
    let out = Command::new(bin("sg-client"))
        .args([
            &gw,
            "-t",
            &token,
            "--server",
            &node.tunnel(),
            "--ca",
            node.ca_path().to_str().unwrap(),
            "--ui-bind",
            "0.0.0.0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ui-password"));
}

#[test]
fn the_ui_api_shows_sessions_sets_the_log_level_and_names_a_bad_acl_line() {
    let ui_port = free_port();
    let ui = ui_port.to_string();
    let t = EchoTunnel::start("ui-api", &["--ui-port", &ui]);
    assert!(t
        .client
        .wait_log("web UI on http://127.0.0.1", Duration::from_secs(10)));
    let host = format!("127.0.0.1:{ui_port}");
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let (status, body) = ui_request(ui_port, &host, method, path, "", body);
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (status, json)
    };

    let (status, s) = call("GET", "/api/status", None);
    assert!(status.contains("200"), "{status}");
    let gw = &s["gateways"][0];
    assert_eq!(gw["id"], t.gw.as_str());
    assert_eq!(gw["destinations"][0]["name"], "echo");
    let node_side = &t.node.clients(&t.gw)[0];
    assert_eq!(gw["sessions"][0]["node_id"], node_side.node_id.as_str());
    assert_eq!(
        gw["sessions"].as_array().map(Vec::len),
        Some(node_side.sessions),
        "the UI lists the sessions the node sees: {s}"
    );

    let (status, body) = call("PUT", "/api/log-level", Some(json!({ "level": "DEBUG" })));
    assert!(status.contains("200"), "{status} {body}");
    assert_eq!(call("GET", "/api/status", None).1["log_level"], "DEBUG");
    let (status, body) = call("PUT", "/api/log-level", Some(json!({ "level": "loud" })));
    assert!(status.contains("400"), "{status} {body}");

    let rules = json!({ "gateway": t.gw, "rules": ["# comment", "acl allow 127.0.0.1:1", "acl allow oops"] });
    let (status, body) = call("PUT", "/api/acl", Some(rules));
    assert!(status.contains("400"), "{status} {body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("line 3"),
        "{body}"
    );
    assert_eq!(
        t.node
            .fetch::<AclView>(&format!("/v1/gateways/{}/acl", t.gw))
            .rules,
        Vec::<String>::new(),
        "nothing reached the node"
    );
}

/// `wait_with_output` with a deadline: (success, combined output).
trait WaitTimeout {
    fn wait_with_output_timeout(&mut self, timeout: Duration) -> (bool, String);
}

impl WaitTimeout for std::process::Child {
    fn wait_with_output_timeout(&mut self, timeout: Duration) -> (bool, String) {
        let mut stdout = self.stdout.take().unwrap();
        let mut stderr = self.stderr.take().unwrap();
        let readers = [
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stdout.read_to_string(&mut s);
                s
            }),
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stderr.read_to_string(&mut s);
                s
            }),
        ];
        let ok = wait_until(timeout, || matches!(self.try_wait(), Ok(Some(_))));
        if !ok {
            let _ = self.kill();
        }
        let success = self.wait().map(|s| s.success()).unwrap_or(false);
        let text: String = readers
            .into_iter()
            .map(|r| r.join().unwrap_or_default())
            .collect();
        (ok && success, text)
    }
}

/// A raw request to the UI: the whole answer, headers included.
fn ui_raw(port: u16, path: &str, header: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("UI port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{header}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn a_password_ui_throttles_guessers_and_keeps_its_pages_out_of_frames() {
    let node = Node::start();
    let (gw, token) = node.create_gateway("guarded");
    let ui_port = free_port();
    let ui = ui_port.to_string();
    let pw = "long-enough-pw";
    let client = Client::start(
        &node,
        &[(&gw, &token)],
        &["--ui-port", &ui, "--ui-password", pw],
    );
    assert!(
        client.wait_log("password required", Duration::from_secs(10)),
        "{}",
        client.log()
    );
    let login = ui_raw(ui_port, "/login", "").to_ascii_lowercase();
    assert!(login.contains("frame-ancestors 'none'"), "{login}");
    assert!(login.contains("x-frame-options: deny"), "{login}");
    assert!(login.contains("script-src 'nonce-"), "{login}");
    let bearer = |p: &str| {
        ui_raw(
            ui_port,
            "/api/status",
            &format!("Authorization: Bearer {p}\r\n"),
        )
    };
    assert!(
        bearer(pw).starts_with("HTTP/1.1 200"),
        "the right password works"
    );
    let mut answers = Vec::new();
    for guess in ["a", "wrong-guess", "long-enough-pX", "x", "y"] {
        answers.push(bearer(guess).lines().next().unwrap_or("").to_string());
    }
    assert!(answers[0].contains("401"), "{answers:?}");
    assert!(
        answers[4].contains("429"),
        "the fifth failure blocks the address: {answers:?}"
    );
    let blocked = bearer(pw);
    assert!(
        blocked.starts_with("HTTP/1.1 429"),
        "even the right password, for a while: {blocked}"
    );
    assert!(
        blocked.to_ascii_lowercase().contains("retry-after:"),
        "{blocked}"
    );
    // A password that is too short is refused at start.
    let out = Command::new(bin("sg-client"))
        .args([&gw, "-t", &token, "--server", &node.tunnel(), "--ca"])
        .arg(node.ca_path())
        .args(["--ui-password", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 8"),
        "{out:?}"
    );
}
