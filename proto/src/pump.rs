//! Moves bytes between one multiplexed stream and one local connection (a cloud
//! application's socket on the node, a private service's socket on the client).
//!
//! The [`Pump`] is a single hand-written future, like tokio's `copy_bidirectional`, that
//! honours the stream's send window: it reads from its socket only as much as the peer has
//! granted, and returns credit only for bytes actually written out. An idle pump holds no
//! read buffer — it waits for readiness first and allocates only when there is something
//! to read — so a held idle connection costs a few KiB.

use crate::frame::{ResetCode, ResetReason};
use crate::limits::{INITIAL_STREAM_WINDOW, MIN_READ, READ_CHUNK};
use crate::stream_contract::Command;
pub use crate::stream_contract::{StreamEvent, StreamHandle};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Connections that can say "readable" before we commit a buffer to them.
pub trait ReadReady {
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl ReadReady for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}
impl<T> ReadReady for tokio_rustls::server::TlsStream<T> {}
impl<T> ReadReady for tokio_rustls::client::TlsStream<T> {}
impl ReadReady for tokio::io::DuplexStream {}
impl<T: ReadReady + ?Sized> ReadReady for Box<T> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_read_ready(cx)
    }
}

/// Byte counts of one carried connection, readable while it runs.
#[derive(Debug, Default)]
pub struct PumpCounters {
    /// Read from the local connection and sent to the peer.
    pub sent: AtomicU64,
    /// Received from the peer and written to the local connection.
    pub received: AtomicU64,
}

/// How a pump ended.
#[derive(Debug)]
pub enum PumpOutcome {
    /// Both directions finished cleanly.
    Closed,
    /// The peer aborted the stream.
    ResetByPeer(ResetReason),
    /// The session went away under the stream.
    SessionLost,
    /// The local connection failed.
    Io(io::Error),
}

/// Which end of a carried connection the pump's local socket is.
///
/// It names the TRACE byte lines as the replaced product defined them ([F16]):
/// *transmitted* is data sent from the requesting (cloud) application, *received* is data
/// sent from the destination — whichever side of the tunnel the pump runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LocalEnd {
    /// The local socket is the requesting application's connection: the node's pump for
    /// an on-premises destination, the client's for a cloud destination (F29).
    #[default]
    CloudApplication,
    /// The local socket is the connection to the destination's resource: the client's
    /// pump for an on-premises destination, the node's for a cloud one.
    Destination,
}

impl LocalEnd {
    /// The word for bytes read from the local socket.
    fn read_label(self) -> &'static str {
        match self {
            LocalEnd::CloudApplication => "transmitted",
            LocalEnd::Destination => "received",
        }
    }

    /// The word for bytes written to the local socket.
    fn write_label(self) -> &'static str {
        match self {
            LocalEnd::CloudApplication => "received",
            LocalEnd::Destination => "transmitted",
        }
    }
}

/// Per-connection options of a pump.
#[derive(Debug, Clone, Default)]
pub struct PumpOptions {
    pub counters: Option<Arc<PumpCounters>>,
    /// Connection number for the TRACE byte log (`Connection #N transmitted data: ...`).
    pub trace_id: Option<u64>,
    /// Which end the local socket is, so the byte log names directions rightly.
    pub local: LocalEnd,
}

/// Bytes written out before the pump reports them to the session on its own; smaller
/// amounts ride along with the next Data or Fin. Well below the point where the peer could
/// run out of window (a quarter of it is credited back at a time), so nothing stalls, and a
/// request/response exchange costs no extra wake-up of the session.
const CONSUMED_REPORT: usize = (INITIAL_STREAM_WINDOW / 8) as usize;

/// Carries one stream to and from a local connection until both directions are done.
pub struct Pump<IO> {
    io: IO,
    stream: StreamHandle,
    allowance: u64,
    out: VecDeque<Bytes>,
    buf: BytesMut,
    /// How much the next read asks for: grows while reads fill it, shrinks when they don't.
    read_size: usize,
    /// Bytes written out and not yet reported to the session.
    unreported: usize,
    remote_fin: bool,
    read_done: bool,
    write_shut: bool,
    flush_needed: bool,
    /// The session ended: finish writing what arrived, then stop.
    session_lost: bool,
    options: PumpOptions,
}

impl<IO> Pump<IO>
where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin,
{
    pub fn new(io: IO, stream: StreamHandle, counters: Option<Arc<PumpCounters>>) -> Self {
        Self::with_options(
            io,
            stream,
            PumpOptions {
                counters,
                ..PumpOptions::default()
            },
        )
    }

    pub fn with_options(io: IO, stream: StreamHandle, options: PumpOptions) -> Self {
        Pump {
            io,
            stream,
            allowance: u64::from(INITIAL_STREAM_WINDOW),
            out: VecDeque::new(),
            buf: BytesMut::new(),
            read_size: MIN_READ,
            unreported: 0,
            remote_fin: false,
            read_done: false,
            write_shut: false,
            flush_needed: false,
            session_lost: false,
            options,
        }
    }

    fn fail(&mut self, e: io::Error) -> Poll<PumpOutcome> {
        self.stream.send(Command::Reset {
            id: self.stream.id(),
            reason: ResetReason::new(ResetCode::Aborted, e.to_string()),
        });
        Poll::Ready(PumpOutcome::Io(e))
    }

    /// Takes everything the session delivered. `Some` ends the pump.
    fn take_events(&mut self, cx: &mut Context<'_>) -> (bool, Option<PumpOutcome>) {
        if self.session_lost {
            // The channel stays closed; polling it again would count as progress forever.
            return (false, None);
        }
        let mut progress = false;
        loop {
            match self.stream.events.poll_recv(cx) {
                Poll::Ready(Some(StreamEvent::Data(b))) => {
                    self.out.push_back(b);
                    progress = true;
                }
                Poll::Ready(Some(StreamEvent::Fin)) => {
                    self.remote_fin = true;
                    progress = true;
                }
                Poll::Ready(Some(StreamEvent::Credit(n))) => {
                    self.allowance += u64::from(n);
                    progress = true;
                }
                Poll::Ready(Some(StreamEvent::Reset(r))) => {
                    return (progress, Some(PumpOutcome::ResetByPeer(r)))
                }
                Poll::Ready(None) => {
                    // Bytes that already arrived still go out; nothing more will come.
                    self.session_lost = true;
                    return (true, None);
                }
                Poll::Pending => return (progress, None),
            }
        }
    }

    fn write_out(&mut self, cx: &mut Context<'_>) -> Result<bool, io::Error> {
        let mut written = 0usize;
        while let Some(front) = self.out.front_mut() {
            match Pin::new(&mut self.io).poll_write(cx, front) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    front.advance(n);
                    written += n;
                    if front.is_empty() {
                        self.out.pop_front();
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if written > 0 {
            self.flush_needed = true;
            self.unreported += written;
            if self.unreported >= CONSUMED_REPORT {
                self.stream.send(Command::Consumed {
                    id: self.stream.id(),
                    n: std::mem::take(&mut self.unreported),
                });
            }
            if let Some(c) = &self.options.counters {
                c.received.fetch_add(written as u64, Ordering::Relaxed);
            }
            if let Some(n) = self.options.trace_id {
                let dir = self.options.local.write_label();
                tracing::trace!(target: "sg::connection", "Connection #{n} {dir} data: {written} bytes");
            }
        }
        let mut progress = written > 0;
        if self.flush_needed && self.out.is_empty() {
            if let Poll::Ready(r) = Pin::new(&mut self.io).poll_flush(cx) {
                r?;
                self.flush_needed = false;
            }
        }
        if self.out.is_empty() && self.remote_fin && !self.write_shut && !self.flush_needed {
            if let Poll::Ready(r) = Pin::new(&mut self.io).poll_shutdown(cx) {
                // A peer that already closed its side is fine.
                if let Err(e) = r {
                    if e.kind() != io::ErrorKind::NotConnected {
                        return Err(e);
                    }
                }
                self.write_shut = true;
                progress = true;
            }
        }
        Ok(progress)
    }

    fn read_in(&mut self, cx: &mut Context<'_>) -> Result<bool, io::Error> {
        if self.read_done || self.allowance == 0 {
            return Ok(false);
        }
        if self.buf.capacity() == 0 {
            match self.io.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(false),
            }
        }
        let want = (self.allowance as usize).min(self.read_size);
        self.buf.reserve(want);
        let mut limited = (&mut self.buf).limit(want);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut limited) {
            Poll::Ready(Ok(0)) => {
                self.read_done = true;
                self.buf = BytesMut::new();
                self.stream.send(Command::Fin {
                    id: self.stream.id(),
                    consumed: std::mem::take(&mut self.unreported),
                });
                Ok(true)
            }
            Poll::Ready(Ok(n)) => {
                let chunk = self.buf.split().freeze();
                self.allowance -= n as u64;
                // Bulk reads fill the buffer: ask for more next time; small exchanges don't.
                if n == want && want == self.read_size {
                    self.read_size = (self.read_size * 2).min(READ_CHUNK);
                } else if n < self.read_size / 4 {
                    self.read_size = (self.read_size / 2).max(MIN_READ);
                }
                self.stream.send(Command::Data {
                    id: self.stream.id(),
                    payload: chunk,
                    consumed: std::mem::take(&mut self.unreported),
                });
                if let Some(c) = &self.options.counters {
                    c.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                if let Some(id) = self.options.trace_id {
                    let dir = self.options.local.read_label();
                    tracing::trace!(target: "sg::connection", "Connection #{id} {dir} data: {n} bytes");
                }
                Ok(true)
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => {
                // Nothing to read after all: an idle connection keeps no buffer.
                if self.buf.is_empty() {
                    self.buf = BytesMut::new();
                }
                Ok(false)
            }
        }
    }
}

impl<IO> Future for Pump<IO>
where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin,
{
    type Output = PumpOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PumpOutcome> {
        let this = self.get_mut();
        for _ in 0..64 {
            let (mut progress, end) = this.take_events(cx);
            if let Some(end) = end {
                return Poll::Ready(end);
            }
            match this.write_out(cx) {
                Ok(p) => progress |= p,
                Err(e) => return this.fail(e),
            }
            if this.session_lost {
                // Nothing can be sent any more; once what arrived is written, stop.
                if this.out.is_empty()
                    && !this.flush_needed
                    && (!this.remote_fin || this.write_shut)
                {
                    return Poll::Ready(PumpOutcome::SessionLost);
                }
            } else {
                match this.read_in(cx) {
                    Ok(p) => progress |= p,
                    Err(e) => return this.fail(e),
                }
            }
            if this.read_done && this.write_shut {
                return Poll::Ready(PumpOutcome::Closed);
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn bytes_that_arrived_are_written_even_if_the_session_then_ends() {
        let (events_tx, events_rx) = crate::stream_contract::inbox();
        let (cmd_tx, _cmd_rx) = mpsc::unbounded_channel();
        let stream = StreamHandle::new(1, events_rx, cmd_tx);
        let (near, mut far) = tokio::io::duplex(64);
        events_tx
            .send(StreamEvent::Data(Bytes::from(vec![b'x'; 1000])))
            .unwrap();
        events_tx.send(StreamEvent::Fin).unwrap();
        drop(events_tx); // the session is gone
        let pump = tokio::spawn(Pump::new(near, stream, None));
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 1000, "the tail arrived, then EOF");
        assert!(matches!(pump.await.unwrap(), PumpOutcome::SessionLost));
    }

    /// Counts how often the pump asks to be polled again.
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_lost_session_with_a_slow_reader_waits_instead_of_spinning() {
        let (events_tx, events_rx) = crate::stream_contract::inbox();
        let (cmd_tx, _cmd_rx) = mpsc::unbounded_channel();
        let stream = StreamHandle::new(1, events_rx, cmd_tx);
        let (near, _far) = tokio::io::duplex(64);
        events_tx
            .send(StreamEvent::Data(Bytes::from(vec![b'x'; 1000])))
            .unwrap();
        drop(events_tx);
        let mut pump = Box::pin(Pump::new(near, stream, None));
        let counter = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(
            pump.as_mut().poll(&mut cx).is_pending(),
            "the reader is full"
        );
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            0,
            "nothing changed, so the pump must not wake itself"
        );
    }

    #[tokio::test]
    async fn small_writes_are_reported_with_the_next_data_not_alone() {
        let (events_tx, events_rx) = crate::stream_contract::inbox();
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
        let stream = StreamHandle::new(1, events_rx, cmd_tx);
        let (near, mut far) = tokio::io::duplex(4096);
        let pump = tokio::spawn(Pump::new(near, stream, None));
        events_tx
            .send(StreamEvent::Data(Bytes::from_static(b"response")))
            .unwrap();
        let mut buf = [0u8; 8];
        far.read_exact(&mut buf).await.unwrap();
        use tokio::io::AsyncWriteExt;
        far.write_all(b"next request").await.unwrap();
        // The next command carries the 8 written bytes along with the request.
        match cmd_rx.recv().await {
            Some(Command::Data {
                consumed, payload, ..
            }) => {
                assert_eq!(consumed, 8);
                assert_eq!(&payload[..], b"next request");
            }
            other => panic!("expected Data, got {}", other.is_some()),
        }
        pump.abort();
    }
}
