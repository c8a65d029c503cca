//! The stream multiplexer as a state machine without I/O.
//!
//! A [`Mux`] is fed decoded frames from the peer ([`Mux::handle_frame`]) and commands from
//! the local side ([`Mux::send_data`], [`Mux::send_fin`], [`Mux::consumed`], ...); it emits
//! [`MuxEvent`]s for the local side and encodes frames for the peer
//! ([`Mux::poll_transmit`]). It never touches a socket or a clock, so every window rule and
//! every illegal sequence is tested with plain function calls (see the tests below); the
//! tokio adapter in [`crate::driver`] only wires it to a connection.
//!
//! ## Flow control
//! - Per stream: a sender may have at most the granted window in flight; the receiver
//!   returns credit as the local side *consumes* bytes (writes them to its socket). A stream
//!   whose reader stalls stops at its window; others keep flowing. What a session can make
//!   its receiver buffer is therefore bounded by streams × stream window, and the streams
//!   are bounded (per session here, per gateway by the node's concurrency limit).
//! - Per session: credit is returned as soon as bytes are delivered to a stream — never
//!   held back for a slow stream, so any number of stalled readers cannot freeze the
//!   others. The receiver counts session credit as granted only when the Credit frame is
//!   actually written, so a peer that floods us while refusing to read our frames runs out
//!   of session window and is cut off (`SessionWindowExceeded`).
//!
//! ## Roles
//! Either end opens streams: the node opens odd ids (a cloud connection for a private
//! service), the client even ones (a connection to one of its client ports, for a cloud
//! destination, protocol 1.9 and later); each end's ids strictly increase. A client-opened
//! stream names a destination only: the node dials nothing but the resource an admin
//! configured for it.

use crate::codec::{encode_frame, put_header};
use crate::frame::{Frame, FrameKind, OpenStream, ResetCode, ResetReason, StreamId};
use crate::limits::{
    INITIAL_SESSION_WINDOW, INITIAL_STREAM_WINDOW, MAX_DATA_LEN, MAX_STREAMS_PER_SESSION,
    MAX_WINDOW, RECENTLY_CLOSED,
};
use crate::transmit::Transmit;
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, HashSet, VecDeque};

/// Which end of a session this multiplexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Node,
    Client,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Client => "client",
        }
    }
    /// The node opens odd stream ids, the client even ones.
    fn opens_odd(self) -> bool {
        self == Role::Node
    }
    fn peer(self) -> Role {
        match self {
            Role::Node => Role::Client,
            Role::Client => Role::Node,
        }
    }
}

/// Tunables a receiver may set for itself.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    pub max_streams: usize,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            max_streams: MAX_STREAMS_PER_SESSION,
        }
    }
}

/// A bounded set of stream ids that forgets the oldest first.
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<StreamId>,
    order: VecDeque<StreamId>,
}

impl RecentIds {
    fn insert(&mut self, id: StreamId) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > RECENTLY_CLOSED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, id: StreamId) -> bool {
        self.set.contains(&id)
    }
}

/// A frame sequence the peer was not allowed to send. The session ends with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("{kind} frame is not allowed once the session is established")]
    UnexpectedFrame { kind: FrameKind },
    #[error("{kind} frame may not be sent by the {sender}")]
    WrongDirection {
        kind: FrameKind,
        sender: &'static str,
    },
    #[error("{kind} frame on stream {stream}, which was never opened")]
    UnknownStream { kind: FrameKind, stream: StreamId },
    #[error("{kind} frame on stream {stream}, which is already closed")]
    ClosedStream { kind: FrameKind, stream: StreamId },
    #[error("stream {stream} opened out of order (last opened {last})")]
    StreamIdReused { stream: StreamId, last: StreamId },
    #[error("stream {stream} has the wrong parity: the node opens odd ids, the client even ones")]
    BadStreamParity { stream: StreamId },
    #[error("data after FIN on stream {stream}")]
    DataAfterFin { stream: StreamId },
    #[error("second FIN on stream {stream}")]
    DuplicateFin { stream: StreamId },
    #[error("stream {stream} received {len} bytes with only {window} bytes of window left")]
    StreamWindowExceeded {
        stream: StreamId,
        len: usize,
        window: u64,
    },
    #[error("session received {len} bytes with only {window} bytes of window left")]
    SessionWindowExceeded { len: usize, window: u64 },
    #[error("credit of {increment} on stream {stream} overflows the window (limit {MAX_WINDOW})")]
    CreditOverflow { stream: StreamId, increment: u32 },
}

/// A local command that does not fit the stream's state. These are races or bugs on our
/// own side, never the peer's fault; callers usually drop the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("stream {0} is gone (closed or reset)")]
    StreamGone(StreamId),
    #[error("stream {0} already sent FIN")]
    AfterFin(StreamId),
    #[error("stream {stream}: {len} bytes exceed the send window of {window}")]
    WindowExceeded {
        stream: StreamId,
        len: usize,
        window: u64,
    },
    #[error("stream id {stream} is not the next local id (expected at least {next})")]
    BadLocalId { stream: StreamId, next: StreamId },
    #[error("stream ids are exhausted; open a new session")]
    IdsExhausted,
}

/// What the local side must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum MuxEvent {
    /// The peer opened a stream.
    Opened {
        stream: StreamId,
        open: OpenStream,
    },
    /// Bytes for a stream; call [`Mux::consumed`] once they are written out.
    Data {
        stream: StreamId,
        payload: Bytes,
    },
    /// The peer will send no more on this stream.
    Fin {
        stream: StreamId,
    },
    /// The peer aborted the stream.
    Reset {
        stream: StreamId,
        reset: ResetReason,
    },
    /// The stream may send `increment` more bytes.
    Credit {
        stream: StreamId,
        increment: u32,
    },
    /// A session-level control frame (GoAway, Config, Notice, Report).
    Control(Frame),
    Pong {
        nonce: u64,
    },
}

/// How far the local side has closed its half of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    /// Bytes may still be queued.
    Open,
    /// FIN is queued behind what is pending; nothing more may be queued.
    FinQueued,
    /// FIN was written: the local half is closed.
    FinSent,
}

/// Whether the peer has closed its half of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incoming {
    Open,
    /// The peer's FIN arrived: any more data from it is a protocol error.
    Finished,
}

#[derive(Debug)]
struct Stream {
    /// Bytes the local side may still queue (peer's grant minus what was queued).
    send_window: u64,
    pending: VecDeque<Bytes>,
    outgoing: Outgoing,
    incoming: Incoming,
    /// Bytes the peer may still send us.
    recv_window: u64,
    /// Bytes consumed locally and not yet credited back.
    recv_unacked: u64,
    /// Whether the stream's id is in [`Mux::ready`] (queue membership, so an id is queued
    /// once however many times the stream becomes sendable).
    in_ready: bool,
}

impl Stream {
    fn new() -> Self {
        Stream {
            send_window: u64::from(INITIAL_STREAM_WINDOW),
            pending: VecDeque::new(),
            outgoing: Outgoing::Open,
            incoming: Incoming::Open,
            recv_window: u64::from(INITIAL_STREAM_WINDOW),
            recv_unacked: 0,
            in_ready: false,
        }
    }

    /// The local side queued or sent its FIN.
    fn local_closed(&self) -> bool {
        self.outgoing != Outgoing::Open
    }

    fn peer_closed(&self) -> bool {
        self.incoming == Incoming::Finished
    }

    /// Puts the stream's id in the send queue unless it is there already.
    fn schedule(&mut self, id: StreamId, ready: &mut VecDeque<StreamId>) {
        if !self.in_ready {
            self.in_ready = true;
            ready.push_back(id);
        }
    }
}

/// The multiplexer core of one session.
#[derive(Debug)]
pub struct Mux {
    role: Role,
    config: MuxConfig,
    streams: HashMap<StreamId, Stream>,
    next_local: StreamId,
    last_remote: StreamId,
    /// Streams closed cleanly (both FINs): the peer may never send on them again.
    closed: RecentIds,
    session_send: u64,
    session_recv: u64,
    session_unacked: u64,
    /// Session credit decided but not yet written (counted as granted once written).
    session_credit_due: u64,
    /// At most one Pong waits, answering the latest Ping: a Ping flood cannot queue up.
    pong_due: Option<u64>,
    ctrl: VecDeque<Frame>,
    ready: VecDeque<StreamId>,
    events: VecDeque<MuxEvent>,
}

impl Mux {
    pub fn new(role: Role, config: MuxConfig) -> Self {
        Mux {
            role,
            config,
            streams: HashMap::new(),
            next_local: if role == Role::Node { 1 } else { 2 },
            last_remote: 0,
            closed: RecentIds::default(),
            session_send: u64::from(INITIAL_SESSION_WINDOW),
            session_recv: u64::from(INITIAL_SESSION_WINDOW),
            session_unacked: 0,
            session_credit_due: 0,
            pong_due: None,
            ctrl: VecDeque::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Streams currently open (in either direction).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Control frames waiting to be written; the driver stops reading when this grows,
    /// so a peer that does not read cannot make us queue without bound.
    pub fn control_backlog(&self) -> usize {
        self.ctrl.len()
    }

    /// The id the next [`Mux::open`] will use.
    pub fn next_stream_id(&self) -> StreamId {
        self.next_local
    }

    // ---- local commands -------------------------------------------------------------

    /// Opens a stream with the next local id (odd on the node, even on the client).
    pub fn open(&mut self, open: OpenStream) -> Result<StreamId, MuxError> {
        let id = self.next_local;
        self.open_with_id(id, open)?;
        Ok(id)
    }

    /// Opens a stream with an id the caller allocated (it must not go backwards).
    pub fn open_with_id(&mut self, id: StreamId, open: OpenStream) -> Result<(), MuxError> {
        if id < self.next_local || self.role.opens_odd() == id.is_multiple_of(2) {
            return Err(MuxError::BadLocalId {
                stream: id,
                next: self.next_local,
            });
        }
        self.next_local = id.checked_add(2).ok_or(MuxError::IdsExhausted)?;
        self.streams.insert(id, Stream::new());
        self.ctrl.push_back(Frame::Open { stream: id, open });
        Ok(())
    }

    /// Queues bytes on a stream. `payload.len()` must fit the send window the local side was
    /// granted through [`MuxEvent::Credit`] (plus the initial window).
    pub fn send_data(&mut self, id: StreamId, payload: Bytes) -> Result<(), MuxError> {
        let st = self.streams.get_mut(&id).ok_or(MuxError::StreamGone(id))?;
        if st.local_closed() {
            return Err(MuxError::AfterFin(id));
        }
        let len = payload.len();
        if len as u64 > st.send_window {
            return Err(MuxError::WindowExceeded {
                stream: id,
                len,
                window: st.send_window,
            });
        }
        if len == 0 {
            return Ok(());
        }
        st.send_window -= len as u64;
        st.pending.push_back(payload);
        st.schedule(id, &mut self.ready);
        Ok(())
    }

    /// Half-closes a stream: FIN goes out after everything already queued.
    pub fn send_fin(&mut self, id: StreamId) -> Result<(), MuxError> {
        let st = self.streams.get_mut(&id).ok_or(MuxError::StreamGone(id))?;
        if st.local_closed() {
            return Err(MuxError::AfterFin(id));
        }
        st.outgoing = Outgoing::FinQueued;
        st.schedule(id, &mut self.ready);
        Ok(())
    }

    /// Aborts a stream in both directions. Frames the peer already sent for it are ignored.
    pub fn reset(&mut self, id: StreamId, reset: ResetReason) {
        if self.remove_stream(id) {
            self.ctrl.push_back(Frame::Reset { stream: id, reset });
        }
    }

    /// The local side is done with a stream. If it closed cleanly (its FIN is queued and
    /// the peer's FIN arrived) the stream finishes sending what is queued; otherwise the
    /// local side gave up and the stream is aborted.
    pub fn release(&mut self, id: StreamId) {
        let clean = self
            .streams
            .get(&id)
            .is_some_and(|st| st.local_closed() && st.peer_closed());
        if !clean {
            self.reset(
                id,
                ResetReason::new(ResetCode::Aborted, "the connection was closed"),
            );
        }
    }

    /// The local side wrote `n` bytes of a stream out; credit flows back to the peer.
    pub fn consumed(&mut self, id: StreamId, n: usize) {
        let n = n as u64;
        if let Some(st) = self.streams.get_mut(&id) {
            if !st.peer_closed() {
                st.recv_unacked += n;
                if st.recv_unacked >= u64::from(INITIAL_STREAM_WINDOW / 4) {
                    let increment = st.recv_unacked as u32;
                    st.recv_window += st.recv_unacked;
                    st.recv_unacked = 0;
                    self.ctrl.push_back(Frame::Credit {
                        stream: id,
                        increment,
                    });
                }
            }
        }
    }

    /// Queues a session-level frame (Ping, GoAway, Config, Notice, Report).
    pub fn send_control(&mut self, frame: Frame) {
        self.ctrl.push_back(frame);
    }

    // ---- frames from the peer -------------------------------------------------------

    /// Applies one frame from the peer. An error means the peer broke the protocol and the
    /// session must close with that reason.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        let kind = frame.kind();
        match frame {
            Frame::Hello(_) | Frame::Welcome(_) | Frame::Refuse(_) => {
                Err(ProtocolError::UnexpectedFrame { kind })
            }
            Frame::Open { stream, open } => self.on_open(stream, open),
            Frame::Data { stream, payload } => self.on_data(stream, payload),
            Frame::Fin { stream } => self.on_fin(stream),
            Frame::Reset { stream, reset } => self.on_reset(stream, reset),
            Frame::Credit { stream, increment } => self.on_credit(stream, increment),
            Frame::Ping { nonce } => {
                self.pong_due = Some(nonce);
                Ok(())
            }
            Frame::Pong { nonce } => {
                self.events.push_back(MuxEvent::Pong { nonce });
                Ok(())
            }
            Frame::GoAway(_) | Frame::Config(_) | Frame::Notice(_) | Frame::NodeList(_) => {
                self.require_sender(Role::Node, kind)?;
                self.events.push_back(MuxEvent::Control(frame));
                Ok(())
            }
            Frame::Report(_) | Frame::AclUpdate(_) | Frame::Health(_) => {
                self.require_sender(Role::Client, kind)?;
                self.events.push_back(MuxEvent::Control(frame));
                Ok(())
            }
        }
    }

    fn require_sender(&self, sender: Role, kind: FrameKind) -> Result<(), ProtocolError> {
        if self.role.peer() == sender {
            Ok(())
        } else {
            Err(ProtocolError::WrongDirection {
                kind,
                sender: self.role.peer().name(),
            })
        }
    }

    fn on_open(&mut self, id: StreamId, open: OpenStream) -> Result<(), ProtocolError> {
        if self.role.peer().opens_odd() == id.is_multiple_of(2) {
            return Err(ProtocolError::BadStreamParity { stream: id });
        }
        if id <= self.last_remote {
            return Err(ProtocolError::StreamIdReused {
                stream: id,
                last: self.last_remote,
            });
        }
        self.last_remote = id;
        if self.streams.len() >= self.config.max_streams {
            self.ctrl.push_back(Frame::Reset {
                stream: id,
                reset: ResetReason::new(
                    ResetCode::TooManyStreams,
                    format!(
                        "the client holds {} streams already",
                        self.config.max_streams
                    ),
                ),
            });
            return Ok(());
        }
        self.streams.insert(id, Stream::new());
        self.events.push_back(MuxEvent::Opened { stream: id, open });
        Ok(())
    }

    fn on_data(&mut self, id: StreamId, payload: Bytes) -> Result<(), ProtocolError> {
        let len = payload.len();
        if len as u64 > self.session_recv {
            return Err(ProtocolError::SessionWindowExceeded {
                len,
                window: self.session_recv,
            });
        }
        match self.streams.get_mut(&id) {
            Some(st) => {
                if st.peer_closed() {
                    return Err(ProtocolError::DataAfterFin { stream: id });
                }
                if len as u64 > st.recv_window {
                    return Err(ProtocolError::StreamWindowExceeded {
                        stream: id,
                        len,
                        window: st.recv_window,
                    });
                }
                st.recv_window -= len as u64;
                self.session_recv -= len as u64;
                self.session_unacked += len as u64;
                if len > 0 {
                    self.events.push_back(MuxEvent::Data {
                        stream: id,
                        payload,
                    });
                }
            }
            None => {
                self.check_gone_stream(FrameKind::Data, id)?;
                // In flight when we reset the stream: drop it, but keep the session window whole.
                self.session_recv -= len as u64;
                self.session_unacked += len as u64;
            }
        }
        self.maybe_credit_session();
        Ok(())
    }

    fn on_fin(&mut self, id: StreamId) -> Result<(), ProtocolError> {
        match self.streams.get_mut(&id) {
            Some(st) => {
                if st.peer_closed() {
                    return Err(ProtocolError::DuplicateFin { stream: id });
                }
                st.incoming = Incoming::Finished;
                self.events.push_back(MuxEvent::Fin { stream: id });
                self.maybe_remove(id);
                Ok(())
            }
            None => self.check_gone_stream(FrameKind::Fin, id),
        }
    }

    fn on_reset(&mut self, id: StreamId, reset: ResetReason) -> Result<(), ProtocolError> {
        if self.remove_stream(id) {
            self.events.push_back(MuxEvent::Reset { stream: id, reset });
            Ok(())
        } else if self.was_used(id) {
            // Both ends reset at once, or the stream had just closed: nothing to do.
            Ok(())
        } else {
            Err(ProtocolError::UnknownStream {
                kind: FrameKind::Reset,
                stream: id,
            })
        }
    }

    fn on_credit(&mut self, id: StreamId, increment: u32) -> Result<(), ProtocolError> {
        if id == 0 {
            let next = self.session_send + u64::from(increment);
            if next > MAX_WINDOW {
                return Err(ProtocolError::CreditOverflow {
                    stream: 0,
                    increment,
                });
            }
            self.session_send = next;
            return Ok(());
        }
        let used = self.was_used(id);
        match self.streams.get_mut(&id) {
            Some(st) => {
                let next = st.send_window + u64::from(increment);
                if next > MAX_WINDOW {
                    return Err(ProtocolError::CreditOverflow {
                        stream: id,
                        increment,
                    });
                }
                // Whatever the peer grants, this side queues at most one initial window per
                // stream: a peer that grants much and then stops reading must not make us
                // buffer what it allowed. (A peer returning credit for what it consumed
                // never has more outstanding, so this costs it nothing.)
                let capped = next.min(u64::from(INITIAL_STREAM_WINDOW));
                let usable = capped.saturating_sub(st.send_window);
                st.send_window = st.send_window.max(capped);
                if !st.local_closed() && usable > 0 {
                    self.events.push_back(MuxEvent::Credit {
                        stream: id,
                        increment: usable as u32,
                    });
                }
                Ok(())
            }
            // Credit may cross our FIN or reset on the wire.
            None if used => Ok(()),
            None => Err(ProtocolError::UnknownStream {
                kind: FrameKind::Credit,
                stream: id,
            }),
        }
    }

    /// For a Data or Fin frame on a stream not in the table: an error if it was never
    /// opened, or if it closed cleanly (the peer already sent its FIN, so it may not send
    /// again); otherwise tolerated — it was in flight when one side reset the stream.
    fn check_gone_stream(&self, kind: FrameKind, id: StreamId) -> Result<(), ProtocolError> {
        if self.closed.contains(id) {
            Err(ProtocolError::ClosedStream { kind, stream: id })
        } else if self.was_used(id) {
            Ok(())
        } else {
            Err(ProtocolError::UnknownStream { kind, stream: id })
        }
    }

    fn was_used(&self, id: StreamId) -> bool {
        let local_parity = (self.role == Role::Node) == (id % 2 == 1);
        if local_parity {
            id < self.next_local
        } else {
            id != 0 && id <= self.last_remote
        }
    }

    // ---- output ---------------------------------------------------------------------

    /// The next event for the local side.
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// Whether [`Mux::poll_transmit`] has anything to write.
    pub fn wants_transmit(&self) -> bool {
        !self.ctrl.is_empty()
            || self.pong_due.is_some()
            || self.session_credit_due > 0
            || (!self.ready.is_empty() && self.has_sendable_ready())
    }

    fn has_sendable_ready(&self) -> bool {
        self.session_send > 0
            || self.ready.iter().any(|id| {
                self.streams
                    .get(id)
                    .is_some_and(|st| st.pending.is_empty() && st.local_closed())
            })
    }

    /// Encodes frames into `dst` until it holds at least `limit` bytes or nothing is left
    /// to send. Control frames go first; data is taken round-robin, one frame per stream
    /// per turn, within the session window. Returns whether anything was written.
    ///
    /// A control frame that cannot be encoded (larger than the frame limit) is dropped
    /// with the reason, so one oversized configuration cannot take the session down.
    pub fn poll_transmit(&mut self, dst: &mut Transmit, limit: usize) -> bool {
        let start = dst.len();
        let mut blocked = 0usize;
        if let Some(nonce) = self.pong_due.take() {
            Self::encode_control(&Frame::Pong { nonce }, dst.buf());
        }
        if self.session_credit_due > 0 {
            let increment = self.session_credit_due.min(u64::from(u32::MAX)) as u32;
            Self::encode_control(
                &Frame::Credit {
                    stream: 0,
                    increment,
                },
                dst.buf(),
            );
            self.session_credit_due -= u64::from(increment);
            self.session_recv += u64::from(increment);
        }
        while dst.len() < limit {
            if let Some(frame) = self.ctrl.pop_front() {
                Self::encode_control(&frame, dst.buf());
                continue;
            }
            if blocked >= self.ready.len() {
                break;
            }
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(st) = self.streams.get_mut(&id) else {
                continue;
            };
            st.in_ready = false;
            if let Some(front) = st.pending.front_mut() {
                if self.session_send == 0 {
                    // Waiting for session credit; keep the turn order.
                    st.schedule(id, &mut self.ready);
                    blocked += 1;
                    continue;
                }
                let n = front
                    .len()
                    .min(MAX_DATA_LEN)
                    .min(self.session_send as usize);
                let chunk = if n == front.len() {
                    st.pending.pop_front().unwrap_or_default()
                } else {
                    front.split_to(n)
                };
                put_header(dst.buf(), FrameKind::Data, id, chunk.len());
                dst.put_payload(chunk);
                self.session_send -= n as u64;
            }
            if st.pending.is_empty() && st.outgoing == Outgoing::FinQueued {
                put_header(dst.buf(), FrameKind::Fin, id, 0);
                st.outgoing = Outgoing::FinSent;
                self.maybe_remove(id);
                continue;
            }
            if !st.pending.is_empty() {
                st.schedule(id, &mut self.ready);
            }
        }
        dst.len() > start
    }

    fn encode_control(frame: &Frame, dst: &mut BytesMut) {
        let mark = dst.len();
        if let Err(e) = encode_frame(frame, dst) {
            dst.truncate(mark);
            tracing::error!("dropped a {} frame that cannot be sent: {e}", frame.kind());
        }
    }

    // ---- bookkeeping ----------------------------------------------------------------

    fn maybe_credit_session(&mut self) {
        let threshold = u64::from(INITIAL_SESSION_WINDOW / 4);
        if self.session_unacked >= threshold {
            self.session_credit_due += self.session_unacked;
            self.session_unacked = 0;
        }
    }

    fn maybe_remove(&mut self, id: StreamId) {
        let done = self.streams.get(&id).is_some_and(|st| {
            st.outgoing == Outgoing::FinSent && st.peer_closed() && st.pending.is_empty()
        });
        if done {
            self.remove_stream(id);
            self.closed.insert(id);
        }
    }

    /// Removes a stream; whether it was there.
    fn remove_stream(&mut self, id: StreamId) -> bool {
        self.streams.remove(&id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::FrameCodec;
    use crate::frame::{GoAway, Hello, Report, ReportKind};
    use crate::version::ProtocolVersion;
    use tokio_util::codec::Decoder;

    fn open_msg(dest: &str) -> OpenStream {
        OpenStream {
            destination_id: dest.into(),
            peer: "127.0.0.1:5000".into(),
            connection: 1,
            authorities: Vec::new(),
            local: None,
        }
    }

    /// Moves every frame `from` wants to send into `to`, returning any protocol error.
    fn deliver(from: &mut Mux, to: &mut Mux) -> Result<usize, ProtocolError> {
        let mut out = Transmit::new();
        from.poll_transmit(&mut out, usize::MAX);
        let mut buf = out.to_bytes();
        let mut codec = FrameCodec::default();
        let mut n = 0;
        while let Some(frame) = codec.decode(&mut buf).expect("decode") {
            to.handle_frame(frame)?;
            n += 1;
        }
        Ok(n)
    }

    fn events(m: &mut Mux) -> Vec<MuxEvent> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }

    fn pair() -> (Mux, Mux) {
        (
            Mux::new(Role::Node, MuxConfig::default()),
            Mux::new(Role::Client, MuxConfig::default()),
        )
    }

    fn frames(m: &mut Mux) -> Vec<Frame> {
        let mut out = Transmit::new();
        m.poll_transmit(&mut out, usize::MAX);
        let mut buf = out.to_bytes();
        let mut codec = FrameCodec::default();
        std::iter::from_fn(|| codec.decode(&mut buf).expect("decode")).collect()
    }

    #[test]
    fn open_data_fin_both_ways_then_stream_is_gone() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d1")).unwrap();
        assert_eq!(id, 1);
        node.send_data(id, Bytes::from_static(b"ping")).unwrap();
        node.send_fin(id).unwrap();
        deliver(&mut node, &mut client).unwrap();
        assert_eq!(
            events(&mut client),
            vec![
                MuxEvent::Opened {
                    stream: 1,
                    open: open_msg("d1")
                },
                MuxEvent::Data {
                    stream: 1,
                    payload: Bytes::from_static(b"ping")
                },
                MuxEvent::Fin { stream: 1 },
            ]
        );
        client.send_data(1, Bytes::from_static(b"pong")).unwrap();
        client.send_fin(1).unwrap();
        deliver(&mut client, &mut node).unwrap();
        assert_eq!(
            events(&mut node),
            vec![
                MuxEvent::Data {
                    stream: 1,
                    payload: Bytes::from_static(b"pong")
                },
                MuxEvent::Fin { stream: 1 },
            ]
        );
        assert_eq!(node.stream_count(), 0);
        assert_eq!(client.stream_count(), 0);
    }

    #[test]
    fn data_on_a_never_opened_stream_is_an_error() {
        let (_, mut client) = pair();
        let err = client
            .handle_frame(Frame::Data {
                stream: 9,
                payload: Bytes::from_static(b"x"),
            })
            .unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::UnknownStream { stream: 9, .. }
        ));
    }

    #[test]
    fn data_after_fin_is_an_error() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        node.send_fin(id).unwrap();
        deliver(&mut node, &mut client).unwrap();
        let err = client
            .handle_frame(Frame::Data {
                stream: id,
                payload: Bytes::from_static(b"late"),
            })
            .unwrap_err();
        assert_eq!(err, ProtocolError::DataAfterFin { stream: id });
    }

    #[test]
    fn data_on_a_cleanly_closed_stream_is_an_error() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        node.send_fin(id).unwrap();
        deliver(&mut node, &mut client).unwrap();
        client.send_fin(id).unwrap();
        deliver(&mut client, &mut node).unwrap();
        assert_eq!(node.stream_count(), 0);
        let err = node
            .handle_frame(Frame::Data {
                stream: id,
                payload: Bytes::from_static(b"zombie"),
            })
            .unwrap_err();
        assert!(matches!(err, ProtocolError::ClosedStream { .. }), "{err}");
    }

    #[test]
    fn late_frames_on_a_stream_we_reset_are_ignored() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        deliver(&mut node, &mut client).unwrap();
        client
            .send_data(id, Bytes::from_static(b"in flight"))
            .unwrap();
        node.reset(id, ResetReason::new(ResetCode::Aborted, "cloud app left"));
        // The client's data crosses the reset on the wire.
        deliver(&mut client, &mut node).expect("late data is tolerated");
        node.handle_frame(Frame::Fin { stream: id }).unwrap();
        deliver(&mut node, &mut client).unwrap();
        assert!(events(&mut client)
            .iter()
            .any(|e| matches!(e, MuxEvent::Reset { stream, .. } if *stream == id)));
    }

    #[test]
    fn duplicate_fin_is_an_error() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        node.send_fin(id).unwrap();
        deliver(&mut node, &mut client).unwrap();
        assert_eq!(
            client.handle_frame(Frame::Fin { stream: id }),
            Err(ProtocolError::DuplicateFin { stream: id })
        );
    }

    #[test]
    fn credit_overflow_is_an_error() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        deliver(&mut node, &mut client).unwrap();
        let err = node
            .handle_frame(Frame::Credit {
                stream: id,
                increment: u32::MAX,
            })
            .unwrap_err();
        assert!(matches!(err, ProtocolError::CreditOverflow { .. }));
        let err = node
            .handle_frame(Frame::Credit {
                stream: 0,
                increment: u32::MAX,
            })
            .unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::CreditOverflow { stream: 0, .. }
        ));
    }

    #[test]
    fn credit_on_a_never_opened_stream_is_an_error() {
        let (mut node, _) = pair();
        assert!(matches!(
            node.handle_frame(Frame::Credit {
                stream: 7,
                increment: 1
            }),
            Err(ProtocolError::UnknownStream { .. })
        ));
    }

    /// What a session buffers towards a peer is bounded by one initial window per stream,
    /// whatever credit the peer grants: a client that grants the most it may and then
    /// stops reading cannot make the node queue more.
    #[test]
    fn generous_credit_does_not_raise_what_a_stream_may_queue() {
        let (mut node, _client) = pair();
        let streams: Vec<StreamId> = (0..8).map(|_| node.open(open_msg("d")).unwrap()).collect();
        let mut granted = 0u64;
        for &id in &streams {
            // The peer grants all it may on every stream...
            node.handle_frame(Frame::Credit {
                stream: id,
                increment: (MAX_WINDOW - u64::from(INITIAL_STREAM_WINDOW)) as u32,
            })
            .unwrap();
            while let Some(ev) = node.poll_event() {
                if let MuxEvent::Credit { increment, .. } = ev {
                    granted += u64::from(increment);
                }
            }
        }
        assert_eq!(
            granted, 0,
            "no credit beyond the initial window reaches the pumps"
        );
        // ...and never reads: each stream queues one window, then refuses more.
        let mut queued = 0usize;
        for &id in &streams {
            let mut on_stream = 0usize;
            while node
                .send_data(id, Bytes::from(vec![0u8; MAX_DATA_LEN]))
                .is_ok()
            {
                on_stream += MAX_DATA_LEN;
            }
            assert!(on_stream <= INITIAL_STREAM_WINDOW as usize);
            queued += on_stream;
        }
        assert!(
            queued <= streams.len() * INITIAL_STREAM_WINDOW as usize,
            "{queued}"
        );
    }

    #[test]
    fn sending_past_the_stream_window_is_an_error() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        deliver(&mut node, &mut client).unwrap();
        let window = INITIAL_STREAM_WINDOW as usize;
        let mut sent = 0;
        while sent < window {
            let n = MAX_DATA_LEN.min(window - sent);
            client
                .handle_frame(Frame::Data {
                    stream: id,
                    payload: Bytes::from(vec![0u8; n]),
                })
                .unwrap();
            sent += n;
        }
        let err = client
            .handle_frame(Frame::Data {
                stream: id,
                payload: Bytes::from_static(b"x"),
            })
            .unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::StreamWindowExceeded { window: 0, .. }
        ));
    }

    #[test]
    fn the_local_side_cannot_exceed_its_window_either() {
        let (mut node, _) = pair();
        let id = node.open(open_msg("d")).unwrap();
        let too_much = Bytes::from(vec![0u8; INITIAL_STREAM_WINDOW as usize + 1]);
        assert!(matches!(
            node.send_data(id, too_much),
            Err(MuxError::WindowExceeded { .. })
        ));
    }

    #[test]
    fn sending_past_the_session_window_is_an_error() {
        let (mut node, _) = pair();
        // Open enough streams to cover the session window, and fill each.
        let per_stream = INITIAL_STREAM_WINDOW as usize;
        let streams = INITIAL_SESSION_WINDOW as usize / per_stream;
        // The client never gets to write its Credit frames (we never call its
        // poll_transmit), as with a peer that floods without reading.
        let mut client_tight = Mux::new(Role::Client, MuxConfig::default());
        for _ in 0..=streams {
            node.open(open_msg("d")).unwrap();
        }
        deliver(&mut node, &mut client_tight).unwrap();
        let mut id = 1;
        let mut result = Ok(());
        'outer: for _ in 0..=streams {
            let mut sent = 0;
            while sent < per_stream {
                let n = MAX_DATA_LEN.min(per_stream - sent);
                result = client_tight.handle_frame(Frame::Data {
                    stream: id,
                    payload: Bytes::from(vec![0u8; n]),
                });
                if result.is_err() {
                    break 'outer;
                }
                sent += n;
            }
            id += 2;
        }
        assert!(matches!(
            result,
            Err(ProtocolError::SessionWindowExceeded { .. })
        ));
    }

    #[test]
    fn the_client_opens_even_streams_and_both_ends_carry_them() {
        let (mut node, mut client) = pair();
        let id = client.open(open_msg("cloud")).unwrap();
        assert_eq!(id, 2, "the client's first stream");
        assert!(matches!(
            client.open_with_id(5, open_msg("cloud")),
            Err(MuxError::BadLocalId { .. })
        ));
        client.send_data(id, Bytes::from_static(b"hi")).unwrap();
        deliver(&mut client, &mut node).unwrap();
        assert_eq!(
            events(&mut node),
            vec![
                MuxEvent::Opened {
                    stream: 2,
                    open: open_msg("cloud")
                },
                MuxEvent::Data {
                    stream: 2,
                    payload: Bytes::from_static(b"hi")
                },
            ]
        );
        node.send_data(2, Bytes::from_static(b"back")).unwrap();
        node.send_fin(2).unwrap();
        deliver(&mut node, &mut client).unwrap();
        assert!(events(&mut client).contains(&MuxEvent::Fin { stream: 2 }));
        // The node's own ids stay odd alongside.
        assert_eq!(node.open(open_msg("d")).unwrap(), 1);
        // A client may not use the node's parity.
        let err = node
            .handle_frame(Frame::Open {
                stream: 7,
                open: open_msg("d"),
            })
            .unwrap_err();
        assert!(matches!(err, ProtocolError::BadStreamParity { .. }));
    }

    #[test]
    fn stream_ids_must_increase_and_be_odd() {
        let (_, mut client) = pair();
        client
            .handle_frame(Frame::Open {
                stream: 5,
                open: open_msg("d"),
            })
            .unwrap();
        assert!(matches!(
            client.handle_frame(Frame::Open {
                stream: 3,
                open: open_msg("d")
            }),
            Err(ProtocolError::StreamIdReused { .. })
        ));
        assert!(matches!(
            client.handle_frame(Frame::Open {
                stream: 8,
                open: open_msg("d")
            }),
            Err(ProtocolError::BadStreamParity { .. })
        ));
    }

    #[test]
    fn handshake_frames_after_the_handshake_are_errors() {
        let (mut node, _) = pair();
        let hello = Frame::Hello(Hello {
            protocol: ProtocolVersion { major: 1, minor: 6 },
            client_version: "x".into(),
            client_id: "c".into(),
            hostname: "h".into(),
            gateway_id: "g".into(),
            token: "t".into(),
        });
        assert!(matches!(
            node.handle_frame(hello),
            Err(ProtocolError::UnexpectedFrame { .. })
        ));
    }

    #[test]
    fn control_frames_only_flow_the_right_way() {
        let (mut node, mut client) = pair();
        let goaway = Frame::GoAway(GoAway {
            reason: "x".into(),
            reconnect_after_ms: 0,
        });
        assert!(node.handle_frame(goaway.clone()).is_err());
        assert!(client.handle_frame(goaway).is_ok());
        let report = Frame::Report(Report {
            kind: ReportKind::AclRefused,
            message: "m".into(),
            destination_id: None,
        });
        assert!(client.handle_frame(report.clone()).is_err());
        assert!(node.handle_frame(report).is_ok());
    }

    #[test]
    fn too_many_streams_resets_the_newcomer_without_killing_the_session() {
        let mut node = Mux::new(Role::Node, MuxConfig::default());
        let mut client = Mux::new(Role::Client, MuxConfig { max_streams: 2 });
        for _ in 0..3 {
            node.open(open_msg("d")).unwrap();
        }
        node.send_data(5, Bytes::from_static(b"optimistic"))
            .unwrap();
        deliver(&mut node, &mut client).expect("no protocol error");
        assert_eq!(client.stream_count(), 2);
        deliver(&mut client, &mut node).unwrap();
        assert!(events(&mut node).iter().any(|e| matches!(
            e,
            MuxEvent::Reset { stream: 5, reset } if reset.code == ResetCode::TooManyStreams
        )));
    }

    #[test]
    fn a_stalled_stream_stops_at_its_window_while_another_flows() {
        let (mut node, mut client) = pair();
        let slow = node.open(open_msg("d")).unwrap();
        let fast = node.open(open_msg("d")).unwrap();
        deliver(&mut node, &mut client).unwrap();
        events(&mut client);
        let window = INITIAL_STREAM_WINDOW as usize;
        let chunk = Bytes::from(vec![7u8; 16 * 1024]);
        // The slow stream's reader never consumes: after one window, the node may not send.
        let mut slow_sent = 0;
        while slow_sent + chunk.len() <= window {
            node.send_data(slow, chunk.clone()).unwrap();
            slow_sent += chunk.len();
        }
        assert!(node.send_data(slow, chunk.clone()).is_err());
        // The fast stream moves ten windows' worth, its reader consuming as data arrives.
        let mut fast_sent = 0;
        let mut fast_allowance = window;
        while fast_sent < 10 * window {
            while fast_allowance >= chunk.len() {
                node.send_data(fast, chunk.clone()).unwrap();
                fast_allowance -= chunk.len();
                fast_sent += chunk.len();
            }
            deliver(&mut node, &mut client).unwrap();
            for ev in events(&mut client) {
                if let MuxEvent::Data { stream, payload } = ev {
                    if stream == fast {
                        client.consumed(stream, payload.len());
                    }
                }
            }
            deliver(&mut client, &mut node).unwrap();
            for ev in events(&mut node) {
                if let MuxEvent::Credit { stream, increment } = ev {
                    assert_eq!(stream, fast, "the stalled stream never gets credit");
                    fast_allowance += increment as usize;
                }
            }
        }
        assert!(fast_sent >= 10 * window);
    }

    #[test]
    fn many_stalled_streams_never_stall_a_fresh_one() {
        let (mut node, mut client) = pair();
        // 300 streams whose readers never consume: 75 MiB sits in the client's queues,
        // more than the whole session window.
        for _ in 0..300 {
            let id = node.open(open_msg("d")).unwrap();
            let mut sent = 0;
            while sent < INITIAL_STREAM_WINDOW as usize {
                node.send_data(id, Bytes::from(vec![1u8; MAX_DATA_LEN]))
                    .unwrap();
                sent += MAX_DATA_LEN;
            }
            deliver(&mut node, &mut client).unwrap();
            deliver(&mut client, &mut node).unwrap();
        }
        events(&mut client);
        events(&mut node);
        // A fresh stream still moves four windows' worth.
        let fresh = node.open(open_msg("d")).unwrap();
        let mut allowance = INITIAL_STREAM_WINDOW as usize;
        let mut moved = 0;
        while moved < 4 * INITIAL_STREAM_WINDOW as usize {
            let n = allowance.min(MAX_DATA_LEN);
            assert!(n > 0, "the fresh stream stalled after {moved} bytes");
            node.send_data(fresh, Bytes::from(vec![2u8; n])).unwrap();
            allowance -= n;
            deliver(&mut node, &mut client).unwrap();
            for ev in events(&mut client) {
                if let MuxEvent::Data { stream, payload } = ev {
                    assert_eq!(stream, fresh);
                    moved += payload.len();
                    client.consumed(stream, payload.len());
                }
            }
            deliver(&mut client, &mut node).unwrap();
            for ev in events(&mut node) {
                if let MuxEvent::Credit { increment, .. } = ev {
                    allowance += increment as usize;
                }
            }
        }
    }

    #[test]
    fn a_ping_flood_queues_one_pong() {
        let (mut node, mut client) = pair();
        for nonce in 0..10_000 {
            client.handle_frame(Frame::Ping { nonce }).unwrap();
        }
        assert_eq!(client.control_backlog(), 0);
        deliver(&mut client, &mut node).unwrap();
        assert_eq!(events(&mut node), vec![MuxEvent::Pong { nonce: 9_999 }]);
    }

    #[test]
    fn an_oversized_control_frame_is_dropped_not_fatal() {
        let (mut node, mut client) = pair();
        node.send_control(Frame::GoAway(GoAway {
            reason: "x".repeat(crate::limits::MAX_FRAME_LEN + 1),
            reconnect_after_ms: 0,
        }));
        node.send_control(Frame::Ping { nonce: 7 });
        deliver(&mut node, &mut client).expect("the session survives");
        deliver(&mut client, &mut node).unwrap();
        assert_eq!(events(&mut node), vec![MuxEvent::Pong { nonce: 7 }]);
    }

    #[test]
    fn late_data_after_a_reset_is_tolerated() {
        let (mut node, mut client) = pair();
        let first = node.open(open_msg("d")).unwrap();
        deliver(&mut node, &mut client).unwrap();
        // The client resets it while the node's data is already on the wire.
        client.reset(first, ResetReason::new(ResetCode::Aborted, "gone"));
        node.send_data(first, Bytes::from_static(b"late")).unwrap();
        node.send_fin(first).unwrap();
        deliver(&mut node, &mut client).expect("late frames after a reset are no error");
    }

    #[test]
    fn data_is_taken_round_robin() {
        let (mut node, _) = pair();
        let a = node.open(open_msg("d")).unwrap();
        let b = node.open(open_msg("d")).unwrap();
        node.send_data(a, Bytes::from(vec![0u8; 3 * MAX_DATA_LEN]))
            .unwrap();
        node.send_data(b, Bytes::from(vec![0u8; 3 * MAX_DATA_LEN]))
            .unwrap();
        let order: Vec<StreamId> = frames(&mut node)
            .into_iter()
            .filter_map(|f| match f {
                Frame::Data { stream, .. } => Some(stream),
                _ => None,
            })
            .collect();
        assert_eq!(order, vec![a, b, a, b, a, b]);
    }

    #[test]
    fn ping_is_answered_with_pong() {
        let (mut node, mut client) = pair();
        node.send_control(Frame::Ping { nonce: 42 });
        deliver(&mut node, &mut client).unwrap();
        deliver(&mut client, &mut node).unwrap();
        assert_eq!(events(&mut node), vec![MuxEvent::Pong { nonce: 42 }]);
    }

    #[test]
    fn release_after_a_clean_close_keeps_queued_data_and_fin() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        node.send_fin(id).unwrap();
        deliver(&mut node, &mut client).unwrap();
        client
            .send_data(id, Bytes::from_static(b"last words"))
            .unwrap();
        client.send_fin(id).unwrap();
        client.release(id);
        deliver(&mut client, &mut node).unwrap();
        let got = events(&mut node);
        assert!(got.contains(&MuxEvent::Data {
            stream: id,
            payload: Bytes::from_static(b"last words")
        }));
        assert!(got.contains(&MuxEvent::Fin { stream: id }));
    }

    #[test]
    fn release_without_a_clean_close_aborts() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        deliver(&mut node, &mut client).unwrap();
        client
            .send_data(id, Bytes::from_static(b"dropped"))
            .unwrap();
        client.release(id);
        deliver(&mut client, &mut node).unwrap();
        assert!(events(&mut node)
            .iter()
            .any(|e| matches!(e, MuxEvent::Reset { stream, .. } if *stream == id)));
    }

    #[test]
    fn reset_by_the_peer_removes_the_stream() {
        let (mut node, mut client) = pair();
        let id = node.open(open_msg("d")).unwrap();
        node.send_data(id, Bytes::from(vec![0u8; 1000])).unwrap();
        deliver(&mut node, &mut client).unwrap();
        assert_eq!(client.stream_count(), 1);
        node.reset(id, ResetReason::new(ResetCode::Aborted, "bye"));
        deliver(&mut node, &mut client).unwrap();
        assert_eq!(client.stream_count(), 0);
    }
}
