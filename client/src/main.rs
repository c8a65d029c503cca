//! `sg-client GW_ID... -t TOKEN1--TOKEN2 --server HOST:PORT --ca ca.pem`
//!
//! Threads: one single-threaded runtime per core ("workers", see `sg_client::workers`),
//! each running its share of the tunnels. The main thread runs each gateway's fleet (which
//! tunnels exist: seeds, then the cluster's other nodes) and waits for signals.

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use sg_client::config::{ClientArgs, ClientConfig};
use sg_client::fleet::{Fleet, FleetOutcome};
use sg_client::registry::{GatewayRuntime, Registry};
use sg_client::tunnel::ClientContext;
use sg_client::workers::WorkerPool;
use sg_client::{client_ports, console, health, service, ui};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

fn main() -> ExitCode {
    let args = ClientArgs::parse();
    let generate = args.generate.clone();
    let config =
        match sg_proto::cli_docs::configure(args, generate.as_deref(), ClientConfig::from_args) {
            Ok(c) => c,
            Err(code) => return code,
        };
    let log = match sg_proto::logging::init(&config.log) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sg-client: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = sg_proto::limits::raise_fd_limit() {
        tracing::debug!("open-file limit {n}");
    }
    if config.service && !service::is_worker() {
        return service::supervise(config.restart_after_kill);
    }
    let tls = match sg_proto::tls::client_config(config.trust.clone(), None) {
        Ok(c) => tokio_rustls::TlsConnector::from(Arc::new(c)),
        Err(e) => {
            eprintln!("sg-client: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = Arc::new(ClientContext {
        client_id: sg_proto::ids::new_id("cl"),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        tls,
        config: config.clone(),
        killed: watch::Sender::new(None),
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
                config.acl_ceiling.clone().map(sg_proto::acl::Acl::new),
            ))
        })
        .collect();
    let (quit_tx, quit_rx) = watch::channel(false);
    let registry = Arc::new(Registry {
        client_id: ctx.client_id.clone(),
        gateways: gateways.clone(),
        log,
        quit: quit_tx,
        config_summary: config.describe(),
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = match WorkerPool::start(cores) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("sg-client: cannot start a worker thread: {e}");
            return ExitCode::from(1);
        }
    };
    if !config.discover && config.servers.len() == 1 {
        tracing::info!(
            "connecting only to {} (no discovery of the cluster's other nodes)",
            config.servers[0]
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
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
            let mut fleets = tokio::task::JoinSet::new();
            for gw in &gateways {
                tokio::spawn(client_ports::run(
                    gw.clone(),
                    config.listen_ip(),
                    stop_rx.clone(),
                ));
                tokio::spawn(health::run(gw.clone(), stop_rx.clone()));
                fleets.spawn(
                    Fleet::new(ctx.clone(), gw.clone(), pool.clone(), stop_rx.clone()).run(),
                );
            }
            supervise(fleets, stop_tx, quit_rx, ctx.killed.subscribe()).await
        }),
        Err(e) => {
            eprintln!("sg-client: cannot start: {e}");
            ExitCode::from(1)
        }
    };
    pool.join();
    code
}

/// Waits for a signal or `q` at the console (then stops every tunnel), or for every
/// gateway's tunnels to end on their own (refused, or out of reconnect attempts).
async fn supervise(
    mut fleets: tokio::task::JoinSet<FleetOutcome>,
    stop: watch::Sender<bool>,
    mut quit: watch::Receiver<bool>,
    mut killed: watch::Receiver<Option<String>>,
) -> ExitCode {
    let (mut tunnels, mut refused) = (0usize, 0usize);
    loop {
        tokio::select! {
            done = fleets.join_next() => match done {
                Some(Ok(outcome)) => {
                    tunnels += outcome.tunnels;
                    refused += outcome.refused;
                }
                Some(Err(e)) => tracing::error!("a gateway's tunnels failed: {e}"),
                None => break,
            },
            _ = sg_proto::shutdown::signal() => {
                tracing::info!("shutting down");
                let _ = stop.send(true);
                while fleets.join_next().await.is_some() {}
                return ExitCode::SUCCESS;
            }
            Ok(()) = killed.changed() => {
                let _ = stop.send(true);
                while fleets.join_next().await.is_some() {}
                tracing::error!(
                    "an operator ended this client ({}); exiting with status {}",
                    killed.borrow().clone().unwrap_or_default(),
                    service::EXIT_KILLED
                );
                return ExitCode::from(service::EXIT_KILLED);
            }
            _ = quit.changed() => {
                tracing::info!("quitting at the console's request");
                let _ = stop.send(true);
                while fleets.join_next().await.is_some() {}
                return ExitCode::SUCCESS;
            }
        }
    }
    tracing::error!("no gateway left to serve ({refused} of {tunnels} tunnel(s) refused)");
    if refused > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::from(1)
    }
}
