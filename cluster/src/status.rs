//! What the node is doing right now, readable from any thread: whether it drains, whether
//! its cloud ports are closed, and how its shared configuration store is doing. `/healthz`,
//! the tunnel port and the API read it; the drain and the cluster store set it.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// How the node's configuration store is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StoreHealth {
    /// A single node on sled: writes go to disk.
    Local = 0,
    /// In a cluster and caught up with etcd: writes go to etcd.
    Synced = 1,
    /// etcd cannot be reached (or has no quorum): the node serves its copy, writes are refused.
    Unreachable = 2,
    /// etcd holds no cluster or another one (wiped, restored elsewhere): the node serves its
    /// copy and refuses writes until an operator acts.
    Detached = 3,
}

impl StoreHealth {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => StoreHealth::Local,
            1 => StoreHealth::Synced,
            2 => StoreHealth::Unreachable,
            _ => StoreHealth::Detached,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StoreHealth::Local => "local",
            StoreHealth::Synced => "synced",
            StoreHealth::Unreachable => "unreachable",
            StoreHealth::Detached => "detached",
        }
    }

    /// Whether changes can be made now.
    pub fn writable(self) -> bool {
        matches!(self, StoreHealth::Local | StoreHealth::Synced)
    }
}

#[derive(Debug)]
pub struct NodeStatus {
    draining: AtomicBool,
    listeners_closed: AtomicBool,
    store: AtomicU8,
}

impl NodeStatus {
    pub fn new(store: StoreHealth) -> Self {
        NodeStatus {
            draining: AtomicBool::new(false),
            listeners_closed: AtomicBool::new(false),
            store: AtomicU8::new(store as u8),
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Cloud ports are closed for good (late in a drain): nothing may bind them again.
    pub fn listeners_closed(&self) -> bool {
        self.listeners_closed.load(Ordering::Acquire)
    }

    pub fn close_listeners(&self) {
        self.listeners_closed.store(true, Ordering::Release);
    }

    pub fn store(&self) -> StoreHealth {
        StoreHealth::from_u8(self.store.load(Ordering::Acquire))
    }

    /// Records the store's health; returns the previous value.
    pub fn set_store(&self, health: StoreHealth) -> StoreHealth {
        StoreHealth::from_u8(self.store.swap(health as u8, Ordering::AcqRel))
    }
}
