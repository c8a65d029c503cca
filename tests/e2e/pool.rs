//! A pool of clients that knows its own health (F31) and that operators control (F30):
//! two clients on two "hosts" (one in a network namespace), one of which loses its path to
//! the private service; a client ended through the API; the plan's cap on clients.

use serde_json::json;
use sg_api::destinations::DestinationView;
use sg_api::node::PlanView;
use sg_api::ErrorBody;
use sg_e2e::netns::NetnsHost;
use sg_e2e::*;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The destinations a node's `/clients` says `client` cannot reach.
fn unhealthy_for(node: &Node, gw: &str, client: &str) -> Vec<String> {
    node.clients(gw)
        .iter()
        .filter(|c| c.client_id == client)
        .flat_map(|c| c.destinations.iter())
        .filter(|d| !d.healthy)
        .map(|d| d.destination_id.clone())
        .collect()
}

/// The id of the client whose sessions come from `address`.
fn client_at(node: &Node, gw: &str, address: &str) -> Option<String> {
    node.clients(gw)
        .iter()
        .find(|c| c.address == address)
        .map(|c| c.client_id.clone())
}

/// `n` echo round trips through `cloud`, each on a new connection: how many failed.
fn failures(cloud: SocketAddr, n: usize) -> usize {
    (0..n)
        .filter(|i| echo_at(cloud, format!("ping {i}").as_bytes()).is_none())
        .count()
}

#[test]
fn connections_leave_a_client_that_cannot_reach_the_service_and_come_back() {
    let ns = NetnsHost::create("pool", 61).expect("a network namespace (needs root)");
    let ip = IpAddr::V4(ns.host_ip);
    // The node and the service are on this host's end of the link: the client here and
    // the client in the namespace both reach them, over different paths.
    let node = Node::start_with(NodeOptions {
        cloud_ip: ns.host_ip.to_string(),
        tunnel_ip: ns.host_ip.to_string(),
        ..NodeOptions::default()
    });
    let echo = EchoServer::start_at(ip);
    let (gw, token) = node.create_gateway("pool");
    let interval = 1;
    let d: DestinationView = node.call_as(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(json!({
            "name": "echo",
            "resource_host": ip.to_string(),
            "resource_port": echo.addr.port(),
            "health_check": {"kind": "tcp", "interval_secs": interval, "timeout_secs": 1,
                             "unhealthy_after": 1, "healthy_after": 1},
        })),
        201,
    );
    assert_eq!(
        d.health_check.as_ref().map(|h| u64::from(h.interval_secs)),
        Some(interval)
    );
    let cloud = node.cloud(d.cloud_port.expect("cloud_port"));
    let did = d.id;
    let here = Client::start(&node, &[(&gw, &token)], &[]);
    let wrapper = ns.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let there = Client::start_wrapped(&node, &[(&gw, &token)], &[], &wrapper);
    assert!(
        wait_until(Duration::from_secs(20), || node.clients(&gw).len() == 2),
        "both clients connect: {:?}\nin the namespace:\n{}",
        node.all_clients(&gw),
        there.log()
    );
    let far = client_at(&node, &gw, &ns.ns_ip.to_string()).expect("the namespace's client");
    let ns_peer = IpAddr::V4(ns.ns_ip);
    // Both carry connections while both reach the service.
    assert_eq!(failures(cloud, 20), 0);
    let peers = echo.peers();
    assert!(
        peers.contains(&ns_peer) && peers.contains(&ip),
        "connections are spread over both clients: {peers:?}"
    );

    // The namespace loses its path to the service (its connections are reset).
    ns.cut(ns.host_ip, echo.addr.port())
        .expect("nft in the namespace");
    let cut_at = Instant::now();
    let noticed = wait_until(Duration::from_secs(10), || {
        unhealthy_for(&node, &gw, &far) == vec![did.clone()]
    });
    let to_unhealthy = cut_at.elapsed();
    assert!(
        noticed,
        "the node hears that {far} cannot reach {did}: {:?}",
        node.clients(&gw)
    );
    assert!(
        to_unhealthy <= Duration::from_secs(interval + 2),
        "within one check interval (and a margin): {to_unhealthy:?}"
    );
    assert!(unhealthy_for(&node, &gw, "nobody").is_empty());
    // From now on: every new connection works and none reaches the cut-off client.
    let seen = echo.peers().len();
    let failed = failures(cloud, 40);
    let later: Vec<IpAddr> = echo.peers()[seen..].to_vec();
    assert_eq!(failed, 0, "no new connection fails once the node knows");
    assert_eq!(later.len(), 40);
    assert!(
        later.iter().all(|p| *p == ip),
        "no new connection goes to the unhealthy client: {later:?}"
    );
    assert!(has_event(&node, &gw, EventKind::HealthChanged));
    let (_, metrics) = node.api.get_text("/metrics").expect("metrics");
    assert!(
        metrics.contains(&format!(
            "sg_client_destination_healthy{{gateway=\"{gw}\",client=\"{far}\",destination=\"{did}\"}} 0"
        )),
        "{metrics}"
    );
    assert!(
        there.log().contains("is unhealthy from this client"),
        "{}",
        there.log()
    );

    // The path comes back: so do the connections.
    ns.restore().expect("nft in the namespace");
    let back_at = Instant::now();
    let returned = wait_until(Duration::from_secs(10), || {
        let seen = echo.peers().len();
        let _ = echo_at(cloud, b"again");
        let _ = echo_at(cloud, b"again");
        echo.peers()[seen..].contains(&ns_peer)
    });
    let to_back = back_at.elapsed();
    assert!(returned, "connections reach the recovered client again");
    assert!(unhealthy_for(&node, &gw, &far).is_empty());
    eprintln!(
        "health: service cut -> node steers away in {:.2}s; path back -> connections return in {:.2}s (check interval {interval}s)",
        to_unhealthy.as_secs_f64(),
        to_back.as_secs_f64()
    );

    // Between probes (one a minute now), carried connections tell: the first one the
    // cut-off client cannot serve makes it unhealthy.
    let r = node.call(
        "PATCH",
        &format!("/v1/gateways/{gw}/destinations/{did}"),
        Some(json!({"health_check": {"interval_secs": 60, "unhealthy_after": 1, "healthy_after": 1}})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The new check's first probe (within a second of the change) finds the path up.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(unhealthy_for(&node, &gw, &far).is_empty());
    ns.cut(ns.host_ip, echo.addr.port())
        .expect("nft in the namespace");
    let cut_at = Instant::now();
    let mut failed = 0;
    while unhealthy_for(&node, &gw, &far).is_empty() && cut_at.elapsed() < Duration::from_secs(10) {
        failed += failures(cloud, 1);
    }
    let passive = cut_at.elapsed();
    assert!(
        !unhealthy_for(&node, &gw, &far).is_empty(),
        "a failed connection made the client unhealthy"
    );
    assert!(
        failed <= 2,
        "{failed} connection(s) failed before the node knew"
    );
    assert_eq!(failures(cloud, 20), 0, "then none fails");
    eprintln!(
        "health: passive (no probe due): {failed} connection(s) failed, node steered away in {:.2}s",
        passive.as_secs_f64()
    );
    drop(here);
}

/// An HTTP service whose `/healthz` answers 200 or 503 as the test says, and echoes a line
/// for anything else.
struct HealthzServer {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
}

impl HealthzServer {
    fn start() -> HealthzServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Write};
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut conn = reader.into_inner();
                    let answer = if line.starts_with("GET /healthz ") {
                        if flag.load(Ordering::SeqCst) {
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string()
                        } else {
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                                .to_string()
                        }
                    } else {
                        line
                    };
                    let _ = conn.write_all(answer.as_bytes());
                });
            }
        });
        HealthzServer { addr, healthy }
    }
}

/// One line through `port` comes back (the service echoes what is not `GET /healthz`).
fn wait_echo_line(port: u16) -> bool {
    use std::io::{Read, Write};
    wait_until(Duration::from_secs(5), || {
        let mut s = connect(port);
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut got = [0u8; 6];
        s.write_all(b"hello\n").is_ok() && s.read_exact(&mut got).is_ok() && &got == b"hello\n"
    })
}

#[test]
fn an_http_check_judges_the_status_and_a_lone_unhealthy_client_still_serves() {
    let node = Node::start();
    let service = HealthzServer::start();
    let (gw, token) = node.create_gateway("http-check");
    let d: DestinationView = node.call_as(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(json!({
            "name": "web",
            "resource_host": "127.0.0.1",
            "resource_port": service.addr.port(),
            "protocol": "http",
            "health_check": {"kind": "http", "path": "/healthz", "interval_secs": 1,
                             "timeout_secs": 1, "unhealthy_after": 2, "healthy_after": 1},
        })),
        201,
    );
    let did = d.id;
    let port = d.cloud_port.expect("port");
    // A second service takes connections and never answers: its checks time out, and
    // neither the other destination's checks nor its traffic wait for it.
    let hang = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung = node
        .call_as::<DestinationView>(
            "POST",
            &format!("/v1/gateways/{gw}/destinations"),
            Some(json!({
                "name": "hangs",
                "resource_host": "127.0.0.1",
                "resource_port": hang.local_addr().expect("addr").port(),
                "health_check": {"kind": "http", "interval_secs": 1, "timeout_secs": 1,
                                 "unhealthy_after": 1, "healthy_after": 1},
            })),
            201,
        )
        .id;
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1), "{}", client.log());
    let id = node.clients(&gw)[0].client_id.clone();
    assert!(
        wait_until(Duration::from_secs(10), || unhealthy_for(&node, &gw, &id)
            == vec![hung.clone()]),
        "{:?}",
        node.clients(&gw)
    );
    let view = node.clients(&gw)[0].destinations.clone();
    assert!(
        view.iter()
            .any(|d| d.reason.contains("no answer within 1s")),
        "{view:?}"
    );
    assert!(
        wait_echo_line(port),
        "the other destination still carries traffic"
    );
    service.healthy.store(false, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(10), || unhealthy_for(&node, &gw, &id)
            .contains(&did)),
        "{:?}",
        node.clients(&gw)
    );
    let views = node.clients(&gw)[0].destinations.clone();
    assert!(
        views
            .iter()
            .any(|d| d.destination_id == did && d.reason.contains("503")),
        "the reason names the status: {views:?}"
    );
    // With no healthy client, the node still uses the one it has rather than refuse.
    assert!(
        wait_echo_line(port),
        "the lone client still carries connections"
    );
    service.healthy.store(true, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(10), || !unhealthy_for(&node, &gw, &id)
            .contains(&did)),
        "healthy again: {:?}",
        node.clients(&gw)
    );
    // Bad settings are refused with the field named, and nothing changes.
    for (check, field) in [
        (
            json!({"kind": "http", "path": "healthz"}),
            "health_check.path",
        ),
        (json!({"interval_secs": 0}), "health_check.interval_secs"),
        (
            json!({"kind": "tcp", "timeout_secs": 20, "interval_secs": 10}),
            "health_check.timeout_secs",
        ),
    ] {
        let r = node.call(
            "PATCH",
            &format!("/v1/gateways/{gw}/destinations/{did}"),
            Some(json!({ "health_check": check })),
        );
        assert_eq!(r.status, 400, "{}", r.body);
        let e: ErrorBody = Node::body_of(&r);
        assert!(e.message.contains(field), "{e:?}");
    }
    let d: DestinationView = node.fetch(&format!("/v1/gateways/{gw}/destinations/{did}"));
    assert_eq!(
        d.health_check.and_then(|h| h.path).as_deref(),
        Some("/healthz")
    );
}

fn kill(node: &Node, gw: &str, client: &str, reason: &str) -> std::process::Output {
    node.sgctl(&["gateway", "clients", "kill", gw, client, "--reason", reason])
}

fn only_client(node: &Node, gw: &str) -> String {
    node.clients(gw)[0].client_id.clone()
}

#[test]
fn an_operator_ends_a_client_and_the_service_follows_the_flag() {
    let t = EchoTunnel::start("kill", &[]);
    let (node, gw) = (&t.node, &t.gw);
    let mut plain = t.client;
    let id = only_client(node, gw);
    let out = kill(node, gw, &id, "moved to the new host");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&id) && said.contains("moved to the new host"),
        "{said}"
    );
    let status = plain.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{}", plain.log());
    assert!(
        plain
            .log()
            .contains("an operator ended this client: moved to the new host"),
        "{}",
        plain.log()
    );
    // It is listed as gone, with when and why; ending it again is a 404.
    let listed = node.all_clients(gw);
    let gone = listed
        .iter()
        .find(|c| c.client_id == id)
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(gone.state, ClientState::Disconnected);
    assert!(gone.disconnected_at.is_some());
    assert!(gone
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("moved to the new host")));
    let r = node.call("DELETE", &format!("/v1/gateways/{gw}/clients/{id}"), None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(has_event(node, gw, EventKind::ClientKilled));
    let out = node.sgctl(&["gateway", "clients", gw]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("disconnected") && table.contains("moved to the new host"),
        "{table}"
    );

    // Under --service without --restart-after-kill: the service stops too.
    let token = t.token.clone();
    let mut service = Client::start(node, &[(gw, &token)], &["--service"]);
    assert!(node.wait_clients(gw, 1), "{}", service.log());
    let out = kill(node, gw, &only_client(node, gw), "decommissioned");
    assert!(out.status.success());
    let status = service.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{}", service.log());
    assert!(
        service.log().contains("not restarting"),
        "{}",
        service.log()
    );

    // With --restart-after-kill: a fresh client (a new id) takes over.
    let service = Client::start(
        node,
        &[(gw, &token)],
        &["--service", "--restart-after-kill"],
    );
    assert!(node.wait_clients(gw, 1), "{}", service.log());
    let first = only_client(node, gw);
    let out = kill(node, gw, &first, "rotate");
    assert!(out.status.success());
    let fresh = wait_until(Duration::from_secs(15), || {
        node.clients(gw).iter().any(|c| c.client_id != first)
    });
    assert!(fresh, "a fresh worker connects: {}", service.log());
    assert!(wait_echo(t.port), "and serves");
    // Bad input: an over-long reason names the field.
    let long = "x".repeat(300);
    let r = node.call(
        "DELETE",
        &format!("/v1/gateways/{gw}/clients/{first}?reason={long}"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn the_plan_caps_clients_per_gateway() {
    let t = EchoTunnel::start("cap", &[]);
    let (node, gw) = (&t.node, &t.gw);
    let out = node.sgctl(&["plan", "set", "--max-clients-per-gateway", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        node.fetch::<PlanView>("/v1/plan").max_clients_per_gateway,
        2
    );
    let second = Client::start(node, &[(gw, &t.token)], &[]);
    assert!(node.wait_clients(gw, 2), "{}", second.log());
    let third = Client::start(node, &[(gw, &t.token)], &[]);
    assert!(
        third.wait_log("limit_reached", Duration::from_secs(10)),
        "{}",
        third.log()
    );
    assert!(
        third.log().contains("max_clients_per_gateway"),
        "{}",
        third.log()
    );
    assert_eq!(node.clients(gw).len(), 2);
    let events = node.events(gw);
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::LimitReached
                && e.message.contains("max_clients_per_gateway")),
        "{events:?}"
    );
    // Room again (0 = no limit): the third one gets in on its own.
    let out = node.sgctl(&["plan", "set", "--max-clients-per-gateway", "0"]);
    assert!(out.status.success());
    assert!(
        wait_until(Duration::from_secs(30), || node.clients(gw).len() == 3),
        "{}",
        third.log()
    );
}
