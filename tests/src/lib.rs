//! The one shared harness of the end-to-end tests: start real `sg-node` and `sg-client`
//! processes on loopback with ephemeral ports and temporary data dirs, make gateways and
//! destinations through the real API, run small real servers, and clean every process up
//! on drop — so each test reads like a user story.
//!
//! The binaries come from `target/<profile>/` (next to the test executable) or from
//! `SG_BIN_DIR`; `scripts/test.sh` builds them before running the tests.

use serde_json::Value;
pub use sg_api::client::{ApiClient, ApiResponse};
pub use sg_api::clients::{ClientState, ClientView};
pub use sg_api::events::{EventKind, EventView};
use sg_cluster::run::NodeFile;
use sg_proto::tls::{self, ServerTrust};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod cluster;
pub mod netns;

/// Where the binaries under test live.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SG_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-xxxx -> target/debug/NAME
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (scripts/test.sh does: cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Polls `f` every 50 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port that was free a moment ago, below the ephemeral range (4000-9999) and beside
/// [`free_block`]'s: a port the kernel hands out as an ephemeral one may become some
/// outgoing connection's source port before the process it was meant for binds it (the
/// suite makes thousands of connections), which failed a node's start now and then.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const LOW: u16 = 4000;
    const COUNT: u16 = 6000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(40_503);
    for _ in 0..COUNT {
        let p = LOW + NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(seed) % COUNT;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
            return p;
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A block of `n` ports below the ephemeral range, free right now, for cloud ports.
pub(crate) fn free_block(n: u16) -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7919);
    for _ in 0..200 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(seed) % 200;
        let base = 10_000 + k * 110;
        if (base..base + n).all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return base;
        }
    }
    panic!("no free block of {n} ports");
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

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
        let pem = std::fs::read_to_string(self.ca_path()).expect("ca.pem");
        ServerTrust::Roots(tls::certs_from_pem("ca", &pem).expect("CA parses"))
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
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
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

/// A running `sg-client`.
pub struct Client {
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    log: PathBuf,
    _temp: tempfile::TempDir,
}

impl Client {
    /// Starts a client serving `gateways` ((id, token) pairs) through `node`.
    pub fn start(node: &Node, gateways: &[(&str, &str)], extra: &[&str]) -> Client {
        Client::start_servers(&[node], gateways, extra, &[])
    }

    pub fn start_servers(
        nodes: &[&Node],
        gateways: &[(&str, &str)],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Client {
        Client::launch(nodes, gateways, extra, env, false, &[])
    }

    /// Like [`Client::start`], run through `wrapper` (`ip netns exec NS`, say).
    pub fn start_wrapped(
        node: &Node,
        gateways: &[(&str, &str)],
        extra: &[&str],
        wrapper: &[&str],
    ) -> Client {
        Client::launch(&[node], gateways, extra, &[], false, wrapper)
    }

    /// Like [`Client::start`], with stdin piped for console commands (`--console`).
    pub fn start_console(node: &Node, gateways: &[(&str, &str)], extra: &[&str]) -> Client {
        let mut args = vec!["--console"];
        args.extend_from_slice(extra);
        Client::launch(&[node], gateways, &args, &[], true, &[])
    }

    fn launch(
        nodes: &[&Node],
        gateways: &[(&str, &str)],
        extra: &[&str],
        env: &[(&str, &str)],
        piped: bool,
        wrapper: &[&str],
    ) -> Client {
        let temp = tempfile::tempdir().expect("temp dir");
        let log = temp.path().join("client.log");
        let file = std::fs::File::create(&log).expect("client log");
        let ids: Vec<&str> = gateways.iter().map(|(id, _)| *id).collect();
        let tokens: Vec<&str> = gateways.iter().map(|(_, t)| *t).collect();
        let mut cmd = match wrapper.split_first() {
            None => Command::new(bin("sg-client")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("sg-client"));
                c
            }
        };
        cmd.args(&ids).arg("-t").arg(tokens.join("--"));
        for n in nodes {
            cmd.arg("--server").arg(n.tunnel());
        }
        // Tests run many clients at once: no web UI unless a test asks for one.
        if !extra.iter().any(|a| *a == "--ui-port" || *a == "--no-ui") {
            cmd.arg("--no-ui");
        }
        cmd.arg("--ca")
            .arg(nodes[0].ca_path())
            .args(extra)
            .env_remove("SG_TOKENS")
            .env_remove("SG_UI_PASSWORD")
            // A proxy of the machine running the tests is not the test's.
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start sg-client");
        let stdin = child.stdin.take();
        Client {
            child: Some(child),
            stdin,
            log,
            _temp: temp,
        }
    }

    /// Types a line at the client's console.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with start_console");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .expect("write to the console");
    }

    /// The path of the client's log (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the client to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < end {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- sg-client log ----\n{}", self.log());
        }
    }
}

/// A TCP echo server on loopback, one thread per connection. Its counts (`accepted`,
/// `open`, `peers`) take in the connections that carried at least one byte, so the
/// clients' health probes do not show up as traffic.
pub struct EchoServer {
    pub addr: SocketAddr,
    /// The address each connection came from, in order.
    peers: Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        EchoServer::start_at(Ipv4Addr::LOCALHOST.into())
    }

    /// An echo server on `ip` (an ephemeral port).
    pub fn start_at(ip: std::net::IpAddr) -> EchoServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let peers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = peers.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count, live) = (stop.clone(), accepted.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (count, live, seen) = (count.clone(), live.clone(), seen.clone());
                std::thread::spawn(move || {
                    // A connection counts once it carries a byte: the clients' health
                    // probes (a connect and a close) are not the service's traffic.
                    let mut counted = false;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if !counted {
                                    counted = true;
                                    if let Ok(peer) = conn.peer_addr() {
                                        seen.lock()
                                            .unwrap_or_else(|p| p.into_inner())
                                            .push(peer.ip());
                                    }
                                    count.fetch_add(1, Ordering::SeqCst);
                                    live.fetch_add(1, Ordering::SeqCst);
                                }
                                if conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = conn.shutdown(Shutdown::Write);
                    if counted {
                        live.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        EchoServer {
            addr,
            peers,
            stop,
            accepted,
            open,
            thread: Some(thread),
        }
    }

    /// Connections the private service holds open now (closed by the other end counts as
    /// closed).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections the private service has seen so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Where the connections came from, in order.
    pub fn peers(&self) -> Vec<std::net::IpAddr> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The starting point of most tests: a node, an echo service, a gateway with one
/// destination pointing at it, and one client serving it — already carrying traffic.
pub struct EchoTunnel {
    pub node: Node,
    pub echo: EchoServer,
    pub gw: String,
    pub token: String,
    /// The destination's id.
    pub did: String,
    /// The destination's cloud port.
    pub port: u16,
    pub client: Client,
}

impl EchoTunnel {
    /// `name` names the gateway; `client_flags` go to `sg-client` after the usual ones.
    pub fn start(name: &str, client_flags: &[&str]) -> EchoTunnel {
        let node = Node::start();
        let echo = EchoServer::start();
        let (gw, token) = node.create_gateway(name);
        let (did, port) = node.create_destination(&gw, "echo", echo.addr);
        let client = Client::start(&node, &[(&gw, &token)], client_flags);
        assert!(
            wait_echo(port),
            "echo never worked; client log:\n{}",
            client.log()
        );
        EchoTunnel {
            node,
            echo,
            gw,
            token,
            did,
            port,
            client,
        }
    }
}

/// Waits up to 5 s for an event of `kind` in the gateway's event log.
pub fn has_event(node: &Node, gw: &str, kind: EventKind) -> bool {
    wait_until(Duration::from_secs(5), || {
        node.events(gw).iter().any(|e| e.kind == kind)
    })
}

/// Connects to a cloud port on loopback.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the cloud port");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.set_nodelay(true).ok();
    s
}

/// Sends `msg` and reads the same number of bytes back; `None` if the connection closed.
pub fn echo_once(port: u16, msg: &[u8]) -> Option<Vec<u8>> {
    echo_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), msg)
}

/// [`echo_once`] at any address (a cluster node's cloud address).
pub fn echo_at(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(msg).ok()?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).ok()?;
    Some(got)
}

/// Waits until an echo through `port` works (the client is connected and serving).
pub fn wait_echo(port: u16) -> bool {
    wait_until(Duration::from_secs(30), || {
        echo_once(port, b"ready?").as_deref() == Some(b"ready?".as_slice())
    })
}

/// Deterministic pseudo-random bytes for bulk transfers.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of everything read from `r`, and the byte count.
pub fn sha256_of(r: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        ctx.update(&buf[..n]);
    }
    let hex = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, total))
}

pub fn sha256(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Connects to a loopback cloud port from a chosen source address (e.g. `127.0.0.2:0`).
pub fn connect_from(port: u16, source: &str) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let src: SocketAddr = source
        .parse()
        .map_err(|_| std::io::Error::other("bad source"))?;
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&src.into())?;
    sock.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Whether a connection to the cloud port gets `msg` echoed back.
pub fn echoes(mut s: TcpStream, msg: &[u8]) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).is_ok() && got == msg
}

/// Whether the node closes (or resets) `s` without a byte coming back for `msg`. A
/// connection that just hangs until the read timeout is not a refusal, so this fails where
/// `!echoes` would pass.
pub fn refused(mut s: TcpStream, msg: &[u8]) -> bool {
    let _ = s.write_all(msg);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !is_timeout(&e),
    }
}

/// [`refused`] for a fresh connection to a loopback cloud port.
pub fn refused_at(port: u16, msg: &[u8]) -> bool {
    refused(connect(port), msg)
}

/// Reads (and drops) whatever comes until the peer closes: true if it closed or reset the
/// connection, false if the read timed out first.
pub fn closed_by_node(r: &mut impl Read) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return !is_timeout(&e),
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// What `openssl s_client` saw talking to a TLS cloud port: it sends `line`, waits for the
/// echo, and reports the whole output.
pub struct OpensslRun {
    pub output: String,
    pub echoed: bool,
}

/// Runs the real `openssl s_client` against `port`, verifying with `ca`, with `extra`
/// arguments (e.g. `-cert`/`-key`).
pub fn openssl_echo(port: u16, ca: &Path, extra: &[&str], line: &str) -> OpensslRun {
    use std::sync::Mutex;
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(ca)
        .arg("-verify_return_error")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/test.sh installs it)");
    let output = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = output.clone();
        readers.push(std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut o) = out.lock() {
                    o.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
        // Keep stdin open while waiting for the echo (EOF would end s_client early).
        let echoed = wait_until(Duration::from_secs(10), || {
            let o = output.lock().map(|o| o.clone()).unwrap_or_default();
            o.matches(line).count() >= 1 && o.contains("Verify return code")
                || matches!(child.try_wait(), Ok(Some(_)))
        });
        let _ = echoed;
        drop(stdin);
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    let output = output.lock().map(|o| o.clone()).unwrap_or_default();
    // The echo is the line coming back after the handshake report.
    let echoed = output
        .split("Verify return code")
        .nth(1)
        .is_some_and(|after| after.contains(line));
    OpensslRun { output, echoed }
}

/// Runs `cmd` to its end (killed after `timeout`): its exit code (`None` if killed) and
/// everything it printed.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (Option<i32>, String) {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("out");
    let file = std::fs::File::create(&path).expect("output file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("handle"))
        .stderr(file)
        .spawn()
        .expect("start the command");
    let end = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() >= end {
            kill(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, read_log(&path))
}

/// Runs a command and panics with its output if it fails (test fixtures: openssl).
pub fn run_cmd(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tiny HTTP/1.1 server that answers every request with 200 and the request's path as
/// the body, and remembers every path it saw (to prove what reached it).
pub struct PathServer {
    pub addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl PathServer {
    pub fn start() -> PathServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
                    let mut writer = conn;
                    loop {
                        let mut line = String::new();
                        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        let mut close = false;
                        loop {
                            let mut h = String::new();
                            if std::io::BufRead::read_line(&mut reader, &mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            close |= h.eq_ignore_ascii_case("connection: close\r\n");
                        }
                        if let Ok(mut l) = log.lock() {
                            l.push(path.clone());
                        }
                        let body = format!("{path}\n");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if writer.write_all(resp.as_bytes()).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        PathServer { addr, seen }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Sends one `GET path` on a new connection to a cloud port; returns the status line and
/// the whole answer (empty if the connection was closed without one).
pub fn http_get(port: u16, path: &str) -> (String, String) {
    http_request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
}

/// Sends `req` as typed to the cloud port and returns (status line, whole answer).
pub fn http_request(port: u16, req: &str) -> (String, String) {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return (String::new(), String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    if s.write_all(req.as_bytes()).is_err() {
        return (String::new(), String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    (text.lines().next().unwrap_or("").to_string(), text)
}

/// Where tests keep artifacts (screenshots): target/test-artifacts.
pub fn artifacts_dir() -> PathBuf {
    let dir = bin("sg-node")
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("test-artifacts"))
        .unwrap_or_else(|| PathBuf::from("target/test-artifacts"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// What a test certificate is for.
#[derive(Debug, Clone, Copy)]
pub enum CertUse {
    /// A TLS server for localhost and 127.0.0.1.
    Server,
    /// A TLS client (mutual TLS).
    Client,
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Makes a self-signed CA with the openssl CLI (ECDSA P-256): `DIR/NAME.key`, `DIR/NAME.pem`.
pub fn openssl_ca(dir: &Path, name: &str, cn: &str) {
    let (key, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={cn}"),
    );
    let mut args = vec!["req", "-x509"];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj, "-days", "2"]);
    run_cmd(dir, "openssl", &args);
}

/// Makes a certificate signed by CA `ca` (made with [`openssl_ca`]): `DIR/NAME.key`,
/// `DIR/NAME.pem`.
pub fn openssl_cert(dir: &Path, name: &str, ca: &str, usage: CertUse) {
    let ext = match usage {
        CertUse::Server => "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        CertUse::Client => "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    };
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).expect("write extensions");
    let (key, csr, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("/CN={name}"),
    );
    let mut args = vec!["req"];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    run_cmd(dir, "openssl", &args);
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    run_cmd(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ],
    );
}

/// A size a long run may override through the environment (`SG_SOAK_MINUTES=30`), else
/// `default`: the suite runs the short form, the scripts the long one.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
