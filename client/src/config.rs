//! sg-client's configuration: command-line flags over an optional TOML file over defaults,
//! parsed and validated here once.

use crate::egress::ProxySettings;
use clap::Parser;
use serde::Deserialize;
use sg_proto::acl::DefaultPolicy;
pub use sg_proto::config_file::ConfigError;
use sg_proto::config_file::{parse_toml, read_toml};
use sg_proto::logging::{LogArgs, LogFormat, LogSettings};
use sg_proto::loglevel::LogLevel;
use sg_proto::secret::Secret;
use sg_proto::tls::{self, ServerTrust};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Sessions per gateway per node: two, so a node spreads one client's connections over
/// two of its cores.
pub const DEFAULT_SESSIONS: usize = 2;
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;

#[derive(Debug, Parser)]
#[command(
    name = "sg-client",
    version,
    about = "sg client: dials out to sg nodes and carries their connections to private services",
    after_help = "Example: sg-client gw_1 gw_2 -t TOKEN1--TOKEN2 --server node.example:9000 --ca ca.pem"
)]
pub struct ClientArgs {
    /// Gateway ids to serve.
    #[arg(value_name = "GW_ID")]
    pub gateways: Vec<String>,
    /// Gateway tokens, one per gateway in the same order, joined with "--".
    #[arg(
        short = 't',
        long = "token",
        value_name = "TOKEN1--TOKEN2",
        env = "SG_TOKENS",
        hide_env_values = true
    )]
    pub tokens: Option<String>,
    /// A node's tunnel address; repeat for nodes in several regions. These are seeds: the
    /// node tells the client every live node of its cluster, and the client connects to
    /// each (see --no-discover).
    #[arg(long = "server", value_name = "HOST:PORT")]
    pub servers: Vec<String>,
    /// Connect only to the --server addresses, not to the other nodes of the cluster.
    #[arg(long)]
    pub no_discover: bool,
    /// This client's own address: where the client ports of cloud destinations listen
    /// (default 127.0.0.1, so only this host reaches them), and the source address of its
    /// connections to nodes (default: the system's choice).
    #[arg(long, value_name = "ADDR")]
    pub client_bind: Option<IpAddr>,
    /// Reach the nodes through this proxy: http://[USER:PASS@]HOST:PORT (CONNECT),
    /// socks5://... or socks5h://... (the proxy resolves names). Default: HTTPS_PROXY
    /// (NO_PROXY exempts nodes).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// CA certificate the node's certificate chains to (the node's ca.pem).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Pin the node's certificate by SHA-256 fingerprint instead of --ca.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Reconnect attempts after a session drops; -1 retries forever (the default).
    #[arg(long, allow_hyphen_values = true, value_name = "N")]
    pub reconnect: Option<i64>,
    /// Sessions per gateway per node (default 2; more spread load over the node's cores).
    #[arg(long, value_name = "N")]
    pub sessions: Option<usize>,
    /// Seconds to wait for a private service to accept a connection.
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<u64>,
    #[command(flatten)]
    pub log: LogArgs,
    /// ACL rules (one per line, `#` comments) applied to every gateway at start.
    #[arg(long, value_name = "FILE")]
    pub acl_file: Option<PathBuf>,
    /// Keep the --acl-file rules as a ceiling: every stream must also pass them, whatever
    /// ACL the node or the web UI sets later.
    #[arg(long)]
    pub acl_lock: bool,
    /// With no ACL rules: allow the gateway's destinations, or deny everything.
    #[arg(long, value_name = "destinations|deny")]
    pub acl_default: Option<String>,
    /// Read console commands from stdin even when it is not a terminal.
    #[arg(long)]
    pub console: bool,
    /// Port of the web UI.
    #[arg(long, value_name = "PORT")]
    pub ui_port: Option<u16>,
    /// Address the web UI listens on; anything but loopback needs --ui-password.
    #[arg(long, value_name = "ADDR")]
    pub ui_bind: Option<IpAddr>,
    /// Password for every page and API call of the web UI.
    #[arg(long, env = "SG_UI_PASSWORD", hide_env_values = true)]
    pub ui_password: Option<String>,
    /// Do not start the web UI.
    #[arg(long)]
    pub no_ui: bool,
    /// Run under a supervisor that restarts the client whenever it exits.
    #[arg(long)]
    pub service: bool,
    /// With --service: start a fresh client also after an operator ended this one
    /// (`sgctl gateway clients kill`); without it the service stops then.
    #[arg(long)]
    pub restart_after_kill: bool,
    /// TOML file with any of these settings (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the man page (man) or a shell completion script (bash, zsh, fish, elvish,
    /// powershell) and exit.
    #[arg(long, value_name = "WHAT")]
    pub generate: Option<String>,
}

/// The same settings in a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    gateways: Option<Vec<String>>,
    tokens: Option<String>,
    servers: Option<Vec<String>>,
    no_discover: Option<bool>,
    client_bind: Option<IpAddr>,
    proxy: Option<String>,
    ca: Option<PathBuf>,
    fingerprint: Option<String>,
    reconnect: Option<i64>,
    sessions: Option<usize>,
    connect_timeout: Option<u64>,
    log_level: Option<LogLevel>,
    log_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    acl_file: Option<PathBuf>,
    acl_lock: Option<bool>,
    acl_default: Option<String>,
    console: Option<bool>,
    ui_port: Option<u16>,
    ui_bind: Option<IpAddr>,
    ui_password: Option<String>,
    no_ui: Option<bool>,
    service: Option<bool>,
    restart_after_kill: Option<bool>,
}

/// Where the web UI listens and whether it asks for a password.
#[derive(Debug, Clone)]
pub struct UiConfig {
    pub listen: SocketAddr,
    pub password: Option<Secret>,
}

/// The default web UI port.
pub const DEFAULT_UI_PORT: u16 = 9003;

/// A node to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&sg_proto::hostport::host_port(&self.host, self.port))
    }
}

impl std::str::FromStr for ServerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--server {s:?}: expected HOST:PORT, e.g. node.example.com:9000");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(ServerAddr {
            host: host.to_string(),
            port,
        })
    }
}

/// One gateway this process serves.
#[derive(Debug, Clone)]
pub struct GatewayCredentials {
    pub id: String,
    pub token: Secret,
}

/// How many reconnect attempts after a drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    Forever,
    Attempts(u64),
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub gateways: Vec<GatewayCredentials>,
    /// Seeds: the nodes dialled first.
    pub servers: Vec<ServerAddr>,
    /// Whether to connect to every live node the cluster names.
    pub discover: bool,
    /// `--client-bind`: see [`ClientConfig::listen_ip`] and the tunnels' source address.
    pub client_bind: Option<IpAddr>,
    /// The egress proxy to the nodes, if any (F25).
    pub proxy: ProxySettings,
    pub trust: ServerTrust,
    pub reconnect: Reconnect,
    pub sessions: usize,
    pub connect_timeout: Duration,
    pub log: LogSettings,
    /// Rules from `--acl-file`, already validated.
    pub acl_rules: Option<Vec<String>>,
    /// The same rules, kept locally as a ceiling (`--acl-lock`).
    pub acl_ceiling: Option<Vec<sg_proto::acl::Rule>>,
    pub acl_default: DefaultPolicy,
    pub console: bool,
    pub ui: Option<UiConfig>,
    pub service: bool,
    /// `--service` starts a fresh client after an operator ended one.
    pub restart_after_kill: bool,
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

impl ClientConfig {
    /// Whether `text` is a readable config file (its keys and their types); what the
    /// values mean is checked by `from_args`. For the fuzzer and `--check`-style tools.
    pub fn check_file_text(text: &str) -> Result<(), ConfigError> {
        parse_toml::<FileConfig>("config", text).map(|_| ())
    }

    pub fn from_args(args: ClientArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(p) => read_toml(p)?,
            None => FileConfig::default(),
        };
        let gateways = if args.gateways.is_empty() {
            file.gateways.unwrap_or_default()
        } else {
            args.gateways
        };
        if gateways.is_empty() {
            return Err(invalid(
                "name at least one gateway: sg-client GW_ID -t TOKEN --server HOST:PORT",
            ));
        }
        let tokens_text = args.tokens.or(file.tokens).ok_or_else(|| {
            invalid("-t TOKEN is required (one token per gateway, joined with \"--\")")
        })?;
        let tokens: Vec<&str> = tokens_text.split("--").map(str::trim).collect();
        if tokens.len() != gateways.len() || tokens.iter().any(|t| t.is_empty()) {
            return Err(invalid(format!(
                "{} gateway(s) but {} token(s): pass one token per gateway, in order, joined with \"--\"",
                gateways.len(),
                tokens.iter().filter(|t| !t.is_empty()).count()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for g in &gateways {
            if !seen.insert(g) {
                return Err(invalid(format!("gateway {g} is named twice")));
            }
        }
        let gateways = gateways
            .into_iter()
            .zip(tokens)
            .map(|(id, token)| GatewayCredentials {
                id,
                token: Secret::new(token),
            })
            .collect();

        let server_texts = if args.servers.is_empty() {
            file.servers.unwrap_or_default()
        } else {
            args.servers
        };
        if server_texts.is_empty() {
            return Err(invalid(
                "--server HOST:PORT is required (the node's tunnel address)",
            ));
        }
        let servers = server_texts
            .iter()
            .map(|s| s.parse::<ServerAddr>().map_err(ConfigError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;

        let trust = match (args.fingerprint.or(file.fingerprint), args.ca.or(file.ca)) {
            (Some(fp), _) => ServerTrust::Fingerprint(
                tls::parse_fingerprint(&fp).map_err(|e| invalid(format!("--fingerprint: {e}")))?,
            ),
            (None, Some(ca)) => {
                ServerTrust::from_ca_file(&ca).map_err(|e| invalid(format!("--ca: {e}")))?
            }
            (None, None) => {
                return Err(invalid(
                    "pass --ca FILE (the node's DATA_DIR/ca.pem) or --fingerprint SHA256 so the client can verify the node",
                ))
            }
        };
        let reconnect = match args.reconnect.or(file.reconnect).unwrap_or(-1) {
            -1 => Reconnect::Forever,
            n if n >= 0 => Reconnect::Attempts(n as u64),
            n => {
                return Err(invalid(format!(
                    "--reconnect {n}: use -1 (forever) or a count >= 0"
                )))
            }
        };
        let sessions = args.sessions.or(file.sessions).unwrap_or(DEFAULT_SESSIONS);
        if !(1..=16).contains(&sessions) {
            return Err(invalid("--sessions must be 1-16"));
        }
        let connect_timeout = args
            .connect_timeout
            .or(file.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        if connect_timeout == 0 {
            return Err(invalid("--connect-timeout must be at least 1 second"));
        }
        let acl_lock = args.acl_lock || file.acl_lock.unwrap_or(false);
        let mut acl_ceiling = None;
        let acl_rules = match args.acl_file.or(file.acl_file) {
            None if acl_lock => {
                return Err(invalid(
                    "--acl-lock keeps the rules of --acl-file: give --acl-file too",
                ))
            }
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(format!(
                        "--acl-file {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                let rules = sg_proto::acl::parse_file(&text)
                    .map_err(|e| invalid(format!("--acl-file {}: {e}", path.display())))?;
                let text = rules.iter().map(|r| r.to_string()).collect();
                if acl_lock {
                    acl_ceiling = Some(rules);
                }
                Some(text)
            }
            None => None,
        };
        let acl_default = match args.acl_default.or(file.acl_default).as_deref() {
            None | Some("destinations") => DefaultPolicy::Destinations,
            Some("deny") => DefaultPolicy::Deny,
            Some(other) => {
                return Err(invalid(format!(
                    "--acl-default {other:?}: use \"destinations\" (the default) or \"deny\""
                )))
            }
        };
        let no_ui = args.no_ui || file.no_ui.unwrap_or(false);
        let password = args
            .ui_password
            .or(file.ui_password)
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        let bind = args
            .ui_bind
            .or(file.ui_bind)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if password
            .as_ref()
            .is_some_and(|p| p.expose().chars().count() < crate::ui_auth::MIN_PASSWORD_LEN)
        {
            return Err(invalid(format!(
                "--ui-password must be at least {} characters",
                crate::ui_auth::MIN_PASSWORD_LEN
            )));
        }
        if !bind.is_loopback() && password.is_none() {
            return Err(invalid(format!(
                "--ui-bind {bind}: the web UI listens beyond localhost only with --ui-password"
            )));
        }
        let ui = (!no_ui).then(|| UiConfig {
            listen: SocketAddr::new(
                bind,
                args.ui_port.or(file.ui_port).unwrap_or(DEFAULT_UI_PORT),
            ),
            password,
        });
        let proxy = ProxySettings::resolve(args.proxy.or(file.proxy).as_deref(), |k| {
            std::env::var(k).ok()
        })
        .map_err(invalid)?;
        // A pinned fingerprint verifies one node's certificate, not its peers'.
        let pinned = matches!(trust, ServerTrust::Fingerprint(_));
        let discover = !(args.no_discover || file.no_discover.unwrap_or(false) || pinned);
        Ok(ClientConfig {
            gateways,
            servers,
            discover,
            client_bind: args.client_bind.or(file.client_bind),
            proxy,
            trust,
            reconnect,
            sessions,
            connect_timeout: Duration::from_secs(connect_timeout),
            log: args
                .log
                .or_file(file.log_level, file.log_file, file.log_format),
            acl_rules,
            acl_ceiling,
            acl_default,
            console: args.console || file.console.unwrap_or(false),
            ui,
            service: args.service || file.service.unwrap_or(false),
            restart_after_kill: args.restart_after_kill || file.restart_after_kill.unwrap_or(false),
        })
    }
}

impl ClientConfig {
    /// Where client ports listen: `--client-bind`, else loopback only.
    pub fn listen_ip(&self) -> IpAddr {
        self.client_bind
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// The running configuration as the console's `C` shows it. Tokens, the UI password
    /// and key material are never shown: only whether they are set.
    pub fn describe(&self) -> String {
        let ids: Vec<&str> = self.gateways.iter().map(|g| g.id.as_str()).collect();
        let servers: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
        let trust = match &self.trust {
            ServerTrust::Roots(cas) => format!("--ca ({} certificate(s))", cas.len()),
            ServerTrust::Fingerprint(_) => "--fingerprint (pinned node key)".into(),
            ServerTrust::Uploaded(certs) => format!("{} uploaded certificate(s)", certs.len()),
            ServerTrust::System => "the system trust store".into(),
            ServerTrust::AcceptAny => "any certificate (insecure)".into(),
        };
        let reconnect = match self.reconnect {
            Reconnect::Forever => "forever".to_string(),
            Reconnect::Attempts(n) => format!("{n} attempt(s)"),
        };
        let acl_file = match (&self.acl_rules, &self.acl_ceiling) {
            (None, _) => "none".to_string(),
            (Some(r), Some(_)) => format!("{} rule(s), locked as a ceiling", r.len()),
            (Some(r), None) => format!("{} rule(s)", r.len()),
        };
        let ui = match &self.ui {
            None => "off".to_string(),
            Some(u) => format!(
                "http://{}/ ({})",
                u.listen,
                if u.password.is_some() {
                    "password set, not shown"
                } else {
                    "no password"
                }
            ),
        };
        [
            format!("gateways: {} (tokens set, not shown)", ids.join(", ")),
            format!(
                "servers: {} ({})",
                servers.join(", "),
                if self.discover {
                    "and every node they name"
                } else {
                    "--no-discover"
                }
            ),
            format!("node certificate trusted by: {trust}"),
            format!(
                "client bind: {} (client ports on {})",
                self.client_bind
                    .map_or_else(|| "any".to_string(), |ip| ip.to_string()),
                self.listen_ip()
            ),
            format!("sessions per node: {}", self.sessions),
            format!("reconnect: {reconnect}"),
            format!("connect timeout: {}s", self.connect_timeout.as_secs()),
            format!(
                "proxy: {}",
                self.proxy
                    .proxy
                    .as_ref()
                    .map_or_else(|| "none".to_string(), ToString::to_string)
            ),
            format!(
                "log file: {}",
                self.log
                    .file
                    .as_ref()
                    .map_or_else(|| "stderr".to_string(), |p| p.display().to_string())
            ),
            format!("acl file: {acl_file}"),
            format!(
                "acl default: {}",
                match self.acl_default {
                    DefaultPolicy::Destinations => "destinations",
                    DefaultPolicy::Deny => "deny",
                }
            ),
            format!("web UI: {ui}"),
            format!(
                "service mode: {}",
                match (self.service, self.restart_after_kill) {
                    (false, _) => "off",
                    (true, false) => "on (stops when an operator ends the client)",
                    (true, true) => "on (restarts even when an operator ends the client)",
                }
            ),
        ]
        .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ClientConfig, ConfigError> {
        let mut all = vec!["sg-client"];
        all.extend_from_slice(args);
        ClientConfig::from_args(ClientArgs::try_parse_from(all).expect("flags parse"))
    }

    /// One gateway on one server, trusted by fingerprint, plus `extra` flags.
    fn parse_one(extra: &[&str]) -> Result<ClientConfig, ConfigError> {
        let mut all = vec!["g", "-t", "t", "--server", "h:1", "--fingerprint", FP];
        all.extend_from_slice(extra);
        parse(&all)
    }

    const FP: &str = "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB";

    #[test]
    fn tokens_pair_with_gateways_in_order() {
        let c = parse(&[
            "g1",
            "g2",
            "-t",
            "t1--t2",
            "--server",
            "h:9000",
            "--fingerprint",
            FP,
        ])
        .unwrap();
        assert_eq!(c.gateways[1].id, "g2");
        assert_eq!(c.gateways[1].token.expose(), "t2");
        assert!(
            !format!("{c:?}").contains("t2\""),
            "tokens stay out of Debug"
        );
        assert_eq!(c.reconnect, Reconnect::Forever);
        let err = parse(&[
            "g1",
            "g2",
            "-t",
            "t1",
            "--server",
            "h:9000",
            "--fingerprint",
            FP,
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("2 gateway(s) but 1 token(s)"),
            "{err}"
        );
    }

    #[test]
    fn servers_parse_including_ipv6() {
        assert_eq!(
            "[::1]:9000".parse::<ServerAddr>().unwrap(),
            ServerAddr {
                host: "::1".into(),
                port: 9000
            }
        );
        assert!("nohost".parse::<ServerAddr>().is_err());
        assert!("h:0".parse::<ServerAddr>().is_err());
    }

    #[test]
    fn missing_trust_or_bad_reconnect_is_explained() {
        let err = parse(&["g", "-t", "t", "--server", "h:1"]).unwrap_err();
        assert!(err.to_string().contains("--ca"), "{err}");
        let err = parse_one(&["--reconnect", "-5"]).unwrap_err();
        assert!(err.to_string().contains("--reconnect"), "{err}");
    }

    #[test]
    fn acl_files_and_ui_binding_are_checked() {
        let dir = std::env::temp_dir().join(format!("sgc-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("acl");
        std::fs::write(&f, "# ok\nacl allow db:5432\nacl allow oops\n").unwrap();
        let err = parse_one(&["--acl-file", f.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        std::fs::write(&f, "acl allow db:5432\n").unwrap();
        let c = parse_one(&["--acl-file", f.to_str().unwrap()]).unwrap();
        assert_eq!(c.acl_rules, Some(vec!["acl allow db:5432".to_string()]));
        let err = parse_one(&["--ui-bind", "0.0.0.0"]).unwrap_err();
        assert!(err.to_string().contains("--ui-password"), "{err}");
        assert!(parse_one(&["--ui-bind", "0.0.0.0", "--ui-password", "long-enough"]).is_ok());
        let err = parse_one(&["--acl-default", "maybe"]).unwrap_err();
        assert!(err.to_string().contains("--acl-default"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_file_fills_in_what_flags_leave_out() {
        let dir = std::env::temp_dir().join(format!("sgc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            format!("gateways = [\"g\"]\ntokens = \"t\"\nservers = [\"h:9000\"]\nfingerprint = \"{FP}\"\nreconnect = 3\n"),
        )
        .unwrap();
        let c = parse(&["--config", f.to_str().unwrap(), "--reconnect", "5"]).unwrap();
        assert_eq!(c.gateways[0].id, "g");
        assert_eq!(c.reconnect, Reconnect::Attempts(5));
        std::fs::remove_dir_all(dir).ok();
    }
}
