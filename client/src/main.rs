//! `sg-client GW_ID... -t TOKEN1--TOKEN2 --server HOST:PORT --ca ca.pem`

use clap::Parser;
use sg_client::config::{ClientArgs, ClientConfig};
use sg_client::stats::GatewayStats;
use sg_client::tunnel::{self, ClientContext, GatewayRuntime, TunnelEnd};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let config = match ClientConfig::from_args(ClientArgs::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sg-client: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("sg-client: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sg-client: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(config))
}

fn init_logging(config: &ClientConfig) -> Result<(), String> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(config.log_level.filter())
        .with_target(false);
    match &config.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

async fn run(config: ClientConfig) -> ExitCode {
    let tls = match sg_proto::tls::client_config(config.trust.clone(), None) {
        Ok(c) => tokio_rustls::TlsConnector::from(Arc::new(c)),
        Err(e) => {
            eprintln!("sg-client: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = Arc::new(ClientContext {
        client_id: random_id(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        tls,
        config: config.clone(),
    });
    tracing::info!(
        client = %ctx.client_id,
        "sg-client {} serving {} gateway(s) through {} node(s)",
        sg_proto::version::PRODUCT_VERSION,
        config.gateways.len(),
        config.servers.len()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tunnels = tokio::task::JoinSet::new();
    for creds in &config.gateways {
        let gw = Arc::new(GatewayRuntime {
            creds: creds.clone(),
            stats: Arc::new(GatewayStats::default()),
        });
        for server in &config.servers {
            for _ in 0..config.sessions {
                tunnels.spawn(tunnel::run(
                    ctx.clone(),
                    gw.clone(),
                    server.clone(),
                    stop_rx.clone(),
                ));
            }
        }
    }
    let mut refused = 0usize;
    let mut ended = 0usize;
    let total = tunnels.len();
    loop {
        tokio::select! {
            joined = tunnels.join_next() => match joined {
                Some(Ok(end)) => {
                    ended += 1;
                    if matches!(end, TunnelEnd::Refused(_)) {
                        refused += 1;
                    }
                }
                Some(Err(e)) => {
                    ended += 1;
                    tracing::error!("a tunnel task failed: {e}");
                }
                None => break,
            },
            _ = shutdown_signal() => {
                tracing::info!("shutting down");
                let _ = stop_tx.send(true);
                while tunnels.join_next().await.is_some() {}
                return ExitCode::SUCCESS;
            }
        }
    }
    tracing::error!(
        "no gateway left to serve ({refused} of {total} tunnel(s) refused, {ended} ended)"
    );
    if refused > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::from(1)
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    format!(
        "cl_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}
