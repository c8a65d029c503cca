//! Cloud port allocation from the configured range.
//!
//! A port is handed out only if it is free in our books *and* the operating system lets us
//! bind it right now, so a port taken by another process is skipped instead of failing
//! later in the destination's listener.

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpListener};
use std::ops::RangeInclusive;

#[derive(Debug, Clone)]
pub struct PortPool {
    range: RangeInclusive<u16>,
    bind_ip: IpAddr,
    used: BTreeSet<u16>,
}

impl PortPool {
    pub fn new(range: RangeInclusive<u16>, bind_ip: IpAddr) -> Self {
        PortPool {
            range,
            bind_ip,
            used: BTreeSet::new(),
        }
    }

    pub fn range(&self) -> &RangeInclusive<u16> {
        &self.range
    }

    /// Marks a port as taken (loaded from the store).
    pub fn mark_used(&mut self, port: u16) {
        self.used.insert(port);
    }

    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }

    pub fn is_free(&self, port: u16) -> bool {
        self.range.contains(&port) && !self.used.contains(&port) && self.bindable(port)
    }

    /// A free port, `preferred` first if it is still free. Does not mark it used: the
    /// caller does once the change is committed.
    pub fn pick(&self, preferred: Option<u16>) -> Option<u16> {
        self.pick_excluding(preferred, &[])
    }

    /// As [`pick`](Self::pick), also skipping `taken`: ports promised earlier in the same
    /// change but not yet marked used.
    pub fn pick_excluding(&self, preferred: Option<u16>, taken: &[u16]) -> Option<u16> {
        let free = |p: &u16| !taken.contains(p) && self.is_free(*p);
        preferred
            .filter(free)
            .or_else(|| self.range.clone().find(free))
    }

    fn bindable(&self, port: u16) -> bool {
        TcpListener::bind((self.bind_ip, port)).is_ok()
    }
}

/// Parses `20000-29999` (or a single port).
pub fn parse_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    let lo: u16 = lo
        .parse()
        .map_err(|_| format!("{text:?} is not a port range like 20000-29999"))?;
    let hi: u16 = hi
        .parse()
        .map_err(|_| format!("{text:?} is not a port range like 20000-29999"))?;
    if lo == 0 || lo > hi {
        return Err(format!(
            "{text:?}: the range must be 1-65535 with the low port first"
        ));
    }
    Ok(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!(parse_range("20000-20010").unwrap(), 20000..=20010);
        assert_eq!(parse_range("443").unwrap(), 443..=443);
        assert!(parse_range("0-10").is_err());
        assert!(parse_range("20-10").is_err());
        assert!(parse_range("a-b").is_err());
        assert!(parse_range("70000").is_err());
    }

    #[test]
    fn a_port_bound_by_someone_else_is_skipped() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let pool = PortPool::new(port..=port.saturating_add(1), Ipv4Addr::LOCALHOST.into());
        assert_ne!(pool.pick(Some(port)), Some(port));
    }

    #[test]
    fn used_ports_are_not_handed_out_twice() {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut pool = PortPool::new(port..=port, Ipv4Addr::LOCALHOST.into());
        assert_eq!(pool.pick(None), Some(port));
        pool.mark_used(port);
        assert_eq!(pool.pick(None), None);
        pool.release(port);
        assert_eq!(pool.pick(None), Some(port));
    }
}
