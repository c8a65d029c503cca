//! What the console and the web UI see of a running client: every gateway it serves, with
//! its figures, its live sessions, and the latest configuration (destinations and ACL) the
//! node sent. Tunnels keep it current; nothing on the byte path touches it.

use crate::config::GatewayCredentials;
use crate::health_book::HealthBook;
use crate::resource_tls::ResourceTlsCache;
use crate::stats::{Figures, GatewayStats};
use sg_proto::acl::{Acl, DefaultPolicy};
use sg_proto::driver::SessionHandle;
use sg_proto::frame::{AclUpdate, Frame, GatewayConfig, ACL_UPDATE_EVERY};
use sg_proto::version::ACL_UPDATE_SINCE;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One live session, as the console and UI list it.
#[derive(Clone)]
pub struct SessionInfo {
    pub session_id: String,
    pub server: String,
    pub node_id: String,
    pub region: String,
    pub connected_at: std::time::SystemTime,
    pub protocol_minor: u16,
    pub handle: SessionHandle,
}

/// One client port (a cloud destination's listener), as the console and UI list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerView {
    pub destination_id: String,
    pub name: String,
    /// `ip:port` the client listens on.
    pub address: String,
    /// The cloud resource behind it, as the node dials it.
    pub resource: String,
    /// `None` while listening; else why the port could not be bound (retried).
    pub error: Option<String>,
}

impl std::fmt::Display for ListenerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} (cloud destination {}, {})",
            self.address, self.resource, self.destination_id, self.name
        )?;
        match &self.error {
            None => write!(f, ": listening"),
            Some(why) => write!(f, ": NOT listening: {why}"),
        }
    }
}

/// One gateway served by this process.
pub struct GatewayRuntime {
    pub creds: GatewayCredentials,
    pub stats: Arc<GatewayStats>,
    pub acl_default: DefaultPolicy,
    /// Whether this client reaches each destination's service (F31).
    pub health: HealthBook,
    /// TLS client configurations for the destinations' resource-side TLS.
    pub resource_tls: ResourceTlsCache,
    sessions: Mutex<Vec<SessionInfo>>,
    /// The latest configuration a node sent; the client ports follow it.
    latest: tokio::sync::watch::Sender<Option<Arc<GatewayConfig>>>,
    /// The client ports of the gateway's cloud destinations, as they stand.
    listeners: Mutex<Vec<ListenerView>>,
    /// Rules from `--acl-file`, sent to the node once, on the first session.
    acl_file: Mutex<Option<Vec<String>>>,
    /// `--acl-file` with `--acl-lock`: rules every stream must also pass, whatever ACL the
    /// node sends, so the shared ACL cannot widen what this client reaches.
    ceiling: Option<Acl>,
    said_default: AtomicBool,
    /// When the next ACL change may go to the node (see [`ACL_UPDATE_EVERY`]).
    next_acl_push: Mutex<Option<Instant>>,
}

/// Slack on top of the node's interval, so a change sent on the dot is not judged early.
const ACL_PUSH_MARGIN: Duration = Duration::from_millis(100);

impl GatewayRuntime {
    pub fn new(
        creds: GatewayCredentials,
        acl_default: DefaultPolicy,
        acl_file: Option<Vec<String>>,
        ceiling: Option<Acl>,
    ) -> Self {
        GatewayRuntime {
            health: HealthBook::new(&creds.id),
            resource_tls: ResourceTlsCache::default(),
            creds,
            stats: Arc::new(GatewayStats::default()),
            acl_default,
            sessions: Mutex::new(Vec::new()),
            latest: tokio::sync::watch::Sender::new(None),
            listeners: Mutex::new(Vec::new()),
            acl_file: Mutex::new(acl_file),
            ceiling,
            said_default: AtomicBool::new(false),
            next_acl_push: Mutex::new(None),
        }
    }

    /// The locked local ACL, if any.
    pub fn ceiling(&self) -> Option<&Acl> {
        self.ceiling.as_ref()
    }

    pub fn id(&self) -> &str {
        &self.creds.id
    }

    pub fn session_up(&self, info: SessionInfo) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|s| s.session_id != info.session_id);
        sessions.push(info);
    }

    pub fn session_down(&self, session_id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s.session_id != session_id);
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the configuration a node sent; logs the ACL default once.
    pub fn set_config(&self, config: Arc<GatewayConfig>) {
        if config.acl.is_empty() && !self.said_default.swap(true, Ordering::Relaxed) {
            match self.acl_default {
                DefaultPolicy::Destinations => tracing::info!(
                    gateway = %self.creds.id,
                    "the ACL has no rules: only the gateway's {} configured destination(s) are reachable",
                    config.destinations.len()
                ),
                DefaultPolicy::Deny => tracing::warn!(
                    gateway = %self.creds.id,
                    "the ACL has no rules and --acl-default is deny: every connection is refused"
                ),
            }
        }
        self.latest.send_if_modified(|latest| {
            let changed = latest.as_deref() != Some(&*config);
            *latest = Some(config);
            changed
        });
    }

    pub fn config(&self) -> Option<Arc<GatewayConfig>> {
        self.latest.borrow().clone()
    }

    /// Wakes on every new configuration.
    pub fn watch_config(&self) -> tokio::sync::watch::Receiver<Option<Arc<GatewayConfig>>> {
        self.latest.subscribe()
    }

    /// The client ports as they stand now (console `r`, the UI).
    pub fn listeners(&self) -> Vec<ListenerView> {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_listeners(&self, views: Vec<ListenerView>) {
        *self.listeners.lock().unwrap_or_else(|p| p.into_inner()) = views;
    }

    pub fn acl(&self) -> Acl {
        self.config()
            .map(|c| Acl::from_strings(&c.acl))
            .unwrap_or_default()
    }

    pub fn figures(&self) -> Figures {
        self.stats.figures()
    }

    /// Sends a new ACL to the node, which stores it and hands it to every client.
    pub fn push_acl(&self, rules: Vec<String>) -> Result<(), String> {
        let sessions = self.sessions();
        let Some(s) = sessions.iter().find(|s| !s.handle.is_closed()) else {
            return Err(format!(
                "gateway {} is not connected to a node; try again when it is",
                self.creds.id
            ));
        };
        if s.protocol_minor < ACL_UPDATE_SINCE {
            return Err(format!(
                "the node at {} is too old to take ACL changes from clients; use `sgctl acl` there",
                s.server
            ));
        }
        // The node takes one change a second from a session: a quicker one waits its turn
        // here (in order) rather than being ignored there.
        let wait = {
            let mut next = self.next_acl_push.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let at = next.map_or(now, |t| t.max(now));
            *next = Some(at + ACL_UPDATE_EVERY + ACL_PUSH_MARGIN);
            at - now
        };
        let frame = Frame::AclUpdate(AclUpdate { rules });
        if wait.is_zero() {
            return s.handle.send_control(frame).map_err(|e| e.to_string());
        }
        let handle = s.handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Err(e) = handle.send_control(frame) {
                tracing::warn!("an ACL change could not be sent to the node: {e}");
            }
        });
        Ok(())
    }

    /// The `--acl-file` rules still to be sent (until a push succeeds).
    pub fn pending_acl_file(&self) -> Option<Vec<String>> {
        self.acl_file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `--acl-file` rules reached the node.
    pub fn acl_file_sent(&self) {
        *self.acl_file.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Everything the console and the UI need.
pub struct Registry {
    pub client_id: String,
    pub gateways: Vec<Arc<GatewayRuntime>>,
    pub log: &'static sg_proto::logging::LogControl,
    /// Set when an operator asks the client to quit (console `q`).
    pub quit: tokio::sync::watch::Sender<bool>,
    /// The running configuration in words, secrets redacted (console `C`).
    pub config_summary: String,
}

impl Registry {
    pub fn gateway(&self, id: &str) -> Option<&Arc<GatewayRuntime>> {
        self.gateways.iter().find(|g| g.id() == id)
    }

    pub fn totals(&self) -> Figures {
        self.gateways
            .iter()
            .map(|g| g.figures())
            .fold(Figures::default(), |a, b| a + b)
    }
}
