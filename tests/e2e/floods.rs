//! Strangers who connect and then send nothing (or drip a byte at a time) must not keep
//! real clients out (issue "Limits at the edge": pre-auth handshakes).

use sg_e2e::cluster::Subnet;
use sg_e2e::*;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A TCP connection to `target` from `source` (an address of 127.0.0.0/8).
fn connect_from_to(source: &str, target: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let src: SocketAddr = format!("{source}:0")
        .parse()
        .map_err(|_| std::io::Error::other("bad source"))?;
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.bind(&src.into())?;
    sock.connect_timeout(&target.into(), Duration::from_secs(2))?;
    Ok(sock.into())
}

#[test]
fn a_thousand_silent_or_dripping_peers_do_not_keep_a_real_client_out() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("flood");
    node.create_destination(&gw, "echo", echo.addr);
    let tunnel: SocketAddr = node.tunnel().parse().expect("tunnel address");
    // 50 source addresses: 25 in one /24, 25 each in a /24 of its own.
    let crowd = Subnet::take();
    let mut sources: Vec<String> = (1..=25).map(|h| crowd.ip(h)).collect();
    for k in 0..25u8 {
        let other = Subnet::take();
        sources.push(other.ip(200 + k % 50));
    }
    let mut peers = Vec::new();
    for i in 0..1000usize {
        if let Ok(mut s) = connect_from_to(&sources[i % sources.len()], tunnel) {
            if i % 2 == 1 {
                // Slow drip: the first byte of a TLS record, then nothing for a while.
                let _ = s.write_all(&[0x16]);
            }
            peers.push(s);
        }
    }
    assert!(peers.len() >= 900, "the flood connected: {}", peers.len());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let client = Client::start(&node, &[(&gw, &token)], &["--sessions", "1"]);
    assert!(
        client.wait_log("connected to node", Duration::from_secs(5)),
        "{}",
        client.log()
    );
    let took = started.elapsed();
    eprintln!(
        "a real client's session was up {:.0} ms after it started, with {} peers hanging on",
        took.as_secs_f64() * 1000.0,
        peers.len()
    );
    assert!(took < Duration::from_secs(1), "session up in {took:?}");
    // The node counted what it turned away and is still fine.
    let (_, metrics) = node.api.get_text("/metrics").expect("metrics");
    let figure = |name: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let turned_away =
        figure("sg_tunnel_handshakes_refused_total") + figure("sg_tunnel_handshakes_evicted_total");
    assert!(
        turned_away > 0,
        "refusals and evictions are counted:\n{metrics}"
    );
    drop(peers);
    assert!(
        wait_until(Duration::from_secs(5), || figure_now(&node) == 0),
        "every slot came back"
    );
}

fn figure_now(node: &Node) -> u64 {
    let (_, metrics) = node.api.get_text("/metrics").expect("metrics");
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("sg_tunnel_handshakes_pending")
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(u64::MAX)
}

/// What strangers cause is logged in a few lines, not one per attempt: garbage on the
/// tunnel port (node), connections the ACL refuses (client).
#[test]
fn a_flood_of_strangers_costs_a_few_log_lines_not_one_each() {
    let t = EchoTunnel::start("quiet", &[]);
    let tunnel: SocketAddr = t.node.tunnel().parse().expect("tunnel address");
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(tunnel) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        }
    }
    let node_lines = |n: &Node| n.log().matches("tunnel connection failed").count();
    assert!(
        wait_until(Duration::from_secs(10), || node_lines(&t.node) >= 20),
        "the garbage is noticed:\n{}",
        t.node.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        node_lines(&t.node) <= 20,
        "{} lines for 200 attempts",
        node_lines(&t.node)
    );
    // The client: an ACL that refuses the destination, and 100 connections to it.
    let r = t.node.call(
        "PUT",
        &format!("/v1/gateways/{}/acl", t.gw),
        Some(serde_json::json!({ "rules": ["acl deny :"] })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(t
        .client
        .wait_log("ACL now has 1 rule(s)", Duration::from_secs(5)));
    for _ in 0..100 {
        let _ = echo_once(t.port, b"x");
    }
    let client_lines = t.client.log().matches("refused by the ACL").count();
    assert!(
        (1..=20).contains(&client_lines),
        "{client_lines} lines for 100 refusals:\n{}",
        t.client.log()
    );
    // And the tunnel still serves the real client.
    assert!(t.node.wait_clients(&t.gw, 1));
}
