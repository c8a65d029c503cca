//! The REST API (actix-web, over TLS), authenticated with the admin token.
//!
//! Handlers never touch sled: mutations go to the state actor (which answers after the
//! change is on disk), then a [`Barrier`] through the Node makes sure every actor applied it
//! — so a `201` for a destination means its cloud port is already listening.

pub mod error;
pub mod fanout;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod views;

use crate::actors::gateway::Gateway;
use crate::actors::node::{Barrier, FindGateway, Node};
use crate::actors::state::{mutate, Read, StateActor};
use crate::ids::token_matches;
use crate::state::{Change, State, StateError};
use actix::Addr;
use actix_web::{dev::Payload, web, App, FromRequest, HttpRequest, HttpServer};
use error::ApiError;
use std::future::{ready, Ready};

/// Largest JSON body the API reads (certificates included).
pub const MAX_BODY: usize = 256 * 1024;

pub struct ApiState {
    pub state: Addr<StateActor>,
    pub node: Addr<Node>,
    /// The node's identity, status and counters.
    pub shared: std::sync::Arc<crate::actors::NodeShared>,
    pub admin_token_hash: String,
    /// How this node verifies the other nodes' APIs (the cluster's CA).
    pub peers: sg_proto::tls::ServerTrust,
    /// This API's OpenAPI document, generated once at start (it never changes while the
    /// node runs) and served by `GET /v1/openapi.json`.
    pub document: actix_web::web::Bytes,
}

impl ApiState {
    /// Runs a mutation and waits until the actors applied it.
    pub async fn mutate<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: Fn(&mut State) -> Result<(R, Vec<Change>), StateError> + Send + Sync + 'static,
    {
        let out = mutate(&self.state, self.shared.replication.as_deref(), f).await?;
        self.node.send(Barrier).await?;
        Ok(out)
    }

    pub async fn read<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&State) -> R + Send + 'static,
    {
        Ok(self.state.send(Read(Box::new(f))).await?)
    }

    pub async fn gateway_actor(&self, id: String) -> Result<Addr<Gateway>, ApiError> {
        self.node
            .send(FindGateway(id.clone()))
            .await?
            .ok_or(ApiError::NotFound {
                what: "gateway",
                id,
            })
    }
}

/// Proof that the request carried the admin token; the token itself goes along when this
/// node asks the others (the cluster has one admin token).
pub struct Admin {
    pub token: String,
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(api) = req.app_data::<web::Data<ApiState>>() else {
            return ready(Err(ApiError::Unavailable));
        };
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        ready(match presented {
            Some(token) if token_matches(token, &api.admin_token_hash) => Ok(Admin {
                token: token.to_string(),
            }),
            _ => Err(ApiError::Unauthorized),
        })
    }
}

/// A JSON request body. Unlike `web::Json`, a bad body is refused with the path of the
/// offending field (`cloud_tls.mode: unknown variant ...`), so the caller knows what to fix.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Body<T>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes
                .await
                .map_err(|e| ApiError::BadBody(format!("cannot read the body: {e}")))?;
            if bytes.len() > MAX_BODY {
                return Err(ApiError::BadBody(format!(
                    "the body is larger than {MAX_BODY} bytes"
                )));
            }
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            serde_path_to_error::deserialize(&mut de)
                .map(Body)
                .map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    if path.is_empty() || path == "." {
                        ApiError::BadBody(format!("invalid JSON body: {inner}"))
                    } else {
                        ApiError::BadBody(format!("invalid JSON body: {path}: {inner}"))
                    }
                })
        })
    }
}

fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY)
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| ApiError::BadBody(format!("bad path: {err}")).into())
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| ApiError::BadBody(format!("bad query string: {err}")).into())
}

/// Starts the API on an already bound listener.
pub fn serve(
    data: web::Data<ApiState>,
    listener: std::net::TcpListener,
    tls: rustls::ServerConfig,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(payload_config())
            .app_data(path_config())
            .app_data(query_config())
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .listen_rustls_0_23(listener, tls)?
    .run();
    Ok(server)
}

/// Starts the metrics listener (`--metrics-listen`): `GET /metrics` in plain HTTP without
/// the admin token, so a scraper holds no credential that could change anything, and
/// nothing else.
pub fn serve_metrics(
    data: web::Data<ApiState>,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(routes::open_metrics))
            .default_service(web::to(routes::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}
