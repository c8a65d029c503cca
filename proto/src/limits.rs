//! Named limits of the wire. Every resource a peer can make us spend is bounded here,
//! with the reason for its number.

use std::time::Duration;

/// Length of the fixed frame header: payload length (u32), kind (u8), stream id (u32).
pub const HEADER_LEN: usize = 9;

/// Largest payload of any frame. Control frames carry JSON (a Welcome lists every
/// destination of a gateway, PEM certificates included), so this is generous; it is
/// checked against the declared length *before* anything is allocated.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Largest payload of a Data frame. Small enough that one stream cannot hog the session
/// for long between round-robin turns, large enough that the 9-byte header is noise.
pub const MAX_DATA_LEN: usize = 64 * 1024;

/// How much a pump reads from its socket at once.
pub const READ_CHUNK: usize = 32 * 1024;

/// Bytes a sender may have in flight on one stream before the receiver returns credit.
/// 256 KiB keeps a loopback or LAN path full while bounding what a stalled reader can
/// make the other side buffer.
pub const INITIAL_STREAM_WINDOW: u32 = 256 * 1024;

/// Bytes a sender may have in flight on a whole session. Session credit is returned as
/// soon as data reaches a stream's queue, unless the receiver already buffers more than
/// [`SESSION_BUFFER_BUDGET`]; so this window only bites under memory pressure, and one
/// slow stream never stalls the others.
pub const INITIAL_SESSION_WINDOW: u32 = 64 * 1024 * 1024;

/// Receiver-side memory budget per session (bytes delivered to streams but not yet
/// written to their sockets). Above it, session credit is withheld until streams drain.
pub const SESSION_BUFFER_BUDGET: u64 = 32 * 1024 * 1024;

/// Largest window a peer may grant with credit; more is a protocol error (overflow).
pub const MAX_WINDOW: u64 = (1 << 31) - 1;

/// Streams one session may hold open at once. The load harness holds thousands of idle
/// connections through one session; each costs a few KiB when idle.
pub const MAX_STREAMS_PER_SESSION: usize = 32 * 1024;

/// Streams reset by us whose late frames are still tolerated (they may be in flight).
pub const RESET_TOMBSTONES: usize = 4096;

/// One deadline for TLS + Hello + authentication on a new tunnel connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often each end pings an otherwise quiet session.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// A session from which nothing at all arrived for this long is dead. Three missed
/// heartbeats: a silently dead client is noticed within seconds (F19).
pub const HEARTBEAT_DEAD_AFTER: Duration = Duration::from_secs(6);

/// The driver writes to the TLS connection in batches up to this size: many small
/// frames become one syscall, and bulk data fills full 16 KiB TLS records.
pub const WRITE_BATCH: usize = 256 * 1024;
