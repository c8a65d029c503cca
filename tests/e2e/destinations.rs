//! Destinations as the replaced product had them, against real servers from Debian:
//! PROXY protocol headers read by nginx (F26), Host rewriting seen by nginx (F28).

use serde_json::json;
use sg_api::destinations::{DestinationView, Protocol, ProxySetting};
use sg_api::ErrorBody;
use sg_e2e::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// nginx on a free loopback port, `listen` options and the `location /` body given; it
/// logs the address a PROXY protocol header carried (`$proxy_protocol_addr:$proxy_protocol_port`).
struct Nginx {
    child: Child,
    port: u16,
    access_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Expects a PROXY protocol header on every connection and answers "ok".
    fn proxied() -> Nginx {
        Nginx::start("proxy_protocol", "return 200 \"ok\\n\";")
    }

    fn start(listen: &str, location: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display().to_string();
        let port = free_port();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               log_format carried '$proxy_protocol_addr:$proxy_protocol_port $remote_addr';\n\
               access_log {d}/access.log carried;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               server {{ listen 127.0.0.1:{port} {listen};\n\
                 location / {{ {location} }} }}\n\
             }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf");
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nginx");
        let child = Command::new(bin)
            .args([
                "-p",
                &d,
                "-c",
                &format!("{d}/nginx.conf"),
                "-e",
                &format!("{d}/error.log"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (Debian package nginx)");
        assert!(
            wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "nginx listens: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        Nginx {
            child,
            port,
            access_log: dir.path().join("access.log"),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.access_log).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 request from `source` to the cloud port; the response body.
fn get_from(port: u16, source: &str) -> (u16, String) {
    let mut s = connect_from(port, source).expect("connect to the cloud port");
    let local = s.local_addr().expect("local address").port();
    s.write_all(b"GET / HTTP/1.0\r\nHost: service\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    (local, answer)
}

#[test]
fn the_private_service_sees_the_cloud_applications_address_through_proxy_protocol_v1_and_v2() {
    let nginx = Nginx::proxied();
    let node = Node::start();
    let (gw, token) = node.create_gateway("proxy-protocol");
    let d: DestinationView = node.call_as(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(
            json!({ "name": "nginx", "resource_host": "127.0.0.1", "resource_port": nginx.port,
                     "proxy_protocol": "v1" }),
        ),
        201,
    );
    assert_eq!(d.proxy_protocol, ProxySetting::V1);
    let port = d.cloud_port.unwrap();
    let path = format!("/v1/gateways/{gw}/destinations/{}", d.id);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));

    for (version, source) in [("v1", "127.0.0.3:0"), ("v2", "127.0.0.4:0")] {
        let r = node.call("PATCH", &path, Some(json!({ "proxy_protocol": version })));
        assert_eq!(r.status, 200, "{}", r.body);
        let mut seen = None;
        // The client has the new setting within a moment.
        assert!(
            wait_until(Duration::from_secs(5), || {
                let (local, answer) = get_from(port, source);
                let want = format!("{}:{local} 127.0.0.1", &source[..source.len() - 2]);
                let ok = answer.ends_with("ok\n") && nginx.log().contains(&want);
                seen = Some((want, answer));
                ok
            }),
            "{version}: nginx logs the application's address and port: {seen:?}\n{}\n{}",
            nginx.log(),
            client.log()
        );
    }

    // Off: nginx, which expects a header, refuses what it gets.
    let r = node.call("PATCH", &path, Some(json!({ "proxy_protocol": "off" })));
    let d: DestinationView = Node::body_of(&r);
    assert_eq!(d.proxy_protocol, ProxySetting::Off, "{}", r.body);
    assert!(
        wait_until(Duration::from_secs(5), || !get_from(port, "127.0.0.5:0")
            .1
            .ends_with("ok\n")),
        "without the header nginx refuses"
    );

    for bad in [json!("v3"), json!(2), json!(true)] {
        let r = node.call("PATCH", &path, Some(json!({ "proxy_protocol": bad })));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let e: ErrorBody = Node::body_of(&r);
        assert!(
            e.message.contains("proxy_protocol"),
            "the field is named: {e:?}"
        );
    }
}

/// Reads one HTTP/1.1 response with a Content-Length: its body.
fn read_response(r: &mut impl std::io::BufRead) -> String {
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).expect("response") > 0,
            "the response ended early"
        );
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("length");
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

#[test]
fn host_rewrite_gives_the_private_service_its_own_host_on_every_keep_alive_request() {
    // nginx answers with the Host it was sent.
    let nginx = Nginx::start("", "return 200 \"$http_host\\n\";");
    let node = Node::start();
    let (gw, token) = node.create_gateway("host-rewrite");
    let d: DestinationView = node.call_as(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(
            json!({ "name": "web", "resource_host": "127.0.0.1", "resource_port": nginx.port,
                     "protocol": "http", "host_rewrite": true }),
        ),
        201,
    );
    assert!(d.host_rewrite);
    let port = d.cloud_port.unwrap();
    let path = format!("/v1/gateways/{gw}/destinations/{}", d.id);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));

    let private = format!("127.0.0.1:{}", nginx.port);
    let cloud = format!("127.0.0.1:{port}");
    let ask_three = || -> Vec<String> {
        let s = connect(port);
        let mut reader = std::io::BufReader::new(s.try_clone().expect("clone"));
        let mut writer = s;
        (0..3)
            .map(|i| {
                writer
                    .write_all(
                        format!("GET /page{i};jsessionid=7 HTTP/1.1\r\nHost: {cloud}\r\nUser-Agent: t\r\n\r\n")
                            .as_bytes(),
                    )
                    .expect("request");
                read_response(&mut reader).trim().to_string()
            })
            .collect()
    };
    assert_eq!(
        ask_three(),
        vec![private.clone(), private.clone(), private.clone()],
        "every request of the keep-alive connection carries the private host: {}",
        client.log()
    );

    // Any Host the application sends is replaced, not judged: it never reaches the service.
    let s = connect(port);
    let mut reader = std::io::BufReader::new(s.try_clone().expect("clone"));
    let mut writer = s;
    writer
        .write_all(b"GET / HTTP/1.1\r\nHost: load-generator.example\r\n\r\n")
        .expect("request");
    assert_eq!(
        read_response(&mut reader).trim(),
        private,
        "{}",
        client.log()
    );

    // Off again: the application's own Host goes through.
    let r = node.call("PATCH", &path, Some(json!({ "host_rewrite": false })));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        wait_until(Duration::from_secs(5), || ask_three()[0] == cloud),
        "without host_rewrite nginx sees the cloud Host"
    );

    // Only an HTTP destination can have it: a 400 naming the field, nothing changed.
    let r = node.call(
        "PATCH",
        &path,
        Some(json!({ "protocol": "tcp", "host_rewrite": true })),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let e: ErrorBody = Node::body_of(&r);
    assert!(e.message.contains("host_rewrite"), "{e:?}");
    let now: DestinationView = node.fetch(&path);
    assert_eq!(now.protocol, Protocol::Http, "{now:?}");
    assert!(!now.host_rewrite, "{now:?}");
}
