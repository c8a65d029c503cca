//! `sg-node --region R`: runs one relay node. See `sg-node --help`.

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use sg_cluster::config::{NodeArgs, NodeConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = NodeArgs::parse();
    if args.generate.as_deref() == Some("openapi") {
        // The API's OpenAPI document (what GET /v1/openapi.json serves).
        print!("{}", sg_cluster::api::openapi::document());
        return ExitCode::SUCCESS;
    }
    let generate = args.generate.clone();
    let config =
        match sg_proto::cli_docs::configure(args, generate.as_deref(), NodeConfig::from_args) {
            Ok(c) => c,
            Err(code) => return code,
        };
    let logging = sg_proto::logging::init(&config.log);
    if let Err(e) = logging {
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
