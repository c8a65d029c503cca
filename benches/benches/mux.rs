//! Multiplexer-core micro-benchmarks, no I/O: bytes from one node mux to one client mux
//! through encode and decode, for one bulk stream and for many streams exchanging small
//! messages. Run with `cargo bench -p sg-benches --bench mux`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sg_proto::codec::FrameCodec;
use sg_proto::frame::OpenStream;
use sg_proto::mux::{Mux, MuxConfig, MuxEvent, Role};
use sg_proto::transmit::Transmit;
use tokio_util::codec::Decoder;

fn open_msg() -> OpenStream {
    OpenStream {
        destination_id: "ds_0123456789abcdef".into(),
        peer: "127.0.0.1:1".into(),
        connection: 1,
        authorities: vec!["sg.example.com:31000".into()],
        local: None,
    }
}

/// Moves everything `from` wants to send into `to`; returns the Data bytes delivered.
fn deliver(from: &mut Mux, to: &mut Mux, out: &mut Transmit) -> usize {
    from.poll_transmit(out, usize::MAX);
    let mut buf = out.to_bytes();
    out.advance(usize::MAX);
    let mut codec = FrameCodec::default();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let _ = to.handle_frame(frame);
    }
    let mut n = 0;
    while let Some(ev) = to.poll_event() {
        if let MuxEvent::Data { stream, payload } = ev {
            n += payload.len();
            to.consumed(stream, payload.len());
        }
    }
    n
}

fn bulk(c: &mut Criterion) {
    let chunk = Bytes::from(vec![3u8; 32 * 1024]);
    let mut g = c.benchmark_group("mux_bulk");
    g.throughput(Throughput::Bytes(8 * chunk.len() as u64));
    let mut node = Mux::new(Role::Node, MuxConfig::default());
    let mut client = Mux::new(Role::Client, MuxConfig::default());
    let id = node.open(open_msg()).expect("open");
    let mut buf = Transmit::new();
    let mut back = Transmit::new();
    g.bench_function("one_stream_256KiB", |b| {
        b.iter(|| {
            for _ in 0..8 {
                node.send_data(id, chunk.clone()).expect("window");
            }
            let moved = deliver(&mut node, &mut client, &mut buf);
            // Credits back to the node, so the window never runs dry.
            deliver(&mut client, &mut node, &mut back);
            while let Some(ev) = node.poll_event() {
                let _ = ev;
            }
            moved
        })
    });
    g.finish();
}

fn small_messages(c: &mut Criterion) {
    let msg = Bytes::from_static(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let streams = 64;
    let mut g = c.benchmark_group("mux_small");
    g.throughput(Throughput::Elements(streams as u64));
    let mut node = Mux::new(Role::Node, MuxConfig::default());
    let mut client = Mux::new(Role::Client, MuxConfig::default());
    let ids: Vec<_> = (0..streams)
        .map(|_| node.open(open_msg()).expect("open"))
        .collect();
    let mut buf = Transmit::new();
    let mut back = Transmit::new();
    g.bench_function("64_streams_one_request_each", |b| {
        b.iter(|| {
            for id in &ids {
                node.send_data(*id, msg.clone()).expect("window");
            }
            let moved = deliver(&mut node, &mut client, &mut buf);
            deliver(&mut client, &mut node, &mut back);
            while let Some(ev) = node.poll_event() {
                let _ = ev;
            }
            moved
        })
    });
    g.finish();
}

criterion_group!(benches, bulk, small_messages);
criterion_main!(benches);
