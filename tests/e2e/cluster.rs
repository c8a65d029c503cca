//! The cluster on a real 3-member etcd (F19–F21, F32): one configuration served by every
//! node, clients that follow the fleet, drains, and what happens when etcd or a node goes
//! away.

use serde_json::json;
use sg_api::clients::GatewayStats;
use sg_api::destinations::DestinationView;
use sg_api::gateways::GatewayView;
use sg_api::node::{Healthz, NodeView, ServingStatus, StoreStatus};
use sg_api::{ErrorBody, ErrorCode};
use sg_e2e::cluster::{Cluster, Partition};
use sg_e2e::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A gateway with one echo destination, made on node 0.
fn echo_gateway(c: &Cluster, echo: &EchoServer) -> (String, String, u16) {
    let a = &c.nodes[0];
    let (gw, token) = a.create_gateway("ha");
    let (_, port) = a.create_destination(&gw, "echo", echo.addr);
    (gw, token, port)
}

/// [`echo_gateway`] with one client, given only node 0's address, connected to every node.
fn served(c: &Cluster, echo: &EchoServer) -> (String, String, u16, Client) {
    let (gw, token, port) = echo_gateway(c, echo);
    let client = Client::start(&c.nodes[0], &[(&gw, &token)], &[]);
    let everywhere = wait_until(Duration::from_secs(15), || {
        client_nodes(&c.nodes[0], &gw).len() == c.nodes.len()
    });
    assert!(
        everywhere,
        "the client reached every node:\n{}",
        client.log()
    );
    (gw, token, port, client)
}

/// The client processes connected for `gw`, as `node` sees the whole cluster.
fn client_nodes(node: &Node, gw: &str) -> Vec<String> {
    let mut nodes: Vec<String> = node.clients(gw).iter().map(|c| c.node_id.clone()).collect();
    nodes.sort();
    nodes
}

fn node_ids(node: &Node) -> Vec<String> {
    node.try_fetch::<Vec<NodeView>>("/v1/nodes")
        .map(|nodes| nodes.into_iter().map(|n| n.id).collect())
        .unwrap_or_default()
}

/// `/healthz` as the node answers it, serving (200) or draining (503).
fn healthz(node: &Node) -> Healthz {
    Node::body_of(&node.call("GET", "/healthz", None))
}

#[test]
fn a_gateway_made_on_one_node_serves_through_another_with_the_same_port_and_token() {
    let c = Cluster::start(2);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    assert_eq!(node_ids(a).len(), 2, "both nodes are live");
    let echo = EchoServer::start();
    let started = Instant::now();
    let (gw, token, port) = echo_gateway(&c, &echo);
    let path = format!("/v1/gateways/{gw}/destinations");
    let seen = wait_until(Duration::from_secs(1), || {
        b.try_fetch::<Vec<DestinationView>>(&path)
            .and_then(|ds| ds.first()?.cloud_port)
            == Some(port)
    });
    assert!(seen, "node B has the destination on port {port} within 1 s");
    tracing_note("propagation to B", started.elapsed());
    let view: Vec<DestinationView> = b.fetch(&path);
    let regions: Vec<&str> = view[0]
        .cloud_addresses
        .iter()
        .map(|a| a.region.as_str())
        .collect();
    assert_eq!(regions.len(), 2, "one cloud address per node: {view:?}");

    // A client given only A's address holds sessions to both.
    let client = Client::start(a, &[(&gw, &token)], &[]);
    let both = wait_until(Duration::from_secs(15), || {
        client_nodes(a, &gw) == {
            let mut v = vec![a.info.node_id.clone(), b.info.node_id.clone()];
            v.sort();
            v
        }
    });
    assert!(
        both,
        "sessions to both nodes: {:?}\n{}",
        a.clients(&gw),
        client.log()
    );
    // With --no-discover a client keeps to the nodes it was given.
    let pinned = Client::start(a, &[(&gw, &token)], &["--no-discover"]);
    let three = wait_until(Duration::from_secs(10), || a.clients(&gw).len() == 3);
    assert!(three, "{}", pinned.log());
    std::thread::sleep(Duration::from_secs(1));
    let now = a.clients(&gw);
    assert_eq!(now.len(), 3, "the pinned client stayed on A only: {now:?}");
    for node in [a, b] {
        let addr = node.cloud(port);
        let ok = wait_until(Duration::from_secs(5), || {
            echo_at(addr, b"hello").as_deref() == Some(b"hello".as_slice())
        });
        assert!(ok, "echo through {addr}");
    }
    // Stats cover every node, each tagged.
    let stats: GatewayStats = b.fetch(&format!("/v1/gateways/{gw}/stats"));
    assert_eq!(
        stats.clients, 2,
        "two client processes, counted once each: {stats:?}"
    );
    assert_eq!(stats.nodes.len(), 2, "{stats:?}");
    assert!(stats.total_connections >= 2, "{stats:?}");
}

fn tracing_note(what: &str, took: Duration) {
    eprintln!("{what}: {:.1} ms", took.as_secs_f64() * 1000.0);
}

#[test]
fn regenerating_the_token_on_one_node_closes_sessions_on_every_node() {
    let c = Cluster::start(2);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let echo = EchoServer::start();
    let (gw, _, _, mut client) = served(&c, &echo);
    let r = a.call("POST", &format!("/v1/gateways/{gw}/token"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let started = Instant::now();
    let gone = wait_until(Duration::from_secs(1), || b.own_clients(&gw).is_empty());
    assert!(gone, "node B closed the old token's sessions within 1 s");
    tracing_note("token change closed B's sessions", started.elapsed());
    // Every node refuses the old token: the client has nothing left and says why.
    let status = client.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{}", client.log());
    assert!(client.log().contains("bad_token"), "{}", client.log());
}

/// Sends one request on a new connection and reads the echo; true if it came back whole.
fn echo_ok(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let msg = b"ping-pong";
    if s.write_all(msg).is_err() {
        return false;
    }
    let mut got = [0u8; 9];
    s.read_exact(&mut got).is_ok() && &got == msg
}

#[test]
fn killing_a_node_under_traffic_leaves_the_others_serving() {
    let mut c = Cluster::start(2);
    let echo = EchoServer::start();
    let (_, _, port, client) = served(&c, &echo);
    let via_b = c.nodes[1].cloud(port);
    assert!(wait_until(Duration::from_secs(5), || echo_ok(
        via_b,
        Duration::from_secs(2)
    )));
    // Traffic through B while A dies.
    let mut held = TcpStream::connect(via_b).expect("connect through B");
    held.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let a_id = c.nodes[0].info.node_id.clone();
    c.nodes[0].kill9();
    let killed = Instant::now();
    let mut failures = 0;
    for i in 0..50 {
        if !echo_ok(via_b, Duration::from_secs(3)) {
            failures += 1;
        }
        let msg = [b'x', i];
        held.write_all(&msg).expect("the held connection survives");
        let mut got = [0u8; 2];
        held.read_exact(&mut got).expect("its echo comes back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        failures,
        0,
        "connections through B kept working\n{}",
        client.log()
    );
    let left = wait_until(Duration::from_secs(9), || {
        !node_ids(&c.nodes[1]).contains(&a_id)
    });
    assert!(left, "A left /v1/nodes within its lease");
    tracing_note("killed node left /v1/nodes after", killed.elapsed());
}

#[test]
fn sigterm_drains_a_node_without_resetting_anything() {
    let extra = |_| {
        vec![
            "--drain-grace".into(),
            "1".into(),
            "--drain-timeout".into(),
            "20".into(),
        ]
    };
    let mut c = Cluster::start_with(2, extra);
    let echo = EchoServer::start();
    let (_, _, port, client) = served(&c, &echo);
    let via_b = c.nodes[1].cloud(port);
    assert!(wait_until(Duration::from_secs(5), || echo_ok(
        via_b,
        Duration::from_secs(2)
    )));
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(via_b).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            s.write_all(b"hi").expect("write");
            let mut got = [0u8; 2];
            s.read_exact(&mut got).expect("echo");
            s
        })
        .collect();
    let b_health = c.nodes[1].api.clone();
    let pid = c.nodes[1].pid().expect("running");
    send_signal(pid as i32, libc::SIGTERM);
    let sent = Instant::now();
    assert!(
        client.wait_log("asks clients to move", Duration::from_secs(5)),
        "{}",
        client.log()
    );
    let h = b_health
        .get("/healthz")
        .expect("healthz answers while draining");
    assert_eq!(h.status, 503, "{}", h.body);
    assert_eq!(Node::body_of::<Healthz>(&h).status, ServingStatus::Draining);
    // After the grace, B's cloud port accepts nothing new; A still does.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(sent.elapsed()));
    assert!(
        TcpStream::connect_timeout(&via_b, Duration::from_secs(1)).is_err(),
        "closed after the grace"
    );
    assert!(
        echo_ok(c.nodes[0].cloud(port), Duration::from_secs(3)),
        "A keeps serving"
    );
    // What was open still works, then finishes; the node exits 0 once it has.
    for (i, s) in open.iter_mut().enumerate() {
        let msg = [b'o', i as u8];
        s.write_all(&msg).expect("open connection still writes");
        let mut got = [0u8; 2];
        s.read_exact(&mut got)
            .expect("open connection still echoes: nothing was reset");
    }
    drop(open);
    let status = c.nodes[1].terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0 after the drain:\n{}",
        c.nodes[1].log()
    );
    let b_id = c.nodes[1].info.node_id.clone();
    assert!(
        !node_ids(&c.nodes[0]).contains(&b_id),
        "B left the fleet when it stopped"
    );
}

#[test]
fn with_etcd_down_nodes_serve_refuse_writes_and_catch_up_afterwards() {
    let mut c = Cluster::start(2);
    let echo = EchoServer::start();
    let (gw, token, port, _client) = served(&c, &echo);
    c.etcd.kill_all();
    // Existing destinations keep serving on both nodes.
    for n in &c.nodes {
        assert!(
            echo_ok(n.cloud(port), Duration::from_secs(3)),
            "serving through {}",
            n.cloud_ip
        );
    }
    // Writes are refused, clearly, and nothing is made offline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = c.nodes[0].call("POST", "/v1/gateways", Some(json!({"name": "offline"})));
        if r.status == 503 || Instant::now() > deadline {
            break r;
        }
        assert_ne!(
            r.status, 201,
            "a write while etcd is down must not be acknowledged"
        );
    };
    assert_eq!(refused.status, 503, "{}", refused.body);
    let e: ErrorBody = Node::body_of(&refused);
    assert_eq!(e.error, ErrorCode::StoreUnavailable, "{e:?}");
    // A new valid session is accepted.
    let second = Client::start(&c.nodes[1], &[(&gw, &token)], &["--no-discover"]);
    assert!(
        second.wait_log("connected to node", Duration::from_secs(10)),
        "{}",
        second.log()
    );
    // A node restarted during the outage comes up from its copy and serves.
    c.nodes[1].restart();
    let h = healthz(&c.nodes[1]);
    assert_eq!(h.store, StoreStatus::Unreachable, "{h:?}");
    assert!(wait_until(Duration::from_secs(15), || echo_ok(
        c.nodes[1].cloud(port),
        Duration::from_secs(2)
    )));
    // etcd back: writes work and every node converges.
    c.etcd.restart_all();
    let made =
        wait_until(Duration::from_secs(20), || {
            c.nodes[1]
            .call("POST", &format!("/v1/gateways/{gw}/destinations"), Some(json!({
                "name": "after", "resource_host": "127.0.0.1", "resource_port": echo.addr.port()
            })))
            .status
            == 201
        });
    assert!(
        made,
        "writes work again once etcd is back:\n{}",
        c.nodes[1].log()
    );
    let path = format!("/v1/gateways/{gw}/destinations");
    assert!(
        wait_until(Duration::from_secs(5), || {
            c.nodes[0]
                .try_fetch::<Vec<DestinationView>>(&path)
                .is_some_and(|d| d.len() == 2)
        }),
        "node A converged"
    );
    assert!(
        c.nodes[0]
            .try_fetch::<Vec<GatewayView>>("/v1/gateways")
            .is_some_and(|g| g.len() == 1),
        "the refused write was never made"
    );
}

#[test]
fn a_node_cut_off_from_etcd_loses_a_gateway_deleted_meanwhile_even_after_a_compaction() {
    let mut c = Cluster::start(1);
    let alias = c.etcd.endpoints_via(&c.subnet.etcd_alias());
    c.add_node(&alias, Vec::new());
    let echo = EchoServer::start();
    let (gw, _, _) = echo_gateway(&c, &echo);
    let b = &c.nodes[1];
    let path = format!("/v1/gateways/{gw}");
    assert!(wait_until(Duration::from_secs(5), || b
        .call("GET", &path, None)
        .status
        == 200));
    let cut = Partition::etcd(&c.subnet.etcd_alias(), &c.etcd.client_ports());
    assert!(
        wait_until(Duration::from_secs(15), || healthz(b).store
            == StoreStatus::Unreachable),
        "B notices it is cut off: {:?}",
        healthz(b)
    );
    let r = c.nodes[0].call("DELETE", &path, None);
    assert_eq!(r.status, 204, "{}", r.body);
    // Churn, then compact, so B's watch cannot resume where it stopped.
    for i in 0..5 {
        c.nodes[0].create_gateway(&format!("churn{i}"));
    }
    c.etcd.compact();
    assert_eq!(
        b.call("GET", &path, None).status,
        200,
        "still B's copy while cut off"
    );
    drop(cut);
    let gone = wait_until(Duration::from_secs(20), || {
        b.call("GET", &path, None).status == 404
    });
    assert!(
        gone,
        "after the heal the gateway is gone on B too:\n{}",
        b.log()
    );
    assert!(b.log().contains("resync"), "B resynchronized: {}", b.log());
}

#[test]
fn parallel_creates_on_two_nodes_never_share_a_port() {
    let c = Cluster::start(2);
    let (gw, _) = c.nodes[0].create_gateway("ports");
    let path = format!("/v1/gateways/{gw}/destinations");
    assert!(wait_until(Duration::from_secs(5), || c.nodes[1]
        .call("GET", &path, None)
        .status
        == 200));
    let ports: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let node = &c.nodes[i % 2];
                let path = path.clone();
                s.spawn(move || {
                    let r = node.call("POST", &path, Some(json!({
                        "name": format!("d{i}"), "resource_host": "10.0.0.1", "resource_port": 80
                    })));
                    assert_eq!(r.status, 201, "create {i}: {}", r.body);
                    Node::body_of::<DestinationView>(&r)
                        .cloud_port
                        .expect("a port")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 50, "every port unique: {ports:?}");

    // One explicit port asked of both nodes at once: one wins, one is told it is taken.
    let base: u16 = c
        .ports
        .split('-')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("range");
    let wanted = (base..base + 100)
        .find(|p| !unique.contains(p))
        .expect("a free port");
    let answers: Vec<ApiResponse> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let node = &c.nodes[i];
                let path = path.clone();
                s.spawn(move || {
                    node.call(
                        "POST",
                        &path,
                        Some(json!({
                            "name": format!("x{i}"), "resource_host": "10.0.0.1",
                            "resource_port": 80, "cloud_port": wanted
                        })),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut codes: Vec<u16> = answers.iter().map(|r| r.status).collect();
    codes.sort_unstable();
    assert_eq!(codes, vec![201, 409], "{answers:?}");
    let loser = answers.iter().find(|r| r.status == 409).expect("a 409");
    let e: ErrorBody = Node::body_of(loser);
    assert_eq!(e.error, ErrorCode::PortInUse, "{e:?}");
}

/// Requests on new connections through `addr` until `stop`, each stamped with when it
/// started and whether it worked.
fn load(addr: SocketAddr, stop: &std::sync::atomic::AtomicBool) -> Vec<(Instant, bool)> {
    let mut out = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && out.len() < 20_000 {
        let at = Instant::now();
        out.push((at, echo_ok(addr, Duration::from_millis(800))));
        std::thread::sleep(Duration::from_millis(5));
    }
    out
}

#[test]
fn clients_killed_or_partitioned_under_load_stop_getting_connections_quickly() {
    let c = Cluster::start(2);
    let echo = EchoServer::start();
    let (gw, token, port) = echo_gateway(&c, &echo);
    let a = &c.nodes[0];
    let mut killed = Client::start(a, &[(&gw, &token)], &["--sessions", "1"]);
    let bind = c.subnet.client_ip(1);
    let partitioned = Client::start(
        a,
        &[(&gw, &token)],
        &["--sessions", "1", "--client-bind", &bind],
    );
    let _survivor = Client::start(a, &[(&gw, &token)], &["--sessions", "1"]);
    assert!(
        wait_until(Duration::from_secs(20), || a.clients(&gw).len() == 6),
        "3 clients on 2 nodes: {:?}\n{}",
        a.clients(&gw),
        partitioned.log()
    );
    let addr = a.cloud(port);
    assert!(wait_until(Duration::from_secs(5), || echo_ok(
        addr,
        Duration::from_secs(2)
    )));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (results, kill_at, cut_at) = std::thread::scope(|s| {
        let worker = s.spawn(|| load(addr, &stop));
        std::thread::sleep(Duration::from_millis(500));
        killed.kill9();
        let kill_at = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        // Stamped before the rules go in: a request started while they are applied
        // belongs to the partition, not to the kill.
        let cut_at = Instant::now();
        let cut = Partition::host(&bind);
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let results = worker.join().expect("load");
        drop(cut);
        (results, kill_at, cut_at)
    });
    let failed_after = |from: Instant, to: Instant, grace: Duration| {
        results
            .iter()
            .filter(|(at, ok)| !ok && *at >= from + grace && *at < to)
            .count()
    };
    let total = results.len();
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| {
            let (from, what) = if *t >= cut_at {
                (cut_at, "partition")
            } else {
                (kill_at, "kill")
            };
            format!(
                "{:+.2}s after the {what}",
                t.saturating_duration_since(from).as_secs_f64()
            )
        })
        .collect();
    eprintln!("{total} requests; failures: {failed:?}");
    assert!(total > 100, "enough load: {total}");
    assert_eq!(
        failed_after(kill_at, cut_at, Duration::from_secs(1)),
        0,
        "no failure 1 s after the kill"
    );
    let end = results.last().map(|(t, _)| *t).unwrap_or(cut_at);
    assert_eq!(
        failed_after(cut_at, end + Duration::from_secs(1), Duration::from_secs(3)),
        0,
        "no failure 3 s after the partition"
    );
}

#[test]
fn without_quorum_writes_are_refused_and_reads_still_answer() {
    let mut c = Cluster::start(1);
    let (gw, _) = c.nodes[0].create_gateway("q");
    c.etcd.kill(1);
    c.etcd.kill(2);
    let started = Instant::now();
    let r = c.nodes[0].call("POST", "/v1/gateways", Some(json!({"name": "no-quorum"})));
    assert_eq!(r.status, 503, "{}", r.body);
    let e: ErrorBody = Node::body_of(&r);
    assert_eq!(e.error, ErrorCode::StoreUnavailable, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused in bounded time"
    );
    assert_eq!(
        c.nodes[0]
            .call("GET", &format!("/v1/gateways/{gw}"), None)
            .status,
        200
    );
    c.etcd.restart_all();
    let back = wait_until(Duration::from_secs(20), || {
        c.nodes[0]
            .call("POST", "/v1/gateways", Some(json!({"name": "quorum-back"})))
            .status
            == 201
    });
    assert!(back, "writes work with quorum back:\n{}", c.nodes[0].log());
    let names: Vec<String> = c.nodes[0]
        .fetch::<Vec<GatewayView>>("/v1/gateways")
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert!(
        !names.contains(&"no-quorum".to_string()),
        "the refused write was never made: {names:?}"
    );
}

#[test]
fn a_wiped_etcd_never_wipes_a_node_and_reseed_puts_the_copy_back() {
    let mut c = Cluster::start(2);
    let echo = EchoServer::start();
    let (gw, _, port, _client) = served(&c, &echo);
    c.etcd.wipe();
    for n in &c.nodes {
        let detached = wait_until(Duration::from_secs(20), || {
            healthz(n).store == StoreStatus::Detached
        });
        assert!(
            detached,
            "the node notices etcd lost the cluster:\n{}",
            n.log()
        );
        assert!(
            n.log().contains("holds no sg cluster"),
            "and says so:\n{}",
            n.log()
        );
        assert!(
            n.log().contains("--etcd-reseed"),
            "with what to do:\n{}",
            n.log()
        );
        assert_eq!(
            n.call("GET", &format!("/v1/gateways/{gw}"), None).status,
            200,
            "copy kept"
        );
        assert!(echo_ok(n.cloud(port), Duration::from_secs(3)), "and served");
    }
    let r = c.nodes[1].call("POST", "/v1/gateways", Some(json!({"name": "nowhere"})));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        Node::body_of::<ErrorBody>(&r).error,
        ErrorCode::StoreUnavailable
    );

    // An operator reseeds from node A; B follows without being touched.
    c.nodes[0].add_args(&["--etcd-reseed"]);
    c.nodes[0].restart();
    let writable = wait_until(Duration::from_secs(20), || {
        c.nodes[0]
            .call(
                "POST",
                "/v1/gateways",
                Some(json!({"name": "after-reseed"})),
            )
            .status
            == 201
    });
    assert!(
        writable,
        "the reseeded cluster takes writes:\n{}",
        c.nodes[0].log()
    );
    let follows = wait_until(Duration::from_secs(20), || {
        c.nodes[1]
            .try_fetch::<Vec<GatewayView>>("/v1/gateways")
            .is_some_and(|g| g.len() == 2)
            && healthz(&c.nodes[1]).store == StoreStatus::Synced
    });
    assert!(
        follows,
        "B is back in the cluster, in sync:\n{}",
        c.nodes[1].log()
    );
}

#[test]
fn a_node_that_does_not_fit_the_cluster_is_refused_with_the_reason() {
    let c = Cluster::start(1);
    let token = c.nodes[0].token();
    let endpoints = c.etcd.endpoints();
    let ip = c.subnet.node_ip(5);
    // Another cloud-port range.
    let opts = sg_e2e::cluster::node_options(&endpoints, "r9", &ip, "30000-30099", Some(&token));
    let (code, out) = sg_e2e::cluster::refused_start(&opts);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("--cloud-ports") && out.contains(&c.ports),
        "{out}"
    );
    // A wrong admin token.
    let mut opts = sg_e2e::cluster::node_options(&endpoints, "r9", &ip, &c.ports, None);
    opts.extra
        .extend(["--admin-token".into(), "sga_not_the_clusters_token".into()]);
    let (code, out) = sg_e2e::cluster::refused_start(&opts);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--admin-token"), "{out}");
    // A cluster whose data format is newer than this build reads.
    let record = c.etcd.ctl(&["get", "/sg/cluster", "--print-value-only"]);
    let mut v: serde_json::Value = serde_json::from_str(record.trim()).expect("cluster record");
    v["format"] = json!(99);
    c.etcd.ctl(&["put", "/sg/cluster", &v.to_string()]);
    let opts = sg_e2e::cluster::node_options(&endpoints, "r9", &ip, &c.ports, Some(&token));
    let (code, out) = sg_e2e::cluster::refused_start(&opts);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("data format 99"), "{out}");
    // The node already in the cluster kept serving.
    assert_eq!(c.nodes[0].call("GET", "/healthz", None).status, 200);
}

#[test]
fn the_concurrency_limit_counts_connections_on_every_node() {
    let c = Cluster::start(2);
    let echo = EchoServer::start();
    let (gw, token, port) = echo_gateway(&c, &echo);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let r = a.call(
        "PUT",
        "/v1/plan",
        Some(json!({"max_connections_per_gateway": 4})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let _client = Client::start(a, &[(&gw, &token)], &[]);
    assert!(wait_until(Duration::from_secs(15), || client_nodes(a, &gw)
        .len()
        == 2));
    assert!(wait_until(Duration::from_secs(5), || echo_ok(
        b.cloud(port),
        Duration::from_secs(2)
    )));
    let hold = |addr: SocketAddr| {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(b"hi").expect("write");
        let mut got = [0u8; 2];
        s.read_exact(&mut got).map(|_| s)
    };
    let held: Vec<TcpStream> = (0..3)
        .map(|_| hold(a.cloud(port)).expect("3 of 4 through A"))
        .collect();
    // B learns A's count within about a second.
    let counted = wait_until(Duration::from_secs(3), || {
        b.try_fetch::<GatewayStats>(&format!("/v1/gateways/{gw}/stats"))
            .is_some_and(|s| s.active_connections == 3)
    });
    assert!(counted, "the cluster-wide figure shows A's connections");
    std::thread::sleep(Duration::from_millis(1200));
    let fourth = hold(b.cloud(port)).expect("the 4th, through B, fits");
    assert!(
        refused_to(b.cloud(port)),
        "the 5th, through B, is over the cluster-wide limit"
    );
    drop(held);
    drop(fourth);
    let freed = wait_until(Duration::from_secs(5), || {
        echo_ok(b.cloud(port), Duration::from_secs(2))
    });
    assert!(freed, "room again once A's connections closed");
}

/// Whether the node closes a connection to `addr` without carrying it.
fn refused_to(addr: SocketAddr) -> bool {
    let Ok(s) = TcpStream::connect(addr) else {
        return true;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    refused(s, b"over?")
}

#[test]
fn a_node_talks_to_etcd_over_mutual_tls() {
    use sg_e2e::cluster::{EtcdCluster, EtcdTls, Subnet};
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    openssl_ca(d, "etcd-ca", "etcd test CA");
    openssl_cert(d, "etcd-server", "etcd-ca", CertUse::Server);
    openssl_cert(d, "etcd-client", "etcd-ca", CertUse::Client);
    let tls = EtcdTls {
        ca: d.join("etcd-ca.pem"),
        server_cert: d.join("etcd-server.pem"),
        server_key: d.join("etcd-server.key"),
        client_cert: d.join("etcd-client.pem"),
        client_key: d.join("etcd-client.key"),
    };
    let subnet = Subnet::take();
    let etcd = EtcdCluster::start_with(1, subnet, Some(tls.clone()));
    let mut opts = sg_e2e::cluster::node_options(
        &etcd.endpoints(),
        "r1",
        &subnet.node_ip(0),
        &sg_e2e::cluster::cluster_ports(),
        None,
    );
    opts.extra.extend([
        "--etcd-ca".into(),
        tls.ca.display().to_string(),
        "--etcd-cert".into(),
        tls.client_cert.display().to_string(),
        "--etcd-key".into(),
        tls.client_key.display().to_string(),
    ]);
    let node = Node::start_with(opts);
    let (gw, _) = node.create_gateway("over-tls");
    let stored = etcd.ctl(&["get", &format!("/sg/config/gw/{gw}"), "--print-value-only"]);
    assert!(stored.contains(&gw), "the gateway is in etcd: {stored}");
    assert_eq!(healthz(&node).store, StoreStatus::Synced);
}

/// Not a test but a measurement (run with `-- --ignored --nocapture`): how long a change
/// made through node A takes to be visible through node B's API, and how much of that the
/// API round trips themselves cost. No threshold: the figures go to the closing notes.
#[test]
#[ignore]
fn measure_propagation_between_nodes() {
    let c = Cluster::start(2);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (gw, _) = a.create_gateway("p0");
    let path = format!("/v1/gateways/{gw}");
    assert!(wait_until(Duration::from_secs(5), || b
        .call("GET", &path, None)
        .status
        == 200));
    let (mut seen, mut whole, mut reads, mut first_read) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for i in 1..=200 {
        let name = format!("p{i}");
        let sent = Instant::now();
        let r = a.call("PATCH", &path, Some(json!({ "name": name })));
        assert_eq!(r.status, 200, "{}", r.body);
        let acked = Instant::now();
        for attempt in 0.. {
            let t = Instant::now();
            let got = b.call("GET", &path, None);
            reads.push(t.elapsed());
            if got
                .into_typed::<GatewayView>()
                .is_ok_and(|g| g.name == name)
            {
                seen.push(acked.elapsed());
                whole.push(sent.elapsed());
                first_read += usize::from(attempt == 0);
                break;
            }
            assert!(acked.elapsed() < Duration::from_secs(5), "never arrived");
        }
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
    };
    eprintln!(
        "over {} changes: visible on B after A's answer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         ({first_read} already on B's first read; one GET on B costs p50 {:.1} ms); from sending \
         the change to A to seeing it on B p50 {:.1} ms, p99 {:.1} ms",
        seen.len(),
        pct(&mut seen, 0.5),
        pct(&mut seen, 0.99),
        pct(&mut seen, 1.0),
        pct(&mut reads, 0.5),
        pct(&mut whole, 0.5),
        pct(&mut whole, 0.99)
    );
}

#[test]
fn an_etcd_restored_from_a_backup_brings_every_node_back_to_it() {
    let mut c = Cluster::start(2);
    let (kept, _) = c.nodes[0].create_gateway("in-the-backup");
    let dir = tempfile::tempdir().expect("temp dir");
    let backup = dir.path().join("etcd.snapshot");
    c.etcd.snapshot(&backup);
    let (later, _) = c.nodes[1].create_gateway("after-the-backup");
    for n in &c.nodes {
        let path = format!("/v1/gateways/{later}");
        assert!(wait_until(Duration::from_secs(5), || n
            .call("GET", &path, None)
            .status
            == 200));
    }
    c.etcd.restore(&backup);
    for n in &c.nodes {
        let back = wait_until(Duration::from_secs(20), || {
            n.call("GET", &format!("/v1/gateways/{later}"), None).status == 404
        });
        assert!(back, "the node follows the restored etcd:\n{}", n.log());
        assert!(
            n.log().contains("restored from a backup"),
            "and says why:\n{}",
            n.log()
        );
        let path = format!("/v1/gateways/{kept}");
        assert_eq!(
            n.call("GET", &path, None).status,
            200,
            "what the backup holds stays"
        );
    }
    // The copy follows the restore first; writes reopen once the replicator has resynced
    // and marked the store synced again, a moment later (503 store_unavailable meanwhile).
    let mut r = c.nodes[0].call("GET", "/healthz", None);
    let accepted = wait_until(Duration::from_secs(10), || {
        r = c.nodes[0].call(
            "POST",
            "/v1/gateways",
            Some(json!({"name": "after-restore"})),
        );
        r.status != 503
    });
    assert!(accepted, "writes reopen on the restored etcd: {}", r.body);
    assert_eq!(
        r.status, 201,
        "writes work on the restored etcd: {}",
        r.body
    );
}
