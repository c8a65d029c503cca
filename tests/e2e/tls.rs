//! The tunnel port speaks TLS 1.2 and 1.3 and nothing older (F2).

use sg_e2e::*;
use sg_proto::tls as sgtls;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn handshake_with(
    node: &Node,
    version: &'static rustls::SupportedProtocolVersion,
) -> rustls::ProtocolVersion {
    let sgtls::ServerTrust::Roots(cas) = node.trust() else {
        unreachable!("the harness trusts the node's CA")
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in cas {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(sgtls::provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), sgtls::server_name("127.0.0.1").unwrap())
            .unwrap();
    let mut tcp = TcpStream::connect(node.tunnel()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake completes");
    }
    conn.protocol_version().expect("negotiated")
}

#[test]
fn tls_1_2_and_1_3_handshakes_complete() {
    let node = Node::start();
    assert_eq!(
        handshake_with(&node, &rustls::version::TLS12),
        rustls::ProtocolVersion::TLSv1_2
    );
    assert_eq!(
        handshake_with(&node, &rustls::version::TLS13),
        rustls::ProtocolVersion::TLSv1_3
    );
}

/// A minimal TLS 1.1 ClientHello, as an old client would send it.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
                  // Suites the node does support, so the version is the only thing wrong.
    body.extend_from_slice(&[0x00, 0x06, 0xC0, 0x2B, 0xC0, 0x2F, 0xC0, 0x13]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x02, (hs.len() >> 8) as u8, hs.len() as u8];
    record.extend_from_slice(&hs);
    record
}

#[test]
fn tls_1_1_is_refused_with_a_fatal_alert() {
    let node = Node::start();
    let mut tcp = TcpStream::connect(node.tunnel()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&tls11_client_hello()).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    // An alert record (never a ServerHello), level fatal, then the connection closes.
    assert!(answer.len() >= 7, "the node answered: {answer:?}");
    assert_eq!(
        answer[0], 0x15,
        "an alert record, not a ServerHello: {answer:?}"
    );
    assert_eq!(answer[5], 2, "a fatal alert: {answer:?}");
    assert!(
        [40u8, 70].contains(&answer[6]),
        "handshake_failure or protocol_version: {answer:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || node
            .log()
            .contains("TLS handshake failed: peer is incompatible")),
        "{}",
        node.log()
    );
}

/// Runs `sg-client` to its exit (at most 60 s): (exit code, everything it printed).
fn client_until_exit(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("client.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(bin("sg-client"))
        .args(args)
        .args(["--no-ui", "--reconnect", "1"])
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(60), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (
        status.and_then(|s| s.code()),
        std::fs::read_to_string(log).unwrap_or_default(),
    )
}

#[test]
fn a_client_refuses_a_node_it_cannot_verify() {
    let node = Node::start();
    let stranger = Node::start();
    let (gw, token) = node.create_gateway("verify");
    let server = node.tunnel();
    let base = [
        gw.as_str(),
        "-t",
        token.as_str(),
        "--server",
        server.as_str(),
    ];
    let wrong_ca = stranger.ca_path().display().to_string();
    for trust in [
        ["--ca", wrong_ca.as_str()],
        ["--fingerprint", stranger.info.fingerprint.as_str()],
    ] {
        let args: Vec<&str> = base.iter().chain(trust.iter()).copied().collect();
        let (code, log) = client_until_exit(&args);
        assert_eq!(code, Some(1), "gives up with a failure: {log}");
        assert!(log.contains("certificate"), "says why: {log}");
        assert!(!log.contains(&token[4..]), "never logs the token");
        assert!(node.clients(&gw).is_empty(), "no session was made");
    }
    // The right fingerprint is accepted.
    let c = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1), "{}", c.log());
}

#[test]
fn first_start_makes_the_ca_and_a_private_admin_token_and_says_so_once() {
    use std::os::unix::fs::PermissionsExt;
    let mut node = Node::start();
    let mode = std::fs::metadata(node.dir.join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token is owner-only");
    assert!(node.dir.join("ca.pem").exists());
    let said = |node: &Node, what: &str| node.log().lines().filter(|l| l.contains(what)).count();
    assert_eq!(said(&node, "ca.pem"), 1, "{}", node.log());
    assert_eq!(said(&node, "admin.token"), 1, "{}", node.log());
    node.restart();
    assert_eq!(
        (said(&node, "ca.pem"), said(&node, "admin.token")),
        (1, 1),
        "a restart reuses them quietly: {}",
        node.log()
    );
}
