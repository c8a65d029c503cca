//! The tokio adapter that runs a [`Mux`] over one connection.
//!
//! [`start`] returns three things: a cloneable [`SessionHandle`] (open streams, send control
//! frames, close), a receiver of [`SessionEvent`]s (incoming streams, control frames), and
//! the [`SessionDriver`] future, which the caller spawns wherever it likes (a tokio task or
//! an actix context). The driver is one hand-written future: it reads and decodes frames,
//! feeds the mux, hands bytes to per-stream channels, and writes whatever the mux wants to
//! send in large batches — one task, no locks on the byte path.
//!
//! Memory is bounded by the mux: a stream's channel never holds more than the stream window
//! (the peer may not send more), and a pump never queues more than its send window.

use crate::codec::{FrameCodec, FrameError};
use crate::frame::{Frame, OpenStream, ResetCode, ResetReason, StreamId};
use crate::limits::{HEARTBEAT_DEAD_AFTER, HEARTBEAT_INTERVAL, MAX_CONTROL_BACKLOG, WRITE_BATCH};
use crate::mux::{Mux, MuxConfig, MuxError, MuxEvent, ProtocolError, Role};
use crate::stream_contract::{inbox, Command, InboxSender, StreamEvent, StreamHandle};
use crate::transmit::Transmit;
use bytes::BytesMut;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_util::codec::Decoder;

/// Timing and limits of one session.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub role: Role,
    pub heartbeat_interval: Duration,
    pub dead_after: Duration,
    pub mux: MuxConfig,
}

impl DriverConfig {
    pub fn new(role: Role) -> Self {
        DriverConfig {
            role,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            dead_after: HEARTBEAT_DEAD_AFTER,
            mux: MuxConfig::default(),
        }
    }
}

/// What the session tells its owner.
#[derive(Debug)]
pub enum SessionEvent {
    /// The peer opened a stream (client side).
    Incoming {
        stream: StreamHandle,
        open: OpenStream,
    },
    /// A session-level control frame: GoAway, Config, Notice or Report.
    Control(Frame),
}

/// Why a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The peer closed the connection.
    PeerClosed,
    /// We closed it on purpose, with this reason.
    Closed(String),
    /// Nothing arrived for too long.
    HeartbeatTimeout(Duration),
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// The peer sent bytes that are not frames.
    Frame(FrameError),
    Io(io::Error),
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::PeerClosed => write!(f, "the peer closed the session"),
            SessionEnd::Closed(reason) => write!(f, "closed: {reason}"),
            SessionEnd::HeartbeatTimeout(d) => {
                write!(f, "no heartbeat from the peer for {}s", d.as_secs())
            }
            SessionEnd::Protocol(e) => write!(f, "protocol error: {e}"),
            SessionEnd::Frame(e) => write!(f, "bad frame: {e}"),
            SessionEnd::Io(e) => write!(f, "connection error: {e}"),
        }
    }
}

/// Live figures of one session, readable from any thread.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Streams with a live handler.
    pub active_streams: AtomicUsize,
    /// Streams ever opened on this session.
    pub total_streams: AtomicU64,
    /// Bytes read from / written to the tunnel connection (frames, headers included).
    pub wire_in: AtomicU64,
    pub wire_out: AtomicU64,
    /// Last measured heartbeat round trip, microseconds (0 until measured).
    pub rtt_us: AtomicU64,
    /// When something last arrived from the peer, in [`monotonic_ms`] (0: at the start).
    pub last_recv_ms: AtomicU64,
}

impl SessionStats {
    /// How long the peer has been silent.
    pub fn silent_for(&self) -> Duration {
        let last = self.last_recv_ms.load(Ordering::Relaxed);
        Duration::from_millis(monotonic_ms().saturating_sub(last))
    }
}

/// Milliseconds on a process-wide monotonic clock; cheap to store in an atomic.
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The session closed before the command could be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session is closed")]
pub struct SessionClosed;

/// A cloneable handle to a running session.
#[derive(Clone)]
pub struct SessionHandle {
    cmd: mpsc::UnboundedSender<Command>,
    next_id: Arc<Mutex<StreamId>>,
    stats: Arc<SessionStats>,
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("active_streams", &self.active_streams())
            .finish()
    }
}

impl SessionHandle {
    /// Opens a stream to the peer (odd ids from the node, even ones from the client). Data
    /// written before the peer answers is carried optimistically within the initial window.
    pub fn open_stream(&self, open: OpenStream) -> Result<StreamHandle, SessionClosed> {
        let (tx, rx) = inbox();
        // Allocation and send happen under one small lock so ids reach the driver in
        // increasing order even when several threads open streams. Not on the byte path.
        let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
        let id = *next;
        let Some(after) = id.checked_add(2) else {
            // Every stream id was used: the session can carry nothing more. Close it, so it
            // is no longer picked for new connections and the client dials a fresh one.
            self.close("stream ids exhausted; a new session takes over");
            return Err(SessionClosed);
        };
        self.cmd
            .send(Command::Open {
                id,
                open,
                events: tx,
            })
            .map_err(|_| SessionClosed)?;
        *next = after;
        drop(next);
        Ok(StreamHandle::new(id, rx, self.cmd.clone()))
    }

    /// Queues a session-level frame for the peer.
    pub fn send_control(&self, frame: Frame) -> Result<(), SessionClosed> {
        self.cmd
            .send(Command::Control(frame))
            .map_err(|_| SessionClosed)
    }

    /// Flushes what is queued, then closes the connection.
    pub fn close(&self, reason: impl Into<String>) {
        let _ = self.cmd.send(Command::Close {
            reason: reason.into(),
        });
    }

    pub fn is_closed(&self) -> bool {
        self.cmd.is_closed()
    }

    pub fn stats(&self) -> &Arc<SessionStats> {
        &self.stats
    }

    pub fn active_streams(&self) -> usize {
        self.stats.active_streams.load(Ordering::Relaxed)
    }

    /// How long nothing has arrived from the peer (heartbeats included).
    pub fn silent_for(&self) -> Duration {
        self.stats.silent_for()
    }
}

/// Sets up a session over `io`. `leftover` holds bytes the handshake already read past its
/// last frame. Spawn the returned driver; the session lives as long as it runs.
pub fn start<IO>(
    io: IO,
    leftover: BytesMut,
    config: DriverConfig,
) -> (
    SessionHandle,
    mpsc::UnboundedReceiver<SessionEvent>,
    SessionDriver<IO>,
)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (app_tx, app_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(SessionStats::default());
    stats.last_recv_ms.store(monotonic_ms(), Ordering::Relaxed);
    let first_id = if config.role == Role::Node { 1 } else { 2 };
    let handle = SessionHandle {
        cmd: cmd_tx.clone(),
        next_id: Arc::new(Mutex::new(first_id)),
        stats: stats.clone(),
    };
    let now = Instant::now();
    let driver = SessionDriver {
        io,
        mux: Mux::new(config.role, config.mux.clone()),
        codec: FrameCodec::default(),
        decode_pending: !leftover.is_empty(),
        rbuf: leftover,
        out: Transmit::new(),
        cmd_rx,
        cmd_tx,
        app: app_tx,
        streams: HashMap::new(),
        heartbeat: Box::pin(tokio::time::sleep(config.heartbeat_interval)),
        last_recv: now,
        ping: None,
        nonce: 0,
        closing: None,
        flush_needed: false,
        stats,
        config,
    };
    (handle, app_rx, driver)
}

/// The future that runs one session. Resolves when the session ends.
pub struct SessionDriver<IO> {
    io: IO,
    mux: Mux,
    codec: FrameCodec,
    rbuf: BytesMut,
    decode_pending: bool,
    out: Transmit,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    app: mpsc::UnboundedSender<SessionEvent>,
    streams: HashMap<StreamId, InboxSender>,
    heartbeat: Pin<Box<Sleep>>,
    last_recv: Instant,
    ping: Option<(u64, Instant)>,
    nonce: u64,
    closing: Option<String>,
    flush_needed: bool,
    stats: Arc<SessionStats>,
    config: DriverConfig,
}

/// Rounds of work before the driver yields to its neighbours on the same thread.
const ROUNDS_BEFORE_YIELD: usize = 32;
/// Chunks handed to one vectored write.
const MAX_IO_SLICES: usize = 64;

impl<IO> Future for SessionDriver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    type Output = SessionEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SessionEnd> {
        let this = self.get_mut();
        for _ in 0..ROUNDS_BEFORE_YIELD {
            match this.round(cx) {
                Ok(true) => continue,
                Ok(false) => return Poll::Pending,
                Err(end) => {
                    this.finish();
                    return Poll::Ready(end);
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<IO> SessionDriver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// One pass over every source of work; `Ok(true)` if anything moved.
    fn round(&mut self, cx: &mut Context<'_>) -> Result<bool, SessionEnd> {
        let mut progress = self.take_commands(cx)?;
        // Stop reading while our own control frames cannot get out: a peer that does not
        // read must not make us queue without bound. (Data needs no such stop: windows
        // bound it, and stopping on full data buffers could deadlock two busy peers.)
        let read = if self.closing.is_none() && self.mux.control_backlog() < MAX_CONTROL_BACKLOG {
            self.read(cx)
        } else {
            Ok(false)
        };
        // Whatever was decoded is delivered even if the connection then ended: the peer's
        // last frames (data, a notice) arrive together with its close.
        self.dispatch_events();
        progress |= read?;
        progress |= self.write(cx)?;
        if let Some(reason) = &self.closing {
            if self.out.is_empty() && !self.mux.wants_transmit() && !self.flush_needed {
                let reason = reason.clone();
                // Best effort: the connection is going away either way.
                let _ = Pin::new(&mut self.io).poll_shutdown(cx);
                return Err(SessionEnd::Closed(reason));
            }
        }
        progress |= self.heartbeat(cx)?;
        Ok(progress)
    }

    fn take_commands(&mut self, cx: &mut Context<'_>) -> Result<bool, SessionEnd> {
        let mut progress = false;
        for _ in 0..1024 {
            match self.cmd_rx.poll_recv(cx) {
                Poll::Ready(Some(cmd)) => {
                    progress = true;
                    self.apply(cmd);
                }
                // Unreachable while we hold `cmd_tx`, but harmless.
                Poll::Ready(None) => {
                    return Err(SessionEnd::Closed("all handles dropped".into()));
                }
                Poll::Pending => break,
            }
        }
        Ok(progress)
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Open { id, open, events } => match self.mux.open_with_id(id, open) {
                Ok(()) => {
                    self.streams.insert(id, events);
                    self.stats.total_streams.fetch_add(1, Ordering::Relaxed);
                    self.update_active();
                }
                Err(e) => {
                    tracing::warn!(stream = id, "could not open stream: {e}");
                    // Dropping `events` tells the stream's pump the session is gone.
                }
            },
            Command::Data {
                id,
                payload,
                consumed,
            } => {
                if consumed > 0 {
                    self.mux.consumed(id, consumed);
                }
                match self.mux.send_data(id, payload) {
                    Ok(()) | Err(MuxError::StreamGone(_)) => {}
                    Err(e) => {
                        tracing::error!(stream = id, "stream handler broke the window: {e}");
                        self.reset_stream(id, ResetReason::new(ResetCode::Aborted, e.to_string()));
                    }
                }
            }
            Command::Fin { id, consumed } => {
                if consumed > 0 {
                    self.mux.consumed(id, consumed);
                }
                let _ = self.mux.send_fin(id);
            }
            Command::Reset { id, reason } => self.reset_stream(id, reason),
            Command::Consumed { id, n } => self.mux.consumed(id, n),
            Command::Released { id } => {
                if self.streams.remove(&id).is_some() {
                    self.update_active();
                }
                self.mux.release(id);
            }
            Command::Control(frame) => self.mux.send_control(frame),
            Command::Close { reason } => {
                if self.closing.is_none() {
                    self.closing = Some(reason);
                }
            }
        }
    }

    fn reset_stream(&mut self, id: StreamId, reason: ResetReason) {
        self.mux.reset(id, reason);
        if self.streams.remove(&id).is_some() {
            self.update_active();
        }
    }

    fn update_active(&self) {
        self.stats
            .active_streams
            .store(self.streams.len(), Ordering::Relaxed);
    }

    fn read(&mut self, cx: &mut Context<'_>) -> Result<bool, SessionEnd> {
        let mut progress = false;
        if self.decode_pending {
            self.decode_pending = false;
            self.decode()?;
            progress = true;
        }
        for _ in 0..8 {
            if self.rbuf.capacity() - self.rbuf.len() < 8 * 1024 {
                self.rbuf.reserve(64 * 1024);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => return Err(SessionEnd::PeerClosed),
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    self.last_recv = Instant::now();
                    self.stats
                        .last_recv_ms
                        .store(monotonic_ms(), Ordering::Relaxed);
                    self.stats.wire_in.fetch_add(n as u64, Ordering::Relaxed);
                    self.decode()?;
                }
                Poll::Ready(Err(e)) => return Err(SessionEnd::Io(e)),
                Poll::Pending => break,
            }
        }
        Ok(progress)
    }

    fn decode(&mut self) -> Result<(), SessionEnd> {
        while let Some(frame) = self
            .codec
            .decode(&mut self.rbuf)
            .map_err(SessionEnd::Frame)?
        {
            self.mux.handle_frame(frame).map_err(SessionEnd::Protocol)?;
        }
        Ok(())
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.mux.poll_event() {
            match event {
                MuxEvent::Opened { stream, open } => {
                    let (tx, rx) = inbox();
                    let handle = StreamHandle::new(stream, rx, self.cmd_tx.clone());
                    if self
                        .app
                        .send(SessionEvent::Incoming {
                            stream: handle,
                            open,
                        })
                        .is_ok()
                    {
                        self.streams.insert(stream, tx);
                        self.stats.total_streams.fetch_add(1, Ordering::Relaxed);
                        self.update_active();
                    }
                    // If nobody listens, the dropped handle resets the stream.
                }
                MuxEvent::Data { stream, payload } => {
                    let len = payload.len();
                    let delivered = self
                        .streams
                        .get(&stream)
                        .is_some_and(|tx| tx.send(StreamEvent::Data(payload)).is_ok());
                    if !delivered {
                        // Nobody will write these bytes; release them at once.
                        self.mux.consumed(stream, len);
                    }
                }
                MuxEvent::Fin { stream } => self.to_stream(stream, StreamEvent::Fin),
                MuxEvent::Reset { stream, reset } => {
                    self.to_stream(stream, StreamEvent::Reset(reset));
                    if self.streams.remove(&stream).is_some() {
                        self.update_active();
                    }
                }
                MuxEvent::Credit { stream, increment } => {
                    self.to_stream(stream, StreamEvent::Credit(increment))
                }
                MuxEvent::Control(frame) => {
                    let _ = self.app.send(SessionEvent::Control(frame));
                }
                MuxEvent::Pong { nonce } => {
                    if let Some((sent, at)) = self.ping {
                        if sent == nonce {
                            let rtt = at.elapsed().as_micros() as u64;
                            self.stats.rtt_us.store(rtt.max(1), Ordering::Relaxed);
                            self.ping = None;
                        }
                    }
                }
            }
        }
    }

    fn to_stream(&self, stream: StreamId, event: StreamEvent) {
        if let Some(tx) = self.streams.get(&stream) {
            let _ = tx.send(event);
        }
    }

    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, SessionEnd> {
        let mut progress = false;
        loop {
            if self.out.len() < WRITE_BATCH {
                self.mux.poll_transmit(&mut self.out, WRITE_BATCH);
            }
            if self.out.is_empty() {
                break;
            }
            self.out.seal();
            let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
            let n = self.out.io_slices(&mut slices);
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => {
                    return Err(SessionEnd::Io(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.out.advance(n);
                    self.flush_needed = true;
                    progress = true;
                    self.stats.wire_out.fetch_add(n as u64, Ordering::Relaxed);
                }
                Poll::Ready(Err(e)) => return Err(SessionEnd::Io(e)),
                Poll::Pending => return Ok(progress),
            }
        }
        if self.flush_needed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_needed = false,
                Poll::Ready(Err(e)) => return Err(SessionEnd::Io(e)),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    fn heartbeat(&mut self, cx: &mut Context<'_>) -> Result<bool, SessionEnd> {
        if self.heartbeat.as_mut().poll(cx).is_pending() {
            return Ok(false);
        }
        let silent = self.last_recv.elapsed();
        if silent >= self.config.dead_after {
            return Err(SessionEnd::HeartbeatTimeout(silent));
        }
        self.nonce = self.nonce.wrapping_add(1);
        if self.ping.is_none() {
            self.ping = Some((self.nonce, Instant::now()));
        }
        self.mux.send_control(Frame::Ping { nonce: self.nonce });
        let next = tokio::time::Instant::now() + self.config.heartbeat_interval;
        self.heartbeat.as_mut().reset(next);
        Ok(true)
    }

    /// Tells every stream handler the session is gone.
    fn finish(&mut self) {
        self.streams.clear();
        self.update_active();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pump::{Pump, PumpOutcome};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn open(n: u64) -> OpenStream {
        OpenStream {
            destination_id: "d".into(),
            peer: "127.0.0.1:1".into(),
            connection: n,
            authorities: Vec::new(),
            local: None,
        }
    }

    /// A node and a client session over an in-memory pipe; the client echoes every stream.
    async fn echo_pair() -> SessionHandle {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (node, _node_events, node_driver) =
            start(a, BytesMut::new(), DriverConfig::new(Role::Node));
        let (_client, mut client_events, client_driver) =
            start(b, BytesMut::new(), DriverConfig::new(Role::Client));
        tokio::spawn(node_driver);
        tokio::spawn(client_driver);
        tokio::spawn(async move {
            while let Some(ev) = client_events.recv().await {
                if let SessionEvent::Incoming { stream, .. } = ev {
                    // Echo: a pipe whose two ends are the same socket-like object.
                    let (x, y) = tokio::io::duplex(64 * 1024);
                    tokio::spawn(async move {
                        let (mut r, mut w) = tokio::io::split(y);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                        let _ = w.shutdown().await;
                    });
                    tokio::spawn(Pump::new(x, stream, None));
                }
            }
        });
        node
    }

    #[tokio::test]
    async fn bytes_go_round_trip_through_two_muxes() {
        let node = echo_pair().await;
        let stream = node.open_stream(open(1)).expect("open");
        let (app, far) = tokio::io::duplex(64 * 1024);
        let pump = tokio::spawn(Pump::new(far, stream, None));
        let (mut r, mut w) = tokio::io::split(app);
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&payload).await.expect("write");
            w.shutdown().await.expect("shutdown");
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.expect("read");
        writer.await.expect("writer");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "echoed bytes differ");
        assert!(matches!(pump.await.expect("pump"), PumpOutcome::Closed));
    }

    #[tokio::test]
    async fn frames_that_arrive_with_the_close_are_still_delivered() {
        use crate::codec::encode_frame;
        use crate::frame::{Notice, NoticeKind};
        let (a, mut b) = tokio::io::duplex(4096);
        let (_client, mut events, driver) =
            start(a, BytesMut::new(), DriverConfig::new(Role::Client));
        let mut buf = BytesMut::new();
        encode_frame(
            &Frame::Notice(Notice {
                kind: NoticeKind::SessionClosed,
                message: "token regenerated".into(),
                count: 0,
            }),
            &mut buf,
        )
        .unwrap();
        // The notice and the close in one go.
        b.write_all(&buf).await.unwrap();
        drop(b);
        assert!(matches!(driver.await, SessionEnd::PeerClosed));
        match events.recv().await {
            Some(SessionEvent::Control(Frame::Notice(n))) => {
                assert_eq!(n.message, "token regenerated")
            }
            other => panic!("the notice was lost: {other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_from_the_peer_ends_the_session_with_a_reason() {
        let (a, mut b) = tokio::io::duplex(4096);
        let (_node, _events, driver) = start(a, BytesMut::new(), DriverConfig::new(Role::Node));
        b.write_all(&[0, 0, 0, 1, 99, 0, 0, 0, 0, 0]).await.unwrap();
        match driver.await {
            SessionEnd::Frame(FrameError::UnknownKind(99)) => {}
            other => panic!("unexpected end: {other}"),
        }
    }

    #[tokio::test]
    async fn a_session_out_of_stream_ids_closes_instead_of_failing_every_open() {
        let (a, _b) = tokio::io::duplex(4096);
        let (node, _events, driver) = start(a, BytesMut::new(), DriverConfig::new(Role::Node));
        let driver = tokio::spawn(driver);
        *node.next_id.lock().unwrap() = u32::MAX;
        assert!(node.open_stream(open(1)).is_err());
        match driver.await.expect("driver") {
            SessionEnd::Closed(reason) => assert!(reason.contains("exhausted"), "{reason}"),
            other => panic!("unexpected end: {other}"),
        }
        assert!(node.is_closed(), "the gateway passes it over from now on");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_declared_dead() {
        let (a, _b) = tokio::io::duplex(4096);
        let (_node, _events, driver) = start(a, BytesMut::new(), DriverConfig::new(Role::Node));
        match driver.await {
            SessionEnd::HeartbeatTimeout(_) => {}
            other => panic!("unexpected end: {other}"),
        }
    }
}
