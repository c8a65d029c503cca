//! Small real servers the tests carry traffic to: TCP echo, an echo behind a tunnel, and
//! an HTTP server that answers with the path it was asked for.

use crate::{wait_echo, Client, Node};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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
