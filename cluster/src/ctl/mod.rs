//! `sgctl`: the command line over the node's REST API.
//!
//! It finds the node the way an operator on the node's machine expects: `--api`, else
//! `SG_API`, else the `node.json` a running node wrote into its data dir; the admin token
//! from `--admin-token`, `SG_ADMIN_TOKEN` or `DATA_DIR/admin.token`; the CA from `--ca`,
//! `SG_CA` or `DATA_DIR/ca.pem`. Output is a readable table unless `--json`.

mod output;

pub use output::printable;

use crate::http_client::{ApiClient, ApiResponse, ClientError};
use crate::run::{NodeFile, ADMIN_TOKEN_FILE, CA_FILE, NODE_FILE};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
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
    #[arg(long, env = "SG_DATA_DIR", global = true, default_value = crate::config::DEFAULT_DATA_DIR)]
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
    Client(#[from] ClientError),
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
            CtlError::Client(_) => 3,
            CtlError::Api { .. } => 1,
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
            .unwrap_or_else(|| format!("https://{}", crate::config::DEFAULT_API_LISTEN));
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
                Some(path) => {
                    let pem = tls::read_file(&path).map_err(|e| CtlError::Usage(e.to_string()))?;
                    let certs = tls::certs_from_pem(&path.display().to_string(), &pem)
                        .map_err(|e| CtlError::Usage(e.to_string()))?;
                    Some(ServerTrust::Roots(certs))
                }
                None => None,
            }
        };
        Ok(ApiClient::new(&api, token, trust)?)
    }
}

fn check(resp: ApiResponse) -> Result<Value, CtlError> {
    if resp.is_success() {
        return Ok(resp.body);
    }
    let field = |k: &str| {
        resp.body
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Err(CtlError::Api {
        status: resp.status,
        code: field("error"),
        message: field("message"),
    })
}

fn bool_fields(map: &mut Map<String, Value>, active: Option<bool>, enabled: Option<bool>) {
    if let Some(a) = active {
        map.insert("active".into(), json!(a));
    }
    if let Some(e) = enabled {
        map.insert("enabled".into(), json!(e));
    }
}

fn destination_body(f: &DestinationFields) -> Result<Map<String, Value>, CtlError> {
    let mut m = Map::new();
    if let Some(n) = &f.name {
        m.insert("name".into(), json!(n));
    }
    if let Some(r) = &f.resource {
        let (host, port) = r
            .rsplit_once(':')
            .ok_or_else(|| CtlError::Usage(format!("--resource {r:?}: expected HOST:PORT")))?;
        let port: u32 = port
            .parse()
            .map_err(|_| CtlError::Usage(format!("--resource {r:?}: the port is not a number")))?;
        m.insert("resource_host".into(), json!(host.trim_matches(['[', ']'])));
        m.insert("resource_port".into(), json!(port));
    }
    if let Some(p) = &f.protocol {
        m.insert("protocol".into(), json!(p));
    }
    if let Some(s) = f.idle_timeout {
        m.insert("idle_timeout_secs".into(), json!(s));
    }
    if let Some(n) = f.max_per_source {
        m.insert("max_connections_per_source".into(), json!(n));
    }
    if let Some(p) = &f.proxy_protocol {
        m.insert("proxy_protocol".into(), json!(p));
    }
    if let Some(h) = f.host_rewrite {
        m.insert("host_rewrite".into(), json!(h));
    }
    if let Some(k) = &f.kind {
        m.insert("type".into(), json!(k));
    }
    if let Some(p) = f.client_port {
        m.insert("client_port".into(), json!(p));
    }
    bool_fields(&mut m, f.active, f.enabled);
    let mut health = Map::new();
    if let Some(k) = &f.health_check {
        health.insert("kind".into(), json!(k));
    }
    if let Some(p) = &f.health_path {
        health.insert("path".into(), json!(p));
    }
    for (key, v) in [
        ("interval_secs", f.health_interval),
        ("timeout_secs", f.health_timeout),
        ("unhealthy_after", f.unhealthy_after),
        ("healthy_after", f.healthy_after),
    ] {
        if let Some(v) = v {
            health.insert(key.into(), json!(v));
        }
    }
    if !health.is_empty() {
        m.insert("health_check".into(), Value::Object(health));
    }
    if f.no_ip_rules {
        m.insert("ip_rules".into(), json!([]));
    } else if !f.ip_rules.is_empty() {
        let rules: Vec<Value> = f
            .ip_rules
            .iter()
            .map(|r| match r.split_once(',') {
                Some((cidr, ports)) => json!({ "cidr": cidr, "ports": ports }),
                None => json!({ "cidr": r }),
            })
            .collect();
        m.insert("ip_rules".into(), Value::Array(rules));
    }
    let read = |p: &PathBuf| -> Result<String, CtlError> {
        sg_proto::tls::read_file(p).map_err(|e| CtlError::Usage(e.to_string()))
    };
    if f.cloud_tls.is_some() || f.cloud_cert.is_some() || f.client_ca.is_some() {
        let mut t = Map::new();
        let mode = f.cloud_tls.clone().unwrap_or_else(|| {
            if f.client_ca.is_some() {
                "mutual".into()
            } else {
                "tls".into()
            }
        });
        t.insert("mode".into(), json!(mode));
        if let (Some(c), Some(k)) = (&f.cloud_cert, &f.cloud_key) {
            t.insert("cert_pem".into(), json!(read(c)?));
            t.insert("key_pem".into(), json!(read(k)?));
        }
        if let Some(ca) = &f.client_ca {
            t.insert("client_ca_pem".into(), json!(read(ca)?));
        }
        m.insert("cloud_tls".into(), Value::Object(t));
    }
    if f.no_resource_tls {
        m.insert("resource_tls".into(), json!({ "enabled": false }));
    } else if f.resource_tls {
        let mut t = Map::new();
        t.insert("enabled".into(), json!(true));
        t.insert("reject_unauthorized".into(), json!(f.reject_unauthorized));
        if !f.resource_ca.is_empty() {
            let mut pems = String::new();
            for ca in &f.resource_ca {
                let pem = read(ca)?;
                pems.push_str(pem.trim_end());
                pems.push('\n');
            }
            t.insert("ca_pem".into(), json!(pems));
        }
        if let Some(n) = &f.server_name {
            t.insert("server_name".into(), json!(n));
        }
        if let (Some(c), Some(k)) = (&f.resource_cert, &f.resource_key) {
            t.insert("client_cert_pem".into(), json!(read(c)?));
            t.insert("client_key_pem".into(), json!(read(k)?));
        }
        m.insert("resource_tls".into(), Value::Object(t));
    }
    Ok(m)
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
            out.object(
                &r.body,
                &["status", "region", "node_id", "version", "store"],
            );
            if !r.is_success() {
                return Err(CtlError::Api {
                    status: r.status,
                    code: r.body["status"].as_str().unwrap_or("unhealthy").to_string(),
                    message: "the node is not serving normally".into(),
                });
            }
        }
        Command::Node(NodeCmd::List) => out.nodes(&check(api.get("/v1/nodes")?)?),
        Command::LogLevel { level } => {
            let v = match level {
                None => check(api.get("/v1/log-level")?)?,
                Some(l) => check(api.put("/v1/log-level", &json!({ "level": l }))?)?,
            };
            out.object(&v, &["log_level", "filters"]);
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
                let mut body = Map::new();
                body.insert("name".into(), json!(name));
                if let Some(d) = token_expires_in_days {
                    body.insert("token_expires_in_days".into(), json!(d));
                }
                if inactive {
                    body.insert("active".into(), json!(false));
                }
                if disabled {
                    body.insert("enabled".into(), json!(false));
                }
                let v = check(api.post("/v1/gateways", &Value::Object(body))?)?;
                out.created_gateway(&v);
            }
            GatewayCmd::List => out.gateways(&check(api.get("/v1/gateways")?)?),
            GatewayCmd::Show { id } => {
                out.gateway(&check(api.get(&format!("/v1/gateways/{id}"))?)?)
            }
            GatewayCmd::Update {
                id,
                name,
                active,
                enabled,
            } => {
                let mut body = Map::new();
                if let Some(n) = name {
                    body.insert("name".into(), json!(n));
                }
                bool_fields(&mut body, active, enabled);
                if body.is_empty() {
                    return Err(CtlError::Usage(
                        "nothing to update: pass --name, --active or --enabled".into(),
                    ));
                }
                let v = check(api.patch(&format!("/v1/gateways/{id}"), &Value::Object(body))?)?;
                out.gateway(&v);
            }
            GatewayCmd::Delete { id } => {
                check(api.delete(&format!("/v1/gateways/{id}"))?)?;
                out.done(&format!("deleted gateway {id}"));
            }
            GatewayCmd::Token {
                id,
                token_expires_in_days,
            } => {
                let body = match token_expires_in_days {
                    Some(d) => json!({ "token_expires_in_days": d }),
                    None => json!({}),
                };
                let v = check(api.post(&format!("/v1/gateways/{id}/token"), &body)?)?;
                out.token(&id, &v);
            }
            GatewayCmd::Clients {
                action: Some(ClientsCmd::Kill {
                    gateway,
                    client,
                    reason,
                }),
                ..
            } => {
                let mut path = format!("/v1/gateways/{gateway}/clients/{client}");
                if let Some(r) = reason {
                    path.push_str(&format!("?reason={}", crate::http_client::query_value(&r)));
                }
                let v = check(api.delete(&path)?)?;
                out.killed(&v);
            }
            GatewayCmd::Clients { id: Some(id), .. } => {
                out.clients(&check(api.get(&format!("/v1/gateways/{id}/clients"))?)?)
            }
            GatewayCmd::Clients { .. } => {
                return Err(CtlError::Usage(
                    "name the gateway: `sgctl gateway clients GW`, or `sgctl gateway clients kill GW CLIENT`".into(),
                ))
            }
            GatewayCmd::Stats { id } => {
                let v = check(api.get(&format!("/v1/gateways/{id}/stats"))?)?;
                out.object(
                    &v,
                    &[
                        "gateway_id",
                        "clients",
                        "active_connections",
                        "total_connections",
                        "refused_connections",
                        "bytes_to_resources",
                        "bytes_to_cloud",
                        "max_connections",
                    ],
                );
            }
            GatewayCmd::Events { id, limit } => out.events(&check(
                api.get(&format!("/v1/gateways/{id}/events?limit={limit}"))?,
            )?),
        },
        Command::Destination(cmd) => match cmd {
            DestinationCmd::Create {
                gateway,
                fields,
                cloud_port,
            } => {
                let mut body = destination_body(&fields)?;
                if !body.contains_key("name") || !body.contains_key("resource_host") {
                    return Err(CtlError::Usage(
                        "destination create needs --name and --resource HOST:PORT".into(),
                    ));
                }
                if let Some(p) = cloud_port {
                    body.insert("cloud_port".into(), json!(p));
                }
                let v = check(api.post(
                    &format!("/v1/gateways/{gateway}/destinations"),
                    &Value::Object(body),
                )?)?;
                out.destination(&v);
            }
            DestinationCmd::List { gateway } => out.destinations(&check(
                api.get(&format!("/v1/gateways/{gateway}/destinations"))?,
            )?),
            DestinationCmd::Show { gateway, id } => out.destination(&check(
                api.get(&format!("/v1/gateways/{gateway}/destinations/{id}"))?,
            )?),
            DestinationCmd::Update {
                gateway,
                id,
                fields,
            } => {
                let body = destination_body(&fields)?;
                if body.is_empty() {
                    return Err(CtlError::Usage("nothing to update".into()));
                }
                let v = check(api.patch(
                    &format!("/v1/gateways/{gateway}/destinations/{id}"),
                    &Value::Object(body),
                )?)?;
                out.destination(&v);
            }
            DestinationCmd::Delete { gateway, id } => {
                check(api.delete(&format!("/v1/gateways/{gateway}/destinations/{id}"))?)?;
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
            let v = match rules {
                None => check(api.get(&path)?)?,
                Some(rules) => check(api.put(&path, &json!({ "rules": rules }))?)?,
            };
            out.acl(&v);
        }
        Command::Plan(cmd) => match cmd {
            PlanCmd::Show => out.plan(&check(api.get("/v1/plan")?)?),
            PlanCmd::Set {
                max_gateways,
                max_destinations,
                max_connections_per_gateway,
                max_clients_per_gateway,
            } => {
                let mut body = Map::new();
                for (k, v) in [
                    ("max_gateways", max_gateways),
                    ("max_destinations", max_destinations),
                    ("max_connections_per_gateway", max_connections_per_gateway),
                    ("max_clients_per_gateway", max_clients_per_gateway),
                ] {
                    if let Some(v) = v {
                        body.insert(k.into(), json!(v));
                    }
                }
                if body.is_empty() {
                    return Err(CtlError::Usage("nothing to set".into()));
                }
                out.plan(&check(api.put("/v1/plan", &Value::Object(body))?)?);
            }
        },
    }
    Ok(())
}
