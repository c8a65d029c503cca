//! Gateway and destination lifecycle (F4, F6, F7, F21): active/inactive, enabled/disabled,
//! plan limits and downgrades, the concurrency limit and its notices, token regeneration,
//! and every change surviving `kill -9`.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sg_api::destinations::{CloudTlsMode, DestinationView, IpRule};
use sg_api::gateways::{GatewayView, TokenView};
use sg_api::node::PlanView;
use sg_api::{ErrorBody, ErrorCode};
use sg_e2e::*;
use std::net::TcpStream;
use std::time::Duration;

fn setup() -> EchoTunnel {
    EchoTunnel::start("life", &[])
}

fn patch<T: DeserializeOwned>(node: &Node, path: &str, body: Value) -> T {
    node.call_as("PATCH", path, Some(body), 200)
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn a_disabled_destination_refuses_connections_but_keeps_its_port() {
    let s = setup();
    let path = format!("/v1/gateways/{}/destinations/{}", s.gw, s.did);
    let d: DestinationView = patch(&s.node, &path, json!({ "enabled": false }));
    assert!(!d.enabled);
    assert_eq!(d.cloud_port, Some(s.port), "the port stays provisioned");
    let before = s.echo.accepted();
    assert!(listening(s.port), "something still listens on the port");
    assert_eq!(
        echo_once(s.port, b"blocked?"),
        None,
        "but connections are refused"
    );
    assert_eq!(
        s.echo.accepted(),
        before,
        "nothing reached the private service"
    );
    assert!(has_event(&s.node, &s.gw, EventKind::DestinationDisabled));
    patch::<DestinationView>(&s.node, &path, json!({ "enabled": true }));
    assert_eq!(echo_once(s.port, b"back").as_deref(), Some(&b"back"[..]));
}

#[test]
fn an_inactive_destination_has_no_port_and_gets_the_same_one_back() {
    let s = setup();
    let path = format!("/v1/gateways/{}/destinations/{}", s.gw, s.did);
    let d: DestinationView = patch(&s.node, &path, json!({ "active": false }));
    assert_eq!(d.cloud_port, None);
    assert!(
        wait_until(Duration::from_secs(5), || !listening(s.port)),
        "nothing listens any more"
    );
    let plan: PlanView = s.node.fetch("/v1/plan");
    assert_eq!(plan.usage.active_destinations, 0, "inactive is not counted");
    let d: DestinationView = patch(&s.node, &path, json!({ "active": true }));
    assert_eq!(d.cloud_port, Some(s.port), "same port again");
    assert!(wait_echo(s.port));
}

#[test]
fn a_disabled_gateway_carries_nothing_until_enabled() {
    let s = setup();
    let path = format!("/v1/gateways/{}", s.gw);
    patch::<GatewayView>(&s.node, &path, json!({ "enabled": false }));
    assert!(refused_at(s.port, b"x"));
    assert!(has_event(&s.node, &s.gw, EventKind::GatewayDisabled));
    assert!(
        s.client
            .wait_log("the gateway is disabled", Duration::from_secs(5)),
        "the client is told: {}",
        s.client.log()
    );
    patch::<GatewayView>(&s.node, &path, json!({ "enabled": true }));
    assert_eq!(echo_once(s.port, b"again").as_deref(), Some(&b"again"[..]));
}

#[test]
fn an_inactive_gateway_takes_its_destinations_down_and_brings_them_back() {
    let s = setup();
    let gpath = format!("/v1/gateways/{}", s.gw);
    let dpath = format!("{gpath}/destinations/{}", s.did);
    patch::<GatewayView>(&s.node, &gpath, json!({ "active": false }));
    let d: DestinationView = s.node.fetch(&dpath);
    assert_eq!((d.active, d.cloud_port), (false, None));
    assert!(wait_until(Duration::from_secs(5), || !listening(s.port)));
    assert!(s.node.wait_clients(&s.gw, 0), "its sessions are closed");
    // A destination of an inactive gateway cannot be activated; the error names the gateway.
    let e: ErrorBody = s
        .node
        .call_as("PATCH", &dpath, Some(json!({ "active": true })), 409);
    assert_eq!(e.error, ErrorCode::GatewayInactive);
    assert!(e.message.contains(&s.gw), "{e:?}");
    // Reactivating the gateway brings the destination back on its port; the client
    // reconnects by itself.
    patch::<GatewayView>(&s.node, &gpath, json!({ "active": true }));
    let d: DestinationView = s.node.fetch(&dpath);
    assert_eq!(d.cloud_port, Some(s.port));
    assert!(wait_echo(s.port), "{}", s.client.log());
}

#[test]
fn plan_limits_refuse_creates_and_a_downgrade_deactivates_everything() {
    let node = Node::start();
    let echo = EchoServer::start();
    let r = node.call(
        "PUT",
        "/v1/plan",
        Some(json!({ "max_gateways": 2, "max_destinations": 2 })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (a, token_a) = node.create_gateway("a");
    let (b, _) = node.create_gateway("b");
    let e: ErrorBody = node.call_as("POST", "/v1/gateways", Some(json!({ "name": "c" })), 409);
    assert_eq!(e.error, ErrorCode::LimitReached);
    assert!(e.message.contains("max_gateways"), "{e:?}");
    let (_, port_a) = node.create_destination(&a, "echo", echo.addr);
    let (_, port_b) = node.create_destination(&b, "echo", echo.addr);
    let e: ErrorBody = node.call_as(
        "POST",
        &format!("/v1/gateways/{a}/destinations"),
        Some(json!({ "name": "third", "resource_host": "127.0.0.1", "resource_port": 1 })),
        409,
    );
    assert!(e.message.contains("max_destinations"), "{e:?}");

    // Below current usage: every gateway goes inactive, every cloud port is released.
    let plan: PlanView = node.call_as("PUT", "/v1/plan", Some(json!({ "max_gateways": 1 })), 200);
    assert_eq!(plan.usage.active_gateways, 0);
    assert_eq!(plan.usage.active_destinations, 0);
    assert!(wait_until(Duration::from_secs(5), || !listening(port_a)
        && !listening(port_b)));
    for g in node.fetch::<Vec<GatewayView>>("/v1/gateways") {
        assert!(!g.active);
    }
    // One gateway can be reactivated under the new plan; a second cannot.
    patch::<GatewayView>(
        &node,
        &format!("/v1/gateways/{a}"),
        json!({ "active": true }),
    );
    let r = node.call(
        "PATCH",
        &format!("/v1/gateways/{b}"),
        Some(json!({ "active": true })),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let _client = Client::start(&node, &[(&a, &token_a)], &[]);
    assert!(wait_echo(port_a));
}

#[test]
fn connections_past_the_limit_are_refused_and_clients_hear_at_most_every_30s() {
    let s = setup();
    let r = s.node.call(
        "PUT",
        "/v1/plan",
        Some(json!({ "max_connections_per_gateway": 2 })),
    );
    assert_eq!(r.status, 200);
    let held: Vec<TcpStream> = (0..2)
        .map(|i| {
            let c = connect(s.port);
            assert!(echoes(c.try_clone().unwrap(), &[i]));
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    let before = s.echo.accepted();
    assert!(refused_at(s.port, b"third"), "the third is closed at once");
    assert_eq!(s.echo.accepted(), before);
    assert!(has_event(&s.node, &s.gw, EventKind::LimitReached));
    let line = "connection(s) to gateway";
    assert!(
        s.client.wait_log(line, Duration::from_secs(5)),
        "{}",
        s.client.log()
    );
    assert!(
        s.client
            .log()
            .lines()
            .any(|l| l.contains(line) && l.contains("ERROR")),
        "the notice is logged as an error"
    );
    // Three more within the 30 seconds: no new line yet, then one line with their count.
    for _ in 0..3 {
        assert!(refused_at(s.port, b"more"));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.client.log().matches(line).count(),
        1,
        "{}",
        s.client.log()
    );
    assert!(
        wait_until(Duration::from_secs(35), || s
            .client
            .log()
            .matches(line)
            .count()
            == 2),
        "{}",
        s.client.log()
    );
    assert!(
        s.client.log().contains("3 connection(s) to gateway"),
        "{}",
        s.client.log()
    );
    drop(held);
    assert!(wait_until(Duration::from_secs(5), || echo_once(
        s.port, b"ok"
    )
    .is_some()));
}

#[test]
fn regenerating_the_token_closes_sessions_and_refuses_the_old_token() {
    let mut s = setup();
    let issued: TokenView =
        s.node
            .call_as("POST", &format!("/v1/gateways/{}/token", s.gw), None, 200);
    let new_token = issued.token;
    assert_ne!(new_token, s.token);
    assert!(
        s.client
            .wait_log("token regenerated", Duration::from_secs(10)),
        "{}",
        s.client.log()
    );
    assert!(
        s.client.wait_exit(Duration::from_secs(20)).is_some(),
        "the old token is refused for good"
    );
    assert!(s.client.log().contains("bad_token"), "{}", s.client.log());
    assert!(has_event(&s.node, &s.gw, EventKind::SessionClosed));
    let _fresh = Client::start(&s.node, &[(&s.gw, &new_token)], &[]);
    assert!(wait_echo(s.port));
}

#[test]
fn every_change_survives_kill9() {
    let mut node = Node::start();
    let echo = EchoServer::start();
    let (gw, _) = node.create_gateway("durable");
    let (did, _) = node.create_destination(&gw, "echo", echo.addr);
    node.call(
        "PUT",
        "/v1/plan",
        Some(json!({ "max_connections_per_gateway": 77 })),
    );
    patch::<GatewayView>(
        &node,
        &format!("/v1/gateways/{gw}"),
        json!({ "name": "renamed", "enabled": false }),
    );
    let dpath = format!("/v1/gateways/{gw}/destinations/{did}");
    patch::<DestinationView>(
        &node,
        &dpath,
        json!({ "ip_rules": [{ "cidr": "127.0.0.1" }], "cloud_tls": { "mode": "tls" }, "enabled": false }),
    );
    let token = node
        .typed::<(), TokenView>("POST", &format!("/v1/gateways/{gw}/token"), None)
        .token;
    let read = |node: &Node| {
        (
            node.fetch::<PlanView>("/v1/plan"),
            node.fetch::<GatewayView>(&format!("/v1/gateways/{gw}")),
            node.fetch::<DestinationView>(&dpath),
        )
    };
    let before = read(&node);

    node.restart();

    let after = read(&node);
    assert_eq!(before, after);
    assert_eq!(after.0.max_connections_per_gateway, 77);
    assert_eq!(after.1.name, "renamed");
    assert_eq!(
        after.2.ip_rules,
        vec![IpRule {
            cidr: "127.0.0.1/32".into(),
            ports: None
        }]
    );
    assert_eq!(after.2.cloud_tls.mode, CloudTlsMode::Tls);
    // The regenerated token is the one that works.
    let c = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1), "{}", c.log());
}
