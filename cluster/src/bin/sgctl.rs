//! `sgctl`: manage an sg node over its REST API. See `sgctl --help`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = sg_cluster::ctl::Cli::parse();
    if let Some(what) = &cli.generate {
        use clap::CommandFactory;
        return match sg_proto::cli_docs::generate(sg_cluster::ctl::Cli::command(), what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sgctl: {e}");
                ExitCode::from(2)
            }
        };
    }
    match sg_cluster::ctl::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sgctl: {}", sg_cluster::ctl::printable(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
