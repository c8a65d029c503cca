//! sg-node's configuration: command-line flags over an optional TOML file over defaults,
//! parsed and validated here once; the rest of the node receives a typed [`NodeConfig`].

use crate::ports::parse_range;
use clap::Parser;
use serde::Deserialize;
use sg_proto::config_file::read_toml;
pub use sg_proto::config_file::ConfigError;
pub use sg_proto::loglevel::LogLevel;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_TUNNEL_LISTEN: &str = "0.0.0.0:9000";
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9090";
pub const DEFAULT_CLOUD_PORTS: &str = "20000-29999";
pub const DEFAULT_DATA_DIR: &str = "sg-data";
pub const DEFAULT_DRAIN_SECS: u64 = 30;
pub const DEFAULT_DRAIN_GRACE_SECS: u64 = 2;

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
    /// Seconds a draining node keeps accepting cloud connections after telling clients to
    /// move, so load balancers notice (default 2).
    #[arg(long, value_name = "SECS")]
    pub drain_grace: Option<u64>,
    /// Seconds a draining node then waits for open connections to finish (default 30).
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<u64>,
    /// Log level.
    #[arg(short = 'l', long, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Write the log to this file instead of stderr.
    #[arg(short = 'p', long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
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
    drain_grace: Option<u64>,
    drain_timeout: Option<u64>,
    log_level: Option<LogLevel>,
    log_file: Option<PathBuf>,
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
    pub admin_token: Option<String>,
    pub workers: usize,
    pub drain: crate::drain::DrainTimes,
    pub log_level: LogLevel,
    pub log_file: Option<PathBuf>,
}

impl NodeConfig {
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
        let admin_token = args.admin_token.or(file.admin_token);
        if let Some(t) = &admin_token {
            if t.len() < 16 {
                return Err(ConfigError::Invalid(
                    "--admin-token must be at least 16 characters".into(),
                ));
            }
        }
        Ok(NodeConfig {
            region,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            tunnel_listen: args
                .tunnel_listen
                .or(file.tunnel_listen)
                .unwrap_or_else(|| parse_addr(DEFAULT_TUNNEL_LISTEN)),
            api_listen: args
                .api_listen
                .or(file.api_listen)
                .unwrap_or_else(|| parse_addr(DEFAULT_API_LISTEN)),
            cloud_host: args
                .cloud_host
                .or(file.cloud_host)
                .unwrap_or_else(|| "localhost".into()),
            cloud_bind: args
                .cloud_bind
                .or(file.cloud_bind)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            cloud_ports,
            tls,
            admin_token,
            workers,
            drain: crate::drain::DrainTimes {
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
            log_level: args.log_level.or(file.log_level).unwrap_or(LogLevel::Info),
            log_file: args.log_file.or(file.log_file),
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
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "region = \"x\"\nregoin = \"typo\"\n").unwrap();
        let err = parse(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("regoin"), "{err}");
    }
}
