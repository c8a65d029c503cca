//! `sg-load`: target services and load for the quickstart and `scripts/loadtest.sh`.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

#[derive(Parser)]
#[command(name = "sg-load", about = "Target services and load generation for sg")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP/1.1 with a fixed body (keep-alive, pipelining).
    HttpServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long, default_value = "hello from a private service, through sg\n")]
        body: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.command {
            Cmd::HttpServer { listen, body } => {
                let listener = sg_benches::http_server::bind(listen).await?;
                println!("listening on {}", listener.local_addr()?);
                sg_benches::http_server::serve(listener, body.into_bytes()).await?;
            }
        }
        Ok(())
    })
}
