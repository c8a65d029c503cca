//! `sg-node --region R`: runs one relay node. See `sg-node --help`.

use clap::Parser;
use sg_cluster::config::{NodeArgs, NodeConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match NodeConfig::from_args(NodeArgs::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sg-node: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("sg-node: {e}");
        return ExitCode::from(2);
    }
    sg_cluster::panics::install_hook();
    sg_cluster::panics::mark_critical_thread();
    if let Some(n) = sg_proto::limits::raise_fd_limit() {
        tracing::debug!("open-file limit {n}");
    }
    let result = actix_rt::System::new().block_on(sg_cluster::run::run(config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sg-node: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(config: &NodeConfig) -> Result<(), String> {
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
