//! A real `sg-node` process on loopback, with its data dir, API client and log.

use crate::{bin, free_block, free_port, kill, read_log, send_signal, wait_until};
use serde_json::Value;
use sg_api::client::{ApiClient, ApiResponse};
use sg_api::clients::{ClientState, ClientView};
use sg_api::events::{EventKind, EventView};
use sg_cluster::run::NodeFile;
use sg_proto::tls::ServerTrust;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `sg-node`.
pub struct Node {
    child: Option<Child>,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub info: NodeFile,
    pub api: ApiClient,
    args: Vec<String>,
    log: PathBuf,
    runs: u32,
    admin_token: Option<String>,
    /// Where this node's cloud ports are.
    pub cloud_ip: String,
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub region: String,
    pub extra: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Address the cloud ports bind and are reached at (default 127.0.0.1); nodes of one
    /// cluster on this machine each need their own.
    pub cloud_ip: String,
    /// `LOW-HIGH`; default a free block of 100 ports.
    pub cloud_ports: Option<String>,
    /// The admin token to use when the node writes none (a node that joined a cluster).
    pub admin_token: Option<String>,
    /// Address the tunnel port listens on (default 127.0.0.1).
    pub tunnel_ip: String,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            region: "test".into(),
            extra: Vec::new(),
            env: Vec::new(),
            cloud_ip: "127.0.0.1".into(),
            cloud_ports: None,
            admin_token: None,
            tunnel_ip: "127.0.0.1".into(),
        }
    }
}

impl Node {
    pub fn start() -> Node {
        Node::start_with(NodeOptions::default())
    }

    pub fn start_with(opts: NodeOptions) -> Node {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let cloud_ports = opts.cloud_ports.clone().unwrap_or_else(|| {
            let cloud = free_block(100);
            format!("{cloud}-{}", cloud + 99)
        });
        let mut args: Vec<String> = vec![
            "--region".into(),
            opts.region.clone(),
            "--data-dir".into(),
            dir.display().to_string(),
            // Fixed ports, so a restarted node comes back where its clients look for it.
            "--tunnel-listen".into(),
            format!("{}:{}", opts.tunnel_ip, free_port()),
            "--api-listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--cloud-host".into(),
            opts.cloud_ip.clone(),
            "--cloud-bind".into(),
            opts.cloud_ip.clone(),
            "--cloud-ports".into(),
            cloud_ports,
            "--workers".into(),
            "2".into(),
        ];
        if !opts.extra.iter().any(|a| a == "--drain-timeout") {
            // Tests stop nodes often: do not wait long for open connections.
            args.extend(["--drain-timeout".into(), "1".into()]);
        }
        args.extend(opts.extra.iter().cloned());
        let log = temp.path().join("node.log");
        let mut node = Node {
            child: None,
            dir,
            _temp: Some(temp),
            info: NodeFile {
                pid: 0,
                version: String::new(),
                region: String::new(),
                node_id: String::new(),
                tunnel: String::new(),
                api: String::new(),
                ca: None,
                fingerprint: String::new(),
            },
            api: ApiClient::new("http://127.0.0.1:1", None, None).expect("placeholder client"),
            args,
            log,
            runs: 0,
            admin_token: opts.admin_token.clone(),
            cloud_ip: opts.cloud_ip.clone(),
        };
        node.spawn(&opts.env);
        node
    }

    fn spawn(&mut self, env: &[(String, String)]) {
        let node_file = self.dir.join("node.json");
        let _ = std::fs::remove_file(&node_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        let mut cmd = Command::new(bin("sg-node"));
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start sg-node");
        let pid = child.id();
        self.child = Some(child);
        self.runs += 1;
        let started = wait_until(Duration::from_secs(20), || {
            std::fs::read(&node_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<NodeFile>(&b).ok())
                .is_some_and(|f| f.pid == pid)
        });
        assert!(started, "sg-node did not start; its log:\n{}", self.log());
        self.info = serde_json::from_slice(&std::fs::read(&node_file).expect("node.json"))
            .expect("node.json parses");
        let token = std::fs::read_to_string(self.dir.join("admin.token"))
            .map(|t| t.trim().to_string())
            .ok()
            .or_else(|| self.admin_token.clone())
            .expect("admin.token, or NodeOptions::admin_token for a node that joined a cluster");
        self.api =
            ApiClient::new(&self.info.api, Some(token), Some(self.trust())).expect("API client");
    }

    /// How a client should trust this node.
    pub fn trust(&self) -> ServerTrust {
        ServerTrust::from_ca_file(&self.ca_path()).expect("ca.pem reads and parses")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn tunnel(&self) -> String {
        self.info.tunnel.clone()
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Kills the node with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Waits for the node to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < end {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Starts the node again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn(&[]);
    }

    /// Changes a flag's value for the next start (`restart`).
    pub fn set_arg(&mut self, flag: &str, value: &str) {
        if let Some(i) = self.args.iter().position(|a| a == flag) {
            if let Some(v) = self.args.get_mut(i + 1) {
                *v = value.to_string();
            }
        }
    }

    /// Adds flags for the next start (`restart`).
    pub fn add_args(&mut self, args: &[&str]) {
        self.args.extend(args.iter().map(|a| a.to_string()));
    }

    /// The admin token the node's API takes.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .map(|t| t.trim().to_string())
            .ok()
            .or_else(|| self.admin_token.clone())
            .unwrap_or_default()
    }

    /// A destination's cloud address on this node.
    pub fn cloud(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.cloud_ip.parse().expect("cloud ip"), port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the node process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends SIGTERM and waits for the node to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        send_signal(child.id() as i32, libc::SIGTERM);
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill(&mut child);
        None
    }

    /// One API request; `Err` when the node did not answer (it is down or died mid-way).
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<ApiResponse, String> {
        self.api
            .request(method, path, body.as_ref())
            .map_err(|e| e.to_string())
    }

    /// Starts the node and kills it with SIGKILL `after` that long, ready or not.
    pub fn crash_during_startup(&mut self, after: Duration) {
        self.kill9();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        let mut child = Command::new(bin("sg-node"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start sg-node");
        std::thread::sleep(after);
        kill(&mut child);
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> ApiResponse {
        self.api
            .request(method, path, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A typed call: `body` as JSON, a success read as sg-api's `T`; panics with the
    /// API's refusal otherwise.
    pub fn typed<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> T {
        self.api
            .call(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A typed `GET`.
    pub fn fetch<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.typed::<(), T>("GET", path, None)
    }

    /// A typed `GET` for loops that wait: `None` while the node refuses (or answers with
    /// something that is not a `T`); panics, like [`Node::call`], if it does not answer.
    pub fn try_fetch<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        self.call("GET", path, None).into_typed().ok()
    }

    /// One request whose answer must have exactly `status`; its body read as sg-api's `T`
    /// (an [`sg_api::ErrorBody`] for a refusal).
    pub fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> T {
        let r = self.call(method, path, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        Node::body_of(&r)
    }

    /// An answer's body as sg-api's `T` (an [`sg_api::ErrorBody`] for a refusal), whatever its
    /// status; panics with the body if it is not one.
    pub fn body_of<T: serde::de::DeserializeOwned>(r: &ApiResponse) -> T {
        serde_json::from_value(r.body.clone()).unwrap_or_else(|e| {
            panic!(
                "HTTP {}: not a {}: {e}: {}",
                r.status,
                std::any::type_name::<T>(),
                r.body
            )
        })
    }

    /// Creates a gateway; returns its id and token.
    pub fn create_gateway(&self, name: &str) -> (String, String) {
        let body = sg_api::gateways::NewGateway {
            name: name.into(),
            ..Default::default()
        };
        let g: sg_api::gateways::GatewayView = self.typed("POST", "/v1/gateways", Some(&body));
        (g.id, g.token.expect("a new gateway shows its token"))
    }

    /// Creates a destination for `resource`; returns its id and cloud port.
    pub fn create_destination(
        &self,
        gateway: &str,
        name: &str,
        resource: SocketAddr,
    ) -> (String, u16) {
        let body = sg_api::destinations::NewDestination {
            name: name.into(),
            resource_host: resource.ip().to_string(),
            resource_port: resource.port().into(),
            ..Default::default()
        };
        let d: sg_api::destinations::DestinationView = self.typed(
            "POST",
            &format!("/v1/gateways/{gateway}/destinations"),
            Some(&body),
        );
        (
            d.id,
            d.cloud_port
                .expect("an active destination has a cloud port"),
        )
    }

    /// The client processes connected for a gateway (one entry per node they are on).
    pub fn clients(&self, gateway: &str) -> Vec<ClientView> {
        self.all_clients(gateway)
            .into_iter()
            .filter(|c| c.state == ClientState::Connected)
            .collect()
    }

    /// The client processes connected to this node itself (`?scope=node`).
    pub fn own_clients(&self, gateway: &str) -> Vec<ClientView> {
        let all: Vec<ClientView> =
            self.fetch(&format!("/v1/gateways/{gateway}/clients?scope=node"));
        all.into_iter()
            .filter(|c| c.state == ClientState::Connected)
            .collect()
    }

    /// `/clients` as it is: the connected clients and the last ones gone (`state`).
    pub fn all_clients(&self, gateway: &str) -> Vec<ClientView> {
        self.fetch(&format!("/v1/gateways/{gateway}/clients"))
    }

    pub fn wait_clients(&self, gateway: &str, n: usize) -> bool {
        wait_until(Duration::from_secs(20), || self.clients(gateway).len() == n)
    }

    /// The gateway's last 100 events, newest first.
    pub fn events(&self, gateway: &str) -> Vec<EventView> {
        self.fetch(&format!("/v1/gateways/{gateway}/events?limit=100"))
    }

    /// Runs sgctl and returns its output; panics with what it printed if it fails.
    pub fn sgctl_ok(&self, args: &[&str]) -> String {
        let out = self.sgctl(args);
        assert!(
            out.status.success(),
            "sgctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs sgctl against this node with the given arguments.
    pub fn sgctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("sgctl"))
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("SG_API")
            .env_remove("SG_ADMIN_TOKEN")
            .env_remove("SG_CA")
            .output()
            .expect("run sgctl")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- sg-node log ----\n{}", self.log());
        }
    }
}

/// Waits up to 5 s for an event of `kind` in the gateway's event log.
pub fn has_event(node: &Node, gw: &str, kind: EventKind) -> bool {
    wait_until(Duration::from_secs(5), || {
        node.events(gw).iter().any(|e| e.kind == kind)
    })
}
