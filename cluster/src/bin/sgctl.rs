//! `sgctl`: manage an sg node over its REST API. See `sgctl --help`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = sg_cluster::ctl::Cli::parse();
    match sg_cluster::ctl::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sgctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
