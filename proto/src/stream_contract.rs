//! The contract between a session's driver and its streams: what the driver delivers to a
//! stream ([`StreamEvent`]), what a stream asks of the driver ([`Command`]), and the
//! [`StreamHandle`] that carries both. [`crate::driver`] serves it and [`crate::pump`] uses
//! it; neither needs the other.

use crate::frame::{Frame, OpenStream, ResetCode, ResetReason, StreamId};
pub(crate) use crate::stream_inbox::{inbox, Inbox, InboxSender};
use bytes::Bytes;
use tokio::sync::mpsc;

/// What the session delivers to one stream.
#[derive(Debug)]
pub enum StreamEvent {
    Data(Bytes),
    Fin,
    Reset(ResetReason),
    Credit(u32),
}

/// One end of a multiplexed stream. Dropping it releases the stream (resetting it if it
/// was not closed cleanly).
#[derive(Debug)]
pub struct StreamHandle {
    id: StreamId,
    /// Read by the pump that carries the stream.
    pub(crate) events: Inbox,
    cmd: mpsc::UnboundedSender<Command>,
}

impl StreamHandle {
    pub(crate) fn new(id: StreamId, events: Inbox, cmd: mpsc::UnboundedSender<Command>) -> Self {
        StreamHandle { id, events, cmd }
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Aborts the stream with a reason the other end will see.
    pub fn reset(self, code: ResetCode, message: impl Into<String>) {
        let _ = self.cmd.send(Command::Reset {
            id: self.id,
            reason: ResetReason::new(code, message),
        });
    }

    pub(crate) fn send(&self, cmd: Command) {
        // A closed session is noticed through the event channel closing.
        let _ = self.cmd.send(cmd);
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        let _ = self.cmd.send(Command::Released { id: self.id });
    }
}

/// What a stream (or a session handle) asks of the session driver.
pub(crate) enum Command {
    Open {
        id: StreamId,
        open: OpenStream,
        events: InboxSender,
    },
    /// Bytes for the peer, with what the stream wrote out since its last report.
    Data {
        id: StreamId,
        payload: Bytes,
        consumed: usize,
    },
    Fin {
        id: StreamId,
        consumed: usize,
    },
    Reset {
        id: StreamId,
        reason: ResetReason,
    },
    Consumed {
        id: StreamId,
        n: usize,
    },
    Released {
        id: StreamId,
    },
    Control(Frame),
    Close {
        reason: String,
    },
}
