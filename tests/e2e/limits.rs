//! Limits a token holder or an operator can run into, each refused clearly instead of
//! breaking something later.

use serde_json::json;
use sg_api::clients::GatewayStats;
use sg_api::destinations::DestinationView;
use sg_api::gateways::AclView;
use sg_api::{ErrorBody, ErrorCode};
use sg_e2e::*;
use std::time::Duration;

#[test]
fn a_change_that_would_not_fit_in_one_config_frame_is_refused_and_clients_keep_working() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("big");
    let dir = tempfile::tempdir().expect("temp dir");
    openssl_ca(dir.path(), "bundle", "a CA for a large bundle");
    openssl_cert(dir.path(), "client", "bundle", CertUse::Client);
    let one = std::fs::read_to_string(dir.path().join("bundle.pem")).expect("ca pem");
    let cert = std::fs::read_to_string(dir.path().join("client.pem")).expect("client pem");
    let key = std::fs::read_to_string(dir.path().join("client.key")).expect("client key");
    // A client certificate chain just under the 64 KiB a PEM may have (uploaded CAs are
    // capped at 6 certificates; a chain is not).
    let chain = format!("{cert}{}", one.repeat((60 * 1024 - cert.len()) / one.len()));
    let path = format!("/v1/gateways/{gw}/destinations");
    let mut created = 0;
    let refused = loop {
        let r = node.call(
            "POST",
            &path,
            Some(json!({
                "name": format!("d{created}"),
                "resource_host": "127.0.0.1",
                "resource_port": echo.addr.port(),
                "resource_tls": {"enabled": true, "reject_unauthorized": false,
                                 "client_cert_pem": chain, "client_key_pem": key},
            })),
        );
        if r.status != 201 {
            break r;
        }
        created += 1;
        assert!(created < 100, "a 6 MB configuration was accepted");
    };
    assert_eq!(refused.status, 409, "{}", refused.body);
    let e: ErrorBody = Node::body_of(&refused);
    assert_eq!(e.error, ErrorCode::ConfigTooLarge, "{e:?}");
    assert!(e.message.contains("bytes"), "names the limit: {e:?}");
    let stored: Vec<DestinationView> = node.fetch(&path);
    assert_eq!(stored.len(), created, "nothing stored on refusal");
    // Every session still gets the whole configuration.
    let client = Client::start(&node, &[(&gw, &token)], &["--sessions", "1"]);
    assert!(
        client.wait_log(
            &format!("serving {created} destination(s)"),
            Duration::from_secs(10)
        ),
        "{}",
        client.log()
    );
}

#[test]
fn sockets_that_never_finish_a_tls_handshake_do_not_use_up_the_gateways_limit() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("tls-idle");
    let r = node.call(
        "PUT",
        "/v1/plan",
        Some(json!({"max_connections_per_gateway": 10})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let path = format!("/v1/gateways/{gw}/destinations");
    let tls: DestinationView = node.call_as(
        "POST",
        &path,
        Some(
            json!({"name": "tls", "resource_host": "127.0.0.1", "resource_port": echo.addr.port(),
                     "cloud_tls": {"mode": "tls"}}),
        ),
        201,
    );
    let tls_port = tls.cloud_port.expect("port");
    let (_, plain_port) = node.create_destination(&gw, "plain", echo.addr);
    let _client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(plain_port));
    // 15 sockets on the TLS port that never send a ClientHello: more than the limit.
    let idle: Vec<_> = (0..15).map(|_| connect(tls_port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..5u8 {
        let msg = [b'p', i];
        assert_eq!(
            echo_once(plain_port, &msg).as_deref(),
            Some(&msg[..]),
            "the other destination still carries connections"
        );
    }
    drop(idle);
}

#[test]
fn a_connection_idle_past_its_destinations_timeout_is_closed_on_both_ends_and_counted() {
    use std::io::{Read, Write};
    let t = EchoTunnel::start("idle", &[]);
    let path = format!("/v1/gateways/{}/destinations/{}", t.gw, t.did);
    let d: DestinationView =
        t.node
            .call_as("PATCH", &path, Some(json!({"idle_timeout_secs": 2})), 200);
    assert_eq!(d.idle_timeout_secs, 2);
    for bad in [json!(4000), json!(-1), json!("2")] {
        let r = t
            .node
            .call("PATCH", &path, Some(json!({ "idle_timeout_secs": bad })));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // A busy connection stays, past the timeout.
    let mut busy = connect(t.port);
    for i in 0..12u8 {
        busy.write_all(&[i]).expect("write");
        let mut b = [0u8; 1];
        busy.read_exact(&mut b)
            .expect("still open while it carries bytes");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(busy);
    assert!(
        wait_until(Duration::from_secs(5), || t.echo.open() == 0),
        "the busy connection ended when it was closed"
    );
    // A quiet one goes, and the node kept TCP keepalive on it meanwhile.
    let mut quiet = connect(t.port);
    quiet.write_all(b"x").expect("write");
    let mut b = [0u8; 1];
    quiet.read_exact(&mut b).expect("echo");
    let started = std::time::Instant::now();
    assert_eq!(t.echo.open(), 1, "the service holds the connection");
    let ss = std::process::Command::new("ss")
        .args([
            "-tno",
            "state",
            "established",
            &format!("( sport = :{} )", t.port),
        ])
        .output()
        .expect("ss");
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(
        ss.contains("keepalive"),
        "TCP keepalive on the cloud side: {ss}"
    );
    assert!(closed_by_node(&mut quiet), "the idle connection was closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "after about two seconds: {took:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || t.echo.open() == 0),
        "the private side was closed too: {} open",
        t.echo.open()
    );
    let stats: GatewayStats = t.node.fetch(&format!("/v1/gateways/{}/stats", t.gw));
    assert_eq!(stats.idle_closed_connections, 1, "counted: {stats:?}");
    let (_, metrics) = t.node.api.get_text("/metrics").expect("metrics");
    assert!(
        metrics.contains(&format!(
            "sg_gateway_connections_idle_closed_total{{gateway=\"{}\"}} 1",
            t.gw
        )),
        "{metrics}"
    );
}

#[test]
fn one_source_address_holds_at_most_its_share_of_a_destination() {
    let t = EchoTunnel::start("per-source", &[]);
    let path = format!("/v1/gateways/{}/destinations/{}", t.gw, t.did);
    let r = t.node.call(
        "PATCH",
        &path,
        Some(json!({"max_connections_per_source": 2})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let s = connect_from(t.port, "127.0.0.1:0").expect("connect");
            assert!(echoes(s.try_clone().expect("clone"), b"ok"));
            s
        })
        .collect();
    let third = connect_from(t.port, "127.0.0.1:0").expect("connect");
    assert!(
        refused(third, b"over"),
        "a third from the same address is refused"
    );
    let other = connect_from(t.port, "127.0.0.2:0").expect("connect");
    assert!(echoes(other, b"fine"), "another address still gets in");
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || echo_once(t.port, b"again")
            .is_some()),
        "room again once they closed"
    );
    let (_, metrics) = t.node.api.get_text("/metrics").expect("metrics");
    let counted = metrics
        .lines()
        .filter(|l| l.contains("reason=\"source_limit\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(
        counted >= 1,
        "source_limit refusals are counted:\n{metrics}"
    );
}

/// A hand-made client on the node's tunnel port: TLS, then frames written and read raw.
struct RawSession {
    tls: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
}

impl RawSession {
    fn connect(node: &Node) -> RawSession {
        let config = sg_proto::tls::client_config(node.trust(), None).expect("TLS config");
        let name = sg_proto::tls::server_name("127.0.0.1").expect("name");
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS");
        let tcp = std::net::TcpStream::connect(node.tunnel()).expect("tunnel");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
        RawSession {
            tls: rustls::StreamOwned::new(conn, tcp),
        }
    }

    /// Writes frames of `kind` with these JSON payloads, all in one write.
    fn send(&mut self, kind: u8, payloads: &[serde_json::Value]) {
        use std::io::Write;
        let mut out = Vec::new();
        for p in payloads {
            let body = serde_json::to_vec(p).expect("JSON");
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.push(kind);
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&body);
        }
        self.tls.write_all(&out).expect("send");
    }

    /// The next frame: (kind, payload as JSON, or Null for binary payloads).
    fn next(&mut self) -> Option<(u8, serde_json::Value)> {
        use std::io::Read;
        let mut header = [0u8; 9];
        self.tls.read_exact(&mut header).ok()?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let mut body = vec![0u8; len];
        self.tls.read_exact(&mut body).ok()?;
        Some((header[4], serde_json::from_slice(&body).unwrap_or_default()))
    }
}

fn hello(gw: &str, token: &str) -> sg_proto::frame::Hello {
    sg_proto::frame::Hello {
        protocol: sg_proto::version::ProtocolVersion::current(),
        client_version: "raw".into(),
        client_id: "cl_raw".into(),
        hostname: "h".into(),
        gateway_id: gw.into(),
        token: token.into(),
    }
}

/// Says Hello as a hand-made client would; returns the node's answer frame.
fn raw_hello(node: &Node, hello: &sg_proto::frame::Hello) -> (u8, serde_json::Value) {
    let mut s = RawSession::connect(node);
    s.send(1, &[serde_json::to_value(hello).expect("hello")]);
    s.next().expect("an answer")
}

#[test]
fn what_a_stranger_says_about_itself_reaches_events_short_and_printable() {
    let node = Node::start();
    let (gw, _) = node.create_gateway("strangers");
    let evil = format!("\u{1b}[2J\u{1b}]0;owned\u{7}{}", "A".repeat(15 * 1024));
    let hello = sg_proto::frame::Hello {
        protocol: sg_proto::version::ProtocolVersion { major: 1, minor: 0 },
        client_version: evil,
        client_id: "cl_stranger".into(),
        hostname: "h".into(),
        gateway_id: gw.clone(),
        token: "not-a-token".into(),
    };
    let (kind, refusal) = raw_hello(&node, &hello);
    assert_eq!(kind, 3, "a Refuse: {refusal}");
    assert_eq!(refusal["code"], "version_too_old", "{refusal}");
    assert!(has_event(&node, &gw, EventKind::SessionRefused));
    for e in node.events(&gw) {
        let message = e.message.as_str();
        assert!(
            message.len() < 600,
            "a short event: {} bytes",
            message.len()
        );
        assert!(
            !message.chars().any(char::is_control),
            "printable: {message:?}"
        );
    }
    let printed = node.sgctl_ok(&["gateway", "events", &gw]);
    assert!(
        !printed.contains('\u{1b}'),
        "sgctl sends no escape sequence: {printed:?}"
    );
}

#[test]
fn a_client_replaces_the_acl_at_most_once_a_second() {
    let node = Node::start();
    let (gw, token) = node.create_gateway("acl-flood");
    let mut s = RawSession::connect(&node);
    s.send(
        1,
        &[serde_json::to_value(hello(&gw, &token)).expect("hello")],
    );
    let (kind, _) = s.next().expect("welcome");
    assert_eq!(kind, 2, "a Welcome");
    let updates: Vec<serde_json::Value> = (0..20)
        .map(|i| json!({ "rules": [format!("acl allow host{i}:80")] }))
        .collect();
    s.send(15, &updates);
    let mut ignored = 0;
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until && ignored < 19 {
        let Some((kind, body)) = s.next() else { break };
        if kind == 13
            && body["message"]
                .as_str()
                .is_some_and(|m| m.contains("ignored"))
        {
            ignored += 1;
        }
    }
    assert_eq!(
        ignored, 19,
        "every change past the first is refused, and the client told"
    );
    // The accepted change is a durable write that may finish after the notices arrive.
    let acl = || node.fetch::<AclView>(&format!("/v1/gateways/{gw}/acl"));
    wait_until(Duration::from_secs(5), || !acl().rules.is_empty());
    let acl = acl();
    assert_eq!(acl.rules, vec!["acl allow host0:80"], "{acl:?}");
}

#[test]
fn a_gateway_holds_at_most_its_share_of_sessions_on_a_node() {
    let node = Node::start_with(NodeOptions {
        extra: vec!["--max-sessions-per-gateway".into(), "2".into()],
        ..NodeOptions::default()
    });
    let (gw, token) = node.create_gateway("capped");
    let client = Client::start(&node, &[(&gw, &token)], &["--sessions", "3"]);
    assert!(
        client.wait_log("--max-sessions-per-gateway", Duration::from_secs(10)),
        "the third session is refused with the reason:\n{}",
        client.log()
    );
    let sessions: usize = node.clients(&gw).iter().map(|c| c.sessions).sum();
    assert_eq!(sessions, 2);
}
