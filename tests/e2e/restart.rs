//! Durability (F21): `kill -9` of the node loses nothing it acknowledged, cloud ports come
//! back the same, and the client reconnects by itself.

use sg_api::destinations::DestinationView;
use sg_api::gateways::GatewayView;
use sg_e2e::*;
use std::time::Duration;

#[test]
fn kill9_and_restart_keeps_gateways_destinations_ports_and_the_client_comes_back() {
    let mut node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("durable");
    let (other_gw, _) = node.create_gateway("second");
    let (did, port) = node.create_destination(&gw, "echo", echo.addr);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port));
    let before: Vec<GatewayView> = node.fetch("/v1/gateways");

    node.restart(); // SIGKILL, then start on the same data dir

    let after: Vec<GatewayView> = node.fetch("/v1/gateways");
    assert_eq!(before, after, "every gateway is still there");
    let d: DestinationView = node.call_as(
        "GET",
        &format!("/v1/gateways/{gw}/destinations/{did}"),
        None,
        200,
    );
    assert_eq!(d.cloud_port, Some(port), "same cloud port");
    assert!(
        node.call("GET", &format!("/v1/gateways/{other_gw}"), None)
            .status
            == 200
    );
    assert!(
        wait_echo(port),
        "the client came back without a restart; its log:\n{}",
        client.log()
    );
}

#[test]
fn a_pinned_client_keeps_working_when_the_node_is_reached_by_new_names() {
    let mut t = EchoTunnel::start("pinned", &[]);
    let pin = t.node.info.fingerprint.clone();
    let pinned = Client::start(&t.node, &[(&t.gw, &t.token)], &["--fingerprint", &pin]);
    assert!(
        pinned.wait_log("connected to node", Duration::from_secs(10)),
        "{}",
        pinned.log()
    );
    // New names (another cloud host): a new certificate, for the same key.
    t.node.set_arg("--cloud-host", "127.0.0.2");
    t.node.restart();
    assert_eq!(
        t.node
            .log()
            .matches("issued a server certificate for")
            .count(),
        2,
        "the certificate was reissued:\n{}",
        t.node.log()
    );
    assert_eq!(t.node.info.fingerprint, pin, "the key's pin is unchanged");
    let back = wait_until(Duration::from_secs(20), || {
        pinned.log().matches("connected to node").count() >= 2
    });
    assert!(back, "the pinned client came back:\n{}", pinned.log());
}

#[test]
fn a_data_dir_others_could_read_is_made_private_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let mut node = Node::start();
    node.kill9();
    let open_up = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    open_up(&node.dir, 0o755);
    open_up(&node.dir.join("state"), 0o755);
    open_up(&node.dir.join("state").join("db"), 0o644);
    node.restart();
    let mode = |path: std::path::PathBuf| {
        std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(node.dir.clone()), 0o700, "the data dir");
    assert_eq!(mode(node.dir.join("state")), 0o700, "the state dir");
    assert_eq!(
        mode(node.dir.join("state").join("db")),
        0o600,
        "sled's files"
    );
    assert_eq!(mode(node.dir.join("ca.key")), 0o600, "the CA key");
    assert!(
        node.log().contains("readable by others"),
        "and says so:\n{}",
        node.log()
    );
}

/// A gateway's actor is control plane: if it panics the node exits with status 70 (as
/// the README states), instead of keeping a gateway that no longer serves anyone, and the
/// restarted node serves the gateway from durable state.
#[test]
fn a_panic_in_a_gateway_actor_exits_the_node_and_a_restart_serves_it() {
    let mut node = Node::start_with(NodeOptions {
        env: vec![("SG_DEBUG_PANIC_GATEWAY".into(), "doomed".into())],
        ..Default::default()
    });
    let echo = EchoServer::start();
    let r = node.call(
        "POST",
        "/v1/gateways",
        Some(serde_json::json!({"name": "doomed"})),
    );
    assert_eq!(
        r.status, 201,
        "acknowledged before the actor starts: {}",
        r.body
    );
    let created: GatewayView = Node::body_of(&r);
    let gw = created.id;
    let token = created.token.expect("token");
    let status = node
        .wait_exit(Duration::from_secs(10))
        .expect("the node exits instead of keeping a zombie gateway");
    assert_eq!(status.code(), Some(70), "{}", node.log());
    assert!(
        node.log().contains("stopped unexpectedly"),
        "{}",
        node.log()
    );
    node.restart();
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let _client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));
    assert!(wait_echo(port));
}
