//! SIGTERM drains a single node too (F20): draining mark, GoAway, a grace with cloud ports
//! open, then closed ports while open connections finish, exit 0.

use sg_api::node::{Healthz, ServingStatus};
use sg_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn node_with(grace: &str, timeout: &str) -> Node {
    Node::start_with(NodeOptions {
        extra: vec![
            "--drain-grace".into(),
            grace.into(),
            "--drain-timeout".into(),
            timeout.into(),
        ],
        ..NodeOptions::default()
    })
}

fn sigterm(node: &Node) {
    let pid = node.pid().expect("running");
    send_signal(pid as i32, libc::SIGTERM);
}

fn held(port: u16) -> TcpStream {
    let mut s = connect(port);
    s.write_all(b"hi").expect("write");
    let mut got = [0u8; 2];
    s.read_exact(&mut got).expect("echo");
    s
}

#[test]
fn a_single_node_drains_on_sigterm_and_exits_0_when_connections_finish() {
    let mut node = node_with("1", "30");
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("drain");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port));
    let mut open = held(port);
    let api = node.api.clone();
    sigterm(&node);
    let sent = Instant::now();
    assert!(
        client.wait_log("asks clients to move", Duration::from_secs(5)),
        "{}",
        client.log()
    );
    let h = api.get("/healthz").expect("healthz");
    assert_eq!(
        (h.status, Node::body_of::<Healthz>(&h).status),
        (503, ServingStatus::Draining),
        "{}",
        h.body
    );
    // During the grace, cloud connections are still served...
    assert_eq!(
        echo_once(port, b"grace").as_deref(),
        Some(&b"grace"[..]),
        "served during the grace"
    );
    // ...and new client sessions are refused with the draining code.
    let late = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(
        late.wait_log("draining", Duration::from_secs(5)),
        "{}",
        late.log()
    );
    std::thread::sleep(Duration::from_millis(1300).saturating_sub(sent.elapsed()));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "cloud port closed after the grace"
    );
    open.write_all(b"ok")
        .expect("the open connection still writes");
    let mut got = [0u8; 2];
    open.read_exact(&mut got)
        .expect("and gets its echo: nothing reset");
    assert_eq!(&got, b"ok");
    drop(open);
    let status = node.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0:\n{}",
        node.log()
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "it did not wait for the deadline"
    );
}

#[test]
fn connections_still_open_at_the_deadline_are_closed_and_the_node_still_exits_0() {
    let mut node = node_with("0", "1");
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("deadline");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let _client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port));
    let mut open = held(port);
    open.set_read_timeout(Some(Duration::from_secs(10))).ok();
    sigterm(&node);
    let status = node.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0:\n{}",
        node.log()
    );
    assert!(
        node.log().contains("still open at the drain deadline"),
        "{}",
        node.log()
    );
    assert!(closed_by_node(&mut open), "the straggler was closed");
}
