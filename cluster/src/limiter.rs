//! Caps on tunnel connections that have not yet authenticated.
//!
//! TLS handshakes cost CPU and unauthenticated peers cost memory, so the node holds at most
//! [`MAX_PENDING_HANDSHAKES`] in total and [`MAX_PENDING_PER_IP`] from any one address. Past
//! a cap a new connection is closed at once and counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Handshakes in progress at once, node-wide. Enough for every client of a large
/// installation to reconnect after a node restart within a few handshake times.
pub const MAX_PENDING_HANDSHAKES: usize = 512;
/// Handshakes in progress at once from one source address.
pub const MAX_PENDING_PER_IP: usize = 64;

#[derive(Default)]
pub struct HandshakeLimiter {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

/// Releases its slot when dropped.
pub struct Permit {
    limiter: Arc<HandshakeLimiter>,
    ip: IpAddr,
}

impl HandshakeLimiter {
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= MAX_PENDING_PER_IP || self.total.load(Ordering::Relaxed) >= MAX_PENDING_HANDSHAKES
        {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Permit {
            limiter: self.clone(),
            ip,
        })
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn pending(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per_ip = self
            .limiter
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.limiter.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn per_ip_cap_holds_and_slots_come_back() {
        let l = Arc::new(HandshakeLimiter::default());
        let ip: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let permits: Vec<_> = (0..MAX_PENDING_PER_IP)
            .map(|_| l.try_acquire(ip).expect("under the cap"))
            .collect();
        assert!(l.try_acquire(ip).is_none());
        assert!(l.try_acquire(Ipv4Addr::new(10, 0, 0, 2).into()).is_some());
        drop(permits);
        assert!(l.try_acquire(ip).is_some());
        assert_eq!(l.refused(), 1);
    }
}
