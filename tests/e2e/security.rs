//! The node's security controls (F9, F10, F22, F23): IP rules, user-side TLS and mutual TLS
//! on cloud ports with a real TLS client (openssl s_client), typed errors for bad input,
//! the event log and /metrics.

use serde_json::{json, Value};
use sg_api::destinations::{CloudTlsMode, DestinationView, IpRule};
use sg_api::gateways::GatewayView;
use sg_api::ErrorBody;
use sg_e2e::*;
use std::path::Path;
use std::time::Duration;

/// Creates a destination; the API's answer as it came (201 checked).
fn create_raw(node: &Node, gw: &str, body: Value) -> ApiResponse {
    let r = node.call(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(body),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r
}

fn create(node: &Node, gw: &str, body: Value) -> DestinationView {
    Node::body_of(&create_raw(node, gw, body))
}

#[test]
fn ip_rules_refuse_other_sources_before_a_single_byte() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("ips");
    let addr = echo.addr.to_string();
    let d = create(
        &node,
        &gw,
        json!({ "name": "only-127.0.0.1", "resource_host": "127.0.0.1", "resource_port": echo.addr.port(),
                "ip_rules": [{ "cidr": "127.0.0.1/32" }, { "cidr": "::1/128" }] }),
    );
    let port = d.cloud_port.unwrap();
    let ported = create(
        &node,
        &gw,
        json!({ "name": "ports", "resource_host": "127.0.0.1", "resource_port": echo.addr.port(),
                "ip_rules": [{ "cidr": "127.0.0.0/8", "ports": "1024-65535" }] }),
    );
    let ported_port = ported.cloud_port.unwrap();
    // Ephemeral source ports are never below 1024: everything is outside this range.
    let low = create(
        &node,
        &gw,
        json!({ "name": "low-ports", "resource_host": "127.0.0.1", "resource_port": echo.addr.port(),
                "ip_rules": [{ "cidr": "127.0.0.0/8", "ports": "1-1023" }] }),
    );
    let low_port = low.cloud_port.unwrap();
    let _client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port), "{addr}");

    let before = echo.accepted();
    let outsider = connect_from(port, "127.0.0.2:0").expect("the TCP connect itself succeeds");
    assert!(refused(outsider, b"let me in"), "127.0.0.2 is refused");
    assert_eq!(echo.accepted(), before, "the private service never saw it");
    assert!(
        echoes(connect_from(port, "127.0.0.1:0").unwrap(), b"welcome"),
        "127.0.0.1 is allowed"
    );

    // Source port ranges.
    assert!(echoes(
        connect_from(ported_port, "127.0.0.1:0").unwrap(),
        b"in range"
    ));
    assert!(refused(
        connect_from(low_port, "127.0.0.1:0").unwrap(),
        b"out of range"
    ));

    assert!(has_event(&node, &gw, EventKind::IpRefused));
    let refusals: Vec<EventView> = node
        .events(&gw)
        .into_iter()
        .filter(|e| e.kind == EventKind::IpRefused)
        .collect();
    assert!(
        refusals.iter().any(|e| e.message.contains("127.0.0.2:")
            && e.destination_id.as_deref() == Some(d.id.as_str())),
        "{refusals:?}"
    );
}

/// A client CA and an application certificate it signs.
fn client_pki(dir: &Path) {
    openssl_ca(dir, "cca", "app-ca");
    openssl_cert(dir, "app", "cca", CertUse::Client);
}

#[test]
fn tls_and_mutual_tls_cloud_ports_work_with_openssl() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("tls");
    let base = json!({ "resource_host": "127.0.0.1", "resource_port": echo.addr.port() });
    let mut tls_body = base.clone();
    tls_body["name"] = json!("tls");
    tls_body["cloud_tls"] = json!({ "mode": "tls" });
    let raw = create_raw(&node, &gw, tls_body);
    // What the node sent, not what the view keeps of it.
    assert!(
        !raw.body.to_string().contains("PRIVATE KEY"),
        "the key is never shown"
    );
    let tls: DestinationView = Node::body_of(&raw);
    assert!(tls.cloud_tls.issued_by_node);
    let tls_port = tls.cloud_port.unwrap();

    let pki = tempfile::tempdir().unwrap();
    client_pki(pki.path());
    let mut mutual_body = base.clone();
    mutual_body["name"] = json!("mutual");
    mutual_body["cloud_tls"] = json!({
        "mode": "mutual",
        "client_ca_pem": std::fs::read_to_string(pki.path().join("cca.pem")).unwrap(),
    });
    let mutual = create(&node, &gw, mutual_body);
    let mutual_port = mutual.cloud_port.unwrap();
    let _client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));

    // TLS with the certificate the node issued from its CA.
    let run = openssl_echo(tls_port, &node.ca_path(), &[], "hello over tls");
    assert!(
        run.output.contains("Verify return code: 0 (ok)"),
        "{}",
        run.output
    );
    assert!(run.echoed, "{}", run.output);

    // Mutual TLS: without a client certificate the handshake is refused...
    let before = echo.accepted();
    let run = openssl_echo(mutual_port, &node.ca_path(), &[], "no certificate");
    assert!(!run.echoed, "{}", run.output);
    assert!(has_event(&node, &gw, EventKind::TlsRefused));
    assert_eq!(
        echo.accepted(),
        before,
        "a refused handshake never reaches the private service"
    );
    // ...and with one signed by the uploaded CA it works.
    let cert = pki.path().join("app.pem");
    let key = pki.path().join("app.key");
    let run = openssl_echo(
        mutual_port,
        &node.ca_path(),
        &[
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
        ],
        "hello with a certificate",
    );
    assert!(run.echoed, "{}", run.output);
}

#[test]
fn bad_security_input_names_the_field_and_stores_nothing() {
    let node = Node::start();
    let (gw, _) = node.create_gateway("bad");
    let base = |extra: Value| {
        let mut b = json!({ "name": "d", "resource_host": "127.0.0.1", "resource_port": 80 });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let pki = tempfile::tempdir().unwrap();
    client_pki(pki.path());
    let cert = std::fs::read_to_string(pki.path().join("app.pem")).unwrap();
    let other_key = std::fs::read_to_string(pki.path().join("cca.key")).unwrap();
    let cases = [
        (
            json!({ "ip_rules": [{ "cidr": "10.0.0.0/33" }] }),
            "ip_rules[0].cidr",
        ),
        (
            json!({ "ip_rules": [{ "cidr": "nonsense" }] }),
            "ip_rules[0].cidr",
        ),
        (
            json!({ "ip_rules": [{ "cidr": "10.0.0.0/8", "ports": "0-70000" }] }),
            "ip_rules[0].ports",
        ),
        (
            json!({ "cloud_tls": { "mode": "tls", "cert_pem": "not pem", "key_pem": other_key } }),
            "cloud_tls.cert_pem",
        ),
        (
            json!({ "cloud_tls": { "mode": "tls", "cert_pem": cert, "key_pem": other_key } }),
            "cloud_tls.key_pem",
        ),
        (
            json!({ "cloud_tls": { "mode": "tls", "cert_pem": cert } }),
            "cloud_tls.key_pem",
        ),
        (
            json!({ "cloud_tls": { "mode": "mutual" } }),
            "cloud_tls.client_ca_pem",
        ),
        (
            json!({ "cloud_tls": { "mode": "sometimes" } }),
            "cloud_tls.mode",
        ),
        (
            json!({ "ip_rules": [{ "cidr": "10.0.0.0/8", "prots": "1-2" }] }),
            "ip_rules[0]",
        ),
    ];
    for (extra, field) in cases {
        let body = base(extra.clone());
        let r = node.call(
            "POST",
            &format!("/v1/gateways/{gw}/destinations"),
            Some(body),
        );
        assert_eq!(r.status, 400, "{extra}: {}", r.body);
        let message = Node::body_of::<ErrorBody>(&r).message;
        assert!(
            message.contains(field),
            "{extra}: {message:?} should name {field}"
        );
    }
    let stored: Vec<DestinationView> = node.fetch(&format!("/v1/gateways/{gw}/destinations"));
    assert!(stored.is_empty(), "{stored:?}");
    // A bad patch leaves the stored rules alone.
    let d: DestinationView = node.typed(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(&base(json!({ "ip_rules": [{ "cidr": "192.0.2.0/24" }] }))),
    );
    let path = format!("/v1/gateways/{gw}/destinations/{}", d.id);
    let r = node.call(
        "PATCH",
        &path,
        Some(json!({ "ip_rules": [{ "cidr": "x" }] })),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        node.fetch::<DestinationView>(&path).ip_rules,
        vec![IpRule {
            cidr: "192.0.2.0/24".into(),
            ports: None
        }]
    );
}

#[test]
fn events_and_metrics_tell_operators_what_was_refused() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("observed");
    let d = create(
        &node,
        &gw,
        json!({ "name": "e", "resource_host": "127.0.0.1", "resource_port": echo.addr.port(),
                "ip_rules": [{ "cidr": "127.0.0.1/32" }] }),
    );
    let port = d.cloud_port.unwrap();
    let mut bad = Client::start(&node, &[(&gw, "sgt_wrong")], &[]);
    assert!(bad.wait_exit(Duration::from_secs(20)).is_some());
    let _good = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port));
    for _ in 0..2 {
        assert!(refused(connect_from(port, "127.0.0.2:0").unwrap(), b"x"));
    }
    assert!(has_event(&node, &gw, EventKind::IpRefused));

    let events: Vec<EventView> = node.fetch(&format!("/v1/gateways/{gw}/events?limit=2"));
    assert_eq!(events.len(), 2);
    assert!(events[0].at >= events[1].at, "newest first: {events:?}");
    let all = node.events(&gw);
    let first = |kind: EventKind| all.iter().position(|e| e.kind == kind);
    assert!(first(EventKind::BadToken).is_some(), "{all:?}");
    assert!(
        first(EventKind::IpRefused) < first(EventKind::BadToken),
        "the refusals came seconds after the bad token, so they are listed first: {all:?}"
    );
    assert!(
        !serde_json::to_string(&all).unwrap().contains(&token[4..]),
        "no token in events"
    );
    let r = node.call("GET", &format!("/v1/gateways/{gw}/events?limit=0"), None);
    assert_eq!(r.status, 400);

    let (status, text) = node.api.get_text("/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("sg_node_info{region=\"test\""), "{text}");
    assert!(
        text.contains(&format!(
            "sg_gateway_connections_refused_total{{gateway=\"{gw}\",reason=\"ip_rule\"}} 2"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("sg_gateway_clients{{gateway=\"{gw}\"}} 1")),
        "{text}"
    );
    assert!(text.contains("sg_destinations_active 1"), "{text}");
    let anon = sg_api::client::ApiClient::new(&node.info.api, None, Some(node.trust())).unwrap();
    assert_eq!(anon.get_text("/metrics").unwrap().0, 401);
}

#[test]
fn sgctl_drives_every_control() {
    let node = Node::start();
    let echo = EchoServer::start();
    let run = |args: &[&str]| node.sgctl_ok(args);
    // `--json` prints what the node answered.
    let created: GatewayView = serde_json::from_str(&run(&[
        "--json",
        "gateway",
        "create",
        "ctl",
        "--token-expires-in-days",
        "30",
    ]))
    .unwrap();
    let gw = created.id;
    let resource = echo.addr.to_string();
    let d: DestinationView = serde_json::from_str(&run(&[
        "--json",
        "destination",
        "create",
        &gw,
        "--name",
        "e",
        "--resource",
        &resource,
        "--ip-rule",
        "127.0.0.1/32",
        "--ip-rule",
        "10.0.0.0/8,1024-65535",
        "--cloud-tls",
        "tls",
    ]))
    .unwrap();
    assert_eq!(
        d.ip_rules[1],
        IpRule {
            cidr: "10.0.0.0/8".into(),
            ports: Some("1024-65535".into())
        }
    );
    assert_eq!(d.cloud_tls.mode, CloudTlsMode::Tls);
    let did = d.id;
    let shown = run(&["destination", "show", &gw, &did]);
    assert!(
        shown.contains("issued by the node's CA") && shown.contains("10.0.0.0/8 ports 1024-65535"),
        "{shown}"
    );
    run(&[
        "destination",
        "update",
        &gw,
        &did,
        "--no-ip-rules",
        "--cloud-tls",
        "none",
        "--enabled",
        "false",
    ]);
    let d: DestinationView = node.fetch(&format!("/v1/gateways/{gw}/destinations/{did}"));
    assert_eq!(
        (d.ip_rules, d.cloud_tls.mode, d.enabled),
        (vec![], CloudTlsMode::None, false)
    );
    run(&["destination", "update", &gw, &did, "--active", "false"]);
    assert_eq!(
        node.fetch::<DestinationView>(&format!("/v1/gateways/{gw}/destinations/{did}"))
            .cloud_port,
        None
    );
    run(&[
        "gateway",
        "update",
        &gw,
        "--enabled",
        "false",
        "--name",
        "renamed",
    ]);
    run(&["gateway", "update", &gw, "--active", "false"]);
    let g: GatewayView = node.fetch(&format!("/v1/gateways/{gw}"));
    assert_eq!(
        (g.name.as_str(), g.enabled, g.active),
        ("renamed", false, false)
    );
    let plan = run(&["plan", "set", "--max-connections-per-gateway", "9"]);
    assert!(
        plan.contains("max_connections_per_gateway") && plan.contains('9'),
        "{plan}"
    );
    let token = run(&["gateway", "token", &gw]);
    assert!(token.contains("sgt_"), "{token}");
    run(&["gateway", "events", &gw]);
    run(&["gateway", "stats", &gw]);
    run(&["gateway", "clients", &gw]);
    let metrics = run(&["metrics"]);
    assert!(
        metrics.contains("# TYPE sg_gateway_active gauge"),
        "{metrics}"
    );
}
