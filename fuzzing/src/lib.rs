//! The bodies of sg's fuzz targets, in one place: `fuzz/` (cargo-fuzz, nightly) calls them
//! with generated inputs, and `tests/corpus.rs` replays the committed corpus through them
//! on stable in every `cargo test`. Each must return normally on any input: a panic is a
//! bug (in sg, or in a property checked here), and every crash found becomes a file of the
//! corpus so it is replayed from then on.

use bytes::BytesMut;
use sg_proto::codec::{encode_frame, FrameCodec};
use sg_proto::limits::MAX_HELLO_LEN;
use sg_proto::mux::{Mux, MuxConfig, Role};
use sg_proto::transmit::Transmit;
use tokio_util::codec::Decoder;

/// A target's body: any input, no panic.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/NAME.rs` and `fuzz/corpus/NAME/` call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame_decoder", frame_decoder),
    ("handshake", handshake),
    ("mux", mux),
    ("acl", acl),
    ("http_gate", http_gate),
    ("config", config),
    ("api_json", api_json),
];

/// Decodes frames until the input runs out or is refused; every decoded frame must
/// encode back to bytes that decode to the same frame.
pub fn frame_decoder(data: &[u8]) {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let mut again = BytesMut::new();
        if encode_frame(&frame, &mut again).is_ok() {
            let back = FrameCodec::default().decode(&mut again);
            assert!(
                matches!(&back, Ok(Some(f)) if *f == frame),
                "{frame:?} does not survive a round trip: {back:?}"
            );
            assert!(again.is_empty(), "{frame:?} encodes to trailing bytes");
        }
    }
}

/// What an unauthenticated peer's first frame can be, under the node's pre-auth cap, and
/// what a node's answer can be to a client.
pub fn handshake(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(frame)) = FrameCodec::with_max_frame(MAX_HELLO_LEN).decode(&mut buf) {
        let _ = sg_proto::handshake::expect_hello(frame);
    }
    let mut buf = BytesMut::from(data);
    if let Ok(Some(frame)) = FrameCodec::default().decode(&mut buf) {
        let _ = sg_proto::handshake::expect_welcome(frame);
    }
}

/// Arbitrary frame sequences into a multiplexer (the first byte picks node or client),
/// with its events and output drained after each frame. A protocol error ends the
/// session, as it does in the driver.
pub fn mux(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let role = if first & 1 == 0 {
        Role::Node
    } else {
        Role::Client
    };
    let mut mux = Mux::new(role, MuxConfig { max_streams: 64 });
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(rest);
    let mut out = Transmit::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let stream = frame.stream();
        if mux.handle_frame(frame).is_err() {
            return;
        }
        while mux.poll_event().is_some() {}
        // The local side consumes what arrived and answers, as a pump would.
        if first & 2 == 0 {
            mux.consumed(stream, 1024);
        }
        if first & 4 == 0 {
            let _ = mux.send_data(stream, bytes::Bytes::from_static(b"pong"));
        }
        let _ = mux.poll_transmit(&mut out, 64 * 1024);
        let len = out.len();
        out.advance(len);
    }
}

/// ACL text: a file of rules, each rule re-read from its own rendering to the same rule,
/// then decisions on hosts and paths taken from the input.
pub fn acl(data: &[u8]) {
    use sg_proto::acl::{decide_path, parse_file, parse_ip_loose, parse_rule, Acl, DefaultPolicy};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let probe = lines.next().unwrap_or("");
    if let Ok(rules) = parse_file(&text) {
        for rule in &rules {
            let again = parse_rule(&rule.to_string());
            assert_eq!(again.as_ref(), Ok(rule), "{rule} does not read back");
        }
        let acl = Acl::new(rules.clone());
        let (host, port) = probe.rsplit_once(':').unwrap_or((probe, "80"));
        let port = port.parse().unwrap_or(80);
        let ip = parse_ip_loose(host);
        let _ = acl.decide_at(host, ip, port, true, DefaultPolicy::Destinations);
        let _ = acl.decide_at(host, ip, port, false, DefaultPolicy::Deny);
        let _ = decide_path(&rules, probe);
    }
    for line in lines {
        let _ = parse_ip_loose(line);
    }
}

/// The HTTP gate's reading of a request head, checked against httparse: whatever the gate
/// accepts, httparse (strict) accepts the same way — same method, same framing headers —
/// and the path the gate matches is normalized (absolute, no dot or empty segments, no
/// `;`).
pub fn http_gate(data: &[u8]) {
    use sg_client::http_head::{read_head, Authorities, Framing};
    let authorities = Authorities::new(["api:8080", "sg.example.com:31000"]);
    let Ok(head) = read_head(data, &authorities) else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(data);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(n)) if n == data.len()),
        "the gate accepted what httparse does not: {parsed:?}"
    );
    assert_eq!(req.method, Some(head.method.as_str()));
    let lengths: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value)
        .collect();
    let chunked = req
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    match head.framing {
        Framing::Chunked => assert!(chunked && lengths.is_empty()),
        Framing::Length(n) => {
            assert!(!chunked && !lengths.is_empty());
            for v in lengths {
                let text = String::from_utf8_lossy(v);
                assert_eq!(text.trim().parse::<u64>().ok(), Some(n));
            }
        }
        Framing::Empty => assert!(!chunked),
    }
    let path = &head.path;
    assert!(path.starts_with('/'), "{path}");
    assert!(!path.contains(';'), "{path}");
    assert!(
        !path.split('/').any(|s| s == "." || s == ".."),
        "dot segments left in {path}"
    );
    assert!(!path[1..].trim_end_matches('/').contains("//"), "{path}");
}

/// Both binaries' TOML config files.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = sg_client::config::ClientConfig::check_file_text(&text);
    let _ = sg_cluster::config::NodeConfig::check_file_text(&text);
}

/// The REST API's JSON bodies, as the node reads them.
pub fn api_json(data: &[u8]) {
    use sg_api::destinations::{DestinationPatch, NewDestination};
    use sg_api::gateways::{GatewayPatch, NewGateway};
    use sg_api::node::PlanUpdate;
    let _ = serde_json::from_slice::<NewGateway>(data);
    let _ = serde_json::from_slice::<GatewayPatch>(data);
    let _ = serde_json::from_slice::<NewDestination>(data);
    let _ = serde_json::from_slice::<DestinationPatch>(data);
    let _ = serde_json::from_slice::<PlanUpdate>(data);
    // An ACL body: every rule is read as the API reads it.
    if let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(data) {
        if let Some(serde_json::Value::Array(rules)) = body.get("rules") {
            for r in rules.iter().filter_map(|r| r.as_str()) {
                let _ = sg_proto::acl::parse_rule(r);
            }
        }
    }
}
