//! `sg-client GW_ID... -t TOKEN1--TOKEN2 --server HOST:PORT --ca ca.pem`
//!
//! Threads: one single-threaded runtime per core ("workers"), each running its share of the
//! tunnels; a session and every stream it carries stay on one thread, so handing bytes
//! between a session and its streams never wakes another thread. The main thread only
//! waits for signals and for tunnels that end.

use clap::Parser;
use sg_client::config::{ClientArgs, ClientConfig, ServerAddr};
use sg_client::registry::{GatewayRuntime, Registry};
use sg_client::tunnel::{self, ClientContext, TunnelEnd};
use sg_client::{console, logging, service, ui};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

fn main() -> ExitCode {
    let config = match ClientConfig::from_args(ClientArgs::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sg-client: {e}");
            return ExitCode::from(2);
        }
    };
    let log = match logging::init(config.log_level, config.log_file.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sg-client: {e}");
            return ExitCode::from(2);
        }
    };
    if config.service && !service::is_worker() {
        return service::supervise();
    }
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
    let gateways: Vec<Arc<GatewayRuntime>> = config
        .gateways
        .iter()
        .map(|creds| {
            Arc::new(GatewayRuntime::new(
                creds.clone(),
                config.acl_default,
                config.acl_rules.clone(),
            ))
        })
        .collect();
    let (quit_tx, quit_rx) = watch::channel(false);
    let registry = Arc::new(Registry {
        client_id: ctx.client_id.clone(),
        gateways: gateways.clone(),
        log,
        quit: quit_tx,
    });
    if let Some(ui_config) = &config.ui {
        match ui::start(ui_config, registry.clone()) {
            Ok(addr) => tracing::info!(
                "web UI on http://{addr}/{}",
                if ui_config.password.is_some() {
                    " (password required)"
                } else {
                    " (no password: localhost only)"
                }
            ),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let tunnels = plan_tunnels(&config, &gateways);
    let total = tunnels.len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut shares: Vec<Vec<(Arc<GatewayRuntime>, ServerAddr)>> =
        vec![Vec::new(); cores.min(total).max(1)];
    let n = shares.len();
    for (i, t) in tunnels.into_iter().enumerate() {
        shares[i % n].push(t);
    }
    let mut threads = Vec::new();
    for (i, share) in shares.into_iter().enumerate() {
        let (ctx, stop_rx, done_tx) = (ctx.clone(), stop_rx.clone(), done_tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("sg-worker-{i}"))
            .spawn(move || run_worker(ctx, share, stop_rx, done_tx));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                eprintln!("sg-client: cannot start a worker thread: {e}");
                return ExitCode::from(1);
            }
        }
    }
    drop(done_tx);
    let with_console = config.console || std::io::stdin().is_terminal();
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            if with_console {
                let input = tokio::io::BufReader::new(tokio::io::stdin());
                tokio::spawn(console::run(registry.clone(), input));
            }
            supervise(total, stop_tx, done_rx, quit_rx).await
        }),
        Err(e) => {
            eprintln!("sg-client: cannot start: {e}");
            ExitCode::from(1)
        }
    };
    for t in threads {
        let _ = t.join();
    }
    code
}

/// One tunnel per gateway, per node, per `--sessions`.
fn plan_tunnels(
    config: &ClientConfig,
    gateways: &[Arc<GatewayRuntime>],
) -> Vec<(Arc<GatewayRuntime>, ServerAddr)> {
    let mut out = Vec::new();
    for gw in gateways {
        for server in &config.servers {
            for _ in 0..config.sessions {
                out.push((gw.clone(), server.clone()));
            }
        }
    }
    out
}

/// A worker thread: a single-threaded runtime running its tunnels until they end.
fn run_worker(
    ctx: Arc<ClientContext>,
    tunnels: Vec<(Arc<GatewayRuntime>, ServerAddr)>,
    stop: watch::Receiver<bool>,
    done: mpsc::UnboundedSender<TunnelEnd>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start a worker runtime: {e}");
            for _ in &tunnels {
                let _ = done.send(TunnelEnd::Shutdown);
            }
            return;
        }
    };
    rt.block_on(async move {
        let mut set = tokio::task::JoinSet::new();
        for (gw, server) in tunnels {
            set.spawn(tunnel::run(ctx.clone(), gw, server, stop.clone()));
        }
        while let Some(joined) = set.join_next().await {
            let end = joined.unwrap_or_else(|e| {
                tracing::error!("a tunnel task failed: {e}");
                TunnelEnd::Shutdown
            });
            let _ = done.send(end);
        }
    });
}

/// Waits for a signal or `q` at the console (then stops every tunnel), or for every tunnel
/// to end on its own.
async fn supervise(
    total: usize,
    stop: watch::Sender<bool>,
    mut done: mpsc::UnboundedReceiver<TunnelEnd>,
    mut quit: watch::Receiver<bool>,
) -> ExitCode {
    let (mut ended, mut refused) = (0usize, 0usize);
    loop {
        tokio::select! {
            end = done.recv() => match end {
                Some(end) => {
                    ended += 1;
                    if matches!(end, TunnelEnd::Refused(_)) {
                        refused += 1;
                    }
                    if ended == total {
                        break;
                    }
                }
                None => break,
            },
            _ = shutdown_signal() => {
                tracing::info!("shutting down");
                let _ = stop.send(true);
                while done.recv().await.is_some() {}
                return ExitCode::SUCCESS;
            }
            _ = quit.changed() => {
                tracing::info!("quitting at the console's request");
                let _ = stop.send(true);
                while done.recv().await.is_some() {}
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
