//! Cloud destinations (F29): a private application beside the client reaches a cloud
//! resource through the client's `client_port`; the node dials only the resource an
//! admin configured, whatever a client asks for.

use serde_json::json;
use sg_api::clients::GatewayStats;
use sg_api::destinations::{DestinationType, DestinationView, ProxySetting};
use sg_api::ErrorBody;
use sg_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Creates a cloud destination; the API's answer.
fn cloud_destination(node: &Node, gw: &str, body: serde_json::Value) -> ApiResponse {
    node.call(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(body),
    )
}

fn echoes_at(port: u16, msg: &[u8]) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|s| echoes(s, msg))
}

/// The port of a `host:port` or `https://host:port` address.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("an address with a port")
}

#[test]
fn a_private_application_reaches_a_cloud_resource_through_the_client_port() {
    let resource = EchoServer::start();
    let node = Node::start();
    let (gw, token) = node.create_gateway("cloud-dest");
    let client_port = free_port();
    let r = cloud_destination(
        &node,
        &gw,
        json!({ "name": "cloud-echo", "type": "cloud", "resource_host": "127.0.0.1",
                "resource_port": resource.addr.port(), "client_port": client_port }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let d: DestinationView = Node::body_of(&r);
    assert_eq!(d.kind, DestinationType::Cloud);
    assert_eq!(d.client_port, Some(client_port));
    assert!(d.cloud_port.is_none(), "no cloud port: {d:?}");
    let path = format!("/v1/gateways/{gw}/destinations/{}", d.id);
    // A second one answers 10 bytes to 1000, to tell the directions apart.
    let counter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let counter_port = counter.local_addr().unwrap().port();
    let answering = std::thread::spawn(move || {
        let (mut s, _) = counter.accept().unwrap();
        let mut got = [0u8; 1000];
        s.read_exact(&mut got).unwrap();
        s.write_all(b"0123456789").unwrap();
    });
    let counter_client_port = free_port();
    let r = cloud_destination(
        &node,
        &gw,
        json!({ "name": "counter", "type": "cloud", "resource_host": "127.0.0.1",
                "resource_port": counter_port, "client_port": counter_client_port }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mut client = Client::start_console(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));
    for port in [client_port, counter_client_port] {
        assert!(
            client.wait_log(
                &format!("client port 127.0.0.1:{port} listening"),
                Duration::from_secs(10)
            ),
            "{}",
            client.log()
        );
    }
    // Bytes from the requesting application are "transmitted", the resource's "received".
    let mut s = connect(counter_client_port);
    s.write_all(&[7u8; 1000]).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"0123456789", "{}\n{}", client.log(), node.log());
    drop(s);
    answering.join().unwrap();
    client.send_line("s");
    assert!(
        client.wait_log(
            "total: transmitted 1000 bytes, received 10 bytes",
            Duration::from_secs(5)
        ),
        "{}",
        client.log()
    );
    let stats = || node.fetch::<GatewayStats>(&format!("/v1/gateways/{gw}/stats"));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let s = stats();
            s.bytes_to_resources == 1000 && s.bytes_to_cloud == 10
        }),
        "{:?}",
        stats()
    );

    assert!(
        wait_until(Duration::from_secs(10), || echoes_at(
            client_port,
            b"hello cloud"
        )),
        "the application reaches the cloud resource: {}\n{}",
        client.log(),
        node.log()
    );
    assert!(resource.accepted() >= 1);

    // Console `r` lists the listener.
    client.send_line("r");
    let listed = format!(
        "127.0.0.1:{client_port} -> 127.0.0.1:{} (cloud destination",
        resource.addr.port()
    );
    assert!(
        client.wait_log(&listed, Duration::from_secs(5)),
        "{}",
        client.log()
    );

    // IP rules apply to the application's address.
    let r = node.call(
        "PATCH",
        &path,
        Some(json!({ "ip_rules": [{ "cidr": "198.18.0.0/15" }] })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        wait_until(Duration::from_secs(5), || {
            refused(connect(client_port), b"x")
        }),
        "an address outside the rules is refused"
    );
    assert!(wait_until(Duration::from_secs(5), || has_event(
        &node,
        &gw,
        EventKind::IpRefused
    )));
    let r = node.call("PATCH", &path, Some(json!({ "ip_rules": [] })));
    assert_eq!(r.status, 200, "{}", r.body);

    // The idle timeout applies: an idle connection is closed after 2-3 s.
    let r = node.call("PATCH", &path, Some(json!({ "idle_timeout_secs": 2 })));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut idle = connect(client_port);
    assert!(echoes(idle.try_clone().unwrap(), b"once"));
    let quiet = Instant::now();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    let waited = quiet.elapsed();
    assert_eq!(n, 0, "closed, not answered");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );

    // Deleting the destination closes the client port.
    let r = node.call("DELETE", &path, None);
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    assert!(
        wait_until(Duration::from_secs(5), || TcpStream::connect((
            "127.0.0.1",
            client_port
        ))
        .is_err()),
        "the client port is closed"
    );
}

#[test]
fn a_client_can_make_the_node_dial_nothing_but_a_configured_cloud_resource() {
    // An on-premises destination's service, and a cloud destination's resource: the node
    // may dial only the second, and only for the destination that names it.
    let private = EchoServer::start();
    let cloud = EchoServer::start();
    let node = Node::start();
    let (gw, token) = node.create_gateway("cloud-only-configured");
    let (on_prem, _) = node.create_destination(&gw, "private", private.addr);
    let r = cloud_destination(
        &node,
        &gw,
        json!({ "name": "c", "type": "cloud", "resource_host": "127.0.0.1",
                "resource_port": cloud.addr.port(), "client_port": free_port() }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cloud_id = Node::body_of::<DestinationView>(&r).id;
    // A hand-made client opens streams naming what it likes.
    let (other_gw, _) = node.create_gateway("another");
    let r = cloud_destination(
        &node,
        &other_gw,
        json!({ "name": "theirs", "type": "cloud", "resource_host": "127.0.0.1",
                "resource_port": private.addr.port(), "client_port": free_port() }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let theirs = Node::body_of::<DestinationView>(&r).id;
    let answers = raw_client::open_streams(
        &node,
        &gw,
        &token,
        &[
            &on_prem,
            &theirs,
            &format!("{}", private.addr),
            "ds_unknown",
            &cloud_id,
        ],
    );
    for (asked, answer) in answers.iter().take(4) {
        assert!(
            answer.starts_with("refused:"),
            "{asked}: {answer}\n{}",
            node.log()
        );
    }
    assert_eq!(
        answers[4].1, "carried: hello",
        "the configured resource is reached"
    );
    assert_eq!(
        private.accepted(),
        0,
        "the node never dialled the private service"
    );
    assert_eq!(cloud.accepted(), 1);
    assert!(wait_until(Duration::from_secs(5), || has_event(
        &node,
        &gw,
        EventKind::StreamRefused
    )));
}

#[test]
fn cloud_destinations_refuse_fields_that_do_not_apply_and_a_busy_client_port_is_retried() {
    let resource = EchoServer::start();
    let node = Node::start();
    let (gw, token) = node.create_gateway("cloud-bad-input");
    let base = |port: u16| {
        json!({ "name": "c", "type": "cloud", "resource_host": "127.0.0.1",
                "resource_port": resource.addr.port(), "client_port": port })
    };
    let used = free_port();
    let r = cloud_destination(&node, &gw, base(used));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = Node::body_of::<DestinationView>(&r).id;
    let mut bad = Vec::new();
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base(free_port());
        b[k] = v;
        b
    };
    bad.push((with("proxy_protocol", json!("v2")), "proxy_protocol"));
    bad.push((with("host_rewrite", json!(true)), "host_rewrite"));
    bad.push((with("cloud_port", json!(20000)), "cloud_port"));
    bad.push((with("client_port", json!(0)), "client_port"));
    bad.push((with("client_port", json!(70000)), "client_port"));
    bad.push((with("client_port", json!(used)), "client_port"));
    bad.push((
        with("resource_port", json!(port_of(&node.info.api))),
        "resource_port",
    ));
    bad.push((
        with("resource_port", json!(port_of(&node.info.tunnel))),
        "resource_port",
    ));
    bad.push((with("type", json!("sideways")), "type"));
    let mut missing = base(0);
    missing.as_object_mut().unwrap().remove("client_port");
    bad.push((missing, "client_port"));
    for (body, field) in bad {
        let r = cloud_destination(&node, &gw, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let e: ErrorBody = Node::body_of(&r);
        assert!(
            e.message.contains(field),
            "{body}: the message names {field}: {e:?}"
        );
    }
    let path = format!("/v1/gateways/{gw}/destinations/{id}");
    let r = node.call("PATCH", &path, Some(json!({ "type": "on_premises" })));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = node.call("PATCH", &path, Some(json!({ "proxy_protocol": "v1" })));
    assert_eq!(r.status, 400, "{}", r.body);
    let listed: Vec<DestinationView> = node.fetch(&format!("/v1/gateways/{gw}/destinations"));
    assert_eq!(listed.len(), 1, "nothing else stored: {listed:?}");
    assert_eq!(
        node.fetch::<DestinationView>(&path).proxy_protocol,
        ProxySetting::Off
    );

    // On the client's host another program holds one client port: the client says why
    // and serves the other one.
    // The second cloud destination comes from the command line.
    let free = free_port();
    // `--json` prints what the node answered.
    let created: DestinationView = serde_json::from_str(&node.sgctl_ok(&[
        "--json",
        "destination",
        "create",
        &gw,
        "--name",
        "from-sgctl",
        "--type",
        "cloud",
        "--resource",
        &format!("127.0.0.1:{}", resource.addr.port()),
        "--client-port",
        &free.to_string(),
    ]))
    .expect("sgctl --json prints the destination");
    assert_eq!(created.kind, DestinationType::Cloud, "{created:?}");
    assert_eq!(created.client_port, Some(free), "{created:?}");
    let table = node.sgctl_ok(&["destination", "list", &gw]);
    assert!(table.contains(&format!("client port {free}")), "{table}");
    let squatter = std::net::TcpListener::bind(("127.0.0.1", used)).expect("hold the port");
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));
    assert!(
        wait_until(Duration::from_secs(10), || echoes_at(free, b"still served")),
        "{}",
        client.log()
    );
    assert!(
        client.wait_log(
            &format!("cannot listen on client port 127.0.0.1:{used}"),
            Duration::from_secs(5)
        ),
        "{}",
        client.log()
    );
    // Freed, it is taken up on the next retry.
    drop(squatter);
    assert!(
        wait_until(Duration::from_secs(15), || echoes_at(used, b"now too")),
        "{}",
        client.log()
    );
}

/// A client built from the wire crate, to open streams a real client would not.
mod raw_client {
    use sg_e2e::Node;
    use sg_proto::driver::{self, DriverConfig};
    use sg_proto::frame::{Hello, OpenStream};
    use sg_proto::mux::Role;
    use sg_proto::pump::{Pump, PumpOutcome};
    use sg_proto::version::{ProtocolVersion, PRODUCT_VERSION};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Opens one stream per destination id, sends "hello" on each, and says what came
    /// of it: `refused: ...` or `carried: <what came back>`.
    pub fn open_streams(node: &Node, gw: &str, token: &str, ids: &[&str]) -> Vec<(String, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let config = sg_proto::tls::client_config(node.trust(), None).expect("TLS config");
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(node.tunnel())
                .await
                .expect("tunnel port");
            let name = sg_proto::tls::server_name("127.0.0.1").expect("name");
            let io = tls.connect(name, tcp).await.expect("TLS to the node");
            let hello = Hello {
                protocol: ProtocolVersion::current(),
                client_version: PRODUCT_VERSION.into(),
                client_id: "cl_raw".into(),
                hostname: "raw".into(),
                gateway_id: gw.into(),
                token: token.into(),
            };
            let (_, est) = sg_proto::handshake::client(io, hello)
                .await
                .expect("welcome");
            let (handle, _events, session) =
                driver::start(est.io, est.leftover, DriverConfig::new(Role::Client));
            tokio::spawn(session);
            let mut out = Vec::new();
            for id in ids {
                let stream = handle
                    .open_stream(OpenStream {
                        destination_id: id.to_string(),
                        peer: "127.0.0.1:40000".into(),
                        connection: 1,
                        authorities: Vec::new(),
                        local: None,
                    })
                    .expect("open");
                let (mut app, ours) = tokio::io::duplex(4096);
                let pump = tokio::spawn(Pump::new(ours, stream, None));
                let _ = app.write_all(b"hello").await;
                let mut got = [0u8; 5];
                let read = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    app.read_exact(&mut got),
                )
                .await;
                drop(app);
                let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), pump)
                    .await
                    .ok()
                    .and_then(Result::ok);
                let answer = match (read, outcome) {
                    (Ok(Ok(_)), _) => format!("carried: {}", String::from_utf8_lossy(&got)),
                    (_, Some(PumpOutcome::ResetByPeer(r))) => {
                        format!("refused: {:?} {}", r.code, r.message)
                    }
                    (_, other) => format!("unexpected: {other:?}"),
                };
                out.push((id.to_string(), answer));
            }
            out
        })
    }
}
