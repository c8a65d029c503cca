//! Bytes through the tunnel: echo, a 256 MiB transfer each way, and flow control that keeps
//! 199 streams moving while a 200th never reads.

use sg_e2e::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

#[test]
fn echo_through_the_tunnel() {
    let t = EchoTunnel::start("echo", &[]);
    let got = echo_once(t.port, b"hello through sg").expect("echo");
    assert_eq!(got, b"hello through sg");
}

#[test]
fn a_256_mib_transfer_each_way_arrives_intact() {
    const SIZE: usize = 256 * 1024 * 1024;
    let t = EchoTunnel::start("bulk", &[]);
    let port = t.port;

    let data = pattern(SIZE, 42);
    let sent_sum = sha256(&data);
    let mut conn = connect(port);
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let upload = std::thread::spawn(move || {
        for chunk in data.chunks(1024 * 1024) {
            writer.write_all(chunk).expect("upload");
        }
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    // Everything sent to the private service comes back through the tunnel.
    let (got_sum, got_len) = sha256_of(&mut conn).expect("download");
    upload.join().expect("uploader");
    assert_eq!(got_len, SIZE as u64, "all bytes came back");
    assert_eq!(got_sum, sent_sum, "and they are the same bytes");
}

#[test]
fn two_hundred_streams_finish_while_one_never_reads() {
    const STREAMS: usize = 200;
    const PER_STREAM: usize = 512 * 1024;
    // One session, so the stalled stream and the 199 others share its window.
    let t = EchoTunnel::start("flow", &["--sessions", "1"]);
    let port = t.port;

    // The stalled stream: writes far more than any window and never reads its echo.
    let stalled = connect(port);
    let mut stalled_writer = stalled.try_clone().unwrap();
    std::thread::spawn(move || {
        let block = vec![7u8; 64 * 1024];
        for _ in 0..(64 * 16) {
            if stalled_writer.write_all(&block).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));

    let workers: Vec<_> = (0..STREAMS - 1)
        .map(|i| {
            std::thread::spawn(move || {
                let data = pattern(PER_STREAM, i as u64 + 1);
                let mut conn = connect(port);
                let mut w = conn.try_clone().unwrap();
                let expected = sha256(&data);
                let t = std::thread::spawn(move || {
                    w.write_all(&data).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut got = Vec::with_capacity(PER_STREAM);
                conn.read_to_end(&mut got).expect("echo back");
                t.join().unwrap();
                sha256(&got) == expected
            })
        })
        .collect();
    let ok = workers
        .into_iter()
        .map(|w| w.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, STREAMS - 1, "every reading stream finished intact");
    drop(stalled);
}

#[test]
fn a_private_service_that_is_down_closes_the_cloud_connection_with_a_reason() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("down");
    let (_, up_port) = node.create_destination(&gw, "up", echo.addr);
    // Nothing listens on this port.
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_, dead_port) = node.create_destination(&gw, "down", dead);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(up_port));

    let mut conn = connect(dead_port);
    let _ = conn.write_all(b"anyone?");
    let mut buf = [0u8; 16];
    let n = conn.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the cloud connection is closed, nothing forwarded");
    assert!(
        client.wait_log("cannot reach down at", Duration::from_secs(10)),
        "the client says why:\n{}",
        client.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || node
            .events(&gw)
            .iter()
            .any(|e| e.kind == EventKind::ConnectFailed)),
        "the node records the failure as an event"
    );
    // Everything else keeps working.
    assert_eq!(
        echo_once(up_port, b"still here").as_deref(),
        Some(&b"still here"[..])
    );
}
