//! Several clients on one gateway (F19): connections spread over them, and when one dies
//! new connections go to the others.

use sg_e2e::*;
use std::io::{Read, Write};

#[test]
fn connections_spread_over_two_clients_and_survive_one_dying() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("ha");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let mut a = Client::start(&node, &[(&gw, &token)], &[]);
    let _b = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 2), "both clients registered");
    assert!(wait_echo(port));

    // Hold ten connections open: both sessions carry some.
    let mut held = Vec::new();
    for i in 0..10u8 {
        let mut c = connect(port);
        c.write_all(&[i]).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        held.push(c);
    }
    let clients = node.clients(&gw);
    let streams: Vec<usize> = clients.iter().map(|c| c.active_streams).collect();
    assert_eq!(streams.iter().sum::<usize>(), 10, "{clients:?}");
    assert!(
        streams.iter().all(|s| *s >= 3),
        "spread over both: {streams:?}"
    );
    drop(held);

    // One client dies without a word; new connections keep working at once.
    a.kill9();
    assert!(node.wait_clients(&gw, 1), "the dead session is dropped");
    for i in 0..20u8 {
        let msg = [b'x', i];
        assert_eq!(
            echo_once(port, &msg).as_deref(),
            Some(&msg[..]),
            "connection {i} after the failover"
        );
    }
}
