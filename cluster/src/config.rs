//! sg-node's configuration: command-line flags over an optional TOML file over defaults,
//! parsed and validated here once; the rest of the node receives a typed [`NodeConfig`].

use crate::ports::parse_range;
use clap::Parser;
use serde::Deserialize;
pub use sg_proto::config_file::ConfigError;
use sg_proto::config_file::{parse_toml, read_toml};
use sg_proto::logging::LogArgs;
pub use sg_proto::logging::{LogFormat, LogSettings};
pub use sg_proto::loglevel::LogLevel;
use sg_proto::secret::Secret;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_TUNNEL_LISTEN: &str = "0.0.0.0:9000";
pub const DEFAULT_API_LISTEN: &str = sg_api::node_file::DEFAULT_API;
pub const DEFAULT_CLOUD_PORTS: &str = "20000-29999";
pub use sg_api::node_file::DEFAULT_DATA_DIR;
pub const DEFAULT_DRAIN_SECS: u64 = 30;
pub const DEFAULT_DRAIN_GRACE_SECS: u64 = 2;
/// Sessions one gateway may hold on a node: 512 client processes at the default two
/// sessions each. A token holder cannot make the node hold more.
pub const DEFAULT_MAX_SESSIONS_PER_GATEWAY: usize = 1024;

#[derive(Debug, Parser)]
#[command(
    name = "sg-node",
    version,
    about = "sg relay node: gives private TCP services a cloud host:port through client tunnels"
)]
pub struct NodeArgs {
    /// Region this node serves, e.g. us-south.
    #[arg(long)]
    pub region: Option<String>,
    /// Where state, certificates and the admin token live.
    #[arg(long, env = "SG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address clients dial (TLS).
    #[arg(long, value_name = "ADDR:PORT")]
    pub tunnel_listen: Option<SocketAddr>,
    /// Address of the REST API (TLS).
    #[arg(long, value_name = "ADDR:PORT")]
    pub api_listen: Option<SocketAddr>,
    /// Host name cloud applications use to reach cloud ports.
    #[arg(long)]
    pub cloud_host: Option<String>,
    /// Address cloud ports listen on.
    #[arg(long)]
    pub cloud_bind: Option<IpAddr>,
    /// Range cloud ports are taken from, e.g. 20000-29999.
    #[arg(long, value_name = "LOW-HIGH")]
    pub cloud_ports: Option<String>,
    /// Server certificate (PEM, chain) instead of the node's own CA.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Admin token for the API; generated into DATA_DIR/admin.token when absent.
    #[arg(long, env = "SG_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// TOML file with any of these settings (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Worker event loops (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Client sessions one gateway may hold on this node (default 1024).
    #[arg(long, value_name = "N")]
    pub max_sessions_per_gateway: Option<usize>,
    /// Seconds a draining node keeps accepting cloud connections after telling clients to
    /// move, so load balancers notice (default 2).
    #[arg(long, value_name = "SECS")]
    pub drain_grace: Option<u64>,
    /// Seconds a draining node then waits for open connections to finish (default 30).
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<u64>,
    /// etcd endpoints (comma-separated) holding the cluster's shared configuration;
    /// without it the node is a single node on sled.
    #[arg(long, env = "SG_ETCD", value_name = "URL[,URL...]")]
    pub etcd: Option<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, value_name = "PREFIX")]
    pub etcd_prefix: Option<String>,
    /// CA certificate that signed etcd's server certificates (https endpoints).
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Private key of --etcd-cert.
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// etcd lost the cluster (wiped, or a new etcd): write this node's copy back as the
    /// cluster's configuration. Only when the prefix is empty; other nodes then follow.
    #[arg(long, requires = "etcd")]
    pub etcd_reseed: bool,
    /// Address clients of other nodes are told to dial for this node's tunnel port
    /// (default: the tunnel listen address, or --cloud-host when it listens on all).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise_tunnel: Option<String>,
    /// URL other nodes use to reach this node's API (default: from --api-listen).
    #[arg(long, value_name = "URL")]
    pub advertise_api: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
    /// Also serve GET /metrics here, in plain HTTP and without the admin token (for a
    /// scraper): PORT (on 127.0.0.1) or ADDR:PORT.
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub metrics_listen: Option<String>,
    /// Print the man page (man), a shell completion script (bash, zsh, fish, elvish,
    /// powershell) or the API's OpenAPI document (openapi) and exit.
    #[arg(long, value_name = "WHAT")]
    pub generate: Option<String>,
}

/// The same settings in a TOML file, snake_case keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    region: Option<String>,
    data_dir: Option<PathBuf>,
    tunnel_listen: Option<SocketAddr>,
    api_listen: Option<SocketAddr>,
    cloud_host: Option<String>,
    cloud_bind: Option<IpAddr>,
    cloud_ports: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    admin_token: Option<String>,
    workers: Option<usize>,
    max_sessions_per_gateway: Option<usize>,
    drain_grace: Option<u64>,
    drain_timeout: Option<u64>,
    etcd: Option<String>,
    etcd_prefix: Option<String>,
    etcd_ca: Option<PathBuf>,
    etcd_cert: Option<PathBuf>,
    etcd_key: Option<PathBuf>,
    advertise_tunnel: Option<String>,
    advertise_api: Option<String>,
    log_level: Option<LogLevel>,
    log_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    metrics_listen: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub region: String,
    pub data_dir: PathBuf,
    pub tunnel_listen: SocketAddr,
    pub api_listen: SocketAddr,
    pub cloud_host: String,
    pub cloud_bind: IpAddr,
    pub cloud_ports: RangeInclusive<u16>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub admin_token: Option<Secret>,
    pub workers: usize,
    pub max_sessions_per_gateway: usize,
    pub drain: DrainTimes,
    /// The cluster's etcd; `None` for a single node.
    pub etcd: Option<EtcdConfig>,
    /// What other nodes and clients are told: `host:port` of the tunnel, URL of the API.
    pub advertise_tunnel: String,
    pub advertise_api: String,
    pub log: LogSettings,
    /// Where `/metrics` is also served without a token (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
}

/// How long a drain may take, from SIGTERM (see [`crate::drain`]).
#[derive(Debug, Clone, Copy)]
pub struct DrainTimes {
    /// Cloud ports keep accepting this long after the GoAway.
    pub grace: Duration,
    /// Open connections get this long to finish once the cloud ports are closed.
    pub timeout: Duration,
}

/// Where the cluster's configuration lives.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    /// No trailing slash, e.g. `/sg`.
    pub prefix: String,
    pub ca: Option<PathBuf>,
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Write the local copy back into an empty prefix (`--etcd-reseed`).
    pub reseed: bool,
}

pub const DEFAULT_ETCD_PREFIX: &str = "/sg";

impl EtcdConfig {
    fn parse(
        urls: &str,
        prefix: Option<String>,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let secure = ca.is_some() || cert.is_some();
        let mut endpoints = Vec::new();
        for raw in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            if secure && raw.starts_with("http://") {
                return Err(ConfigError::Invalid(format!(
                    "--etcd {raw:?}: --etcd-ca/--etcd-cert need https:// endpoints"
                )));
            }
            let url = if raw.contains("://") {
                raw.to_string()
            } else {
                format!("{}://{raw}", if secure { "https" } else { "http" })
            };
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "--etcd {raw:?}: use http://HOST:PORT or https://HOST:PORT"
                    ))
                })?;
            let port_ok = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                return Err(ConfigError::Invalid(format!(
                    "--etcd {raw:?}: expected HOST:PORT, e.g. http://10.0.0.5:2379"
                )));
            }
            endpoints.push(url.trim_end_matches('/').to_string());
        }
        if endpoints.is_empty() {
            return Err(ConfigError::Invalid(
                "--etcd needs at least one endpoint, e.g. http://10.0.0.5:2379".into(),
            ));
        }
        let prefix = prefix.unwrap_or_else(|| DEFAULT_ETCD_PREFIX.into());
        let prefix = prefix.trim_end_matches('/').to_string();
        if !prefix.starts_with('/')
            || prefix.len() < 2
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::Invalid(format!(
                "--etcd-prefix {prefix:?}: use a key prefix like /sg"
            )));
        }
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "--etcd-cert and --etcd-key go together".into(),
                ))
            }
        };
        Ok(EtcdConfig {
            endpoints,
            prefix,
            ca,
            identity,
            reseed: false,
        })
    }
}

impl NodeConfig {
    /// Whether `text` is a readable config file (its keys and their types); what the
    /// values mean is checked by `from_args`. For the fuzzer and `--check`-style tools.
    pub fn check_file_text(text: &str) -> Result<(), ConfigError> {
        parse_toml::<FileConfig>("config", text).map(|_| ())
    }

    pub fn from_args(args: NodeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_toml(path)?,
            None => FileConfig::default(),
        };
        let region = args.region.or(file.region).ok_or_else(|| {
            ConfigError::Invalid("--region is required (e.g. --region us-south)".into())
        })?;
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::Invalid(format!(
                "--region {region:?}: use letters, digits, '-' and '_' (e.g. us-south)"
            )));
        }
        let parse_addr = |s: &str| -> SocketAddr {
            // The defaults are literals known to parse.
            s.parse()
                .unwrap_or(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
        };
        let cloud_ports_text = args
            .cloud_ports
            .or(file.cloud_ports)
            .unwrap_or_else(|| DEFAULT_CLOUD_PORTS.into());
        let cloud_ports = parse_range(&cloud_ports_text)
            .map_err(|e| ConfigError::Invalid(format!("--cloud-ports {e}")))?;
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "--tls-cert and --tls-key go together".into(),
                ))
            }
        };
        let workers = args.workers.or(file.workers).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if workers == 0 || workers > 256 {
            return Err(ConfigError::Invalid("--workers must be 1-256".into()));
        }
        let etcd = match args.etcd.or(file.etcd) {
            Some(urls) => Some(EtcdConfig {
                reseed: args.etcd_reseed,
                ..EtcdConfig::parse(
                    &urls,
                    args.etcd_prefix.or(file.etcd_prefix),
                    args.etcd_ca.or(file.etcd_ca),
                    args.etcd_cert.or(file.etcd_cert),
                    args.etcd_key.or(file.etcd_key),
                )?
            }),
            None => None,
        };
        let admin_token = args.admin_token.or(file.admin_token).map(Secret::new);
        if let Some(t) = &admin_token {
            if t.expose().len() < 16 {
                return Err(ConfigError::Invalid(
                    "--admin-token must be at least 16 characters".into(),
                ));
            }
        }
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let tunnel_listen = args
            .tunnel_listen
            .or(file.tunnel_listen)
            .unwrap_or_else(|| parse_addr(DEFAULT_TUNNEL_LISTEN));
        let api_listen = args
            .api_listen
            .or(file.api_listen)
            .unwrap_or_else(|| parse_addr(DEFAULT_API_LISTEN));
        let cloud_host = args
            .cloud_host
            .or(file.cloud_host)
            .unwrap_or_else(|| "localhost".into());
        let advertise_tunnel = match args.advertise_tunnel.or(file.advertise_tunnel) {
            Some(a) => {
                let port_ok = a
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !port_ok {
                    return Err(ConfigError::Invalid(format!(
                        "--advertise-tunnel {a:?}: expected HOST:PORT"
                    )));
                }
                a
            }
            None => advertised(tunnel_listen, &cloud_host),
        };
        let advertise_api = match args.advertise_api.or(file.advertise_api) {
            Some(u) if u.starts_with("https://") => u.trim_end_matches('/').to_string(),
            Some(u) => {
                return Err(ConfigError::Invalid(format!(
                    "--advertise-api {u:?}: expected https://HOST:PORT"
                )))
            }
            None => format!("https://{}", advertised(api_listen, &cloud_host)),
        };
        Ok(NodeConfig {
            region,
            data_dir,
            tunnel_listen,
            api_listen,
            cloud_host,
            cloud_bind: args
                .cloud_bind
                .or(file.cloud_bind)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            cloud_ports,
            tls,
            admin_token,
            workers,
            max_sessions_per_gateway: match args
                .max_sessions_per_gateway
                .or(file.max_sessions_per_gateway)
                .unwrap_or(DEFAULT_MAX_SESSIONS_PER_GATEWAY)
            {
                0 => {
                    return Err(ConfigError::Invalid(
                        "--max-sessions-per-gateway must be at least 1".into(),
                    ))
                }
                n => n,
            },
            drain: DrainTimes {
                grace: Duration::from_secs(
                    args.drain_grace
                        .or(file.drain_grace)
                        .unwrap_or(DEFAULT_DRAIN_GRACE_SECS),
                ),
                timeout: Duration::from_secs(
                    args.drain_timeout
                        .or(file.drain_timeout)
                        .unwrap_or(DEFAULT_DRAIN_SECS),
                ),
            },
            etcd,
            advertise_tunnel,
            advertise_api,
            log: args
                .log
                .or_file(file.log_level, file.log_file, file.log_format),
            metrics_listen: args
                .metrics_listen
                .or(file.metrics_listen)
                .map(|m| metrics_address(&m))
                .transpose()?,
        })
    }

    /// Names the node's own server certificate must cover.
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let mut add = |n: String| {
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        };
        add(self.cloud_host.clone());
        for ip in [self.tunnel_listen.ip(), self.api_listen.ip()] {
            if !ip.is_unspecified() {
                add(ip.to_string());
            }
        }
        if let Some(h) = hostname() {
            add(h);
        }
        names
    }
}

/// `--metrics-listen`: a port on loopback, or an address and port.
fn metrics_address(s: &str) -> Result<SocketAddr, ConfigError> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "--metrics-listen {s:?}: expected PORT or ADDR:PORT (e.g. 9100 or 0.0.0.0:9100)"
        ))
    })
}

/// `ip:port` of a listen address as others reach it: the cloud host when it listens on
/// every interface. The port may be 0 (an ephemeral port): the caller fills it in.
fn advertised(listen: SocketAddr, cloud_host: &str) -> String {
    let host = if listen.ip().is_unspecified() {
        cloud_host.to_string()
    } else {
        listen.ip().to_string()
    };
    sg_proto::hostport::host_port(&host, listen.port())
}

/// This machine's host name, if it has a usable one.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<NodeConfig, ConfigError> {
        let mut all = vec!["sg-node"];
        all.extend_from_slice(args);
        NodeConfig::from_args(NodeArgs::try_parse_from(all).expect("flags parse"))
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "region = \"eu-de\"\ncloud_ports = \"30000-30010\"\ncloud_host = \"file.example\"\n",
        )
        .unwrap();
        let c = parse(&[
            "--config",
            file.to_str().unwrap(),
            "--cloud-host",
            "flag.example",
        ])
        .unwrap();
        assert_eq!(c.region, "eu-de");
        assert_eq!(c.cloud_ports, 30000..=30010);
        assert_eq!(c.cloud_host, "flag.example");
        assert_eq!(c.tunnel_listen.port(), 9000);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = parse(&[]).unwrap_err();
        assert!(err.to_string().contains("--region"), "{err}");
        let err = parse(&["--region", "x", "--cloud-ports", "9-1"]).unwrap_err();
        assert!(err.to_string().contains("--cloud-ports"), "{err}");
        let err = parse(&["--region", "bad region"]).unwrap_err();
        assert!(err.to_string().contains("--region"), "{err}");
    }

    #[test]
    fn the_debug_form_never_shows_the_admin_token() {
        let c = parse(&[
            "--region",
            "x",
            "--admin-token",
            "sga_0123456789abcdef_secret",
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef_secret"));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "region = \"x\"\nregoin = \"typo\"\n").unwrap();
        let err = parse(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("regoin"), "{err}");
    }
}
