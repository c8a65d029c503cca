//! Limits a token holder or an operator can run into, each refused clearly instead of
//! breaking something later.

use serde_json::json;
use sg_e2e::*;
use std::time::Duration;

#[test]
fn a_change_that_would_not_fit_in_one_config_frame_is_refused_and_clients_keep_working() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("big");
    let dir = tempfile::tempdir().expect("temp dir");
    openssl_ca(dir.path(), "bundle", "a CA for a large bundle");
    let one = std::fs::read_to_string(dir.path().join("bundle.pem")).expect("ca pem");
    // A CA bundle just under the 64 KiB a PEM may have.
    let bundle = one.repeat(60 * 1024 / one.len());
    let path = format!("/v1/gateways/{gw}/destinations");
    let mut created = 0;
    let refused = loop {
        let r = node.call(
            "POST",
            &path,
            Some(json!({
                "name": format!("d{created}"),
                "resource_host": "127.0.0.1",
                "resource_port": echo.addr.port(),
                "resource_tls": {"enabled": true, "reject_unauthorized": true, "ca_pem": bundle},
            })),
        );
        if r.status != 201 {
            break r;
        }
        created += 1;
        assert!(created < 100, "a 6 MB configuration was accepted");
    };
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        refused.body["error"], "config_too_large",
        "{}",
        refused.body
    );
    assert!(
        refused.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("bytes")),
        "names the limit: {}",
        refused.body
    );
    let stored = node.call("GET", &path, None).body;
    assert_eq!(
        stored.as_array().map(Vec::len),
        Some(created),
        "nothing stored on refusal"
    );
    // Every session still gets the whole configuration.
    let client = Client::start(&node, &[(&gw, &token)], &["--sessions", "1"]);
    assert!(
        client.wait_log(
            &format!("serving {created} destination(s)"),
            Duration::from_secs(10)
        ),
        "{}",
        client.log()
    );
}
