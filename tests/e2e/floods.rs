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

/// A private service in its own process (python3) that accepts connections and holds them
/// without a thread each (so the test's own descriptors are left for the cloud side) until
/// their peer closes.
struct Holder {
    child: std::process::Child,
    port: u16,
}

impl Holder {
    fn start() -> Holder {
        use std::io::BufRead;
        // Like most services it closes a connection when its peer does.
        let script = "import resource, selectors, socket\n\
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
            s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4096)\n\
            print(s.getsockname()[1], flush=True)\n\
            sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_READ)\n\
            while True:\n\
            \x20   for key, _ in sel.select():\n\
            \x20       if key.fileobj is s:\n\
            \x20           sel.register(s.accept()[0], selectors.EVENT_READ)\n\
            \x20       elif not key.fileobj.recv(4096):\n\
            \x20           sel.unregister(key.fileobj); key.fileobj.close()\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("port");
        Holder {
            child,
            port: line.trim().parse().expect("port number"),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// p99 of `n` keep-alive round trips on one connection, and how many failed.
fn keepalive_p99(port: u16, n: usize) -> (Duration, usize) {
    use std::io::Read;
    let mut failures = 0;
    let mut times = Vec::with_capacity(n);
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (Duration::MAX, n);
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut back = [0u8; 32];
    for _ in 0..n {
        let t = Instant::now();
        if s.write_all(&[1u8; 32]).is_err() || s.read_exact(&mut back).is_err() {
            failures += 1;
            continue;
        }
        times.push(t.elapsed());
    }
    times.sort();
    let p99 = times
        .get(times.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(Duration::MAX);
    (p99, failures)
}

/// Idle sockets held open on one destination's cloud port (`SG_FLOOD_SOCKETS`, 500 here,
/// 10,000 in scripts/floods.sh) do not slow another destination: no request fails, its
/// keep-alive p99 is reported against its baseline (and must be within 2× of it when
/// `SG_FLOOD_STRICT` is set), and the node's descriptors come back to their baseline.
#[test]
fn idle_sockets_on_one_cloud_port_do_not_slow_another_destination() {
    let sockets: usize = env_or("SG_FLOOD_SOCKETS", 500);
    let node = Node::start();
    let plan = node.call(
        "PUT",
        "/v1/plan",
        Some(serde_json::json!({ "max_connections_per_gateway": sockets + 100 })),
    );
    assert_eq!(plan.status, 200, "{}", plan.body);
    let holder = Holder::start();
    let echo = EchoServer::start();
    let (ga, ta) = node.create_gateway("idle");
    let (gb, tb) = node.create_gateway("busy");
    let (_, idle_port) =
        node.create_destination(&ga, "held", SocketAddr::from(([127, 0, 0, 1], holder.port)));
    let (_, busy_port) = node.create_destination(&gb, "echo", echo.addr);
    let _client = Client::start(&node, &[(&ga, &ta), (&gb, &tb)], &[]);
    assert!(node.wait_clients(&ga, 1) && node.wait_clients(&gb, 1));
    assert!(wait_echo(busy_port));
    let pid = node.pid().expect("pid");
    let _ = keepalive_p99(busy_port, 500); // warm-up
    let (before, failed_before) = keepalive_p99(busy_port, 3000);
    let baseline_fds = open_fds(pid);

    let idle: Vec<TcpStream> = (0..sockets)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", idle_port)).ok())
        .collect();
    assert_eq!(idle.len(), sockets, "every idle socket connected");
    assert!(
        // (The baseline may still count the measuring connection, closing as it was read.)
        wait_until(Duration::from_secs(30), || open_fds(pid) + 20
            >= baseline_fds + sockets),
        "the node holds them: {} descriptors",
        open_fds(pid)
    );
    let (during, failed_during) = keepalive_p99(busy_port, 3000);
    drop(idle);
    let back = wait_until(Duration::from_secs(30), || {
        open_fds(pid) <= baseline_fds + 10
    });
    let ratio = during.as_secs_f64() / before.as_secs_f64().max(1e-9);
    eprintln!(
        "{sockets} idle sockets: keep-alive p99 {before:?} → {during:?} ({ratio:.2}×), failures \
         {failed_before} → {failed_during}, node descriptors {baseline_fds} → {} after",
        open_fds(pid)
    );
    assert_eq!(
        failed_during, 0,
        "no request failed while the idle sockets were held"
    );
    assert!(
        back,
        "descriptors back to baseline: {} vs {baseline_fds}",
        open_fds(pid)
    );
    if std::env::var_os("SG_FLOOD_STRICT").is_some() {
        assert!(ratio <= 2.0, "p99 {ratio:.2}× its baseline");
    }
}
