//! Destinations as the replaced product had them, against real servers from Debian:
//! PROXY protocol headers read by nginx (F26).

use serde_json::json;
use sg_e2e::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// nginx on a free loopback port that expects a PROXY protocol header on every connection
/// and logs the address it carried (`$proxy_protocol_addr:$proxy_protocol_port`).
struct ProxiedNginx {
    child: Child,
    port: u16,
    access_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ProxiedNginx {
    fn start() -> ProxiedNginx {
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
               server {{ listen 127.0.0.1:{port} proxy_protocol;\n\
                 location / {{ return 200 \"ok\\n\"; }} }}\n\
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
        ProxiedNginx {
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

impl Drop for ProxiedNginx {
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
    let nginx = ProxiedNginx::start();
    let node = Node::start();
    let (gw, token) = node.create_gateway("proxy-protocol");
    let r = node.call(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(
            json!({ "name": "nginx", "resource_host": "127.0.0.1", "resource_port": nginx.port,
                     "proxy_protocol": "v1" }),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["proxy_protocol"], "v1");
    let port = r.body["cloud_port"].as_u64().unwrap() as u16;
    let path = format!(
        "/v1/gateways/{gw}/destinations/{}",
        r.body["id"].as_str().unwrap()
    );
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
    assert_eq!(r.body["proxy_protocol"], "off", "{}", r.body);
    assert!(
        wait_until(Duration::from_secs(5), || !get_from(port, "127.0.0.5:0")
            .1
            .ends_with("ok\n")),
        "without the header nginx refuses"
    );

    for bad in [json!("v3"), json!(2), json!(true)] {
        let r = node.call("PATCH", &path, Some(json!({ "proxy_protocol": bad })));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(
            r.body["message"]
                .as_str()
                .is_some_and(|m| m.contains("proxy_protocol")),
            "the field is named: {}",
            r.body
        );
    }
}
