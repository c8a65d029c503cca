//! The REST handlers. Each one authenticates (the [`Admin`] extractor), asks the state
//! actor or a gateway actor, and answers with a view or an [`ApiError`].

use super::error::ApiError;
use super::fanout::{ask, gather};
use super::views::*;
use super::{Admin, ApiState, Body};
use crate::actors::gateway::{GetMetrics, GetStats, KillClient, ListClients};
use crate::actors::node::{AllGateways, GetFleet};
use crate::fleet::Fleet;
use crate::listening::Listen;
use crate::records::DestinationRecord;
use actix_web::{web, HttpRequest, HttpResponse};
use sg_api::client::query_value;
use sg_api::clients::{
    ClientState, ClientView, GatewayStats, KillQuery, Killed, NodeStats, Scope, ScopeQuery,
    MAX_KILL_REASON,
};
use sg_api::destinations::{DestinationPatch, DestinationView, NewDestination};
use sg_api::events::{EventView, EventsQuery, MAX_EVENTS};
use sg_api::gateways::{
    AclUpdate, AclView, GatewayPatch, GatewayView, NewGateway, TokenRequest, TokenView,
    UnnamedTargets,
};
use sg_api::node::{
    Healthz, LogLevelUpdate, LogLevelView, NodeView, PlanUpdate, PlanView, ServingStatus,
    StoreStatus, Usage,
};
use sg_api::ErrorBody;
use std::sync::Arc;
use std::time::Duration;

/// How long a create or update waits for the first bind of a new cloud port.
const FIRST_BIND_WAIT: Duration = Duration::from_secs(2);

type Api = web::Data<ApiState>;
type Reply = Result<HttpResponse, ApiError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .service(
            web::scope("/v1")
                .route("/gateways", web::post().to(create_gateway))
                .route("/gateways", web::get().to(list_gateways))
                .route("/gateways/{id}", web::get().to(show_gateway))
                .route("/gateways/{id}", web::patch().to(update_gateway))
                .route("/gateways/{id}", web::delete().to(delete_gateway))
                .route("/gateways/{id}/token", web::post().to(regenerate_token))
                .route(
                    "/gateways/{id}/destinations",
                    web::post().to(create_destination),
                )
                .route(
                    "/gateways/{id}/destinations",
                    web::get().to(list_destinations),
                )
                .route(
                    "/gateways/{id}/destinations/{did}",
                    web::get().to(show_destination),
                )
                .route(
                    "/gateways/{id}/destinations/{did}",
                    web::patch().to(update_destination),
                )
                .route(
                    "/gateways/{id}/destinations/{did}",
                    web::delete().to(delete_destination),
                )
                .route("/gateways/{id}/clients", web::get().to(list_clients))
                .route(
                    "/gateways/{id}/clients/{client_id}",
                    web::delete().to(kill_client),
                )
                .route("/gateways/{id}/stats", web::get().to(gateway_stats))
                .route("/gateways/{id}/events", web::get().to(gateway_events))
                .route("/gateways/{id}/acl", web::get().to(show_acl))
                .route("/gateways/{id}/acl", web::put().to(set_acl))
                .route("/log-level", web::get().to(show_log_level))
                .route("/log-level", web::put().to(set_log_level))
                .route("/plan", web::get().to(show_plan))
                .route("/plan", web::put().to(set_plan))
                .route("/nodes", web::get().to(list_nodes))
                .route("/openapi.json", web::get().to(openapi)),
        );
}

pub async fn not_found(req: HttpRequest) -> Reply {
    Err(ApiError::NoSuchEndpoint {
        method: req.method().to_string(),
        path: req.path().to_string(),
    })
}

/// 200 while the node serves, 503 `draining` once it drains, so load balancers move away.
/// An unreachable etcd does not fail the check: the node still serves from its copy.
#[utoipa::path(get, path = "/healthz", tag = "node", security(()),
    responses((status = 200, body = Healthz), (status = 503, body = Healthz, description = "draining")))]
async fn healthz(api: Api) -> HttpResponse {
    use crate::status::StoreHealth;
    let status = &api.shared.status;
    let draining = status.draining();
    let mut reply = if draining {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    reply.json(Healthz {
        status: if draining {
            ServingStatus::Draining
        } else {
            ServingStatus::Ok
        },
        region: api.shared.region.clone(),
        node_id: api.shared.node_id.clone(),
        version: sg_proto::version::PRODUCT_VERSION.to_string(),
        store: match status.store() {
            StoreHealth::Local => StoreStatus::Local,
            StoreHealth::Synced => StoreStatus::Synced,
            StoreHealth::Unreachable => StoreStatus::Unreachable,
            StoreHealth::Detached => StoreStatus::Detached,
        },
    })
}

/// `GET /v1/openapi.json`: this document (no token: it holds no secret).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "node", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json")))]
async fn openapi(api: Api) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(api.document.clone())
}

#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, body = ErrorBody)))]
async fn metrics(_: Admin, api: Api) -> Reply {
    render_metrics(&api).await
}

/// `/metrics` on the `--metrics-listen` address: no token there.
pub async fn open_metrics(api: Api) -> Reply {
    render_metrics(&api).await
}

async fn render_metrics(api: &ApiState) -> Reply {
    let gateways = api.node.send(AllGateways).await?;
    let mut figures = Vec::with_capacity(gateways.len());
    for g in gateways {
        if let Ok(m) = g.send(GetMetrics).await {
            figures.push(m);
        }
    }
    figures.sort_by(|a, b| a.gateway_id.cmp(&b.gateway_id));
    let (plan, usage) = api.read(|s| (s.plan(), usage_of(s))).await?;
    let text = super::metrics::render(&super::metrics::Snapshot {
        node_id: api.shared.node_id.clone(),
        region: api.shared.region.clone(),
        version: sg_proto::version::PRODUCT_VERSION,
        plan,
        active_gateways: usage.active_gateways,
        active_destinations: usage.active_destinations,
        gateways: figures,
        handshakes_refused: api.shared.handshakes.refused(),
        handshakes_evicted: api.shared.handshakes.evicted(),
        handshakes_pending: api.shared.handshakes.pending(),
        store: api.shared.status.store().as_str(),
        applied_revision: api.shared.replication.as_ref().map_or(0, |r| r.applied()),
        live_nodes: api.node.send(GetFleet).await?.nodes.len(),
        draining: api.shared.status.draining(),
        timings: api.shared.timings.clone(),
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

fn usage_of(s: &crate::state::State) -> Usage {
    Usage {
        active_gateways: s.active_gateways(),
        active_destinations: s.active_destinations(),
    }
}

#[utoipa::path(post, path = "/v1/gateways", tag = "gateways", request_body = NewGateway,
    responses((status = 201, body = GatewayView, description = "created; the token is shown this once"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_gateway(_: Admin, api: Api, body: Body<NewGateway>) -> Reply {
    let req = body.0;
    let issued = api.mutate(move |s| s.create_gateway(req.clone())).await?;
    Ok(HttpResponse::Created().json(gateway_view(&issued.gateway, Some(issued.token))))
}

#[utoipa::path(get, path = "/v1/gateways", tag = "gateways",
    responses((status = 200, body = Vec<GatewayView>), (status = 401, body = ErrorBody)))]
async fn list_gateways(_: Admin, api: Api) -> Reply {
    let gws = api.read(|s| s.gateways()).await?;
    let views: Vec<GatewayView> = gws.iter().map(|g| gateway_view(g, None)).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(get, path = "/v1/gateways/{id}", tag = "gateways", params(("id" = String, Path)),
    responses((status = 200, body = GatewayView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_gateway(_: Admin, api: Api, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    let g = api.read(move |s| s.gateway(&id).cloned()).await??;
    Ok(HttpResponse::Ok().json(gateway_view(&g, None)))
}

#[utoipa::path(patch, path = "/v1/gateways/{id}", tag = "gateways", params(("id" = String, Path)),
    request_body = GatewayPatch,
    responses((status = 200, body = GatewayView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn update_gateway(
    _: Admin,
    api: Api,
    id: web::Path<String>,
    body: Body<GatewayPatch>,
) -> Reply {
    let (id, patch) = (id.into_inner(), body.0);
    let g = api
        .mutate(move |s| s.update_gateway(&id, patch.clone()))
        .await?;
    Ok(HttpResponse::Ok().json(gateway_view(&g, None)))
}

#[utoipa::path(delete, path = "/v1/gateways/{id}", tag = "gateways", params(("id" = String, Path)),
    responses((status = 204, description = "deleted, with its destinations; its clients are disconnected"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_gateway(_: Admin, api: Api, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    api.mutate(move |s| s.delete_gateway(&id).map(|c| ((), c)))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/v1/gateways/{id}/token", tag = "gateways", params(("id" = String, Path)),
    request_body(content = Option<TokenRequest>, description = "optional"),
    responses((status = 200, body = TokenView, description = "the new token, shown this once; sessions on the old one close"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn regenerate_token(_: Admin, api: Api, id: web::Path<String>, body: web::Bytes) -> Reply {
    let req: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadBody(e.to_string()))?
    };
    let id = id.into_inner();
    let issued = api
        .mutate(move |s| s.regenerate_token(&id, req.token_expires_in_days))
        .await?;
    Ok(HttpResponse::Ok().json(TokenView {
        token: issued.token,
        token_expires_at: crate::time::rfc3339(issued.gateway.token_expires_at),
    }))
}

#[utoipa::path(post, path = "/v1/gateways/{id}/destinations", tag = "destinations",
    params(("id" = String, Path)), request_body = NewDestination,
    responses((status = 201, body = DestinationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_destination(
    _: Admin,
    api: Api,
    id: web::Path<String>,
    body: Body<NewDestination>,
) -> Reply {
    let (id, req) = (id.into_inner(), body.0);
    let d = api
        .mutate(move |s| s.create_destination(&id, req.clone()))
        .await?;
    let fleet = api.node.send(GetFleet).await?;
    let listen = settled_listen(&api, &d).await;
    Ok(HttpResponse::Created().json(with_listen(
        destination_view(&d, &api.shared.cloud_host, &fleet),
        listen,
    )))
}

#[utoipa::path(get, path = "/v1/gateways/{id}/destinations", tag = "destinations",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<DestinationView>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_destinations(_: Admin, api: Api, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    let ds = api.read(move |s| s.destinations_of(&id)).await??;
    let fleet = api.node.send(GetFleet).await?;
    let views: Vec<DestinationView> = ds
        .iter()
        .map(|d| {
            with_listen(
                destination_view(d, &api.shared.cloud_host, &fleet),
                api.shared.listening.get(&d.id),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(get, path = "/v1/gateways/{id}/destinations/{did}", tag = "destinations",
    params(("id" = String, Path), ("did" = String, Path)),
    responses((status = 200, body = DestinationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_destination(_: Admin, api: Api, path: web::Path<(String, String)>) -> Reply {
    let (id, did) = path.into_inner();
    let d = api
        .read(move |s| s.destination(&id, &did).cloned())
        .await??;
    let fleet = api.node.send(GetFleet).await?;
    let listen = api.shared.listening.get(&d.id);
    Ok(HttpResponse::Ok().json(with_listen(
        destination_view(&d, &api.shared.cloud_host, &fleet),
        listen,
    )))
}

#[utoipa::path(patch, path = "/v1/gateways/{id}/destinations/{did}", tag = "destinations",
    params(("id" = String, Path), ("did" = String, Path)), request_body = DestinationPatch,
    responses((status = 200, body = DestinationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn update_destination(
    _: Admin,
    api: Api,
    path: web::Path<(String, String)>,
    body: Body<DestinationPatch>,
) -> Reply {
    let ((id, did), patch) = (path.into_inner(), body.0);
    let d = api
        .mutate(move |s| s.update_destination(&id, &did, patch.clone()))
        .await?;
    let fleet = api.node.send(GetFleet).await?;
    let listen = settled_listen(&api, &d).await;
    Ok(HttpResponse::Ok().json(with_listen(
        destination_view(&d, &api.shared.cloud_host, &fleet),
        listen,
    )))
}

/// After a change: how binding the destination's cloud port went on this node, waiting a
/// moment for the first attempt so a `201` does not promise a port nothing listens on.
async fn settled_listen(api: &Api, d: &DestinationRecord) -> Option<Listen> {
    let book = &api.shared.listening;
    if !d.active || d.cloud_port.is_none() || api.shared.status.listeners_closed() {
        return book.get(&d.id);
    }
    book.settled(&d.id, FIRST_BIND_WAIT).await
}

#[utoipa::path(delete, path = "/v1/gateways/{id}/destinations/{did}", tag = "destinations",
    params(("id" = String, Path), ("did" = String, Path)),
    responses((status = 204, description = "deleted; its cloud port closes"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_destination(_: Admin, api: Api, path: web::Path<(String, String)>) -> Reply {
    let (id, did) = path.into_inner();
    api.mutate(move |s| s.delete_destination(&id, &did).map(|c| ((), c)))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `?scope=node` asks for this node's part only (what nodes ask each other); the default is
/// the whole cluster.
fn node_scope(scope: Option<Scope>) -> bool {
    scope == Some(Scope::Node)
}

/// The fleet to ask, or `None` when this node alone answers.
async fn peers_to_ask(api: &ApiState, node_only: bool) -> Result<Option<Arc<Fleet>>, ApiError> {
    if node_only {
        return Ok(None);
    }
    let fleet = api.node.send(GetFleet).await?;
    Ok((fleet.nodes.len() > 1).then_some(fleet))
}

fn unreachable_header(reply: &mut actix_web::HttpResponseBuilder, ids: &[(String, String)]) {
    if !ids.is_empty() {
        let ids: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
        reply.insert_header(("x-sg-unreachable-nodes", ids.join(",")));
    }
}

#[utoipa::path(get, path = "/v1/gateways/{id}/clients", tag = "clients",
    params(("id" = String, Path), ScopeQuery),
    responses((status = 200, body = Vec<ClientView>, description = "connected clients and the last ones gone; header x-sg-unreachable-nodes names nodes that did not answer"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_clients(
    admin: Admin,
    api: Api,
    id: web::Path<String>,
    query: web::Query<ScopeQuery>,
) -> Reply {
    let id = id.into_inner();
    let gateway = api.gateway_actor(id.clone()).await?;
    let mut clients = gateway.send(ListClients).await?;
    let mut reply = HttpResponse::Ok();
    if let Some(fleet) = peers_to_ask(&api, node_scope(query.scope)).await? {
        let path = format!("/v1/gateways/{id}/clients");
        let got = gather::<Vec<ClientView>>(&api, &fleet, &admin.token, &path).await;
        clients.extend(got.answers.into_iter().flat_map(|(_, c)| c));
        unreachable_header(&mut reply, &got.unreachable);
        // A client that left one node is usually connected to another: listed once, there.
        let connected: Vec<String> = clients
            .iter()
            .filter(|c| c.state == ClientState::Connected)
            .map(|c| c.client_id.clone())
            .collect();
        clients.retain(|c| c.state == ClientState::Connected || !connected.contains(&c.client_id));
    }
    Ok(reply.json(clients))
}

/// `DELETE /v1/gateways/{id}/clients/{client_id}?reason=TEXT`: ends a client (F30).
#[utoipa::path(delete, path = "/v1/gateways/{id}/clients/{client_id}", tag = "clients",
    params(("id" = String, Path), ("client_id" = String, Path), KillQuery),
    responses((status = 200, body = Killed, description = "the client was told to stop; it exits with status 4"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not connected to any node that answered"),
        (status = 503, body = ErrorBody, description = "not connected to the nodes that answered, and others did not")))]
async fn kill_client(
    admin: Admin,
    api: Api,
    path: web::Path<(String, String)>,
    query: web::Query<KillQuery>,
) -> Reply {
    let (id, client_id) = path.into_inner();
    let reason = match query.reason.as_deref().map(str::trim) {
        None | Some("") => "no reason given".to_string(),
        Some(r) if r.chars().count() > MAX_KILL_REASON => {
            return Err(ApiError::invalid(
                "reason",
                format!("must be at most {MAX_KILL_REASON} characters"),
            ))
        }
        Some(r) if r.chars().any(char::is_control) => {
            return Err(ApiError::invalid(
                "reason",
                "must not contain control characters",
            ))
        }
        Some(r) => r.to_string(),
    };
    let gateway = api.gateway_actor(id.clone()).await?;
    let mut killed = Killed {
        sessions_closed: gateway
            .send(KillClient {
                client_id: client_id.clone(),
                reason: reason.clone(),
            })
            .await?,
        client_id: client_id.clone(),
        reason: reason.clone(),
    };
    let mut reply = HttpResponse::Ok();
    let mut unreachable = Vec::new();
    let node_only = node_scope(query.scope);
    if let Some(fleet) = peers_to_ask(&api, node_only).await? {
        let path = format!(
            "/v1/gateways/{id}/clients/{}?reason={}",
            query_value(&client_id),
            query_value(&reason)
        );
        let got = ask::<Killed>(&api, &fleet, &admin.token, "DELETE", &path).await;
        killed.sessions_closed += got
            .answers
            .iter()
            .map(|(_, k)| k.sessions_closed)
            .sum::<usize>();
        unreachable_header(&mut reply, &got.unreachable);
        unreachable = got.unreachable;
    } else if killed.sessions_closed == 0 && node_only {
        // A node asked by another answers for its part, even when that is nothing.
        return Ok(reply.json(killed));
    }
    if killed.sessions_closed == 0 && !unreachable.is_empty() {
        let ids: Vec<&str> = unreachable.iter().map(|(id, _)| id.as_str()).collect();
        return Err(ApiError::PeersUnreachable(format!(
            "client {client_id} is not connected to the nodes that answered, and node(s) {} \
             did not answer; retry when they do",
            ids.join(", ")
        )));
    }
    if killed.sessions_closed == 0 {
        return Err(ApiError::NotFound {
            what: "connected client",
            id: client_id,
        });
    }
    Ok(reply.json(killed))
}

#[utoipa::path(get, path = "/v1/gateways/{id}/stats", tag = "clients",
    params(("id" = String, Path), ScopeQuery),
    responses((status = 200, body = GatewayStats), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn gateway_stats(
    admin: Admin,
    api: Api,
    id: web::Path<String>,
    query: web::Query<ScopeQuery>,
) -> Reply {
    let id = id.into_inner();
    let gateway = api.gateway_actor(id.clone()).await?;
    let local = gateway.send(GetStats).await?;
    let Some(fleet) = peers_to_ask(&api, node_scope(query.scope)).await? else {
        return Ok(HttpResponse::Ok().json(local));
    };
    let path = format!("/v1/gateways/{id}/stats");
    let got = gather::<GatewayStats>(&api, &fleet, &admin.token, &path).await;
    let me = fleet.nodes.iter().find(|n| n.id == api.shared.node_id);
    let mut parts = vec![(
        api.shared.node_id.clone(),
        me.map_or_else(|| api.shared.region.clone(), |n| n.region.clone()),
        local,
    )];
    parts.extend(got.answers.into_iter().map(|(n, s)| (n.id, n.region, s)));
    let mut total = GatewayStats {
        gateway_id: id,
        clients: 0,
        client_ids: Vec::new(),
        active_connections: 0,
        total_connections: 0,
        refused_connections: 0,
        bytes_to_resources: 0,
        bytes_to_cloud: 0,
        idle_closed_connections: 0,
        max_connections: parts[0].2.max_connections,
        nodes: Vec::new(),
        unreachable_nodes: got.unreachable.iter().map(|(id, _)| id.clone()).collect(),
    };
    for (node_id, region, s) in parts {
        total.client_ids.extend(s.client_ids.iter().cloned());
        total.active_connections += s.active_connections;
        total.total_connections += s.total_connections;
        total.refused_connections += s.refused_connections;
        total.bytes_to_resources += s.bytes_to_resources;
        total.bytes_to_cloud += s.bytes_to_cloud;
        total.idle_closed_connections += s.idle_closed_connections;
        total.nodes.push(NodeStats {
            node_id,
            region,
            clients: s.clients,
            active_connections: s.active_connections,
            total_connections: s.total_connections,
            refused_connections: s.refused_connections,
            bytes_to_resources: s.bytes_to_resources,
            bytes_to_cloud: s.bytes_to_cloud,
            idle_closed_connections: s.idle_closed_connections,
        });
    }
    total.client_ids.sort_unstable();
    total.client_ids.dedup();
    total.clients = total.client_ids.len();
    Ok(HttpResponse::Ok().json(total))
}

#[utoipa::path(get, path = "/v1/gateways/{id}/events", tag = "gateways",
    params(("id" = String, Path), EventsQuery),
    responses((status = 200, body = Vec<EventView>, description = "newest first, over every node that answered"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn gateway_events(
    admin: Admin,
    api: Api,
    id: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Reply {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1-{MAX_EVENTS}"),
        ));
    }
    let id = id.into_inner();
    let gw = id.clone();
    let events = api.read(move |s| s.events(&gw, limit)).await??;
    let (node_id, region) = (&api.shared.node_id, &api.shared.region);
    let mut views: Vec<EventView> = events
        .into_iter()
        .map(|e| event_view(e, node_id, region))
        .collect();
    let mut reply = HttpResponse::Ok();
    if let Some(fleet) = peers_to_ask(&api, node_scope(query.scope)).await? {
        let path = format!("/v1/gateways/{id}/events?limit={limit}");
        let got = gather::<Vec<EventView>>(&api, &fleet, &admin.token, &path).await;
        views.extend(got.answers.into_iter().flat_map(|(_, e)| e));
        // Every node writes the same timestamp format: the text sorts as the time does.
        views.sort_by(|a, b| b.at.cmp(&a.at));
        views.truncate(limit);
        unreachable_header(&mut reply, &got.unreachable);
    }
    Ok(reply.json(views))
}

#[utoipa::path(get, path = "/v1/nodes", tag = "node",
    responses((status = 200, body = Vec<NodeView>, description = "the live nodes of the cluster"), (status = 401, body = ErrorBody)))]
async fn list_nodes(_: Admin, api: Api) -> Reply {
    let fleet = api.node.send(GetFleet).await?;
    let views: Vec<NodeView> = fleet
        .nodes
        .iter()
        .map(|n| node_view(n, &api.shared.node_id))
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// A gateway's ACL as `GET .../acl` shows it: the rules, and what becomes of a target no
/// rule names (`denied` with rules; with none, `configured_destinations` — what clients
/// started with the default `--acl-default` allow — and a sentence saying so).
fn acl_view(rules: Vec<String>) -> AclView {
    let has_rules = !rules.is_empty();
    AclView {
        unnamed_targets: if has_rules {
            UnnamedTargets::Denied
        } else {
            UnnamedTargets::ConfiguredDestinations
        },
        unnamed_targets_text: sg_proto::acl::unnamed_targets(
            has_rules,
            sg_proto::acl::DefaultPolicy::Destinations,
        )
        .to_string(),
        rules,
    }
}

#[utoipa::path(get, path = "/v1/gateways/{id}/acl", tag = "gateways", params(("id" = String, Path)),
    responses((status = 200, body = AclView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_acl(_: Admin, api: Api, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    let rules = api
        .read(move |s| s.gateway(&id).map(|g| g.acl.clone()))
        .await??;
    Ok(HttpResponse::Ok().json(acl_view(rules)))
}

#[utoipa::path(put, path = "/v1/gateways/{id}/acl", tag = "gateways", params(("id" = String, Path)),
    request_body = AclUpdate,
    responses((status = 200, body = AclView, description = "stored and pushed to the gateway's clients"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn set_acl(_: Admin, api: Api, id: web::Path<String>, body: Body<AclUpdate>) -> Reply {
    let (id, rules) = (id.into_inner(), body.0.rules);
    let g = api.mutate(move |s| s.set_acl(&id, &rules)).await?;
    Ok(HttpResponse::Ok().json(acl_view(g.acl)))
}

fn log_level_view() -> Result<LogLevelView, ApiError> {
    let log = sg_proto::logging::control().ok_or(ApiError::Unavailable)?;
    Ok(LogLevelView {
        log_level: log.level().to_string(),
        filters: log.filters(),
    })
}

/// `GET /v1/log-level`: the level (and the `RUST_LOG` filters, if the node started with
/// some and no level was set since). This node only: each node has its own log.
#[utoipa::path(get, path = "/v1/log-level", tag = "node",
    responses((status = 200, body = LogLevelView), (status = 401, body = ErrorBody)))]
async fn show_log_level(_: Admin) -> Reply {
    Ok(HttpResponse::Ok().json(log_level_view()?))
}

/// `PUT /v1/log-level {"level": "DEBUG"}`: this node's level, from now on, for every module.
#[utoipa::path(put, path = "/v1/log-level", tag = "node", request_body = LogLevelUpdate,
    responses((status = 200, body = LogLevelView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn set_log_level(_: Admin, body: Body<LogLevelUpdate>) -> Reply {
    let level: sg_proto::loglevel::LogLevel = body
        .0
        .level
        .parse()
        .map_err(|e: String| ApiError::invalid("level", e))?;
    let log = sg_proto::logging::control().ok_or(ApiError::Unavailable)?;
    log.set_level(level).map_err(|_| ApiError::Unavailable)?;
    tracing::info!("log level is now {level}");
    Ok(HttpResponse::Ok().json(log_level_view()?))
}

fn plan_of(s: &crate::state::State) -> PlanView {
    plan_view(s.plan(), usage_of(s))
}

#[utoipa::path(get, path = "/v1/plan", tag = "node",
    responses((status = 200, body = PlanView), (status = 401, body = ErrorBody)))]
async fn show_plan(_: Admin, api: Api) -> Reply {
    let view = api.read(plan_of).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(put, path = "/v1/plan", tag = "node", request_body = PlanUpdate,
    responses((status = 200, body = PlanView, description = "below current usage, every gateway becomes inactive"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn set_plan(_: Admin, api: Api, body: Body<PlanUpdate>) -> Reply {
    let update = body.0;
    api.mutate(move |s| s.set_plan(update.clone())).await?;
    let view = api.read(plan_of).await?;
    Ok(HttpResponse::Ok().json(view))
}
