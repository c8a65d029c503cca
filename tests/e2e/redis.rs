//! A real protocol through the tunnel: Redis (installed by scripts/test.sh), driven by the
//! real redis-cli and redis-benchmark.

use sg_e2e::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let r = Redis { child, port };
        assert!(wait_until(Duration::from_secs(10), || cli(
            r.port,
            &["PING"]
        ) == "PONG"));
        r
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[test]
fn redis_works_through_the_tunnel() {
    let redis = Redis::start();
    let node = Node::start();
    let (gw, token) = node.create_gateway("cache");
    let resource = format!("127.0.0.1:{}", redis.port).parse().unwrap();
    let (_, port) = node.create_destination(&gw, "redis", resource);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(
        wait_until(Duration::from_secs(20), || cli(port, &["PING"]) == "PONG"),
        "{}",
        client.log()
    );
    assert_eq!(cli(port, &["SET", "greeting", "hello through sg"]), "OK");
    assert_eq!(
        cli(redis.port, &["GET", "greeting"]),
        "hello through sg",
        "it reached the real server"
    );

    // Fifty clients pipelining at once, through the one client.
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "50",
            "-n",
            "20000",
            "-P",
            "4",
            "-t",
            "set,get",
            "-q",
        ])
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
    assert_eq!(cli(port, &["DBSIZE"]), cli(redis.port, &["DBSIZE"]));
}
