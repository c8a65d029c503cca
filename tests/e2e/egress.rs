//! The client in a locked-down network (F25): its only way out is a proxy. Real proxies
//! from Debian — tinyproxy (HTTP CONNECT, basic authentication) and Dante (SOCKS5) — allow
//! the node's tunnel port and nothing else.

use sg_e2e::*;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A proxy server process in its own temp dir (readable by the unprivileged user the
/// servers switch to).
struct ProxyServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ProxyServer {
    fn private_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        dir
    }

    fn wait_listening(mut self, log: &str) -> ProxyServer {
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        if !up {
            let _ = self.child.kill();
            panic!(
                "the proxy did not start: {}",
                read(&self.dir.path().join(log))
            );
        }
        self
    }

    /// tinyproxy allowing CONNECT to `allowed` only; `auth`: required credentials.
    fn tinyproxy(allowed: u16, auth: Option<(&str, &str)>) -> ProxyServer {
        Self::tinyproxy_to(&[allowed], auth)
    }

    /// tinyproxy allowing CONNECT to the `allowed` ports only.
    fn tinyproxy_to(allowed: &[u16], auth: Option<(&str, &str)>) -> ProxyServer {
        let dir = Self::private_dir();
        let port = free_port();
        let d = dir.path().display();
        let mut conf = format!(
            "User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 30\n\
             Allow 127.0.0.1\n{}LogFile \"{d}/tinyproxy.log\"\n\
             LogLevel Info\nMaxClients 50\n",
            allowed
                .iter()
                .map(|p| format!("ConnectPort {p}\n"))
                .collect::<String>()
        );
        if let Some((user, pass)) = auth {
            conf.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let path = dir.path().join("tinyproxy.conf");
        std::fs::write(&path, conf).expect("tinyproxy.conf");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy (Debian package tinyproxy)");
        ProxyServer { child, port, dir }.wait_listening("tinyproxy.log")
    }

    /// Dante allowing SOCKS5 connections to 127.0.0.1:`allowed` only; `username`: require
    /// a system user's name and password (RFC 1929).
    fn dante(allowed: u16, username: bool) -> ProxyServer {
        let dir = Self::private_dir();
        let port = free_port();
        let d = dir.path().display();
        let method = if username { "username" } else { "none" };
        let conf = format!(
            "logoutput: {d}/danted.log\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
             socksmethod: {method}\nclientmethod: none\nuser.privileged: root\n\
             user.unprivileged: nobody\n\
             client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n\
             socks pass {{ from: 127.0.0.0/8 to: 127.0.0.1/32 port = {allowed} log: connect }}\n\
             socks block {{ from: 0.0.0.0/0 to: 0.0.0.0/0 }}\n"
        );
        let path = dir.path().join("danted.conf");
        std::fs::write(&path, conf).expect("danted.conf");
        let child = Command::new("/usr/sbin/danted")
            .arg("-f")
            .arg(&path)
            .arg("-N")
            .arg("1")
            .arg("-p")
            .arg(dir.path().join("danted.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start danted (Debian package dante-server)");
        ProxyServer { child, port, dir }.wait_listening("danted.log")
    }

    fn log(&self, name: &str) -> String {
        read(&self.dir.path().join(name))
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn tunnel_port(node: &Node) -> u16 {
    node.tunnel()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("tunnel port")
}

/// A system user for Dante's username method, removed when dropped.
struct SystemUser {
    name: String,
}

impl SystemUser {
    fn create(password: &str) -> SystemUser {
        let name = format!("sgsocks{}", std::process::id() % 100_000);
        let status = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &name])
            .status()
            .expect("useradd (the SOCKS5 authentication test runs as root)");
        assert!(status.success(), "useradd {name}");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        chpasswd
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(format!("{name}:{password}\n").as_bytes())
            .expect("password");
        assert!(chpasswd.wait().expect("chpasswd").success());
        SystemUser { name }
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// A client serving `gw` through the proxy at `url` (seeds only).
fn through(node: &Node, gw: &str, token: &str, url: &str) -> Client {
    Client::start(node, &[(gw, token)], &["--no-discover", "--proxy", url])
}

/// The client logs `needle` within 10 s.
fn says(client: &Client, needle: &str) {
    assert!(
        client.wait_log(needle, Duration::from_secs(10)),
        "expected {needle:?} in the client log:\n{}",
        client.log()
    );
}

/// A node, an echo service and a gateway; the client is the test's.
fn setup(name: &str) -> (Node, EchoServer, String, String, u16) {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway(name);
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    (node, echo, gw, token, port)
}

#[test]
fn the_client_serves_through_tinyproxy_with_and_without_basic_authentication() {
    let (node, _echo, gw, token, port) = setup("through-tinyproxy");
    let proxy = ProxyServer::tinyproxy(tunnel_port(&node), None);
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let client = through(&node, &gw, &token, &url);
    assert!(
        wait_echo(port),
        "{}\n{}",
        client.log(),
        proxy.log("tinyproxy.log")
    );
    assert!(
        proxy.log("tinyproxy.log").contains("CONNECT"),
        "the session went through the proxy: {}",
        proxy.log("tinyproxy.log")
    );
    drop(client);

    // Authentication required: given, it serves; not given, a clear refusal.
    let proxy = ProxyServer::tinyproxy(tunnel_port(&node), Some(("alice", "s3cret")));
    let with = format!("http://alice:s3cret@127.0.0.1:{}", proxy.port);
    let client = through(&node, &gw, &token, &with);
    assert!(wait_echo(port), "{}", client.log());
    assert!(
        !client.log().contains("s3cret"),
        "the password never reaches the log"
    );
    drop(client);
    let without = format!("http://127.0.0.1:{}", proxy.port);
    let client = through(&node, &gw, &token, &without);
    says(&client, "asks for authentication (407)");
    assert!(client.wait_log("reconnecting", Duration::from_secs(5)));
    drop(client);
    let wrong = format!("http://alice:nope@127.0.0.1:{}", proxy.port);
    let client = through(&node, &gw, &token, &wrong);
    says(
        &client,
        "did not accept the credentials given for \"alice\"",
    );
}

#[test]
fn a_proxy_that_refuses_is_down_or_talks_nonsense_gives_one_clear_line_per_attempt() {
    let (node, _echo, gw, token, _) = setup("bad-proxies");
    // tinyproxy allows another port only: the node's is refused.
    let proxy = ProxyServer::tinyproxy(free_port(), None);
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let client = through(&node, &gw, &token, &url);
    says(&client, "refused to connect to 127.0.0.1:");
    drop(client);
    // Nobody listens.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let client = through(&node, &gw, &token, &dead);
    assert!(
        wait_until(Duration::from_secs(10), || client
            .log()
            .matches("cannot reach the proxy")
            .count()
            >= 2),
        "one line per attempt: {}",
        client.log()
    );
    drop(client);
    // Something that answers garbage.
    let garbage = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gport = garbage.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in garbage.incoming().take(3) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
        }
    });
    let url = format!("http://127.0.0.1:{gport}");
    let client = through(&node, &gw, &token, &url);
    says(&client, "answered something that is not HTTP");
    drop(client);
    // A malformed URL stops the client at once, naming the flag.
    let mut bad = Client::start(
        &node,
        &[(&gw, &token)],
        &["--proxy", "http://user:pw@proxy-without-port"],
    );
    let status = bad.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2), "{}", bad.log());
    assert!(bad.log().contains("--proxy"), "{}", bad.log());
    assert!(!bad.log().contains("pw@"), "{}", bad.log());
}

#[test]
fn the_client_serves_through_dante_socks5_with_local_or_proxy_resolution_and_with_a_login() {
    let (node, _echo, gw, token, port) = setup("through-dante");
    let proxy = ProxyServer::dante(tunnel_port(&node), false);
    for scheme in ["socks5", "socks5h"] {
        let url = format!("{scheme}://127.0.0.1:{}", proxy.port);
        let client = through(&node, &gw, &token, &url);
        assert!(
            wait_echo(port),
            "{scheme}: {}\n{}",
            client.log(),
            proxy.log("danted.log")
        );
        drop(client);
        assert!(node.wait_clients(&gw, 0));
    }
    assert!(
        proxy.log("danted.log").contains("connect"),
        "{}",
        proxy.log("danted.log")
    );
    drop(proxy);

    // A login required: given, it serves; not given or wrong, a clear refusal.
    let user = SystemUser::create("socks-pass");
    let proxy = ProxyServer::dante(tunnel_port(&node), true);
    let with = format!("socks5://{}:socks-pass@127.0.0.1:{}", user.name, proxy.port);
    let client = through(&node, &gw, &token, &with);
    assert!(
        wait_echo(port),
        "{}\n{}",
        client.log(),
        proxy.log("danted.log")
    );
    drop(client);
    let without = format!("socks5://127.0.0.1:{}", proxy.port);
    let client = through(&node, &gw, &token, &without);
    says(&client, "asks for authentication");
    drop(client);
    let wrong = format!("socks5://{}:nope@127.0.0.1:{}", user.name, proxy.port);
    let client = through(&node, &gw, &token, &wrong);
    says(&client, "did not accept the credentials");
}

#[test]
fn discovered_nodes_are_dialled_through_the_same_proxy() {
    let c = sg_e2e::cluster::Cluster::start(2);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (gw, token) = a.create_gateway("discovery-through-proxy");
    let proxy = ProxyServer::tinyproxy_to(&[tunnel_port(a), tunnel_port(b)], None);
    let url = format!("http://127.0.0.1:{}", proxy.port);
    // Seeded with node A only: it hears of B from A and dials B through the proxy too.
    let client = Client::start(a, &[(&gw, &token)], &["--proxy", &url]);
    let on_b = || !b.own_clients(&gw).is_empty();
    assert!(
        wait_until(Duration::from_secs(20), on_b),
        "the client reached the discovered node: {}",
        client.log()
    );
    let log = proxy.log("tinyproxy.log");
    let to_b = format!("CONNECT {}", b.tunnel());
    assert!(
        log.lines().any(|l| l.contains(&to_b)),
        "the session to B went through the proxy ({to_b}): {log}"
    );
}
