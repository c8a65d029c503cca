//! The client as operators run it (F11–F17): resource-side TLS against a real TLS server,
//! the ACL in every form (API, console, file, HTTP routes), the console, service mode,
//! reconnects, log lines, the config file, and bad input.

use serde_json::{json, Value};
use sg_api::clients::GatewayStats;
use sg_api::destinations::DestinationView;
use sg_api::gateways::{AclView, UnnamedTargets};
use sg_api::ErrorBody;
use sg_e2e::*;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn put_acl(node: &Node, gw: &str, rules: &[&str]) -> AclView {
    node.call_as(
        "PUT",
        &format!("/v1/gateways/{gw}/acl"),
        Some(json!({ "rules": rules })),
        200,
    )
}

// ---- resource-side TLS ----------------------------------------------------------------

/// A CA and a server certificate for localhost/127.0.0.1 it signs, an unrelated CA, and
/// a client certificate from a third CA.
fn resource_pki(dir: &Path) {
    openssl_ca(dir, "ca", "service-ca");
    openssl_ca(dir, "other", "some-other-ca");
    openssl_ca(dir, "cca", "client-ca");
    openssl_cert(dir, "server", "ca", CertUse::Server);
    openssl_cert(dir, "client", "cca", CertUse::Client);
}

/// `openssl s_server -www` on a free port: answers `GET /` with an HTML status page.
struct TlsService {
    child: Child,
    port: u16,
}

impl TlsService {
    fn start(dir: &Path, extra: &[&str]) -> TlsService {
        let port = free_port();
        let child = Command::new("openssl")
            .current_dir(dir)
            .args([
                "s_server",
                "-accept",
                &port.to_string(),
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-www",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        assert!(wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }));
        TlsService { child, port }
    }
}

impl Drop for TlsService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pem(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn resource_tls_verifies_the_service_and_presents_a_client_certificate() {
    let pki = tempfile::tempdir().unwrap();
    resource_pki(pki.path());
    let plain = TlsService::start(pki.path(), &[]);
    let mutual = TlsService::start(pki.path(), &["-Verify", "1", "-CAfile", "cca.pem"]);
    let node = Node::start();
    let (gw, token) = node.create_gateway("rtls");
    let dest = |name: &str, port: u16, tls: Value| -> u16 {
        let r = node.call(
            "POST",
            &format!("/v1/gateways/{gw}/destinations"),
            Some(json!({ "name": name, "resource_host": "127.0.0.1", "resource_port": port, "resource_tls": tls })),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        // What the node sent, not what the view keeps of it.
        assert!(
            !r.body.to_string().contains("PRIVATE KEY"),
            "keys are never shown"
        );
        Node::body_of::<DestinationView>(&r).cloud_port.unwrap()
    };
    let verified = dest(
        "verified",
        plain.port,
        json!({ "enabled": true, "reject_unauthorized": true, "ca_pem": pem(pki.path(), "ca.pem"), "server_name": "localhost" }),
    );
    let wrong_ca = dest(
        "wrong-ca",
        plain.port,
        json!({ "enabled": true, "reject_unauthorized": true, "ca_pem": pem(pki.path(), "other.pem") }),
    );
    let unchecked = dest(
        "unchecked",
        plain.port,
        json!({ "enabled": true, "reject_unauthorized": false }),
    );
    // An uploaded CA is checked even without reject_unauthorized.
    let wrong_ca_unflagged = dest(
        "wrong-ca-unflagged",
        plain.port,
        json!({ "enabled": true, "reject_unauthorized": false, "ca_pem": pem(pki.path(), "other.pem") }),
    );
    let with_cert = dest(
        "mutual",
        mutual.port,
        json!({ "enabled": true, "reject_unauthorized": true, "ca_pem": pem(pki.path(), "ca.pem"),
        "client_cert_pem": pem(pki.path(), "client.pem"), "client_key_pem": pem(pki.path(), "client.key") }),
    );
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));

    let (status, _) = http_get(verified, "/");
    assert!(
        status.contains("200"),
        "verified against the uploaded CA: {status:?}\n{}",
        client.log()
    );
    let (status, _) = http_get(unchecked, "/");
    assert!(
        status.contains("200"),
        "reject_unauthorized false accepts a self-signed service: {status:?}"
    );
    let (status, _) = http_get(with_cert, "/");
    assert!(
        status.contains("200"),
        "mutual TLS with the client certificate: {status:?}\n{}",
        client.log()
    );
    let (status, body) = http_get(wrong_ca, "/");
    assert!(
        status.is_empty() && body.is_empty(),
        "an unverified service gets nothing: {body}"
    );
    let (status, body) = http_get(wrong_ca_unflagged, "/");
    assert!(
        status.is_empty() && body.is_empty(),
        "an uploaded CA is used without reject_unauthorized too: {body}"
    );
    assert!(
        client.wait_log("TLS handshake failed", Duration::from_secs(5)),
        "{}",
        client.log()
    );
    assert!(has_event(&node, &gw, EventKind::ConnectFailed));

    // Bad PEM for resource TLS is a 400 naming the field.
    let e: ErrorBody = node.call_as(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(json!({ "name": "x", "resource_host": "h", "resource_port": 1, "resource_tls": { "enabled": true, "reject_unauthorized": true, "ca_pem": "nope" } })),
        400,
    );
    assert!(e.message.contains("resource_tls.ca_pem"), "{e:?}");
}

/// A service on the most common self-signed certificate (`openssl req -x509`, CA:TRUE) in
/// `DIR/NAME/server.{pem,key}`.
fn self_signed_service(dir: &Path, name: &str) -> (TlsService, String) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    openssl_ca(&d, "server", "localhost");
    let text = std::fs::read_to_string(d.join("server.pem")).unwrap();
    assert!(
        String::from_utf8_lossy(
            &Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(d.join("server.pem"))
                .output()
                .unwrap()
                .stdout
        )
        .contains("CA:TRUE"),
        "openssl req -x509 makes a CA:TRUE certificate"
    );
    (TlsService::start(&d, &[]), text)
}

/// A service on an X.509 v1 certificate (`openssl x509 -req -signkey`, no extensions).
fn v1_service(dir: &Path) -> (TlsService, String) {
    let d = dir.join("v1");
    std::fs::create_dir_all(&d).unwrap();
    run_cmd(
        &d,
        "openssl",
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    run_cmd(
        &d,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-signkey",
            "server.key",
            "-out",
            "server.pem",
            "-days",
            "2",
        ],
    );
    let text = std::fs::read_to_string(d.join("server.pem")).unwrap();
    (TlsService::start(&d, &[]), text)
}

#[test]
fn a_self_signed_service_is_trusted_by_its_uploaded_certificate_and_a_public_one_by_the_system_store(
) {
    let pki = tempfile::tempdir().unwrap();
    let (service, own) = self_signed_service(pki.path(), "one");
    let (_other_service, other) = self_signed_service(pki.path(), "two");
    // A "public" service: its CA is in the client's system store (SSL_CERT_FILE), not uploaded.
    resource_pki(pki.path());
    let public = TlsService::start(pki.path(), &[]);

    let node = Node::start();
    let (gw, token) = node.create_gateway("self-signed");
    let dest = |name: &str, port: u16, tls: Value| -> u16 {
        let d: DestinationView = node.call_as(
            "POST",
            &format!("/v1/gateways/{gw}/destinations"),
            Some(json!({ "name": name, "resource_host": "127.0.0.1", "resource_port": port, "resource_tls": tls })),
            201,
        );
        d.cloud_port.unwrap()
    };
    let pinned = dest(
        "pinned",
        service.port,
        json!({ "enabled": true, "reject_unauthorized": true, "ca_pem": own }),
    );
    let wrong = dest(
        "wrong-pin",
        service.port,
        json!({ "enabled": true, "reject_unauthorized": true, "ca_pem": other }),
    );
    // Six files is the most; the right one among them still works.
    let six = [
        other.clone(),
        own.clone(),
        pem(pki.path(), "ca.pem"),
        pem(pki.path(), "other.pem"),
        pem(pki.path(), "cca.pem"),
        other.clone(),
    ]
    .concat();
    let among_six = dest(
        "among-six",
        service.port,
        json!({ "enabled": true, "reject_unauthorized": true, "ca_pem": six }),
    );
    let (v1, v1_pem) = v1_service(pki.path());
    let v1_port = dest(
        "v1",
        v1.port,
        json!({ "enabled": true, "reject_unauthorized": true, "ca_pem": v1_pem }),
    );
    let system = dest(
        "system-store",
        public.port,
        json!({ "enabled": true, "reject_unauthorized": true, "server_name": "localhost" }),
    );
    let bundle = pki.path().join("system-bundle.pem");
    std::fs::write(&bundle, pem(pki.path(), "ca.pem")).unwrap();
    let client = Client::start_servers(
        &[&node],
        &[(&gw, &token)],
        &[],
        &[("SSL_CERT_FILE", bundle.to_str().unwrap())],
    );
    assert!(node.wait_clients(&gw, 1));

    for (port, what) in [
        (pinned, "the uploaded self-signed certificate is trusted"),
        (among_six, "one of six uploaded certificates"),
        (system, "no upload: the system store's CA"),
    ] {
        let (status, _) = http_get(port, "/");
        assert!(
            status.contains("200"),
            "{what}: {status:?}\n{}",
            client.log()
        );
    }
    let (status, body) = http_get(wrong, "/");
    assert!(
        status.is_empty() && body.is_empty(),
        "another self-signed certificate is refused: {body}"
    );
    let reason = "is not one of the uploaded certificates";
    assert!(
        client.wait_log(reason, Duration::from_secs(5)),
        "the client log names the reason: {}",
        client.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || node.events(&gw).iter().any(
            |e| e.kind == EventKind::ConnectFailed && e.message.contains(reason)
        )),
        "and so does the node's event: {:?}",
        node.events(&gw)
    );

    // An X.509 v1 certificate is refused, and the refusal says so.
    let (status, _) = http_get(v1_port, "/");
    assert!(status.is_empty(), "a v1 certificate is not accepted");
    assert!(
        client.wait_log("X.509 v1 certificate", Duration::from_secs(5)),
        "the reason names the v1 certificate: {}",
        client.log()
    );

    // A seventh certificate is one too many: a 400 naming the field, nothing stored.
    let seven = [own.as_str(); 7].concat();
    let e: ErrorBody = node.call_as(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(json!({ "name": "seven", "resource_host": "127.0.0.1", "resource_port": 1,
                     "resource_tls": { "enabled": true, "reject_unauthorized": true, "ca_pem": seven } })),
        400,
    );
    assert!(
        e.message.contains("resource_tls.ca_pem") && e.message.contains("at most 6"),
        "{e:?}"
    );
    let listed: Vec<DestinationView> = node.fetch(&format!("/v1/gateways/{gw}/destinations"));
    assert!(
        !listed.iter().any(|d| d.name == "seven"),
        "nothing stored: {listed:?}"
    );
}

// ---- ACL ------------------------------------------------------------------------------

#[test]
fn with_no_rules_only_destinations_and_acl_default_deny_refuses_everything() {
    let t = EchoTunnel::start("acl0", &[]);
    let (node, gw, token, port) = (&t.node, &t.gw, &t.token, t.port);
    let open = t.client;
    assert!(open.wait_log(
        "only the gateway's 1 configured destination(s) are reachable",
        Duration::from_secs(5)
    ));
    drop(open);
    assert!(node.wait_clients(gw, 0));
    let strict = Client::start(node, &[(gw, token)], &["--acl-default", "deny"]);
    assert!(node.wait_clients(gw, 1));
    assert!(refused_at(port, b"x"));
    assert!(
        strict.wait_log("--acl-default is deny", Duration::from_secs(5)),
        "{}",
        strict.log()
    );
}

#[test]
fn acl_rules_follow_precedence_reach_every_client_and_are_stored_on_the_node() {
    let mut node = Node::start();
    let echo = EchoServer::start();
    let other = EchoServer::start();
    let (gw, token) = node.create_gateway("acl");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let (_, other_port) = node.create_destination(&gw, "other", other.addr);
    let a = Client::start(&node, &[(&gw, &token)], &[]);
    let b = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 2));
    assert!(wait_echo(port));
    let ep = echo.addr.port();

    // Host and port beats port alone.
    put_acl(
        &node,
        &gw,
        &[
            &format!("acl deny :{ep}"),
            &format!("acl allow 127.0.0.1:{ep}"),
        ],
    );
    assert!(
        a.wait_log("ACL now has 2 rule(s)", Duration::from_secs(1))
            || a.wait_log("ACL now has 2 rule(s)", Duration::from_secs(4))
    );
    assert!(
        b.wait_log("ACL now has 2 rule(s)", Duration::from_secs(5)),
        "reaches every client"
    );
    for _ in 0..6 {
        assert!(
            echo_once(port, b"allowed").is_some(),
            "the specific allow wins on every client"
        );
    }
    // Once rules exist, what none allows is refused — even a configured destination.
    assert!(refused_at(other_port, b"x"));
    // Equal specificity: deny wins.
    put_acl(
        &node,
        &gw,
        &["acl allow 127.0.0.1:", &format!("acl deny :{ep}")],
    );
    assert!(wait_until(Duration::from_secs(5), || echo_once(port, b"x").is_none()));
    let refusing = format!("refused by `acl deny :{ep}`");
    assert!(
        wait_until(Duration::from_secs(5), || a.log().contains(&refusing)
            || b.log().contains(&refusing)),
        "the client names the rule"
    );
    assert!(has_event(&node, &gw, EventKind::AclRefused));

    // Stored on the node: it survives a restart.
    let before: AclView = node.fetch(&format!("/v1/gateways/{gw}/acl"));
    node.restart();
    assert_eq!(
        node.fetch::<AclView>(&format!("/v1/gateways/{gw}/acl")),
        before
    );
    let bad: ErrorBody = node.call_as(
        "PUT",
        &format!("/v1/gateways/{gw}/acl"),
        Some(json!({ "rules": ["acl allow nope"] })),
        400,
    );
    assert!(bad.message.contains("rules[0]"), "{bad:?}");
}

#[test]
fn sgctl_shows_sets_loads_and_clears_the_acl_and_clients_follow() {
    let t = EchoTunnel::start("ctl-acl", &[]);
    let (node, gw) = (&t.node, t.gw.as_str());
    let deny = format!("acl deny 127.0.0.1:{}", t.echo.addr.port());
    node.sgctl_ok(&["acl", "set", gw, &deny]);
    assert!(t
        .client
        .wait_log("ACL now has 1 rule(s)", Duration::from_secs(5)));
    assert!(refused_at(t.port, b"x"), "the client enforces the new rule");
    // `--json` prints what the node answered.
    let shown: AclView =
        serde_json::from_str(&node.sgctl_ok(&["--json", "acl", "show", gw])).unwrap();
    assert_eq!(shown.rules, vec![deny.clone()]);
    assert_eq!(shown.unnamed_targets, UnnamedTargets::Denied, "{shown:?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl.rules");
    std::fs::write(&file, "# ops\nacl allow 127.0.0.1:1\nacl allow nope\n").unwrap();
    let out = node.sgctl(&["acl", "load", gw, file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(
        node.fetch::<AclView>(&format!("/v1/gateways/{gw}/acl"))
            .rules,
        vec![deny],
        "a bad file changes nothing"
    );
    let missing = dir.path().join("absent.rules");
    let out = node.sgctl(&["acl", "load", gw, missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot read"),
        "{err}"
    );

    let allow = format!("acl allow 127.0.0.1:{}", t.echo.addr.port());
    std::fs::write(&file, format!("{allow}  # the echo service\n")).unwrap();
    node.sgctl_ok(&["acl", "load", gw, file.to_str().unwrap()]);
    assert!(wait_echo(t.port), "the loaded rule allows it again");

    node.sgctl_ok(&["acl", "clear", gw]);
    assert!(t
        .client
        .wait_log("ACL now has 0 rule(s)", Duration::from_secs(5)));
    assert!(wait_echo(t.port));
}

#[test]
fn http_route_rules_let_only_matching_paths_through() {
    let node = Node::start();
    let web = PathServer::start();
    let (gw, token) = node.create_gateway("routes");
    let d: DestinationView = node.typed(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(&json!({ "name": "web", "resource_host": "127.0.0.1", "resource_port": web.addr.port(), "protocol": "http" })),
    );
    let port = d.cloud_port.unwrap();
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));
    let wp = web.addr.port();
    put_acl(
        &node,
        &gw,
        &[
            &format!("acl allow 127.0.0.1:{wp}/public/"),
            &format!("acl deny 127.0.0.1:{wp}/public/secret"),
        ],
    );
    assert!(client.wait_log("ACL now has 2 rule(s)", Duration::from_secs(5)));
    let (status, body) = http_get(port, "/public/page");
    assert!(
        status.contains("200") && body.contains("/public/page"),
        "{status} {body}"
    );
    let (status, body) = http_get(port, "/admin");
    assert!(status.contains("403"), "{status}");
    assert!(body.contains("no ACL path rule allows /admin"), "{body}");
    let (status, _) = http_get(port, "/public/secret/key");
    assert!(status.contains("403"), "{status}");
    // What Tomcat, Jetty or an RFC 3986 server would read as /admin, and requests for
    // another virtual host, are refused before they reach the service.
    for (target, host, status) in [
        ("/public/..;/admin", format!("127.0.0.1:{port}"), "400"),
        ("/public/;/../admin", format!("127.0.0.1:{port}"), "400"),
        ("/public//../admin", format!("127.0.0.1:{port}"), "400"),
        ("/public/x", "admin.internal".to_string(), "421"),
        (
            "http://admin.internal/public/x",
            format!("127.0.0.1:{port}"),
            "400",
        ),
    ] {
        let (line, body) = http_request(
            port,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            line.contains(status),
            "{target} (Host {host}): {line} {body}"
        );
    }
    // A third-party client: curl, sending the path as typed.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{port}/public/..;/admin"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    assert_eq!(
        web.seen(),
        vec!["/public/page"],
        "refused requests never reached the service"
    );
    assert!(
        client.wait_log("request for /admin", Duration::from_secs(5)),
        "{}",
        client.log()
    );
}

#[test]
fn the_console_takes_the_replaced_products_short_forms_loads_acl_files_and_shows_its_configuration()
{
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("short-forms");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let mut c = Client::start_console(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port), "{}", c.log());
    let target = format!("127.0.0.1:{}", echo.addr.port());
    let rules = || node.fetch::<AclView>(&format!("/v1/gateways/{gw}/acl"));

    c.send_line("S");
    assert!(
        c.wait_log(
            "no rules: the gateway's configured destinations are allowed, every other target is denied",
            Duration::from_secs(5)
        ),
        "S shows the ACL and what no rule names: {}",
        c.log()
    );
    assert_eq!(
        rules().unnamed_targets,
        UnnamedTargets::ConfiguredDestinations
    );

    c.send_line(&format!("D {target}"));
    assert!(
        wait_until(Duration::from_secs(5), || rules().rules
            == vec![format!("acl deny {target}")]),
        "D is acl deny: {}",
        c.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || echo_once(port, b"x").is_none()),
        "and it is enforced"
    );
    assert_eq!(rules().unnamed_targets, UnnamedTargets::Denied);
    c.send_line("S");
    assert!(
        c.wait_log("targets no rule names are denied", Duration::from_secs(5)),
        "{}",
        c.log()
    );

    c.send_line(&format!("N {target}"));
    assert!(
        wait_until(Duration::from_secs(5), || rules().rules.is_empty()),
        "N is no acl: {}",
        c.log()
    );
    c.send_line(&format!("A {target}"));
    assert!(
        wait_until(Duration::from_secs(5), || rules().rules
            == vec![format!("acl allow {target}")]),
        "A is acl allow: {}",
        c.log()
    );
    assert_eq!(echo_once(port, b"back").as_deref(), Some(&b"back"[..]));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run-time.acl");
    std::fs::write(
        &file,
        format!("# loaded at run time\nacl deny {target}\n\nacl allow localhost:1\n"),
    )
    .unwrap();
    c.send_line(&format!("F {}", file.display()));
    assert!(
        wait_until(Duration::from_secs(5), || rules().rules
            == vec![
                format!("acl deny {target}"),
                "acl allow localhost:1".to_string()
            ]),
        "F FILE replaces the ACL with the file's rules: {}",
        c.log()
    );
    c.send_line("F /no/such/file.acl");
    assert!(
        c.wait_log("cannot read /no/such/file.acl", Duration::from_secs(5)),
        "{}",
        c.log()
    );
    let bad = dir.path().join("bad.acl");
    std::fs::write(&bad, "acl allow localhost:1\nacl perhaps x:1\n").unwrap();
    c.send_line(&format!("F {}", bad.display()));
    assert!(
        c.wait_log("line 2", Duration::from_secs(5)),
        "a bad file names its line and changes nothing: {}",
        c.log()
    );
    assert_eq!(rules().rules.len(), 2);

    c.send_line("C");
    assert!(
        c.wait_log("tokens set, not shown", Duration::from_secs(5)),
        "C shows the running configuration: {}",
        c.log()
    );
    let log = c.log();
    assert!(log.contains(&format!("gateways: {gw}")), "{log}");
    assert!(log.contains("servers: "), "{log}");
    assert!(log.contains("2 ACL rule(s)"), "{log}");
    assert!(!log.contains(&token), "the token never appears: {log}");
}

#[test]
fn the_console_shows_figures_changes_the_level_edits_the_acl_and_quits() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("console");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let mut c = Client::start_console(&node, &[(&gw, &token)], &[]);
    assert!(wait_echo(port));
    echo_once(port, b"some traffic").unwrap();
    c.send_line("s");
    assert!(
        c.wait_log("total: transmitted", Duration::from_secs(5)),
        "{}",
        c.log()
    );
    assert!(c.log().contains("connections in total"), "{}", c.log());
    c.send_line("l DEBUG");
    assert!(c.wait_log("log level is now DEBUG", Duration::from_secs(5)));
    echo_once(port, b"debug traffic").unwrap();
    assert!(
        c.wait_log("opened", Duration::from_secs(5)),
        "DEBUG lines appear: {}",
        c.log()
    );
    c.send_line("l LOUD");
    assert!(c.wait_log("is not a log level", Duration::from_secs(5)));
    c.send_line(&format!("acl deny 127.0.0.1:{}", echo.addr.port()));
    assert!(
        c.wait_log("sent to the node", Duration::from_secs(5)),
        "{}",
        c.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || echo_once(port, b"x").is_none()),
        "the rule is enforced"
    );
    let stored: AclView = node.fetch(&format!("/v1/gateways/{gw}/acl"));
    assert_eq!(
        stored.rules,
        vec![format!("acl deny 127.0.0.1:{}", echo.addr.port())]
    );
    c.send_line("show acl");
    assert!(c.wait_log(
        &format!("acl deny 127.0.0.1:{}", echo.addr.port()),
        Duration::from_secs(5)
    ));
    c.send_line("acl allow nonsense");
    assert!(c.wait_log("missing ':'", Duration::from_secs(5)));
    c.send_line("h");
    assert!(c.wait_log("commands:", Duration::from_secs(5)));
    c.send_line("q");
    let status = c.wait_exit(Duration::from_secs(10)).expect("q quits");
    assert!(status.success());
}

#[test]
fn an_acl_file_applies_to_every_gateway_and_bad_files_name_the_line() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (g1, t1) = node.create_gateway("one");
    let (g2, t2) = node.create_gateway("two");
    let (_, p1) = node.create_destination(&g1, "echo", echo.addr);
    let (_, p2) = node.create_destination(&g2, "echo", echo.addr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl.rules");
    std::fs::write(
        &file,
        format!(
            "# only the echo service\nacl allow 127.0.0.1:{}\n",
            echo.addr.port()
        ),
    )
    .unwrap();
    let _c = Client::start(
        &node,
        &[(&g1, &t1), (&g2, &t2)],
        &["--acl-file", file.to_str().unwrap()],
    );
    for g in [&g1, &g2] {
        assert!(wait_until(Duration::from_secs(10), || node
            .try_fetch::<AclView>(&format!("/v1/gateways/{g}/acl"))
            .is_some_and(|a| a.rules.len() == 1)));
    }
    assert!(wait_echo(p1) && wait_echo(p2));
    // One gateway's ACL does not touch the other's.
    put_acl(&node, &g1, &["acl deny :"]);
    assert!(wait_until(Duration::from_secs(5), || echo_once(p1, b"x").is_none()));
    assert!(echo_once(p2, b"still").is_some());

    std::fs::write(&file, "acl allow 127.0.0.1:1\nacl allow oops\n").unwrap();
    let mut bad = Client::start(
        &node,
        &[(&g1, &t1)],
        &["--acl-file", file.to_str().unwrap()],
    );
    let status = bad
        .wait_exit(Duration::from_secs(10))
        .expect("exits at once");
    assert_eq!(status.code(), Some(2));
    assert!(bad.log().contains("line 2"), "{}", bad.log());
}

/// A destination on `host:port`, the host as typed.
fn destination_at(node: &Node, gw: &str, name: &str, host: &str, port: u16) -> u16 {
    let d: DestinationView = node.call_as(
        "POST",
        &format!("/v1/gateways/{gw}/destinations"),
        Some(json!({ "name": name, "resource_host": host, "resource_port": port })),
        201,
    );
    d.cloud_port.expect("cloud_port")
}

#[test]
fn the_acl_decides_on_the_address_dialled_however_the_host_is_written() {
    let node = Node::start();
    let echo = EchoServer::start();
    let ep = echo.addr.port();
    let (gw, token) = node.create_gateway("addresses");
    // The echo service under three spellings: hex, a name, and the address itself.
    let hex = destination_at(&node, &gw, "hex", "0x7f000001", ep);
    let name = destination_at(&node, &gw, "name", "localhost", ep);
    let plain = destination_at(&node, &gw, "plain", "127.0.0.1", ep);
    let meta = destination_at(&node, &gw, "metadata", "169.254.169.254", 80);
    let client = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));
    // No rules: the configured destinations are reachable, the metadata service never.
    assert!(wait_echo(hex) && wait_echo(name) && wait_echo(plain));
    assert!(refused_at(meta, b"GET / HTTP/1.0\r\n\r\n"));
    assert!(
        client.wait_log("a cloud metadata address", Duration::from_secs(5)),
        "{}",
        client.log()
    );

    // A rule that does not name loopback does not open it, however it is spelled.
    put_acl(&node, &gw, &[&format!("acl allow :{ep}")]);
    for port in [hex, name, plain] {
        assert!(
            wait_until(Duration::from_secs(5), || echo_once(port, b"x").is_none()),
            "cloud port {port}:\n{}",
            client.log()
        );
    }
    assert!(
        client.wait_log("only a rule naming 127.0.0.1", Duration::from_secs(5)),
        "{}",
        client.log()
    );
    // A rule naming the address covers every spelling of it, names included.
    put_acl(&node, &gw, &[&format!("acl allow 127.0.0.1:{ep}")]);
    for port in [hex, name, plain] {
        assert!(wait_echo(port), "cloud port {port}:\n{}", client.log());
    }
    // And a deny on the address holds against a name allowed by name.
    put_acl(
        &node,
        &gw,
        &[
            &format!("acl allow localhost:{ep}"),
            &format!("acl deny 127.0.0.1:{ep}"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(5), || echo_once(name, b"x").is_none()),
        "localhost is 127.0.0.1, which is denied:\n{}",
        client.log()
    );
    assert!(has_event(&node, &gw, EventKind::AclRefused));
}

#[test]
fn a_locked_acl_file_is_a_ceiling_the_shared_acl_cannot_widen() {
    let node = Node::start();
    let echo = EchoServer::start();
    let other = EchoServer::start();
    let (gw, token) = node.create_gateway("locked");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let (_, other_port) = node.create_destination(&gw, "other", other.addr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ceiling.rules");
    std::fs::write(&file, format!("acl allow 127.0.0.1:{}\n", echo.addr.port())).unwrap();
    let client = Client::start(
        &node,
        &[(&gw, &token)],
        &["--acl-file", file.to_str().unwrap(), "--acl-lock"],
    );
    assert!(node.wait_clients(&gw, 1));
    assert!(wait_echo(port));
    assert!(refused_at(other_port, b"x"));
    // The operator opens every port of the host on the node: this client still keeps to
    // its file.
    put_acl(
        &node,
        &gw,
        &["acl allow 127.0.0.1:", "acl allow localhost:"],
    );
    assert!(client.wait_log("ACL now has 2 rule(s)", Duration::from_secs(5)));
    assert!(echo_once(port, b"still").is_some());
    assert!(refused_at(other_port, b"x"));
    assert!(
        client.wait_log("the client's locked ACL file", Duration::from_secs(5)),
        "{}",
        client.log()
    );
    // Without the lock, the shared ACL is what counts.
    drop(client);
    assert!(node.wait_clients(&gw, 0));
    let _open = Client::start(&node, &[(&gw, &token)], &[]);
    assert!(node.wait_clients(&gw, 1));
    assert!(wait_echo(other_port));

    let mut bad = Client::start(&node, &[(&gw, &token)], &["--acl-lock"]);
    let status = bad
        .wait_exit(Duration::from_secs(10))
        .expect("exits at once");
    assert_eq!(status.code(), Some(2));
    assert!(bad.log().contains("--acl-lock"), "{}", bad.log());
}

// ---- running it -----------------------------------------------------------------------

#[test]
fn service_mode_restarts_a_killed_worker_and_stops_it_on_sigterm() {
    let mut t = EchoTunnel::start("svc", &["--service"]);
    let port = t.port;
    let c = &mut t.client;
    let pid_of = |log: &str, nth: usize| -> Option<i32> {
        log.lines()
            .filter_map(|l| l.split("started worker pid ").nth(1))
            .nth(nth)
            .and_then(|p| p.split_whitespace().next())
            .and_then(|p| p.parse().ok())
    };
    let first = pid_of(&c.log(), 0).expect("the supervisor names its worker");
    send_signal(first, libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(60), || pid_of(&c.log(), 1).is_some()),
        "{}",
        c.log()
    );
    assert_ne!(pid_of(&c.log(), 1), Some(first));
    assert!(c.log().contains("restarting in"), "{}", c.log());
    assert!(wait_echo(port), "serving again: {}", c.log());

    // SIGTERM to the supervisor reaches the worker: both end, and nothing is restarted.
    let worker = pid_of(&c.log(), 1).expect("the second worker");
    let supervisor = c.pid().expect("running") as i32;
    send_signal(supervisor, libc::SIGTERM);
    assert!(
        c.wait_exit(Duration::from_secs(30)).is_some(),
        "the supervisor stops: {}",
        c.log()
    );
    let gone = |pid: i32| !send_signal(pid, 0);
    assert!(
        wait_until(Duration::from_secs(10), || gone(worker)),
        "the worker stopped with it"
    );
    assert!(pid_of(&c.log(), 2).is_none(), "no restart after SIGTERM");
    assert!(t.node.wait_clients(&t.gw, 0));
}

#[test]
fn reconnects_are_logged_and_bounded_by_reconnect() {
    let mut node = Node::start();
    let (gw, token) = node.create_gateway("rc");
    let mut c = Client::start(&node, &[(&gw, &token)], &["--reconnect", "2"]);
    assert!(node.wait_clients(&gw, 1));
    node.kill9();
    assert!(
        c.wait_exit(Duration::from_secs(30)).is_some(),
        "gives up after 2 attempts: {}",
        c.log()
    );
    let log = c.log();
    assert!(
        log.contains("(attempt 1 of 2)") && log.contains("(attempt 2 of 2)"),
        "{log}"
    );
    assert!(log.contains("giving up"), "{log}");
    assert!(
        log.contains("reconnecting to") && log.contains("s (attempt"),
        "each attempt logs its wait: {log}"
    );
}

#[test]
fn one_process_keeps_serving_a_good_gateway_beside_a_refused_one() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (good, token) = node.create_gateway("good");
    let (bad, _) = node.create_gateway("bad");
    let (_, port) = node.create_destination(&good, "echo", echo.addr);
    let mut c = Client::start(&node, &[(&good, &token), (&bad, "sgt_wrong")], &[]);
    assert!(wait_echo(port), "{}", c.log());
    assert!(
        c.wait_log("bad_token", Duration::from_secs(10)),
        "the refused gateway is reported: {}",
        c.log()
    );
    assert!(
        c.wait_exit(Duration::from_secs(2)).is_none(),
        "the process stays up for the good gateway: {}",
        c.log()
    );
    assert_eq!(
        echo_once(port, b"still here").as_deref(),
        Some(&b"still here"[..])
    );
    assert_eq!(node.clients(&good).len(), 1);
    assert!(node.clients(&bad).is_empty());
}

#[test]
fn trace_logs_every_connections_bytes_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.log");
    let t = EchoTunnel::start("trace", &["-l", "TRACE", "-p", file.to_str().unwrap()]);
    echo_once(t.port, b"twelve bytes").unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        let log = std::fs::read_to_string(&file).unwrap_or_default();
        log.contains("transmitted data: 12 bytes") && log.contains("received data: 12 bytes")
    }));
    let log = std::fs::read_to_string(&file).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("Connection #") && l.contains("transmitted data:")),
        "{log}"
    );
}

/// A private service that reads `want` bytes, answers `reply` bytes and closes.
fn answering_service(want: usize, reply: usize) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut got = vec![0u8; want];
            if s.read_exact(&mut got).is_ok() {
                let _ = s.write_all(&vec![b'r'; reply]);
            }
        }
    });
    addr
}

#[test]
fn bytes_are_named_as_the_replaced_product_did_transmitted_from_the_cloud_received_from_the_destination(
) {
    let node = Node::start();
    let service = answering_service(1000, 10);
    let (gw, token) = node.create_gateway("directions");
    let (_, port) = node.create_destination(&gw, "answers", service);
    let mut c = Client::start_console(&node, &[(&gw, &token)], &["-l", "TRACE"]);
    assert!(node.wait_clients(&gw, 1), "{}", c.log());
    let mut s = connect(port);
    s.write_all(&[b'c'; 1000]).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 10, "the service's answer came back");
    drop(s);
    let sum = |log: &str, what: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("sg::connection") || l.contains("Connection #"))
            .filter_map(|l| l.split(&format!("{what} data: ")).nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(
        wait_until(Duration::from_secs(5), || {
            let log = c.log();
            sum(&log, "transmitted") == 1000 && sum(&log, "received") == 10
        }),
        "the client logs 1000 bytes transmitted (from the cloud) and 10 received (from the \
         service): {}",
        c.log()
    );
    c.send_line("s");
    assert!(
        c.wait_log(
            "total: transmitted 1000 bytes, received 10 bytes",
            Duration::from_secs(5)
        ),
        "the console agrees: {}",
        c.log()
    );
    let stats = || node.fetch::<GatewayStats>(&format!("/v1/gateways/{gw}/stats"));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let s = stats();
            s.bytes_to_resources == 1000 && s.bytes_to_cloud == 10
        }),
        "the node's figures agree (transmitted = to_resources): {:?}",
        stats()
    );
}

#[test]
fn an_open_connection_shows_its_bytes_before_it_closes() {
    let t = EchoTunnel::start("open-bytes", &[]);
    let mut s = connect(t.port);
    s.write_all(&[b'x'; 4000]).unwrap();
    let mut back = vec![0u8; 4000];
    s.read_exact(&mut back).unwrap();
    let stats = || {
        t.node
            .fetch::<GatewayStats>(&format!("/v1/gateways/{}/stats", t.gw))
    };
    // wait_echo's own probes carried a few bytes too: at least ours, while still open.
    assert!(
        wait_until(Duration::from_secs(5), || {
            let s = stats();
            s.active_connections == 1 && s.bytes_to_resources >= 4000 && s.bytes_to_cloud >= 4000
        }),
        "the figures count the open connection's bytes: {:?}",
        stats()
    );
    let (_, metrics) = t.node.api.get_text("/metrics").expect("metrics");
    let to_resources: u64 = metrics
        .lines()
        .find(|l| l.starts_with("sg_gateway_bytes_total{") && l.contains("to_resources"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("the bytes counter");
    assert!(to_resources >= 4000, "{metrics}");
    // Closing it does not count it twice.
    drop(s);
    let before = stats().bytes_to_resources;
    assert!(wait_until(Duration::from_secs(5), || stats()
        .active_connections
        == 0));
    assert_eq!(stats().bytes_to_resources, before);
    // The histograms saw the client's sessions and the closed connections.
    let (_, metrics) = t.node.api.get_text("/metrics").expect("metrics");
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}_count ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("sg_tunnel_handshake_seconds") >= 2, "{metrics}");
    assert!(count("sg_connection_duration_seconds") >= 2, "{metrics}");
}

#[test]
fn a_config_file_holds_the_flags_and_flags_win() {
    let node = Node::start();
    let echo = EchoServer::start();
    let (gw, token) = node.create_gateway("cfg");
    let (_, port) = node.create_destination(&gw, "echo", echo.addr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.toml");
    std::fs::write(
        &file,
        format!(
            "gateways = [\"{gw}\"]\ntokens = \"{token}\"\nservers = [\"{}\"]\nca = \"{}\"\nlog_level = \"ERROR\"\nno_ui = true\n",
            node.tunnel(),
            node.ca_path().display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out.log");
    let mut child = Command::new(bin("sg-client"))
        .args(["--config", file.to_str().unwrap(), "-l", "DEBUG"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_echo(port));
    let log = std::fs::read_to_string(&out).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.contains("DEBUG"),
        "the flag overrides the file's ERROR: {log}"
    );
}

const FINGERPRINT: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    for (args, expect) in [
        (
            vec![
                "gw",
                "-t",
                "t",
                "--server",
                "h:1",
                "--ca",
                "/nonexistent/ca.pem",
            ],
            "--ca",
        ),
        (
            vec!["gw", "-t", "t", "--server", "nohost", "--fingerprint", "AA"],
            "--server",
        ),
        (
            vec![
                "gw", "-t", "t", "--server", "h:1", "--ca", "x", "-l", "LOUD",
            ],
            "not a log level",
        ),
        (
            vec!["gw", "gw2", "-t", "t", "--server", "h:1", "--ca", "x"],
            "2 gateway(s) but 1 token(s)",
        ),
        (
            vec![
                "gw",
                "-t",
                "t",
                "--server",
                "h:1",
                "--fingerprint",
                FINGERPRINT,
                "--reconnect",
                "-7",
            ],
            "--reconnect",
        ),
    ] {
        let out = Command::new(bin("sg-client")).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
