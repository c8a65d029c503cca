//! Every refusal a client can meet says why, is logged on the node, and disturbs nobody
//! else: wrong token, unknown gateway, expired token, too old a version, garbage on the
//! tunnel port, oversize and out-of-order frames.

use sg_api::destinations::DestinationView;
use sg_api::gateways::GatewayView;
use sg_cluster::store::{Op, SledStore, Store};
use sg_e2e::*;
use sg_proto::tls::{self as sgtls};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// A gateway with a working client and echo destination, to show others are undisturbed.
fn healthy() -> EchoTunnel {
    EchoTunnel::start("healthy", &[])
}

fn still_fine(h: &EchoTunnel) {
    assert_eq!(echo_once(h.port, b"fine").as_deref(), Some(&b"fine"[..]));
    assert_eq!(h.node.clients(&h.gw).len(), 1);
}

/// A client the node refused gives up with exit status 3.
fn assert_refused_exit(client: &mut Client) {
    let status = client.wait_exit(Duration::from_secs(20));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "a refused client exits with 3: {}",
        client.log()
    );
}

#[test]
fn a_wrong_token_is_refused_with_the_reason_and_others_keep_working() {
    let h = healthy();
    let (gw, token) = h.node.create_gateway("victim");
    // The same token with its last digit changed (to a different digit, always).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    assert_ne!(wrong, token);
    let mut bad = Client::start(&h.node, &[(&gw, &wrong)], &[]);
    assert_refused_exit(&mut bad);
    let log = bad.log();
    assert!(
        log.contains("bad_token") && log.contains("is not valid"),
        "{log}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || h
            .node
            .events(&gw)
            .iter()
            .any(|e| e.kind == EventKind::BadToken)),
        "the refusal is in the gateway's event log"
    );
    let node_log = h.node.log();
    assert!(node_log.contains("wrong token"), "logged on the node");
    assert!(
        !node_log.contains(&token[4..]) && !node_log.contains(&wrong[4..]),
        "no token in the node log"
    );
    still_fine(&h);
}

#[test]
fn an_unknown_gateway_is_refused_with_the_reason() {
    let h = healthy();
    let mut bad = Client::start(&h.node, &[("gw_0000000000000000", "sgt_nope")], &[]);
    assert_refused_exit(&mut bad);
    let log = bad.log();
    assert!(
        log.contains("unknown_gateway") && log.contains("does not exist"),
        "{log}"
    );
    still_fine(&h);
}

#[test]
fn an_expired_token_is_refused_and_says_how_to_get_a_new_one() {
    let mut node = Node::start();
    let (gw, token) = node.create_gateway("old");
    node.kill9();
    {
        // Age the stored token, through the node's own store.
        let store = SledStore::open(&node.dir.join("state")).expect("open store");
        let mut g = store
            .gateways()
            .unwrap()
            .into_iter()
            .find(|g| g.id == gw)
            .expect("stored gateway");
        g.token_expires_at = 1_000_000;
        store.commit(&[Op::PutGateway(g)]).unwrap();
    }
    node.restart();
    let mut client = Client::start(&node, &[(&gw, &token)], &[]);
    assert_refused_exit(&mut client);
    let log = client.log();
    assert!(log.contains("token_expired"), "{log}");
    assert!(
        log.contains(&format!("sgctl gateway token {gw}")),
        "says what to do: {log}"
    );
    let shown: GatewayView = node.fetch(&format!("/v1/gateways/{gw}"));
    assert!(shown.token_expired, "{shown:?}");
}

#[test]
fn a_client_four_minor_versions_behind_is_told_what_to_upgrade_to() {
    let h = healthy();
    let (gw, token) = h.node.create_gateway("versions");
    let current = sg_proto::version::PROTOCOL_MINOR;
    let old = (current - 4).to_string();
    let mut client = Client::start_servers(
        &[&h.node],
        &[(&gw, &token)],
        &[],
        &[("SG_PROTOCOL_MINOR", &old)],
    );
    assert_refused_exit(&mut client);
    let log = client.log();
    assert!(
        log.contains("version_too_old") && log.contains("upgrade sg-client"),
        "{log}"
    );
    let oldest = format!(
        "{}.{} or newer",
        sg_proto::version::PROTOCOL_MAJOR,
        current - sg_proto::version::MAX_MINOR_LAG
    );
    assert!(
        log.contains(&oldest),
        "names the version to upgrade to: {log}"
    );
    assert!(has_event(&h.node, &gw, EventKind::SessionRefused));
    // Three behind is still fine.
    let ok = (current - 3).to_string();
    let c2 = Client::start_servers(
        &[&h.node],
        &[(&gw, &token)],
        &[],
        &[("SG_PROTOCOL_MINOR", &ok)],
    );
    assert!(h.node.wait_clients(&gw, 1), "{}", c2.log());
    still_fine(&h);
}

fn tls_to(node: &Node) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = sgtls::client_config(node.trust(), None).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), sgtls::server_name("127.0.0.1").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(node.tunnel()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn garbage_on_the_tunnel_port_is_refused_and_nobody_else_notices() {
    let h = healthy();

    // Plain TCP speaking HTTP to the TLS port.
    let mut plain = TcpStream::connect(h.node.tunnel()).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_by_node(&mut plain));

    // TLS, then bytes that are not frames.
    let mut tls = tls_to(&h.node);
    tls.write_all(&[0, 0, 0, 2, 0xEE, 0, 0, 0, 0, 1, 2])
        .unwrap();
    assert!(closed_by_node(&mut tls));

    // TLS, then a frame header claiming 4 GiB.
    let mut tls = tls_to(&h.node);
    tls.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0])
        .unwrap();
    assert!(closed_by_node(&mut tls));

    // TLS, then a Ping before any Hello.
    let mut tls = tls_to(&h.node);
    tls.write_all(&[0, 0, 0, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        .unwrap();
    assert!(closed_by_node(&mut tls));

    assert!(
        wait_until(Duration::from_secs(5), || {
            let log = h.node.log();
            log.contains("TLS handshake failed")
                && log.contains("unknown frame kind 238")
                && log.contains("exceeds the maximum")
                && log.contains("expected a Hello frame first")
        }),
        "each is logged on the node:\n{}",
        h.node.log()
    );
    still_fine(&h);
}

#[test]
fn a_cloud_port_that_cannot_be_bound_is_reported_not_promised() {
    let mut t = healthy();
    let view = |t: &EchoTunnel| {
        t.node
            .fetch::<DestinationView>(&format!("/v1/gateways/{}/destinations/{}", t.gw, t.did))
    };
    assert!(view(&t).listening);
    // While the node is down another process takes the destination's port.
    t.node.kill9();
    let blocker = std::net::TcpListener::bind(t.node.cloud(t.port)).expect("hold the port");
    t.node.restart();
    let v = view(&t);
    assert!(!v.listening, "{v:?}");
    let why = v.listen_error.unwrap_or_default();
    assert!(
        why.contains(&t.port.to_string()) && why.contains("in use"),
        "{why}"
    );
    assert!(has_event(&t.node, &t.gw, EventKind::PortBindFailed));
    // Reactivating it answers what is true of the port it gets.
    let patch = |active: bool| {
        t.node.call(
            "PATCH",
            &format!("/v1/gateways/{}/destinations/{}", t.gw, t.did),
            Some(serde_json::json!({ "active": active })),
        )
    };
    assert_eq!(patch(false).status, 200);
    let r = patch(true);
    assert_eq!(r.status, 200, "{}", r.body);
    let d: DestinationView = Node::body_of(&r);
    let same_port = d.cloud_port == Some(t.port);
    assert_eq!(d.listening, !same_port, "{d:?}");
    // Once the port is free the retry takes it, and the view says so.
    drop(blocker);
    assert!(
        wait_until(Duration::from_secs(15), || view(&t).listening),
        "{:?}",
        view(&t)
    );
    let port = view(&t).cloud_port.expect("port");
    assert!(wait_echo(port));
}
