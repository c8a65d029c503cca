//! The API's OpenAPI document, generated from the handlers' annotations and sg-api's types.
//! Served at `GET /v1/openapi.json` and committed as `docs/openapi.json`; a test fails when
//! the two differ (regenerate with `sg-node --generate openapi > docs/openapi.json`).

use super::routes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sg node API",
        description = "Manage an sg relay node and its cluster: gateways, destinations, clients, \
                       events, the plan. Every /v1 call but this document needs \
                       `Authorization: Bearer <admin token>` (DATA_DIR/admin.token). Errors are \
                       `{\"error\": code, \"message\": text}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        routes::healthz,
        routes::metrics,
        routes::openapi,
        routes::create_gateway,
        routes::list_gateways,
        routes::show_gateway,
        routes::update_gateway,
        routes::delete_gateway,
        routes::regenerate_token,
        routes::create_destination,
        routes::list_destinations,
        routes::show_destination,
        routes::update_destination,
        routes::delete_destination,
        routes::list_clients,
        routes::kill_client,
        routes::gateway_stats,
        routes::gateway_events,
        routes::show_acl,
        routes::set_acl,
        routes::list_nodes,
        routes::show_log_level,
        routes::set_log_level,
        routes::show_plan,
        routes::set_plan,
    ),
    components(schemas(sg_api::ErrorCode, sg_api::clients::Scope)),
    modifiers(&AdminToken),
    security(("admin_token" = [])),
    tags(
        (name = "gateways", description = "Gateways, their tokens, ACL and events"),
        (name = "destinations", description = "What a gateway carries, and how"),
        (name = "clients", description = "A gateway's client processes and figures, over the cluster"),
        (name = "node", description = "The node, the cluster's nodes, the plan, the log level"),
    )
)]
struct ApiDoc;

/// The bearer scheme every `/v1` call but the document itself needs.
struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The node's admin token (DATA_DIR/admin.token)"))
                    .build(),
            ),
        );
    }
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `(METHOD, path)` of every `.route(...)` in routes.rs, `/v1` added inside the scope.
    fn registered_routes() -> BTreeSet<(String, String)> {
        let source = include_str!("routes.rs");
        let scope_at = source.find("web::scope(\"/v1\")").expect("the /v1 scope");
        let mut found = BTreeSet::new();
        let mut rest = 0;
        while let Some(i) = source[rest..].find(".route(") {
            let at = rest + i;
            let text = &source[at..];
            let path = text.split('"').nth(1).expect("a quoted path");
            let method = text
                .split("web::")
                .nth(1)
                .and_then(|m| m.split('(').next())
                .expect("web::METHOD()");
            let prefix = if at > scope_at { "/v1" } else { "" };
            found.insert((method.to_uppercase(), format!("{prefix}{path}")));
            rest = at + 7;
        }
        found
    }

    #[test]
    fn every_registered_route_is_documented_and_only_those() {
        let doc: serde_json::Value = serde_json::from_str(&super::document()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let registered = registered_routes();
        assert!(
            registered.len() > 20,
            "the route table was read: {registered:?}"
        );
        assert_eq!(registered, documented);
    }

    /// The committed document is the generated one: regenerate it when the API changes.
    #[test]
    fn committed_document_matches_the_code() {
        let committed = include_str!("../../../docs/openapi.json");
        let generated = super::document();
        assert!(
            committed == generated,
            "docs/openapi.json is stale: run `cargo run -p sg-cluster --bin sg-node -- --generate openapi > docs/openapi.json`"
        );
    }
}
