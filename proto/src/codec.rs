//! Length-prefixed framing over a byte stream (a tokio-util codec).
//!
//! The declared length is checked against the hard maximum before a single byte of the
//! payload is buffered, so a peer can never make us allocate what it merely claims. A
//! frame of unknown kind, on the wrong stream, or with a payload that does not parse is a
//! [`FrameError`] — the session closes with that reason, nothing panics.

use crate::frame::{Frame, FrameKind, StreamId};
use crate::limits::{HEADER_LEN, MAX_DATA_LEN, MAX_FRAME_LEN};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

/// Why bytes from a peer are not a valid frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("{kind} frame must travel on stream 0, not stream {stream}")]
    NotASessionFrame { kind: FrameKind, stream: StreamId },
    #[error("{kind} frame needs a stream id other than 0")]
    NeedsStream { kind: FrameKind },
    #[error("malformed {kind} payload: {detail}")]
    Malformed { kind: FrameKind, detail: String },
    #[error("could not encode {kind} frame: {detail}")]
    Encode { kind: FrameKind, detail: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The sg frame codec. `max_frame` lets tests and constrained peers lower the cap.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame: MAX_FRAME_LEN,
        }
    }
}

impl FrameCodec {
    pub fn with_max_frame(max_frame: usize) -> Self {
        FrameCodec { max_frame }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN);
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        let kind_byte = src[4];
        let kind = FrameKind::from_u8(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
        let max = if kind == FrameKind::Data {
            MAX_DATA_LEN.min(self.max_frame)
        } else {
            self.max_frame
        };
        if len > max {
            return Err(FrameError::TooLarge { len, max });
        }
        if src.len() < HEADER_LEN + len {
            // Only now, with the length known to be within bounds, make room for it.
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        let stream = u32::from_be_bytes([src[5], src[6], src[7], src[8]]);
        src.advance(HEADER_LEN);
        let payload = src.split_to(len).freeze();
        decode_payload(kind, stream, payload).map(Some)
    }
}

fn decode_payload(kind: FrameKind, stream: StreamId, payload: Bytes) -> Result<Frame, FrameError> {
    if kind.is_stream_frame() && stream == 0 {
        return Err(FrameError::NeedsStream { kind });
    }
    if !kind.is_stream_frame() && kind != FrameKind::Credit && stream != 0 {
        return Err(FrameError::NotASessionFrame { kind, stream });
    }
    let frame = match kind {
        FrameKind::Hello => Frame::Hello(json(kind, &payload)?),
        FrameKind::Welcome => Frame::Welcome(Box::new(json(kind, &payload)?)),
        FrameKind::Refuse => Frame::Refuse(json(kind, &payload)?),
        FrameKind::Open => Frame::Open {
            stream,
            open: json(kind, &payload)?,
        },
        FrameKind::Data => Frame::Data { stream, payload },
        FrameKind::Fin => {
            expect_len(kind, &payload, 0)?;
            Frame::Fin { stream }
        }
        FrameKind::Reset => Frame::Reset {
            stream,
            reset: json(kind, &payload)?,
        },
        FrameKind::Credit => {
            expect_len(kind, &payload, 4)?;
            let increment = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            Frame::Credit { stream, increment }
        }
        FrameKind::Ping => Frame::Ping {
            nonce: read_u64(kind, &payload)?,
        },
        FrameKind::Pong => Frame::Pong {
            nonce: read_u64(kind, &payload)?,
        },
        FrameKind::GoAway => Frame::GoAway(json(kind, &payload)?),
        FrameKind::Config => Frame::Config(Box::new(json(kind, &payload)?)),
        FrameKind::Notice => Frame::Notice(json(kind, &payload)?),
        FrameKind::Report => Frame::Report(json(kind, &payload)?),
        FrameKind::AclUpdate => Frame::AclUpdate(json(kind, &payload)?),
        FrameKind::NodeList => Frame::NodeList(json(kind, &payload)?),
        FrameKind::Health => Frame::Health(json(kind, &payload)?),
    };
    Ok(frame)
}

fn json<T: DeserializeOwned>(kind: FrameKind, payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(|e| FrameError::Malformed {
        kind,
        detail: e.to_string(),
    })
}

fn expect_len(kind: FrameKind, payload: &[u8], want: usize) -> Result<(), FrameError> {
    if payload.len() == want {
        Ok(())
    } else {
        Err(FrameError::Malformed {
            kind,
            detail: format!("payload is {} bytes, expected {want}", payload.len()),
        })
    }
}

fn read_u64(kind: FrameKind, payload: &[u8]) -> Result<u64, FrameError> {
    expect_len(kind, payload, 8)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(payload);
    Ok(u64::from_be_bytes(b))
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&frame, dst)
    }
}

/// Appends the header of a frame whose payload the caller writes next.
pub fn put_header(dst: &mut BytesMut, kind: FrameKind, stream: StreamId, len: usize) {
    debug_assert!(len <= MAX_FRAME_LEN);
    dst.reserve(HEADER_LEN + len);
    dst.put_u32(len as u32);
    dst.put_u8(kind as u8);
    dst.put_u32(stream);
}

/// Appends one Data frame; the hot path of the multiplexer.
pub fn encode_data(dst: &mut BytesMut, stream: StreamId, payload: &[u8]) {
    put_header(dst, FrameKind::Data, stream, payload.len());
    dst.extend_from_slice(payload);
}

/// Appends any frame to `dst`.
pub fn encode_frame(frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
    let kind = frame.kind();
    let stream = frame.stream();
    match frame {
        Frame::Data { payload, .. } => {
            if payload.len() > MAX_DATA_LEN {
                return Err(FrameError::TooLarge {
                    len: payload.len(),
                    max: MAX_DATA_LEN,
                });
            }
            encode_data(dst, stream, payload);
        }
        Frame::Fin { .. } => put_header(dst, kind, stream, 0),
        Frame::Credit { increment, .. } => {
            put_header(dst, kind, stream, 4);
            dst.put_u32(*increment);
        }
        Frame::Ping { nonce } | Frame::Pong { nonce } => {
            put_header(dst, kind, stream, 8);
            dst.put_u64(*nonce);
        }
        Frame::Hello(p) => put_json(dst, kind, stream, p)?,
        Frame::Welcome(p) => put_json(dst, kind, stream, p)?,
        Frame::Refuse(p) => put_json(dst, kind, stream, p)?,
        Frame::Open { open, .. } => put_json(dst, kind, stream, open)?,
        Frame::Reset { reset, .. } => put_json(dst, kind, stream, reset)?,
        Frame::GoAway(p) => put_json(dst, kind, stream, p)?,
        Frame::Config(p) => put_json(dst, kind, stream, p)?,
        Frame::Notice(p) => put_json(dst, kind, stream, p)?,
        Frame::Report(p) => put_json(dst, kind, stream, p)?,
        Frame::AclUpdate(p) => put_json(dst, kind, stream, p)?,
        Frame::NodeList(p) => put_json(dst, kind, stream, p)?,
        Frame::Health(p) => put_json(dst, kind, stream, p)?,
    }
    Ok(())
}

fn put_json<T: Serialize>(
    dst: &mut BytesMut,
    kind: FrameKind,
    stream: StreamId,
    value: &T,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(value).map_err(|e| FrameError::Encode {
        kind,
        detail: e.to_string(),
    })?;
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::Encode {
            kind,
            detail: format!(
                "payload of {} bytes exceeds the maximum of {MAX_FRAME_LEN}",
                body.len()
            ),
        });
    }
    put_header(dst, kind, stream, body.len());
    dst.extend_from_slice(&body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::*;
    use crate::version::ProtocolVersion;

    fn roundtrip(frame: Frame) {
        let mut buf = BytesMut::new();
        FrameCodec::default()
            .encode(frame.clone(), &mut buf)
            .expect("encode");
        let got = FrameCodec::default()
            .decode(&mut buf)
            .expect("decode")
            .expect("complete frame");
        assert_eq!(got, frame);
        assert!(buf.is_empty());
    }

    #[test]
    fn every_kind_roundtrips() {
        roundtrip(Frame::Hello(Hello {
            protocol: ProtocolVersion { major: 1, minor: 6 },
            client_version: "0.6.0".into(),
            client_id: "c1".into(),
            hostname: "h".into(),
            gateway_id: "g".into(),
            token: "t".into(),
        }));
        roundtrip(Frame::Refuse(Refusal {
            code: RefuseCode::BadToken,
            message: "no".into(),
        }));
        roundtrip(Frame::Open {
            stream: 1,
            open: OpenStream {
                destination_id: "d".into(),
                peer: "127.0.0.1:1".into(),
                connection: 7,
                authorities: vec!["sg.example.com:31000".into()],
                local: None,
            },
        });
        roundtrip(Frame::Data {
            stream: 3,
            payload: Bytes::from_static(b"hello"),
        });
        roundtrip(Frame::Fin { stream: 3 });
        roundtrip(Frame::Reset {
            stream: 3,
            reset: ResetReason::new(ResetCode::AclRefused, "denied"),
        });
        roundtrip(Frame::Credit {
            stream: 0,
            increment: 99,
        });
        roundtrip(Frame::Ping { nonce: 5 });
        roundtrip(Frame::Pong { nonce: 5 });
        roundtrip(Frame::GoAway(GoAway {
            reason: "maintenance".into(),
            reconnect_after_ms: 0,
        }));
        roundtrip(Frame::Notice(Notice {
            kind: NoticeKind::ConnectionLimit,
            message: "m".into(),
            count: 3,
        }));
        roundtrip(Frame::NodeList(NodeList {
            nodes: vec![NodeEntry {
                node_id: "nd_1".into(),
                region: "eu-de".into(),
                tunnel: "node1.example:9000".into(),
                draining: true,
            }],
        }));
        roundtrip(Frame::Health(crate::health::HealthReport {
            destinations: vec![crate::health::DestinationHealth {
                destination_id: "ds_1".into(),
                healthy: false,
                reason: "connection refused".into(),
                since: 7,
            }],
        }));
        roundtrip(Frame::Report(Report {
            kind: ReportKind::AclRefused,
            message: "m".into(),
            destination_id: None,
        }));
    }

    #[test]
    fn partial_input_waits_for_more() {
        let mut full = BytesMut::new();
        encode_data(&mut full, 1, b"abcdef");
        let mut codec = FrameCodec::default();
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(
                codec.decode(&mut part).expect("no error").is_none(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn oversize_frame_is_refused_before_allocating() {
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX); // claims 4 GiB
        buf.put_u8(FrameKind::Config as u8);
        buf.put_u32(0);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        assert!(
            buf.capacity() < 1024 * 1024,
            "nothing was reserved for the claim"
        );
    }

    #[test]
    fn data_frame_has_its_own_lower_cap() {
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameKind::Data, 1, MAX_DATA_LEN + 1);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max, .. } if max == MAX_DATA_LEN));
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut buf = BytesMut::from(&[0, 0, 0, 0, 200, 0, 0, 0, 0][..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(FrameError::UnknownKind(200))
        ));
    }

    #[test]
    fn stream_frames_need_a_stream_and_session_frames_refuse_one() {
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameKind::Fin, 0, 0);
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(FrameError::NeedsStream { .. })
        ));
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameKind::Ping, 5, 8);
        buf.put_u64(1);
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(FrameError::NotASessionFrame { .. })
        ));
    }

    #[test]
    fn garbage_json_is_malformed_not_a_panic() {
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameKind::Hello, 0, 5);
        buf.extend_from_slice(b"{{{{{");
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(FrameError::Malformed { .. })
        ));
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameKind::Credit, 1, 3);
        buf.extend_from_slice(b"abc");
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(FrameError::Malformed { .. })
        ));
    }

    #[test]
    fn unknown_codes_decode_as_unknown() {
        let body = br#"{"code":"from_the_future","message":"x"}"#;
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameKind::Refuse, 0, body.len());
        buf.extend_from_slice(body);
        match FrameCodec::default().decode(&mut buf) {
            Ok(Some(Frame::Refuse(r))) => assert_eq!(r.code, RefuseCode::Unknown),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hello_debug_never_shows_the_token() {
        let hello = Hello {
            protocol: ProtocolVersion { major: 1, minor: 6 },
            client_version: "0.6.0".into(),
            client_id: "c1".into(),
            hostname: "h".into(),
            gateway_id: "g".into(),
            token: "sgt_supersecret".into(),
        };
        assert!(!format!("{hello:?}").contains("supersecret"));
    }
}
