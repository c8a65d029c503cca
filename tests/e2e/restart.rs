//! Durability (F21): `kill -9` of the node loses nothing it acknowledged, cloud ports come
//! back the same, and the client reconnects by itself.

use sg_e2e::*;

#[test]
fn kill9_and_restart_keeps_gateways_destinations_ports_and_the_client_comes_back() {
    let mut node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("durable");
    let (other_gw, _) = node.create_gateway("second");
    let (did, port) = node.create_destination(&gw, "echo", echo.addr);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port));
    let before = node.call("GET", "/v1/gateways", None).body;

    node.restart(); // SIGKILL, then start on the same data dir

    let after = node.call("GET", "/v1/gateways", None).body;
    assert_eq!(before, after, "every gateway is still there");
    let d = node.call(
        "GET",
        &format!("/v1/gateways/{gw}/destinations/{did}"),
        None,
    );
    assert_eq!(d.status, 200);
    assert_eq!(
        d.body["cloud_port"].as_u64(),
        Some(port as u64),
        "same cloud port"
    );
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
