//! `sgctl`: manage an sg node over its REST API. See `sgctl --help`.

// Nothing a peer, a file or a user sends may panic the process: no unwrap/expect outside
// tests (a poisoned lock is recovered with `unwrap_or_else(|p| p.into_inner())`).
#![warn(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = sgctl::Cli::parse();
    let command = <sgctl::Cli as clap::CommandFactory>::command();
    if let Some(code) = sg_proto::cli_docs::answer(command, cli.generate.as_deref()) {
        return code;
    }
    match sgctl::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sgctl: {}", sgctl::printable(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
