//! Codec micro-benchmarks: encoding and decoding Data frames (the bulk path) and Open
//! frames (one per new connection). Run with `cargo bench -p sg-benches --bench codec`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sg_proto::codec::{encode_data, encode_frame, FrameCodec};
use sg_proto::frame::{Frame, OpenStream};
use tokio_util::codec::Decoder;

fn data(c: &mut Criterion) {
    let mut g = c.benchmark_group("data_frame");
    for size in [64usize, 4096, 65536] {
        let payload = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("encode_{size}"), |b| {
            let mut buf = BytesMut::with_capacity(2 * size + 64);
            b.iter(|| {
                buf.clear();
                encode_data(&mut buf, 1, &payload);
            })
        });
        let mut one = BytesMut::new();
        encode_data(&mut one, 1, &payload);
        let one = one.freeze();
        g.bench_function(format!("decode_{size}"), |b| {
            b.iter_batched(
                || BytesMut::from(&one[..]),
                |mut buf| FrameCodec::default().decode(&mut buf).expect("decodes"),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn open(c: &mut Criterion) {
    let frame = Frame::Open {
        stream: 7,
        open: OpenStream {
            destination_id: "ds_0123456789abcdef".into(),
            peer: "203.0.113.7:54321".into(),
            connection: 123_456,
            authorities: vec!["sg.example.com:31000".into()],
            local: None,
        },
    };
    let mut encoded = BytesMut::new();
    encode_frame(&frame, &mut encoded).expect("encodes");
    let encoded: Bytes = encoded.freeze();
    let mut g = c.benchmark_group("open_frame");
    g.bench_function("encode", |b| {
        let mut buf = BytesMut::with_capacity(256);
        b.iter(|| {
            buf.clear();
            encode_frame(&frame, &mut buf).expect("encodes");
        })
    });
    g.bench_function("decode", |b| {
        b.iter_batched(
            || BytesMut::from(&encoded[..]),
            |mut buf| FrameCodec::default().decode(&mut buf).expect("decodes"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, data, open);
criterion_main!(benches);
