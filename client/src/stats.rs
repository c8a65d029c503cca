//! The client's connection figures (F17): bytes each way, total and active connections,
//! per gateway and summed.

use sg_proto::pump::PumpCounters;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Bytes of carried connections, counted by the pump whose local socket is the private
    /// service: `sent` is read from the service (data from the destination, *received* in
    /// [F16]'s words), `received` is written to it (from the cloud application,
    /// *transmitted*).
    pub bytes: Arc<PumpCounters>,
    /// Bytes of cloud destinations' connections, counted by the pump whose local socket is
    /// the requesting application: `sent` is read from it (*transmitted*), `received`
    /// written to it (*received*).
    pub cloud_bytes: Arc<PumpCounters>,
    pub total_connections: AtomicU64,
    pub active_connections: AtomicU64,
    pub refused_connections: AtomicU64,
}

/// A snapshot for display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Bytes sent by the requesting applications (cloud applications, or private ones
    /// using a cloud destination) towards the destinations.
    pub transmitted: u64,
    /// Bytes the destinations sent back.
    pub received: u64,
    pub total_connections: u64,
    pub active_connections: u64,
}

impl GatewayStats {
    pub fn figures(&self) -> Figures {
        Figures {
            // [F16]: transmitted is what the cloud application sent, received is what the
            // destination sent.
            transmitted: self.bytes.received.load(Ordering::Relaxed)
                + self.cloud_bytes.sent.load(Ordering::Relaxed),
            received: self.bytes.sent.load(Ordering::Relaxed)
                + self.cloud_bytes.received.load(Ordering::Relaxed),
            total_connections: self.total_connections.load(Ordering::Relaxed),
            active_connections: self.active_connections.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::Add for Figures {
    type Output = Figures;
    fn add(self, o: Figures) -> Figures {
        Figures {
            transmitted: self.transmitted + o.transmitted,
            received: self.received + o.received,
            total_connections: self.total_connections + o.total_connections,
            active_connections: self.active_connections + o.active_connections,
        }
    }
}

/// Counts a connection as active for as long as it lives.
pub struct ActiveGuard(Arc<GatewayStats>);

impl ActiveGuard {
    pub fn new(stats: Arc<GatewayStats>) -> Self {
        stats.total_connections.fetch_add(1, Ordering::Relaxed);
        stats.active_connections.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(stats)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
