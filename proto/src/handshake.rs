//! The sg handshake: the client's Hello, answered by the node's Welcome or a typed Refusal.
//!
//! The pure checks ([`expect_hello`], [`expect_welcome`]) decide what a first frame means;
//! the async helpers run them over a framed connection and hand back the raw connection
//! plus any bytes already read past the handshake, so the session loses nothing the peer
//! pipelined.

use crate::codec::{FrameCodec, FrameError};
use crate::frame::{Frame, FrameKind, Hello, Refusal, Welcome};
use crate::limits::MAX_HELLO_LEN;
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, FramedParts};

/// Why a handshake did not produce a session.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the peer closed the connection during the handshake")]
    Closed,
    #[error("expected a {expected} frame first, got {got}")]
    UnexpectedFrame { expected: FrameKind, got: FrameKind },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("refused by the node ({}): {}", .0.code.as_str(), .0.message)]
    Refused(Refusal),
}

/// The first frame a node accepts from a client is a Hello; anything else is refused.
pub fn expect_hello(frame: Frame) -> Result<Hello, HandshakeError> {
    match frame {
        Frame::Hello(hello) => Ok(hello),
        other => Err(HandshakeError::UnexpectedFrame {
            expected: FrameKind::Hello,
            got: other.kind(),
        }),
    }
}

/// The first frame a client accepts from a node is a Welcome or a Refuse.
pub fn expect_welcome(frame: Frame) -> Result<Welcome, HandshakeError> {
    match frame {
        Frame::Welcome(welcome) => Ok(*welcome),
        Frame::Refuse(refusal) => Err(HandshakeError::Refused(refusal)),
        other => Err(HandshakeError::UnexpectedFrame {
            expected: FrameKind::Welcome,
            got: other.kind(),
        }),
    }
}

/// A connection after the handshake: the raw stream and bytes already buffered.
pub struct Established<IO> {
    pub io: IO,
    pub leftover: BytesMut,
}

fn established<IO>(framed: Framed<IO, FrameCodec>) -> Established<IO> {
    let FramedParts { io, read_buf, .. } = framed.into_parts();
    Established {
        io,
        leftover: read_buf,
    }
}

async fn next_frame<IO>(framed: &mut Framed<IO, FrameCodec>) -> Result<Frame, HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match framed.next().await {
        Some(frame) => Ok(frame?),
        None => Err(HandshakeError::Closed),
    }
}

/// Client side: sends Hello and waits for the node's answer.
pub async fn client<IO>(io: IO, hello: Hello) -> Result<(Welcome, Established<IO>), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(io, FrameCodec::default());
    framed.send(Frame::Hello(hello)).await?;
    let welcome = expect_welcome(next_frame(&mut framed).await?)?;
    Ok((welcome, established(framed)))
}

/// Node side, first half: reads the client's Hello. The caller authenticates it and
/// finishes with [`NodeHandshake::welcome`] or [`NodeHandshake::refuse`]. Until the client
/// is authenticated, frames are capped at [`MAX_HELLO_LEN`].
pub async fn node<IO>(io: IO) -> Result<(Hello, NodeHandshake<IO>), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(io, FrameCodec::with_max_frame(MAX_HELLO_LEN));
    let hello = expect_hello(next_frame(&mut framed).await?)?;
    Ok((hello, NodeHandshake { framed }))
}

/// A node-side handshake waiting for its verdict.
pub struct NodeHandshake<IO> {
    framed: Framed<IO, FrameCodec>,
}

impl<IO> NodeHandshake<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    pub async fn welcome(mut self, welcome: Welcome) -> Result<Established<IO>, HandshakeError> {
        self.framed.send(Frame::Welcome(Box::new(welcome))).await?;
        Ok(established(self.framed))
    }

    /// Sends the refusal and closes the connection.
    pub async fn refuse(mut self, refusal: Refusal) -> Result<(), HandshakeError> {
        self.framed.send(Frame::Refuse(refusal)).await?;
        let _ = self.framed.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{GatewayConfig, RefuseCode};
    use crate::version::ProtocolVersion;

    fn hello() -> Hello {
        Hello {
            protocol: ProtocolVersion { major: 1, minor: 6 },
            client_version: "0.6.0".into(),
            client_id: "c".into(),
            hostname: "h".into(),
            gateway_id: "g".into(),
            token: "t".into(),
        }
    }

    fn welcome() -> Welcome {
        Welcome {
            session_id: "s".into(),
            node_id: "n".into(),
            region: "us-south".into(),
            node_version: "0.6.0".into(),
            protocol: ProtocolVersion { major: 1, minor: 6 },
            heartbeat_ms: 2000,
            gateway: GatewayConfig {
                gateway_id: "g".into(),
                name: "gw".into(),
                enabled: true,
                destinations: vec![],
                acl: vec![],
            },
        }
    }

    #[test]
    fn a_frame_before_hello_is_refused() {
        let err = expect_hello(Frame::Ping { nonce: 1 }).unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::UnexpectedFrame {
                expected: FrameKind::Hello,
                got: FrameKind::Ping
            }
        ));
        let err = expect_hello(Frame::Data {
            stream: 1,
            payload: bytes::Bytes::from_static(b"x"),
        })
        .unwrap_err();
        assert!(matches!(err, HandshakeError::UnexpectedFrame { .. }));
    }

    #[test]
    fn a_refusal_carries_its_reason_to_the_client() {
        let err = expect_welcome(Frame::Refuse(Refusal {
            code: RefuseCode::BadToken,
            message: "the token for gateway g is wrong".into(),
        }))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bad_token") && text.contains("is wrong"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn hello_welcome_over_a_pipe_keeps_pipelined_bytes() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let node_side = tokio::spawn(async move {
            let (got, hs) = node(b).await.expect("hello");
            assert_eq!(got.gateway_id, "g");
            hs.welcome(welcome()).await.expect("welcome")
        });
        let (w, _est) = client(a, hello()).await.expect("client handshake");
        assert_eq!(w.region, "us-south");
        node_side.await.expect("node side");
    }

    #[tokio::test]
    async fn an_oversized_hello_is_refused_before_it_is_buffered() {
        use tokio::io::AsyncWriteExt;
        let (mut a, b) = tokio::io::duplex(1024);
        // A Hello claiming 1 MiB: allowed after authentication, not before.
        a.write_all(&[0, 0x10, 0, 0, 1, 0, 0, 0, 0]).await.unwrap();
        let err = node(b).await.err().expect("must fail");
        assert!(
            matches!(err, HandshakeError::Frame(FrameError::TooLarge { max, .. }) if max == MAX_HELLO_LEN),
            "{err}"
        );
    }

    #[tokio::test]
    async fn garbage_instead_of_hello_is_an_error_not_a_hang() {
        use tokio::io::AsyncWriteExt;
        let (mut a, b) = tokio::io::duplex(1024);
        a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let err = node(b).await.err().expect("must fail");
        assert!(matches!(err, HandshakeError::Frame(_)), "{err}");
    }
}
