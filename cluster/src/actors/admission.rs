//! Admission: what a cloud connection needs from its Gateway to be carried and what it
//! gives back. A Destination asks with [`OpenConnection`] and gets a [`Ticket`] or the
//! [`Refused`] reason; the ticket's [`ConnectionGuard`] holds the gateway's concurrency slot
//! and reports the connection's bytes however it ends; a [`SourceSlot`] counts it against
//! its source address. Destinations and connections need only this module, never the
//! Gateway actor itself, so the three actors do not depend on each other in a circle.

use super::Timings;
use crate::tracker::Tracked;
use crate::workers::Worker;
use actix::Message;
use sg_proto::driver::SessionHandle;
use sg_proto::frame::OpenStream;
use sg_proto::pump::PumpCounters;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a cloud connection was refused (counted per reason for /metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    IpRule,
    DestinationDisabled,
    GatewayDisabled,
    Limit,
    NoClient,
    Tls,
    /// The source address already holds the destination's per-source share.
    SourceLimit,
}

impl Refused {
    pub const ALL: [Refused; 7] = [
        Refused::IpRule,
        Refused::DestinationDisabled,
        Refused::GatewayDisabled,
        Refused::Limit,
        Refused::NoClient,
        Refused::Tls,
        Refused::SourceLimit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refused::IpRule => "ip_rule",
            Refused::DestinationDisabled => "destination_disabled",
            Refused::GatewayDisabled => "gateway_disabled",
            Refused::Limit => "limit",
            Refused::NoClient => "no_client",
            Refused::Tls => "tls",
            Refused::SourceLimit => "source_limit",
        }
    }

    /// The reason in words, for a client told why its connection was refused.
    pub fn describe(self) -> &'static str {
        match self {
            Refused::IpRule => "not allowed by its IP rules",
            Refused::DestinationDisabled => "the destination is disabled",
            Refused::GatewayDisabled => "the gateway is disabled",
            Refused::Limit => "the gateway reached its concurrency limit",
            Refused::NoClient => "no client is connected",
            Refused::Tls => "the TLS handshake failed",
            Refused::SourceLimit => "its source address holds its share of connections",
        }
    }
}

/// A gateway's connection counters, updated from whatever thread a connection runs on.
#[derive(Debug, Default)]
pub struct LiveCounters {
    active: AtomicU32,
    total: AtomicU64,
    to_resources: AtomicU64,
    to_cloud: AtomicU64,
    refused: [AtomicU64; 7],
    /// Connections closed because they carried nothing for their destination's idle timeout.
    idle_closed: AtomicU64,
    /// The byte totals last reported (closed connections plus open ones): never less than
    /// before, so a counter read while a connection is closing cannot step back.
    reported_to_resources: AtomicU64,
    reported_to_cloud: AtomicU64,
}

impl LiveCounters {
    /// Connections open now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    pub fn refuse(&self, why: Refused) {
        if let Some(i) = Refused::ALL.iter().position(|r| *r == why) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn refused(&self, why: Refused) -> u64 {
        Refused::ALL
            .iter()
            .position(|r| *r == why)
            .map_or(0, |i| self.refused[i].load(Ordering::Relaxed))
    }

    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Ordering::Relaxed)
    }

    /// Connections admitted since the node started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Bytes of connections that have closed: (towards the resources, towards the cloud).
    pub(super) fn closed_bytes(&self) -> (u64, u64) {
        (
            self.to_resources.load(Ordering::Relaxed),
            self.to_cloud.load(Ordering::Relaxed),
        )
    }

    /// Reports byte totals that include open connections, never less than the last report
    /// (a connection closing between two reads would otherwise make a counter step back).
    pub(super) fn report_bytes(&self, to_resources: u64, to_cloud: u64) -> (u64, u64) {
        let up =
            |reported: &AtomicU64, now: u64| reported.fetch_max(now, Ordering::Relaxed).max(now);
        (
            up(&self.reported_to_resources, to_resources),
            up(&self.reported_to_cloud, to_cloud),
        )
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.iter().map(|r| r.load(Ordering::Relaxed)).sum()
    }
}

/// A cloud connection asking to be carried.
#[derive(Message)]
#[rtype(result = "Result<Ticket, Refused>")]
pub struct OpenConnection {
    pub destination_id: String,
    pub peer: SocketAddr,
    /// The cloud address the connection reached (for a PROXY protocol header).
    pub local: Option<SocketAddr>,
    /// The connection takes its concurrency slot later, once it is real (after its TLS
    /// handshake): see [`ConnectionGuard::take_slot`].
    pub defer_slot: bool,
}

/// Permission to carry one connection: the session to carry it on, what to tell the
/// client, where to run it, and a guard that gives the concurrency slot back however the
/// connection ends. The stream itself is opened by the connection, once it is ready (after
/// its TLS handshake, for a TLS cloud port), so a refused handshake never reaches the
/// private service.
pub struct Ticket {
    pub session: SessionHandle,
    pub open: OpenStream,
    pub worker: Worker,
    pub gateway_id: String,
    pub guard: Arc<ConnectionGuard>,
}

/// Returns the connection's slot to its gateway when dropped, and adds its bytes to the
/// gateway's totals.
pub struct ConnectionGuard {
    live: Arc<LiveCounters>,
    pub counters: Arc<PumpCounters>,
    /// Whether the connection holds one of the gateway's concurrency slots. A TLS cloud
    /// connection takes it only once its handshake is done, so sockets that never finish
    /// one cannot use up the gateway's limit.
    holds_slot: AtomicBool,
    /// The slots this node may fill for the gateway (its limit less the other nodes' use).
    limit: u32,
    /// A cloud destination's connection: its pump's writes go towards the resource.
    reversed: bool,
    /// Counts the connection in the node's total, which a drain waits on.
    _tracked: Tracked,
    /// When it was admitted, and where its duration goes when it ends.
    started: Instant,
    timings: Arc<Timings>,
}

impl ConnectionGuard {
    /// The guard of an admitted connection that holds no slot yet (see [`Self::take_slot`]):
    /// `limit` is how many slots this node may fill for the gateway, and `reversed` marks a
    /// cloud destination's connection, whose pump writes towards the resource.
    pub(super) fn new(
        live: Arc<LiveCounters>,
        limit: u32,
        reversed: bool,
        tracked: Tracked,
        timings: Arc<Timings>,
    ) -> Self {
        ConnectionGuard {
            live,
            counters: Arc::new(PumpCounters::default()),
            holds_slot: false.into(),
            limit,
            reversed,
            _tracked: tracked,
            started: Instant::now(),
            timings,
        }
    }

    /// Counts the connection as refused (it ends before carrying anything).
    pub fn refuse(&self, why: Refused) {
        self.live.refuse(why);
    }

    /// Takes the concurrency slot of a connection that is now real; `false` (and counted
    /// as refused) if the gateway reached its limit meanwhile.
    pub fn take_slot(&self) -> bool {
        if self.holds_slot.load(Ordering::Acquire) {
            return true;
        }
        let taken = self
            .live
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        if taken {
            self.holds_slot.store(true, Ordering::Release);
            self.live.total.fetch_add(1, Ordering::Relaxed);
        } else {
            self.live.refuse(Refused::Limit);
        }
        taken
    }

    /// Counts the connection as closed by its destination's idle timeout.
    pub fn closed_idle(&self) {
        self.live.idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes carried so far: (towards the resource, towards the cloud application).
    pub(super) fn bytes(&self) -> (u64, u64) {
        let (read, written) = (
            self.counters.sent.load(Ordering::Relaxed),
            self.counters.received.load(Ordering::Relaxed),
        );
        if self.reversed {
            (written, read)
        } else {
            (read, written)
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let (to_resources, to_cloud) = self.bytes();
        self.live
            .to_resources
            .fetch_add(to_resources, Ordering::Relaxed);
        self.live.to_cloud.fetch_add(to_cloud, Ordering::Relaxed);
        if self.holds_slot.load(Ordering::Acquire) {
            self.live.active.fetch_sub(1, Ordering::Release);
            self.timings.connection.observe(self.started.elapsed());
        }
    }
}

/// Connections open now from each source address of one destination.
#[derive(Debug, Default)]
pub struct SourceCounts(Mutex<HashMap<IpAddr, u32>>);

/// One connection counted against its source address; released when dropped.
#[derive(Debug)]
pub struct SourceSlot {
    counts: Arc<SourceCounts>,
    ip: IpAddr,
}

impl SourceCounts {
    /// A slot for `ip`, or `None` when it already holds `cap`.
    pub(super) fn try_take(self: &Arc<Self>, ip: IpAddr, cap: u32) -> Option<SourceSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
