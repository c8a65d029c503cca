//! What the cluster tests share: a real etcd cluster from Debian's `etcd-server` on
//! loopback, an address block of 127.0.0.0/8 of its own per test (so tests running in
//! parallel never share an address), nodes joined to that etcd, and partitions made with
//! nftables drops (this machine has no `tc netem`).

use crate::{free_port, wait_until, Node, NodeOptions};
use sg_api::node::NodeView;
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// A block of loopback addresses for one test: `127.0.K.x`.
#[derive(Debug, Clone, Copy)]
pub struct Subnet(u8);

impl Subnet {
    /// A block no other test of this process uses.
    pub fn take() -> Subnet {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        // Offset by the process id so consecutive test binaries differ too.
        Subnet(20 + ((std::process::id() as u8).wrapping_mul(17).wrapping_add(k)) % 200)
    }

    pub fn ip(&self, host: u8) -> String {
        format!("127.0.{}.{host}", self.0)
    }

    /// Where etcd serves nodes that can be cut off from it (see [`EtcdCluster::endpoints_via`]).
    pub fn etcd_alias(&self) -> String {
        self.ip(2)
    }

    /// The cloud address of the `n`th node.
    pub fn node_ip(&self, n: u8) -> String {
        self.ip(10 + n)
    }

    /// A client's source address, so it can be cut off alone.
    pub fn client_ip(&self, n: u8) -> String {
        self.ip(100 + n)
    }
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A real etcd cluster on loopback. Every member serves clients on 127.0.0.1 and on the
/// test's etcd alias address, so one node can be partitioned from etcd by address.
pub struct EtcdCluster {
    members: Vec<Member>,
    subnet: Subnet,
    _temp: tempfile::TempDir,
    token: String,
    tls: Option<EtcdTls>,
}

/// Files of an etcd that serves clients over TLS and wants a client certificate.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl EtcdCluster {
    pub fn start(n: usize, subnet: Subnet) -> EtcdCluster {
        EtcdCluster::start_with(n, subnet, None)
    }

    /// A cluster whose clients must speak TLS and present a certificate signed by `tls.ca`.
    pub fn start_with(n: usize, subnet: Subnet, tls: Option<EtcdTls>) -> EtcdCluster {
        let temp = tempfile::tempdir().expect("temp dir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("e{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                dir: temp.path().join(format!("e{i}")),
                child: None,
            })
            .collect();
        let mut etcd = EtcdCluster {
            members,
            subnet,
            token: format!("sg-test-{}", free_port()),
            _temp: temp,
            tls,
        };
        for i in 0..n {
            etcd.launch(i);
        }
        assert!(etcd.wait_healthy(), "etcd did not become healthy");
        etcd
    }

    fn launch(&mut self, i: usize) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let alias = self.subnet.etcd_alias();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let tls_args: Vec<String> = match &self.tls {
            None => Vec::new(),
            Some(t) => vec![
                "--cert-file".into(),
                t.server_cert.display().to_string(),
                "--key-file".into(),
                t.server_key.display().to_string(),
                "--client-cert-auth".into(),
                "--trusted-ca-file".into(),
                t.ca.display().to_string(),
            ],
        };
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.with_extension("log"))
            .expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.dir)
            .args([
                "--listen-client-urls",
                &format!(
                    "{scheme}://127.0.0.1:{p},{scheme}://{alias}:{p}",
                    p = m.client_port
                ),
                "--advertise-client-urls",
                &format!("{scheme}://127.0.0.1:{}", m.client_port),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer_port),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer_port),
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                &self.token,
            ])
            .args(&tls_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("etcd is installed (scripts/test.sh installs etcd-server)");
        m.child = Some(child);
    }

    /// Every member answers its health check.
    pub fn wait_healthy(&self) -> bool {
        wait_until(Duration::from_secs(20), || {
            if self.tls.is_some() {
                return Command::new("etcdctl")
                    .args(self.tls_flags())
                    .arg(format!("--endpoints={}", self.endpoints()))
                    .args(["endpoint", "health"])
                    .output()
                    .is_ok_and(|o| o.status.success());
            }
            self.members
                .iter()
                .filter(|m| m.child.is_some())
                .all(|m| health(m.client_port))
        })
    }

    fn tls_flags(&self) -> Vec<String> {
        match &self.tls {
            None => Vec::new(),
            Some(t) => vec![
                format!("--cacert={}", t.ca.display()),
                format!("--cert={}", t.client_cert.display()),
                format!("--key={}", t.client_key.display()),
            ],
        }
    }

    /// `--etcd` for nodes: every member on 127.0.0.1.
    pub fn endpoints(&self) -> String {
        self.endpoints_via("127.0.0.1")
    }

    /// `--etcd` through the test's alias address, which [`Partition::etcd`] can cut.
    pub fn endpoints_via(&self, ip: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members
            .iter()
            .map(|m| format!("{scheme}://{ip}:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client_ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.client_port).collect()
    }

    /// Kills one member with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Starts every killed member again on its data dir.
    pub fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.launch(i);
            }
        }
        assert!(self.wait_healthy(), "etcd did not come back");
    }

    /// Kills every member and starts an empty etcd on the same addresses: a new etcd
    /// cluster (another cluster id), revision 1, nothing in it.
    pub fn wipe(&mut self) {
        self.kill_all();
        for m in &self.members {
            let _ = std::fs::remove_dir_all(&m.dir);
        }
        self.token = format!("sg-test-{}", free_port());
        self.restart_all();
    }

    /// Saves a snapshot of the cluster's data (`etcdctl snapshot save`).
    pub fn snapshot(&self, path: &std::path::Path) {
        let endpoint = format!(
            "--endpoints=http://127.0.0.1:{}",
            self.members[0].client_port
        );
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(self.tls_flags())
            .arg(endpoint)
            .arg("snapshot")
            .arg("save")
            .arg(path)
            .output()
            .expect("etcdctl");
        assert!(
            out.status.success(),
            "snapshot save: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills every member and brings the cluster back from `snapshot`, as an operator
    /// restoring a backup would: older data, a lower revision, a new etcd cluster id.
    pub fn restore(&mut self, snapshot: &std::path::Path) {
        self.kill_all();
        self.token = format!("sg-test-{}", free_port());
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        for m in &self.members {
            let _ = std::fs::remove_dir_all(&m.dir);
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg("snapshot")
                .arg("restore")
                .arg(snapshot)
                .arg(format!("--name={}", m.name))
                .arg(format!("--data-dir={}", m.dir.display()))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg(format!("--initial-cluster-token={}", self.token))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                    m.peer_port
                ))
                .output()
                .expect("etcdctl");
            assert!(
                out.status.success(),
                "snapshot restore: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.restart_all();
    }

    /// `etcdctl` against the cluster.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(self.tls_flags())
            .arg(format!("--endpoints={}", self.endpoints()))
            .args(args)
            .output()
            .expect("etcdctl is installed (scripts/test.sh installs etcd-client)");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        let out = self.ctl(&["endpoint", "status", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("endpoint status JSON");
        v[0]["Status"]["header"]["revision"]
            .as_i64()
            .expect("a revision")
    }

    /// Compacts the history up to now: a watch from an older revision is cancelled.
    pub fn compact(&self) {
        let rev = self.revision();
        self.ctl(&["compact", &rev.to_string(), "--physical"]);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn health(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("\"health\":\"true\"")
}

/// A cluster node's options: its region, its own cloud address, the cluster's port range.
pub fn node_options(
    etcd: &str,
    region: &str,
    cloud_ip: &str,
    cloud_ports: &str,
    admin_token: Option<&str>,
) -> NodeOptions {
    NodeOptions {
        region: region.into(),
        extra: vec!["--etcd".into(), etcd.into()],
        cloud_ip: cloud_ip.into(),
        cloud_ports: Some(cloud_ports.into()),
        admin_token: admin_token.map(str::to_string),
        ..NodeOptions::default()
    }
}

/// A cloud-port range for a cluster (every node uses the same one, on its own address).
pub fn cluster_ports() -> String {
    let base = crate::free_block(100);
    format!("{base}-{}", base + 99)
}

/// A 3-member etcd and nodes joined to it: node 0 (region `r1`) creates the cluster, the
/// others (`r2`, `r3`, ...) join with its admin token. Each node has its own cloud address.
pub struct Cluster {
    pub subnet: Subnet,
    pub etcd: EtcdCluster,
    pub nodes: Vec<Node>,
    pub ports: String,
    /// Cluster tests run one at a time: each runs three etcd members, two or three nodes
    /// and clients, and timing assertions (failover within seconds) need the machine.
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    pub fn start(nodes: usize) -> Cluster {
        Cluster::start_with(nodes, |_| Vec::new())
    }

    /// `extra(i)` adds flags to node `i`.
    pub fn start_with(nodes: usize, extra: impl Fn(usize) -> Vec<String>) -> Cluster {
        let serial = serial();
        let subnet = Subnet::take();
        let etcd = EtcdCluster::start(3, subnet);
        let mut cluster = Cluster {
            subnet,
            etcd,
            nodes: Vec::new(),
            ports: cluster_ports(),
            _serial: serial,
        };
        for i in 0..nodes {
            let endpoints = cluster.etcd.endpoints();
            cluster.add_node(&endpoints, extra(i));
        }
        // A node's `node.json` means it serves; that every other node has seen it join
        // (through the registry's watch) comes a moment later. Tests start from a formed
        // cluster.
        let formed = wait_until(Duration::from_secs(10), || {
            cluster.nodes.iter().all(|node| {
                node.try_fetch::<Vec<NodeView>>("/v1/nodes")
                    .is_some_and(|seen| seen.len() == nodes)
            })
        });
        assert!(
            formed,
            "the {nodes} nodes did not all see each other within 10 s"
        );
        cluster
    }

    /// Starts one more node against `etcd` (the cluster's endpoints, or its alias ones).
    pub fn add_node(&mut self, etcd: &str, extra: Vec<String>) -> &Node {
        let i = self.nodes.len();
        let token = self.nodes.first().map(Node::token);
        let mut opts = node_options(
            etcd,
            &format!("r{}", i + 1),
            &self.subnet.node_ip(i as u8),
            &self.ports,
            token.as_deref(),
        );
        opts.extra.extend(extra);
        self.nodes.push(Node::start_with(opts));
        &self.nodes[i]
    }
}

/// Runs `sg-node` with `opts` expecting it to refuse to start: returns its exit code and
/// what it printed.
pub fn refused_start(opts: &NodeOptions) -> (Option<i32>, String) {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(crate::bin("sg-node"));
    cmd.args(["--region", &opts.region, "--data-dir"])
        .arg(temp.path().join("data"))
        .args([
            "--tunnel-listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
            "--cloud-host",
            &opts.cloud_ip,
            "--cloud-bind",
            &opts.cloud_ip,
        ]);
    if let Some(p) = &opts.cloud_ports {
        cmd.args(["--cloud-ports", p]);
    }
    let out = crate::run_with_timeout(cmd.args(&opts.extra), Duration::from_secs(30));
    (out.0, out.1)
}

/// Packets dropped by nftables while this lives: a silent partition (no FIN, no RST).
pub struct Partition {
    table: String,
}

impl Partition {
    /// Drops every packet matching `matches` (nft match expressions, e.g.
    /// `ip daddr 127.0.5.2 tcp dport { 2379 }`), in both hooks loopback traffic crosses.
    pub fn drop_matching(matches: &[String]) -> Partition {
        static N: AtomicU8 = AtomicU8::new(0);
        let table = format!(
            "sgtest_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut script = format!("table inet {table} {{\n");
        for hook in ["output", "input"] {
            script.push_str(&format!(
                "  chain {hook} {{\n    type filter hook {hook} priority -10; policy accept;\n"
            ));
            for m in matches {
                script.push_str(&format!("    {m} drop\n"));
            }
            script.push_str("  }\n");
        }
        script.push_str("}\n");
        nft(&["-f", "-"], Some(&script));
        Partition { table }
    }

    /// Cuts every connection between `ip` and the etcd client ports.
    pub fn etcd(ip: &str, ports: &[u16]) -> Partition {
        let ports = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Partition::drop_matching(&[
            format!("ip daddr {ip} tcp dport {{ {ports} }}"),
            format!("ip saddr {ip} tcp sport {{ {ports} }}"),
        ])
    }

    /// Cuts everything from and to `ip`.
    pub fn host(ip: &str) -> Partition {
        Partition::drop_matching(&[format!("ip saddr {ip}"), format!("ip daddr {ip}")])
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        nft(&["delete", "table", "inet", &self.table], None);
    }
}

fn nft(args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft is installed (scripts/test.sh installs nftables)");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().expect("nft ran");
    assert!(
        out.status.success(),
        "nft {args:?} failed (the tests need root for nftables): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
