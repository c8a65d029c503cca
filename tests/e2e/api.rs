//! The REST API and sgctl (F4, F5, F23): the basics work from the command line, and bad
//! input gets a 4xx naming the field while nothing is stored.

use serde_json::json;
use sg_api::destinations::DestinationView;
use sg_api::gateways::GatewayView;
use sg_api::node::PlanView;
use sg_api::{ErrorBody, ErrorCode};
use sg_e2e::*;

fn gateway_count(node: &Node) -> usize {
    node.try_fetch::<Vec<GatewayView>>("/v1/gateways")
        .map_or(0, |g| g.len())
}

#[test]
fn bad_requests_get_typed_errors_and_store_nothing() {
    let node = Node::start();
    let (gw, _) = node.create_gateway("g");

    // No token.
    let anon = sg_api::client::ApiClient::new(&node.info.api, None, Some(node.trust())).unwrap();
    let r = anon.get("/v1/gateways").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        Node::body_of::<ErrorBody>(&r).error,
        ErrorCode::Unauthorized
    );

    let cases: Vec<(&str, String, &str, u16, ErrorCode, &str)> = vec![
        (
            "POST",
            "/v1/gateways".into(),
            "{}",
            400,
            ErrorCode::InvalidBody,
            "name",
        ),
        (
            "POST",
            "/v1/gateways".into(),
            r#"{"name": 5}"#,
            400,
            ErrorCode::InvalidBody,
            "invalid type",
        ),
        (
            "POST",
            "/v1/gateways".into(),
            r#"{"name": "x", "colour": "red"}"#,
            400,
            ErrorCode::InvalidBody,
            "colour",
        ),
        (
            "POST",
            "/v1/gateways".into(),
            "{not json",
            400,
            ErrorCode::InvalidBody,
            "invalid JSON",
        ),
        (
            "POST",
            "/v1/gateways".into(),
            r#"{"name": "  "}"#,
            400,
            ErrorCode::InvalidField,
            "name",
        ),
        (
            "POST",
            format!("/v1/gateways/{gw}/destinations"),
            r#"{"name":"d","resource_host":"h","resource_port":70000}"#,
            400,
            ErrorCode::InvalidField,
            "resource_port",
        ),
        (
            "POST",
            format!("/v1/gateways/{gw}/destinations"),
            r#"{"name":"d","resource_port":80}"#,
            400,
            ErrorCode::InvalidBody,
            "resource_host",
        ),
        (
            "GET",
            "/v1/gateways/gw_nope".into(),
            "",
            404,
            ErrorCode::NotFound,
            "gw_nope",
        ),
        (
            "DELETE",
            format!("/v1/gateways/{gw}/destinations/ds_nope"),
            "",
            404,
            ErrorCode::NotFound,
            "ds_nope",
        ),
        (
            "GET",
            "/v1/nothing-here".into(),
            "",
            404,
            ErrorCode::NoSuchEndpoint,
            "/v1/nothing-here",
        ),
    ];
    for (method, path, body, status, code, mention) in cases {
        let r = node
            .api
            .request_raw(method, &path, body.as_bytes())
            .unwrap();
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.body);
        let e: ErrorBody = Node::body_of(&r);
        assert_eq!(e.error, code, "{method} {path} {body}: {}", r.body);
        let message = e.message;
        assert!(
            message.contains(mention),
            "{method} {path} {body}: message {message:?} names {mention:?}"
        );
    }
    assert_eq!(gateway_count(&node), 1, "nothing was stored");
    let ds: Vec<DestinationView> = node.fetch(&format!("/v1/gateways/{gw}/destinations"));
    assert!(ds.is_empty(), "{ds:?}");
    // The node is still fine.
    assert_eq!(node.call("GET", "/healthz", None).status, 200);
}

#[test]
fn sgctl_manages_gateways_and_destinations() {
    let node = Node::start();
    let echo = EchoServer::start();

    // `--json` prints what the node answered.
    let created: GatewayView =
        serde_json::from_str(&node.sgctl_ok(&["--json", "gateway", "create", "payments"])).unwrap();
    let gw = created.id;
    let token = created.token.unwrap();
    assert!(token.starts_with("sgt_"));

    let table = node.sgctl_ok(&["gateway", "list"]);
    assert!(
        table.contains(&gw) && table.contains("payments") && table.contains("NAME"),
        "{table}"
    );
    assert!(
        !table.contains(&token),
        "the token is shown only at creation"
    );
    let shown = node.sgctl_ok(&["gateway", "show", &gw]);
    assert!(shown.contains("payments"), "{shown}");

    let resource = echo.addr.to_string();
    let dest: DestinationView = serde_json::from_str(&node.sgctl_ok(&[
        "--json",
        "destination",
        "create",
        &gw,
        "--name",
        "echo",
        "--resource",
        &resource,
    ]))
    .unwrap();
    let did = dest.id;
    let port = dest.cloud_port.unwrap();
    let list = node.sgctl_ok(&["destination", "list", &gw]);
    assert!(
        list.contains(&did) && list.contains(&format!("127.0.0.1:{port}")),
        "{list}"
    );

    // The destination is real: a client makes it reachable.
    let _client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port));

    node.sgctl_ok(&["destination", "delete", &gw, &did]);
    assert!(
        wait_until(std::time::Duration::from_secs(5), || echo_once(port, b"x")
            .is_none()),
        "port released"
    );
    let out = node.sgctl(&["destination", "show", &gw, &did]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));

    node.sgctl_ok(&["gateway", "delete", &gw]);
    assert_eq!(gateway_count(&node), 0);

    // A wrong admin token is a clear error.
    let out = node.sgctl(&["--admin-token", "sga_wrong_wrong_wrong", "gateway", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
}

#[test]
fn defaults_are_250_connections_per_gateway_and_tokens_for_365_days() {
    use sg_cluster::time::{now_secs, rfc3339};
    let node = Node::start();
    let plan: PlanView = node.fetch("/v1/plan");
    assert_eq!(plan.max_connections_per_gateway, 250, "{plan:?}");
    // The day a token made now for `days` expires (the date part of RFC 3339).
    let day_in = |days: u64| rfc3339(now_secs() + days * 86_400)[..10].to_string();
    let before = (day_in(365), day_in(30));
    let default = node.call("POST", "/v1/gateways", Some(json!({ "name": "d" })));
    let short = node.call(
        "POST",
        "/v1/gateways",
        Some(json!({ "name": "s", "token_expires_in_days": 30 })),
    );
    let after = (day_in(365), day_in(30));
    let expiry = |r: &ApiResponse| {
        r.clone()
            .into_typed::<GatewayView>()
            .ok()
            .and_then(|g| g.token_expires_at.get(..10).map(str::to_string))
            .unwrap_or_default()
    };
    assert!(
        [&before.0, &after.0].contains(&&expiry(&default)),
        "{}",
        default.body
    );
    assert!(
        [&before.1, &after.1].contains(&&expiry(&short)),
        "{}",
        short.body
    );
}

/// A plain-HTTP GET; (status line, body).
fn plain_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("request");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn a_scraper_reads_metrics_without_the_admin_token_and_nothing_else() {
    let port = free_port();
    let node = Node::start_with(NodeOptions {
        extra: vec!["--metrics-listen".into(), port.to_string()],
        ..NodeOptions::default()
    });
    let addr = format!("127.0.0.1:{port}");
    let (status, body) = plain_get(&addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("sg_build_info{"), "{body}");
    let (status, _) = plain_get(&addr, "/v1/gateways");
    assert!(
        status.contains(" 404 "),
        "only /metrics is served there: {status}"
    );
    // The API itself still wants the token.
    let (code, _) = node
        .api
        .get_text("/metrics")
        .expect("metrics with the token");
    assert_eq!(code, 200);
    let out = std::process::Command::new(bin("sg-node"))
        .args([
            "--region",
            "t",
            "--metrics-listen",
            "nonsense",
            "--data-dir",
        ])
        .arg(node.dir.join("other"))
        .output()
        .expect("sg-node");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-listen"));
}

#[test]
fn sgctl_quiet_prints_ids_for_scripts() {
    let node = Node::start();
    let created = node.sgctl_ok(&["-q", "gateway", "create", "scripted"]);
    let (id, token) = created
        .trim()
        .split_once('\t')
        .unwrap_or_else(|| panic!("id<TAB>token: {created:?}"));
    assert!(
        id.starts_with("gw_") && token.starts_with("sgt_"),
        "{created:?}"
    );
    node.sgctl_ok(&["gateway", "create", "another"]);
    let listed = node.sgctl_ok(&["-q", "gateway", "list"]);
    let ids: Vec<&str> = listed.lines().collect();
    assert_eq!(ids.len(), 2, "{listed:?}");
    assert!(
        ids.contains(&id) && ids.iter().all(|l| l.starts_with("gw_")),
        "{listed:?}"
    );
    let d = node.sgctl_ok(&[
        "-q",
        "destination",
        "create",
        id,
        "--name",
        "db",
        "--resource",
        "127.0.0.1:5432",
    ]);
    assert!(
        d.trim().starts_with("ds_") && !d.trim().contains(' '),
        "{d:?}"
    );
    let new_token = node.sgctl_ok(&["-q", "gateway", "token", id]);
    assert!(new_token.trim().starts_with("sgt_"), "{new_token:?}");
    let out = node.sgctl(&["-q", "--json", "gateway", "list"]);
    assert_eq!(out.status.code(), Some(2), "-q and --json do not mix");
}
