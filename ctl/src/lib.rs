//! `sgctl`: the command line over the node's REST API.
//!
//! It finds the node the way an operator on the node's machine expects: `--api`, else
//! `SG_API`, else the `node.json` a running node wrote into its data dir; the admin token
//! from `--admin-token`, `SG_ADMIN_TOKEN` or `DATA_DIR/admin.token`; the CA from `--ca`,
//! `SG_CA` or `DATA_DIR/ca.pem`. Output is a readable table unless `--json`.

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod output;

pub use output::printable;

use clap::{Args, Parser, Subcommand};
use output::Answer;
use serde::de::DeserializeOwned;
use sg_api::client::{query_value, ApiClient, ApiResponse, ClientError};
use sg_api::destinations::{
    CloudTlsInput, CloudTlsMode, DestinationPatch, HealthCheckInput, IpRule, NewDestination,
    ResourceTlsInput,
};
use sg_api::gateways::{AclUpdate, GatewayPatch, NewGateway, TokenRequest};
use sg_api::node::{LogLevelUpdate, PlanUpdate};
use sg_api::node_file::{
    NodeFile, ADMIN_TOKEN_FILE, CA_FILE, DEFAULT_API, DEFAULT_DATA_DIR, NODE_FILE,
};
use sg_proto::tls::{self, ServerTrust};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sgctl",
    version,
    about = "Manage an sg node: gateways, destinations, plan"
)]
pub struct Cli {
    /// API URL, e.g. https://127.0.0.1:9090.
    #[arg(long, env = "SG_API", global = true)]
    pub api: Option<String>,
    /// Admin token (default: DATA_DIR/admin.token).
    #[arg(long, env = "SG_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub admin_token: Option<String>,
    /// CA certificate that signed the API's certificate (default: DATA_DIR/ca.pem).
    #[arg(long, env = "SG_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Pin the API's certificate by SHA-256 fingerprint instead of a CA.
    #[arg(long, global = true)]
    pub fingerprint: Option<String>,
    /// The node's data dir, where sgctl finds node.json, admin.token and ca.pem.
    #[arg(long, env = "SG_DATA_DIR", global = true, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print ids only, one per line (for scripts); a created gateway prints its id and its
    /// token, separated by a tab.
    #[arg(short, long, global = true, conflicts_with = "json")]
    pub quiet: bool,
    /// Print the man page (man) or a shell completion script (bash, zsh, fish, elvish,
    /// powershell) and exit.
    #[arg(long, value_name = "WHAT")]
    pub generate: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

// One value per API call or command line: their size does not matter, boxing would
// only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Gateways: create, list, show, update, delete, token, clients, stats, events.
    #[command(subcommand)]
    Gateway(GatewayCmd),
    /// Destinations of a gateway: create, list, show, update, delete.
    #[command(subcommand, alias = "dest")]
    Destination(DestinationCmd),
    /// The plan's limits: show, set.
    #[command(subcommand)]
    Plan(PlanCmd),
    /// A gateway's access control list: show, set, clear, load.
    #[command(subcommand)]
    Acl(AclCmd),
    /// The cluster's live nodes: list.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Is the node up? (Fails while it drains.)
    Health,
    /// The node's Prometheus metrics.
    Metrics,
    /// Show this node's log level, or set it (ERROR, WARN, INFO, DEBUG, TRACE) while it runs.
    LogLevel { level: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Live nodes: id, region, tunnel and API addresses, version, draining.
    List,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCmd {
    /// Create a gateway; its token is shown this once.
    Create {
        name: String,
        #[arg(long)]
        token_expires_in_days: Option<u32>,
        /// Create it inactive (not counted in the plan, no cloud ports).
        #[arg(long)]
        inactive: bool,
        /// Create it disabled (carries no data).
        #[arg(long)]
        disabled: bool,
    },
    List,
    Show {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        active: Option<bool>,
        #[arg(long)]
        enabled: Option<bool>,
    },
    Delete {
        id: String,
    },
    /// Issue a new token; the old one stops working at once.
    Token {
        id: String,
        #[arg(long)]
        token_expires_in_days: Option<u32>,
    },
    /// Clients of the gateway: connected ones (with what they cannot reach) and the last
    /// ones gone; `clients kill GW CLIENT` ends one.
    #[command(args_conflicts_with_subcommands = true)]
    Clients {
        #[command(subcommand)]
        action: Option<ClientsCmd>,
        /// The gateway whose clients to list.
        id: Option<String>,
    },
    /// Connection figures summed over the gateway's clients.
    Stats {
        id: String,
    },
    /// The gateway's event log, newest first.
    Events {
        id: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCmd {
    /// End a client: its sessions close on every node, it logs the reason and exits
    /// (status 4; under --service it is started again only with --restart-after-kill).
    Kill {
        gateway: String,
        client: String,
        /// Why, for the client's log and the gateway's events.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DestinationFields {
    #[arg(long)]
    name: Option<String>,
    /// The private service, HOST:PORT (for --type cloud: the cloud resource the node dials).
    #[arg(long, value_name = "HOST:PORT")]
    resource: Option<String>,
    /// on_premises (default: cloud applications reach a private service) or cloud
    /// (private applications reach a cloud resource through the clients' --client-port).
    #[arg(long = "type", value_name = "TYPE", value_parser = ["on_premises", "cloud"])]
    kind: Option<String>,
    /// Cloud destinations: the port every client of the gateway listens on.
    #[arg(long, value_name = "PORT")]
    client_port: Option<u32>,
    /// tcp or http.
    #[arg(long)]
    protocol: Option<String>,
    #[arg(long)]
    active: Option<bool>,
    #[arg(long)]
    enabled: Option<bool>,
    /// Allow connections only from CIDR (optionally from source ports LOW-HIGH); repeat.
    #[arg(long = "ip-rule", value_name = "CIDR[,PORTS]")]
    ip_rules: Vec<String>,
    /// Remove every IP rule (update).
    #[arg(long, conflicts_with = "ip_rules")]
    no_ip_rules: bool,
    /// Close a connection after SECS without a byte either way (0 = never).
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u32>,
    /// Most connections one source address may hold open at once (0 = no cap).
    #[arg(long, value_name = "N")]
    max_per_source: Option<u32>,
    /// HTTP destinations: replace each request's Host with the private host (true/false).
    #[arg(long, value_name = "BOOL")]
    host_rewrite: Option<bool>,
    /// Send the private service a PROXY protocol header first: v1, v2 or off.
    #[arg(long, value_name = "VERSION", value_parser = ["v1", "v2", "off"])]
    proxy_protocol: Option<String>,
    /// User-side TLS on the cloud port: none, tls or mutual.
    #[arg(long, value_name = "MODE")]
    cloud_tls: Option<String>,
    /// Certificate (PEM chain) for the cloud port; without it the node issues one.
    #[arg(long, value_name = "FILE", requires = "cloud_key")]
    cloud_cert: Option<PathBuf>,
    /// Private key (PEM) of --cloud-cert.
    #[arg(long, value_name = "FILE", requires = "cloud_cert")]
    cloud_key: Option<PathBuf>,
    /// CA (PEM) that signs the client certificates a "mutual" cloud port accepts.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// The client reaches the private service over TLS.
    #[arg(long)]
    resource_tls: bool,
    /// Turn resource-side TLS off (update).
    #[arg(long, conflicts_with = "resource_tls")]
    no_resource_tls: bool,
    /// Verify the service's certificate: against --resource-ca, or with none, against the
    /// client machine's system trust store.
    #[arg(long)]
    reject_unauthorized: bool,
    /// The private service's own certificate (a self-signed one is pinned), or the CA that
    /// signed it (PEM). Repeat for up to 6 files.
    #[arg(long, value_name = "FILE")]
    resource_ca: Vec<PathBuf>,
    /// Name (SNI) the client asks for and verifies (default: the resource host).
    #[arg(long)]
    server_name: Option<String>,
    /// How clients check the private service: tcp (connect, the default), http (GET
    /// --health-path, 2xx/3xx is healthy) or off (only carried connections count).
    /// On update, the health flags given replace the whole check.
    #[arg(long, value_name = "KIND", value_parser = ["tcp", "http", "off"])]
    health_check: Option<String>,
    /// HTTP checks: the path requested (default /).
    #[arg(long, value_name = "PATH")]
    health_path: Option<String>,
    /// Seconds between checks (default 10).
    #[arg(long, value_name = "SECS")]
    health_interval: Option<u32>,
    /// Seconds a check may take (default 3).
    #[arg(long, value_name = "SECS")]
    health_timeout: Option<u32>,
    /// Failures in a row, checks or connections, that make a client unhealthy (default 2).
    #[arg(long, value_name = "N")]
    unhealthy_after: Option<u32>,
    /// Successes in a row that make it healthy again (default 2).
    #[arg(long, value_name = "N")]
    healthy_after: Option<u32>,
    /// Client certificate (PEM) for a service that requires mutual TLS.
    #[arg(long, value_name = "FILE", requires = "resource_key")]
    resource_cert: Option<PathBuf>,
    /// Private key (PEM) of --resource-cert.
    #[arg(long, value_name = "FILE", requires = "resource_cert")]
    resource_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DestinationCmd {
    Create {
        gateway: String,
        #[command(flatten)]
        fields: DestinationFields,
        /// Ask for this cloud port (inside the node's range).
        #[arg(long)]
        cloud_port: Option<u16>,
    },
    List {
        gateway: String,
    },
    Show {
        gateway: String,
        id: String,
    },
    Update {
        gateway: String,
        id: String,
        #[command(flatten)]
        fields: DestinationFields,
    },
    Delete {
        gateway: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AclCmd {
    Show {
        gateway: String,
    },
    /// Replace the ACL: each RULE is one line such as "acl allow 10.0.0.5:5432".
    Set {
        gateway: String,
        #[arg(required = true)]
        rules: Vec<String>,
    },
    Clear {
        gateway: String,
    },
    /// Replace the ACL with the rules in FILE (one per line, `#` comments).
    Load {
        gateway: String,
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlanCmd {
    Show,
    Set {
        #[arg(long)]
        max_gateways: Option<u32>,
        #[arg(long)]
        max_destinations: Option<u32>,
        #[arg(long)]
        max_connections_per_gateway: Option<u32>,
        /// Client processes a gateway may have at once (0 = no limit).
        #[arg(long)]
        max_clients_per_gateway: Option<u32>,
    },
}

/// Why sgctl failed; the exit status follows the kind.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(ClientError),
    /// The node answered, and not with what was asked (a refusal, or a draining node).
    #[error("{code} ({status}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 2,
            CtlError::Api { .. } => 1,
            CtlError::Client(_) => 3,
        }
    }
}

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api { status, body } => CtlError::Api {
                status,
                code: body.error.to_string(),
                message: body.message,
            },
            other => CtlError::Client(other),
        }
    }
}

impl Cli {
    fn client(&self) -> Result<ApiClient, CtlError> {
        let node_file: Option<NodeFile> = std::fs::read(self.data_dir.join(NODE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let api = self
            .api
            .clone()
            .or_else(|| node_file.as_ref().map(|n| n.api.clone()))
            .unwrap_or_else(|| format!("https://{DEFAULT_API}"));
        let token = match &self.admin_token {
            Some(t) => Some(t.clone()),
            None => std::fs::read_to_string(self.data_dir.join(ADMIN_TOKEN_FILE))
                .ok()
                .map(|t| t.trim().to_string()),
        };
        let trust = if let Some(fp) = &self.fingerprint {
            Some(ServerTrust::Fingerprint(
                tls::parse_fingerprint(fp).map_err(|e| CtlError::Usage(e.to_string()))?,
            ))
        } else {
            let ca = self
                .ca
                .clone()
                .or_else(|| Some(self.data_dir.join(CA_FILE)).filter(|p| p.exists()));
            match ca {
                Some(path) => Some(
                    ServerTrust::from_ca_file(&path).map_err(|e| CtlError::Usage(e.to_string()))?,
                ),
                None => None,
            }
        };
        Ok(ApiClient::new(&api, token, trust)?)
    }
}

/// A success read as `T` (keeping the JSON for `--json`), or the API's refusal.
fn answer<T: DeserializeOwned>(resp: ApiResponse) -> Result<Answer<T>, CtlError> {
    if !resp.is_success() {
        return Err(resp.error().into());
    }
    let view = serde_json::from_value(resp.body.clone())
        .map_err(|e| ClientError::BadResponse(e.to_string()))?;
    Ok(Answer {
        raw: resp.body,
        view,
    })
}

/// One typed request: `body` as JSON, the answer as `T`.
fn ask<B: serde::Serialize, T: DeserializeOwned>(
    api: &ApiClient,
    method: &str,
    path: &str,
    body: Option<&B>,
) -> Result<Answer<T>, CtlError> {
    let payload = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| CtlError::Usage(e.to_string()))?,
        None => Vec::new(),
    };
    answer(api.request_raw(method, path, &payload)?)
}

fn get<T: DeserializeOwned>(api: &ApiClient, path: &str) -> Result<Answer<T>, CtlError> {
    ask::<(), T>(api, "GET", path, None)
}

/// A flag's value in the API's spelling of an enum (`on_premises`, `http`, `v2`, ...).
fn api_word<T: DeserializeOwned>(flag: &str, value: &str) -> Result<T, CtlError> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| CtlError::Usage(format!("--{flag} {value:?} is not one of its values")))
}

/// What the destination flags ask for, as a patch (create needs name and resource too).
fn destination_patch(f: &DestinationFields) -> Result<DestinationPatch, CtlError> {
    let mut p = DestinationPatch {
        name: f.name.clone(),
        protocol: f
            .protocol
            .as_deref()
            .map(|v| api_word("protocol", v))
            .transpose()?,
        active: f.active,
        enabled: f.enabled,
        idle_timeout_secs: f.idle_timeout,
        max_connections_per_source: f.max_per_source,
        proxy_protocol: f
            .proxy_protocol
            .as_deref()
            .map(|v| api_word("proxy-protocol", v))
            .transpose()?,
        host_rewrite: f.host_rewrite,
        kind: f.kind.as_deref().map(|v| api_word("type", v)).transpose()?,
        client_port: f.client_port,
        ..DestinationPatch::default()
    };
    if let Some(r) = &f.resource {
        let (host, port) = r
            .rsplit_once(':')
            .ok_or_else(|| CtlError::Usage(format!("--resource {r:?}: expected HOST:PORT")))?;
        let port: u32 = port
            .parse()
            .map_err(|_| CtlError::Usage(format!("--resource {r:?}: the port is not a number")))?;
        p.resource_host = Some(host.trim_matches(['[', ']']).to_string());
        p.resource_port = Some(port);
    }
    let health = HealthCheckInput {
        kind: f
            .health_check
            .as_deref()
            .map(|v| api_word("health-check", v))
            .transpose()?,
        path: f.health_path.clone(),
        interval_secs: f.health_interval,
        timeout_secs: f.health_timeout,
        unhealthy_after: f.unhealthy_after,
        healthy_after: f.healthy_after,
    };
    if health != HealthCheckInput::default() {
        p.health_check = Some(health);
    }
    if f.no_ip_rules {
        p.ip_rules = Some(Vec::new());
    } else if !f.ip_rules.is_empty() {
        p.ip_rules = Some(
            f.ip_rules
                .iter()
                .map(|r| match r.split_once(',') {
                    Some((cidr, ports)) => IpRule {
                        cidr: cidr.to_string(),
                        ports: Some(ports.to_string()),
                    },
                    None => IpRule {
                        cidr: r.clone(),
                        ports: None,
                    },
                })
                .collect(),
        );
    }
    let read = |p: &PathBuf| -> Result<String, CtlError> {
        sg_proto::tls::read_file(p).map_err(|e| CtlError::Usage(e.to_string()))
    };
    if f.cloud_tls.is_some() || f.cloud_cert.is_some() || f.client_ca.is_some() {
        let mode = match &f.cloud_tls {
            Some(m) => api_word("cloud-tls", m)?,
            None if f.client_ca.is_some() => CloudTlsMode::Mutual,
            None => CloudTlsMode::Tls,
        };
        let mut t = CloudTlsInput {
            mode,
            ..CloudTlsInput::default()
        };
        if let (Some(c), Some(k)) = (&f.cloud_cert, &f.cloud_key) {
            t.cert_pem = Some(read(c)?);
            t.key_pem = Some(read(k)?);
        }
        if let Some(ca) = &f.client_ca {
            t.client_ca_pem = Some(read(ca)?);
        }
        p.cloud_tls = Some(t);
    }
    if f.no_resource_tls {
        p.resource_tls = Some(ResourceTlsInput::default());
    } else if f.resource_tls {
        let mut t = ResourceTlsInput {
            enabled: true,
            reject_unauthorized: f.reject_unauthorized,
            server_name: f.server_name.clone(),
            ..ResourceTlsInput::default()
        };
        if !f.resource_ca.is_empty() {
            let mut pems = String::new();
            for ca in &f.resource_ca {
                let pem = read(ca)?;
                pems.push_str(pem.trim_end());
                pems.push('\n');
            }
            t.ca_pem = Some(pems);
        }
        if let (Some(c), Some(k)) = (&f.resource_cert, &f.resource_key) {
            t.client_cert_pem = Some(read(c)?);
            t.client_key_pem = Some(read(k)?);
        }
        p.resource_tls = Some(t);
    }
    Ok(p)
}

/// A create request from the flags: the patch's fields, with name and resource required.
fn new_destination(
    p: DestinationPatch,
    cloud_port: Option<u16>,
) -> Result<NewDestination, CtlError> {
    let (Some(name), Some(resource_host), Some(resource_port)) =
        (p.name, p.resource_host, p.resource_port)
    else {
        return Err(CtlError::Usage(
            "destination create needs --name and --resource HOST:PORT".into(),
        ));
    };
    Ok(NewDestination {
        name,
        resource_host,
        resource_port,
        protocol: p.protocol,
        active: p.active,
        enabled: p.enabled,
        cloud_port: cloud_port.map(u32::from),
        ip_rules: p.ip_rules,
        cloud_tls: p.cloud_tls,
        resource_tls: p.resource_tls,
        idle_timeout_secs: p.idle_timeout_secs,
        max_connections_per_source: p.max_connections_per_source,
        proxy_protocol: p.proxy_protocol,
        host_rewrite: p.host_rewrite,
        kind: p.kind,
        client_port: p.client_port,
        health_check: p.health_check,
    })
}

/// Runs one sgctl invocation; the caller prints the error.
pub fn run(cli: Cli) -> Result<(), CtlError> {
    let api = cli.client()?;
    let out = output::Printer {
        json: cli.json,
        quiet: cli.quiet,
    };
    let Some(command) = cli.command else {
        return Err(CtlError::Usage(
            "a command is needed: see `sgctl --help`".into(),
        ));
    };
    match command {
        Command::Health => {
            // A draining node answers 503 with the same body: show it, then fail.
            let r = api.get("/healthz")?;
            let (ok, status) = (r.is_success(), r.status);
            let body = ApiResponse { status: 200, ..r };
            let a: Answer<sg_api::node::Healthz> = answer(body)?;
            out.health(&a);
            if !ok {
                return Err(CtlError::Api {
                    status,
                    code: serde_json::to_value(a.view.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "unhealthy".into()),
                    message: "the node is not serving normally".into(),
                });
            }
        }
        Command::Node(NodeCmd::List) => out.nodes(&get(&api, "/v1/nodes")?),
        Command::LogLevel { level } => {
            let a = match level {
                None => get(&api, "/v1/log-level")?,
                Some(level) => ask(&api, "PUT", "/v1/log-level", Some(&LogLevelUpdate { level }))?,
            };
            out.log_level(&a);
        }
        Command::Metrics => {
            let (status, text) = api.get_text("/metrics")?;
            if status != 200 {
                return Err(CtlError::Api {
                    status,
                    code: "metrics".into(),
                    message: text,
                });
            }
            print!("{text}");
        }
        Command::Gateway(cmd) => match cmd {
            GatewayCmd::Create {
                name,
                token_expires_in_days,
                inactive,
                disabled,
            } => {
                let body = NewGateway {
                    name,
                    token_expires_in_days,
                    active: inactive.then_some(false),
                    enabled: disabled.then_some(false),
                };
                out.created_gateway(&ask(&api, "POST", "/v1/gateways", Some(&body))?);
            }
            GatewayCmd::List => out.gateways(&get(&api, "/v1/gateways")?),
            GatewayCmd::Show { id } => out.gateway(&get(&api, &format!("/v1/gateways/{id}"))?),
            GatewayCmd::Update {
                id,
                name,
                active,
                enabled,
            } => {
                let body = GatewayPatch {
                    name,
                    active,
                    enabled,
                };
                if body == GatewayPatch::default() {
                    return Err(CtlError::Usage(
                        "nothing to update: pass --name, --active or --enabled".into(),
                    ));
                }
                out.gateway(&ask(&api, "PATCH", &format!("/v1/gateways/{id}"), Some(&body))?);
            }
            GatewayCmd::Delete { id } => {
                nothing(api.delete(&format!("/v1/gateways/{id}"))?)?;
                out.done(&format!("deleted gateway {id}"));
            }
            GatewayCmd::Token {
                id,
                token_expires_in_days,
            } => {
                let body = TokenRequest {
                    token_expires_in_days,
                };
                let a = ask(&api, "POST", &format!("/v1/gateways/{id}/token"), Some(&body))?;
                out.token(&id, &a);
            }
            GatewayCmd::Clients {
                action: Some(ClientsCmd::Kill {
                    gateway,
                    client,
                    reason,
                }),
                ..
            } => {
                let mut path = format!("/v1/gateways/{gateway}/clients/{}", query_value(&client));
                if let Some(r) = reason {
                    path.push_str(&format!("?reason={}", query_value(&r)));
                }
                out.killed(&ask::<(), _>(&api, "DELETE", &path, None)?);
            }
            GatewayCmd::Clients { id: Some(id), .. } => {
                out.clients(&get(&api, &format!("/v1/gateways/{id}/clients"))?)
            }
            GatewayCmd::Clients { .. } => {
                return Err(CtlError::Usage(
                    "name the gateway: `sgctl gateway clients GW`, or `sgctl gateway clients kill GW CLIENT`".into(),
                ))
            }
            GatewayCmd::Stats { id } => out.stats(&get(&api, &format!("/v1/gateways/{id}/stats"))?),
            GatewayCmd::Events { id, limit } => {
                out.events(&get(&api, &format!("/v1/gateways/{id}/events?limit={limit}"))?)
            }
        },
        Command::Destination(cmd) => match cmd {
            DestinationCmd::Create {
                gateway,
                fields,
                cloud_port,
            } => {
                let body = new_destination(destination_patch(&fields)?, cloud_port)?;
                let path = format!("/v1/gateways/{gateway}/destinations");
                out.destination(&ask(&api, "POST", &path, Some(&body))?);
            }
            DestinationCmd::List { gateway } => {
                out.destinations(&get(&api, &format!("/v1/gateways/{gateway}/destinations"))?)
            }
            DestinationCmd::Show { gateway, id } => out.destination(&get(
                &api,
                &format!("/v1/gateways/{gateway}/destinations/{id}"),
            )?),
            DestinationCmd::Update {
                gateway,
                id,
                fields,
            } => {
                let body = destination_patch(&fields)?;
                if body == DestinationPatch::default() {
                    return Err(CtlError::Usage("nothing to update".into()));
                }
                let path = format!("/v1/gateways/{gateway}/destinations/{id}");
                out.destination(&ask(&api, "PATCH", &path, Some(&body))?);
            }
            DestinationCmd::Delete { gateway, id } => {
                nothing(api.delete(&format!("/v1/gateways/{gateway}/destinations/{id}"))?)?;
                out.done(&format!("deleted destination {id}"));
            }
        },
        Command::Acl(cmd) => {
            let (gateway, rules): (String, Option<Vec<String>>) = match cmd {
                AclCmd::Show { gateway } => (gateway, None),
                AclCmd::Set { gateway, rules } => (gateway, Some(rules)),
                AclCmd::Clear { gateway } => (gateway, Some(Vec::new())),
                AclCmd::Load { gateway, file } => {
                    let text = sg_proto::tls::read_file(&file)
                        .map_err(|e| CtlError::Usage(e.to_string()))?;
                    let rules = sg_proto::acl::parse_file(&text)
                        .map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
                    (gateway, Some(rules.iter().map(|r| r.to_string()).collect()))
                }
            };
            let path = format!("/v1/gateways/{gateway}/acl");
            let a = match rules {
                None => get(&api, &path)?,
                Some(rules) => ask(&api, "PUT", &path, Some(&AclUpdate { rules }))?,
            };
            out.acl(&a);
        }
        Command::Plan(cmd) => match cmd {
            PlanCmd::Show => out.plan(&get(&api, "/v1/plan")?),
            PlanCmd::Set {
                max_gateways,
                max_destinations,
                max_connections_per_gateway,
                max_clients_per_gateway,
            } => {
                let body = PlanUpdate {
                    max_gateways,
                    max_destinations,
                    max_connections_per_gateway,
                    max_clients_per_gateway,
                };
                if body == PlanUpdate::default() {
                    return Err(CtlError::Usage("nothing to set".into()));
                }
                out.plan(&ask(&api, "PUT", "/v1/plan", Some(&body))?);
            }
        },
    }
    Ok(())
}

/// An answer with no body (`204`), or the API's refusal.
fn nothing(resp: ApiResponse) -> Result<(), CtlError> {
    if resp.is_success() {
        Ok(())
    } else {
        Err(resp.error().into())
    }
}
