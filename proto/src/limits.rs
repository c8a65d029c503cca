//! Named limits of the wire. Every resource a peer can make us spend is bounded here,
//! with the reason for its number.

use std::time::Duration;

/// Length of the fixed frame header: payload length (u32), kind (u8), stream id (u32).
pub const HEADER_LEN: usize = 9;

/// Largest payload of any frame once a session is authenticated. Control frames carry
/// JSON (a Welcome lists every destination of a gateway, PEM certificates included), so
/// this is generous; it is checked against the declared length *before* anything is
/// allocated.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// Largest frame a node reads before the client authenticated (the Hello): small, so an
/// unauthenticated peer cannot make the node buffer much.
pub const MAX_HELLO_LEN: usize = 16 * 1024;

/// Largest payload of a Data frame. Small enough that one stream cannot hog the session
/// for long between round-robin turns, large enough that the 9-byte header is noise.
pub const MAX_DATA_LEN: usize = 64 * 1024;

/// Most a pump reads from its socket at once (bulk transfers grow to this).
pub const READ_CHUNK: usize = 64 * 1024;

/// What a pump reads at first, and the least it shrinks to for small exchanges.
pub const MIN_READ: usize = 4 * 1024;

/// Bytes a sender may have in flight on one stream before the receiver returns credit.
/// 256 KiB keeps a loopback or LAN path full while bounding what a stalled reader can
/// make the other side buffer.
pub const INITIAL_STREAM_WINDOW: u32 = 256 * 1024;

/// Bytes a sender may have in flight on a whole session. Session credit is returned as
/// soon as data reaches a stream's queue (never held back for a slow stream, so stalled
/// readers cannot freeze the others); it bounds what a peer can push at a receiver that
/// cannot get its own frames out.
pub const INITIAL_SESSION_WINDOW: u32 = 64 * 1024 * 1024;

/// Largest window a peer may grant with credit; more is a protocol error (overflow).
pub const MAX_WINDOW: u64 = (1 << 31) - 1;

/// Streams one session may hold open at once. The load harness holds thousands of idle
/// connections through one session; each costs a few KiB when idle.
pub const MAX_STREAMS_PER_SESSION: usize = 32 * 1024;

/// Cleanly closed streams remembered, so data a peer sends on them is caught as a
/// protocol error. Older ones are forgotten (frames on them are then tolerated, never
/// mistaken for errors).
pub const RECENTLY_CLOSED: usize = 4096;

/// Control frames a driver lets queue before it stops reading from its peer.
pub const MAX_CONTROL_BACKLOG: usize = 4096;

/// A new tunnel connection must send its first byte (the TLS ClientHello) this soon: a
/// client sends it at once, a silent peer gives its handshake slot back.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);

/// One deadline for TLS + Hello + authentication on a new tunnel connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often each end pings a session. Both ends ping, so a healthy session hears from its
/// peer at least this often even when it carries nothing.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A session from which nothing has arrived for this long gets no new connections while a
/// livelier one exists: two missed heartbeats. A partitioned client (no FIN, nothing at
/// all) is out of its gateway's choice within about two seconds (F19).
pub const SESSION_SUSPECT_AFTER: Duration = Duration::from_secs(2);

/// A session from which nothing at all arrived for this long is dead and closed: three
/// missed heartbeats.
pub const HEARTBEAT_DEAD_AFTER: Duration = Duration::from_secs(3);

/// The driver writes to the TLS connection in batches up to this size: many small
/// frames become one syscall, and bulk data fills full 16 KiB TLS records.
pub const WRITE_BATCH: usize = 256 * 1024;

/// Raises this process's open-file limit to its hard limit and returns the limit in force.
/// Every carried connection costs a descriptor on each side, and the usual soft limit of
/// 1024 is far below what a node or a client serves; the hard limit is what the operator
/// (or the service unit's `LimitNOFILE`) allowed.
pub fn raise_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// TCP keepalive on every carried connection's socket, both sides of the tunnel: probes
/// after a minute of silence, then every 10 s, so a peer that vanished without a word (a
/// crashed host, a NAT that forgot the flow) is found even on an idle connection.
pub fn set_keepalive(socket: &tokio::net::TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10));
    let _ = socket2::SockRef::from(socket).set_tcp_keepalive(&keepalive);
}
