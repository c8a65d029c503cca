//! The API's contract (F23): the node serves its OpenAPI document without a token, it is
//! the committed `docs/openapi.json`, a real validator accepts it, and every endpoint it
//! names is one the node answers.

use sg_api::{ErrorBody, ErrorCode};
use sg_e2e::*;
use std::path::Path;
use std::process::Command;

fn committed() -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let text = std::fs::read_to_string(&path).expect("docs/openapi.json");
    (path, text)
}

#[test]
fn the_served_document_is_the_committed_one_and_validates() {
    let node = Node::start();
    let anon = sg_api::client::ApiClient::new(&node.info.api, None, Some(node.trust())).unwrap();
    let (status, served) = anon.get_text("/v1/openapi.json").unwrap();
    assert_eq!(status, 200, "the document needs no token: {served}");
    let (path, text) = committed();
    assert!(
        served == text,
        "docs/openapi.json differs from what the node serves: regenerate it with \
         `sg-node --generate openapi > docs/openapi.json`"
    );
    // The admin API itself still needs the token.
    assert_eq!(anon.get("/v1/gateways").unwrap().status, 401);

    // openapi-spec-validator (PyPI; scripts/test.sh installs it).
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused docs/openapi.json:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // `sg-node --generate openapi` prints the same document.
    let out = Command::new(bin("sg-node"))
        .args(["--generate", "openapi"])
        .output()
        .expect("sg-node");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout) == text);
}

#[test]
fn every_documented_path_is_served_and_every_served_one_documented() {
    let node = Node::start();
    let (gw, _) = node.create_gateway("doc");
    let doc: serde_json::Value = serde_json::from_str(&committed().1).unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for (template, ops) in paths {
        let path = template
            .replace("{id}", &gw)
            .replace("{did}", "no-such-destination")
            .replace("{client_id}", "no-such-client");
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let body =
                matches!(method.as_str(), "POST" | "PUT" | "PATCH").then(|| b"{}".as_slice());
            let r = node
                .api
                .request_raw(&method, &path, body.unwrap_or_default())
                .or_else(|_| {
                    // /metrics answers text: only its status matters here.
                    node.api.get_text(&path).map(|(status, _)| ApiResponse {
                        status,
                        body: serde_json::Value::Null,
                        headers: Vec::new(),
                    })
                })
                .unwrap();
            let refused = serde_json::from_value::<ErrorBody>(r.body.clone()).ok();
            assert!(
                refused.map(|e| e.error) != Some(ErrorCode::NoSuchEndpoint),
                "{method} {template} is documented but the node has no such endpoint"
            );
        }
    }
    // The other way round (every route the node registers is documented) is a unit test
    // of sg-cluster's api::openapi, which reads the route table itself.
    let undocumented = node.api.request_raw("GET", "/v1/not-a-thing", b"").unwrap();
    assert_eq!(
        Node::body_of::<ErrorBody>(&undocumented).error,
        ErrorCode::NoSuchEndpoint
    );
}
