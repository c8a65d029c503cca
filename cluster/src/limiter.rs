//! Caps on tunnel connections that have not yet authenticated.
//!
//! TLS handshakes cost CPU and unauthenticated peers cost memory, so the node holds at most
//! [`MAX_PENDING_HANDSHAKES`] of them. Silent peers must not be able to fill that room and
//! lock every real client out, so:
//!
//! - peers are counted by network, not by address — a /24 for IPv4, a /64 for IPv6 (one
//!   host there owns billions of addresses) — and one network holds at most
//!   [`MAX_PENDING_PER_NET`]; past it its new connections are closed at once;
//! - when the whole room is full, the oldest pending handshake is evicted to make room for
//!   the new one: a peer that sends nothing loses its slot to whoever comes next, and a
//!   real client, whose handshake takes milliseconds, is done long before its turn;
//! - the tunnel listener gives each peer a short deadline for its first byte and one
//!   deadline for TLS, Hello and authentication together (see `tunnel.rs`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Handshakes in progress at once, node-wide. Enough for every client of a large
/// installation to reconnect after a node restart within a few handshake times.
pub const MAX_PENDING_HANDSHAKES: usize = 512;
/// Handshakes in progress at once from one network (/24 or /64).
pub const MAX_PENDING_PER_NET: usize = 64;

/// The network a peer is counted in: its /24 (IPv4, and IPv4 mapped into IPv6) or /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net(u128);

impl Net {
    pub fn of(ip: IpAddr) -> Net {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => Net(u128::from(u32::from(v4) >> 8)),
            IpAddr::V6(v6) => Net((u128::from(v6) >> 64) | (1 << 64)),
        }
    }
}

#[derive(Default)]
struct Pending {
    /// Slot id → its network and how to evict it. Ids grow, so the first is the oldest.
    slots: BTreeMap<u64, (Net, oneshot::Sender<()>)>,
    per_net: HashMap<Net, usize>,
    next_id: u64,
}

impl Pending {
    fn remove(&mut self, id: u64) -> Option<oneshot::Sender<()>> {
        let (net, evict) = self.slots.remove(&id)?;
        if let Some(n) = self.per_net.get_mut(&net) {
            *n -= 1;
            if *n == 0 {
                self.per_net.remove(&net);
            }
        }
        Some(evict)
    }
}

#[derive(Default)]
pub struct HandshakeLimiter {
    pending: Mutex<Pending>,
    refused: AtomicU64,
    evicted: AtomicU64,
}

/// One pending handshake's slot: released when dropped; `evicted` resolves if a newer
/// peer took it.
pub struct Permit {
    limiter: Arc<HandshakeLimiter>,
    id: u64,
    pub evicted: oneshot::Receiver<()>,
}

impl HandshakeLimiter {
    /// A slot for a new peer, or `None` when its network already holds its share.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let net = Net::of(ip);
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.per_net.get(&net).copied().unwrap_or(0) >= MAX_PENDING_PER_NET {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if p.slots.len() >= MAX_PENDING_HANDSHAKES {
            let oldest = p.slots.keys().next().copied();
            if let Some(evict) = oldest.and_then(|id| p.remove(id)) {
                // The evicted handshake ends when it sees this (or already has).
                let _ = evict.send(());
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = p.next_id;
        p.next_id += 1;
        let (tx, rx) = oneshot::channel();
        p.slots.insert(id, (net, tx));
        *p.per_net.entry(net).or_insert(0) += 1;
        Some(Permit {
            limiter: self.clone(),
            id,
            evicted: rx,
        })
    }

    /// Connections closed at once because their network held its share.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Pending handshakes closed to make room for newer peers.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slots
            .len()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_network_holds_its_share_and_slots_come_back() {
        let l = Arc::new(HandshakeLimiter::default());
        let permits: Vec<_> = (0..MAX_PENDING_PER_NET)
            .map(|i| {
                l.try_acquire(Ipv4Addr::new(10, 0, 0, i as u8).into())
                    .expect("under the cap")
            })
            .collect();
        assert!(
            l.try_acquire(Ipv4Addr::new(10, 0, 0, 250).into()).is_none(),
            "another address of the same /24 is the same network"
        );
        assert!(l.try_acquire(Ipv4Addr::new(10, 0, 1, 1).into()).is_some());
        drop(permits);
        assert!(l.try_acquire(Ipv4Addr::new(10, 0, 0, 1).into()).is_some());
        assert_eq!(l.refused(), 1);
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse::<Ipv6Addr>().unwrap().into();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap().into();
        let c: IpAddr = "2001:db8:1:3::1".parse::<Ipv6Addr>().unwrap().into();
        assert_eq!(Net::of(a), Net::of(b));
        assert_ne!(Net::of(a), Net::of(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse::<Ipv6Addr>().unwrap().into();
        assert_eq!(
            Net::of(mapped),
            Net::of(Ipv4Addr::new(10, 0, 0, 200).into())
        );
    }

    #[test]
    fn when_full_the_oldest_pending_handshake_makes_room() {
        let l = Arc::new(HandshakeLimiter::default());
        let mut permits: Vec<Permit> = (0..MAX_PENDING_HANDSHAKES)
            .map(|i| {
                let ip = Ipv4Addr::new(10, (i / 64) as u8, (i % 64) as u8, 1);
                l.try_acquire(ip.into()).expect("room")
            })
            .collect();
        let newcomer = l.try_acquire(Ipv4Addr::new(192, 0, 2, 1).into());
        assert!(newcomer.is_some(), "a new peer always gets in");
        assert_eq!(l.pending(), MAX_PENDING_HANDSHAKES);
        assert_eq!(l.evicted(), 1);
        assert!(
            permits[0].evicted.try_recv().is_ok(),
            "the oldest was told to go"
        );
        assert!(
            permits[1].evicted.try_recv().is_err(),
            "the others were not"
        );
    }
}
