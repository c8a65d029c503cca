//! `sg-load`: target services and load for the quickstart and `scripts/loadtest.sh`.
//!
//! Every measuring subcommand prints one JSON line (also appended to `--out`), so the
//! harness can collect a run and `sg-load report` can summarize it. `sg-load timeline`
//! is the exception: it prints its own table and writes its JSON and SVG (failover runs).

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use sg_benches::{
    bulk, control, echo, hold, http_load, http_server, procstat, report, timeline, wrk,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(name = "sg-load", about = "Target services and load generation for sg")]
struct Cli {
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Measure {
    /// Which path this run measures (direct, sg, rathole...).
    #[arg(long, default_value = "direct")]
    label: String,
    /// Append the JSON line to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Processes whose CPU use to record, e.g. the node's pid (first) and the client's.
    #[arg(long, value_delimiter = ',')]
    watch: Vec<u32>,
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
    /// Serve bulk upload/download.
    BulkServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Echo every byte back.
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// HTTP load: keep-alive, or a new connection per request.
    Http {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long)]
        new_conn: bool,
        #[command(flatten)]
        m: Measure,
    },
    /// Keep-alive HTTP load from wrk (Debian's), measured like `http`.
    Wrk {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// wrk's threads.
        #[arg(long, default_value_t = 2)]
        wrk_threads: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[command(flatten)]
        m: Measure,
    },
    /// Bulk throughput in one direction.
    Bulk {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, value_enum)]
        direction: bulk::Direction,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        #[command(flatten)]
        m: Measure,
    },
    /// Hold idle connections (to an echo server) and measure the RSS of --watch processes;
    /// with --http-target, also a keep-alive HTTP load's latency while they are held.
    Hold {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 5000)]
        connections: usize,
        /// An HTTP service to load (keep-alive) while the connections are held.
        #[arg(long)]
        http_target: Option<SocketAddr>,
        #[arg(long, default_value_t = 50)]
        http_connections: usize,
        #[arg(long, default_value_t = 5)]
        http_duration: u64,
        #[command(flatten)]
        m: Measure,
    },
    /// Failover timeline: a new connection per request, round-robin over the targets,
    /// outcomes per --bucket-ms around the marks a script appends to --marks.
    Timeline {
        /// A cloud address; repeat for several (requests go round-robin over them).
        #[arg(long, required = true)]
        target: Vec<SocketAddr>,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 14)]
        duration: u64,
        #[arg(long, default_value_t = 100)]
        bucket_ms: u64,
        /// `EPOCH_MS LABEL` lines, read after the run (it need not exist).
        #[arg(long)]
        marks: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Print one line of counts per second to stderr while running.
        #[arg(long)]
        progress: bool,
        /// Worker i sticks to target i mod T instead of going round-robin over all of them.
        #[arg(long)]
        pin_targets: bool,
    },
    /// Control-plane write latency: destination creates one after the other, each timed to
    /// its answer (the node flushes before it answers); with --peer-data-dir (another node
    /// of the same cluster), each also timed until that node shows it. All are deleted after.
    ControlWrites {
        /// The data dir of the node to write to (its node.json, admin.token, ca.pem).
        #[arg(long)]
        data_dir: PathBuf,
        /// The data dir of another node of the cluster, to time propagation to.
        #[arg(long)]
        peer_data_dir: Option<PathBuf>,
        #[arg(long)]
        gateway: String,
        /// HOST:PORT the destinations point at.
        #[arg(long)]
        resource: String,
        #[arg(long, default_value_t = 200)]
        writes: usize,
        #[command(flatten)]
        m: Measure,
    },
    /// Many destinations: makes --count over new gateways of --per-gateway each, then times
    /// GETs of the first gateway's list; the first --watch process's RSS before the fill is
    /// the baseline for `destinations-restart`.
    Destinations {
        #[arg(long)]
        data_dir: PathBuf,
        /// The most destinations one gateway may hold (the node's limit).
        #[arg(long, default_value_t = 500)]
        per_gateway: usize,
        #[arg(long)]
        resource: String,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// API connections creating at once.
        #[arg(long, default_value_t = 4)]
        writers: usize,
        /// GETs of the list to time.
        #[arg(long, default_value_t = 50)]
        requests: usize,
        #[command(flatten)]
        m: Measure,
    },
    /// After restarting a node with many destinations: the time from --started-ms until
    /// --count ports of --ports listen, the node's RSS then (the first --watch process), and
    /// the list latency again.
    DestinationsRestart {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        gateway: String,
        /// The node's cloud port range, A-B.
        #[arg(long, value_parser = control::port_range)]
        ports: std::ops::RangeInclusive<u16>,
        #[arg(long)]
        count: usize,
        /// When the node was started (Unix time, milliseconds).
        #[arg(long)]
        started_ms: u64,
        /// The node's RSS with no destinations (from `destinations`).
        #[arg(long)]
        baseline_rss_kib: u64,
        #[arg(long, default_value_t = 50)]
        requests: usize,
        #[command(flatten)]
        m: Measure,
    },
    /// Summarize a run: table on stdout, JSON and SVG files.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        json: PathBuf,
        #[arg(long)]
        svg: PathBuf,
    },
}

/// The control-plane subcommands: blocking API calls, no runtime. Answers false for the
/// others.
fn control_command(cmd: &Cmd) -> anyhow::Result<bool> {
    match cmd {
        Cmd::ControlWrites {
            data_dir,
            peer_data_dir,
            gateway,
            resource,
            writes,
            m,
        } => {
            anyhow::ensure!((1..=10_000).contains(writes), "--writes is 1 to 10000");
            // Nodes of one cluster share the admin token; the first node's data dir has it.
            let token = control::admin_token_of(data_dir)?;
            let api = control::api_of(data_dir, &token)?;
            let peer = peer_data_dir
                .as_deref()
                .map(|d| control::api_of(d, &token))
                .transpose()?;
            let r = control::writes(&api, peer.as_ref(), gateway, resource, *writes)?;
            let test = if peer.is_some() {
                "control_write_cluster"
            } else {
                "control_write"
            };
            emit(m, test, serde_json::to_value(&r)?, Vec::new())?;
        }
        Cmd::Destinations {
            data_dir,
            per_gateway,
            resource,
            count,
            writers,
            requests,
            m,
        } => {
            anyhow::ensure!(
                (1..=control::MAX_DESTINATIONS).contains(count),
                "--count is 1 to {}",
                control::MAX_DESTINATIONS
            );
            anyhow::ensure!((1..=64).contains(writers), "--writers is 1 to 64");
            let api = control::api_of(data_dir, &control::admin_token_of(data_dir)?)?;
            let rss = || m.watch.first().and_then(|p| procstat::rss_kib(*p));
            let rss_before_kib = rss();
            let filled = control::fill(&api, resource, *count, *per_gateway, *writers)?;
            let gateway = filled.gateways.first().context("no gateway was made")?;
            let list = control::list_latency(&api, gateway, *requests)?;
            let result = json!({
                "destinations": filled.destinations,
                "gateways": filled.gateways.len(),
                "list_gateway": gateway,
                "create_seconds": filled.seconds,
                "creates_per_s": filled.destinations as f64 / filled.seconds.max(1e-9),
                "rss_before_kib": rss_before_kib,
                "rss_after_kib": rss(),
                "list": list,
                "list_p99_ms": list.latency.p99_ms,
            });
            emit(m, "destinations", result, Vec::new())?;
        }
        Cmd::DestinationsRestart {
            data_dir,
            gateway,
            ports,
            count,
            started_ms,
            baseline_rss_kib,
            requests,
            m,
        } => {
            let took = control::wait_listening(ports, *count, *started_ms)?;
            // The node answers its API a moment after its ports listen; let it settle.
            std::thread::sleep(Duration::from_secs(1));
            let rss_kib = m.watch.first().and_then(|p| procstat::rss_kib(*p));
            let api = control::api_of(data_dir, &control::admin_token_of(data_dir)?)?;
            let list = control::list_latency(&api, gateway, *requests)?;
            let per_destination = rss_kib.map(|r| {
                r.saturating_sub(*baseline_rss_kib) as f64 * 1024.0 / (*count).max(1) as f64
            });
            let result = json!({
                "destinations": count,
                "restart_ms": took.as_secs_f64() * 1e3,
                "rss_kib": rss_kib,
                "baseline_rss_kib": baseline_rss_kib,
                "rss_bytes_per_destination": per_destination,
                "list": list,
                "list_p99_ms": list.latency.p99_ms,
            });
            emit(m, "destinations_restart", result, Vec::new())?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn emit(m: &Measure, test: &str, result: Value, cpu: Vec<procstat::CpuUse>) -> anyhow::Result<()> {
    let node_cpu = cpu.first().map(|c| c.cores);
    // CPU of the path's own processes (the node and the client, or the peer's two, or the
    // one-hop proxy) for each request carried: the figure noise hides least.
    let cpu_us_per_request = match result["requests"].as_u64() {
        Some(n) if n > 0 && !cpu.is_empty() => {
            json!(cpu.iter().map(|c| c.seconds).sum::<f64>() * 1e6 / n as f64)
        }
        _ => Value::Null,
    };
    let line = json!({
        "path": m.label,
        "test": test,
        "result": result,
        "cpu": cpu,
        "cpu_us_per_request": cpu_us_per_request,
        "node_cpu_cores": if m.label == "sg" { json!(node_cpu) } else { Value::Null },
    });
    println!("{line}");
    if let Some(path) = &m.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

async fn bound(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(listen).await?;
    println!("listening on {}", l.local_addr()?);
    Ok(l)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Report { input, json, svg } = &cli.command {
        let text = std::fs::read_to_string(input)?;
        let records: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let summary = report::summarize(records);
        print!("{}", report::table(&summary));
        std::fs::write(json, serde_json::to_vec_pretty(&summary)?)?;
        std::fs::write(svg, report::svg(&summary))?;
        return Ok(());
    }
    if control_command(&cli.command)? {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.command {
            Cmd::HttpServer { listen, body } => {
                http_server::serve(bound(listen).await?, body.into_bytes()).await?;
            }
            Cmd::BulkServer { listen } => bulk::serve(bound(listen).await?).await?,
            Cmd::EchoServer { listen } => echo::serve(bound(listen).await?).await?,
            Cmd::Http {
                target,
                connections,
                duration,
                new_conn,
                m,
            } => {
                let watch = procstat::CpuWatch::start(&m.watch);
                let r =
                    http_load::run(target, connections, Duration::from_secs(duration), new_conn)
                        .await;
                let test = r.mode;
                emit(&m, test, serde_json::to_value(&r)?, watch.finish())?;
            }
            Cmd::Wrk {
                target,
                connections,
                wrk_threads,
                duration,
                m,
            } => {
                anyhow::ensure!(
                    (1..=120).contains(&duration),
                    "--duration is 1 to 120 seconds"
                );
                let watch = procstat::CpuWatch::start(&m.watch);
                let r = tokio::task::spawn_blocking(move || {
                    wrk::run(
                        target,
                        connections,
                        wrk_threads,
                        Duration::from_secs(duration),
                    )
                })
                .await??;
                emit(
                    &m,
                    "wrk_keep_alive",
                    serde_json::to_value(&r)?,
                    watch.finish(),
                )?;
            }
            Cmd::Bulk {
                target,
                direction,
                duration,
                connections,
                m,
            } => {
                let watch = procstat::CpuWatch::start(&m.watch);
                let r = bulk::run(
                    target,
                    direction,
                    Duration::from_secs(duration),
                    connections,
                )
                .await?;
                let test = match (direction, connections > 1) {
                    (bulk::Direction::Up, false) => "bulk_up",
                    (bulk::Direction::Down, false) => "bulk_down",
                    (bulk::Direction::Up, true) => "bulk_up_parallel",
                    (bulk::Direction::Down, true) => "bulk_down_parallel",
                };
                emit(&m, test, serde_json::to_value(&r)?, watch.finish())?;
            }
            Cmd::Hold {
                target,
                connections,
                http_target,
                http_connections,
                http_duration,
                m,
            } => {
                anyhow::ensure!(
                    (1..=120).contains(&http_duration),
                    "--http-duration is 1 to 120 seconds"
                );
                let load = http_target.map(|target| hold::LoadWhileHeld {
                    target,
                    connections: http_connections,
                    duration: Duration::from_secs(http_duration),
                });
                let r =
                    hold::run(target, connections, &m.watch, Duration::from_secs(2), load).await?;
                emit(&m, "hold", serde_json::to_value(&r)?, Vec::new())?;
            }
            Cmd::Timeline {
                target,
                connections,
                duration,
                bucket_ms,
                marks,
                out,
                svg,
                progress,
                pin_targets,
            } => {
                anyhow::ensure!(
                    (1..=timeline::MAX_DURATION_S).contains(&duration),
                    "--duration is 1 to {} seconds",
                    timeline::MAX_DURATION_S
                );
                anyhow::ensure!(
                    (1..=timeline::MAX_CONNECTIONS).contains(&connections),
                    "--connections is 1 to {}",
                    timeline::MAX_CONNECTIONS
                );
                anyhow::ensure!(
                    (10..=10_000).contains(&bucket_ms),
                    "--bucket-ms is 10 to 10000"
                );
                anyhow::ensure!(target.len() <= 64, "at most 64 --target addresses");
                let duration = Duration::from_secs(duration);
                let spread = if pin_targets {
                    timeline::Spread::Pinned
                } else {
                    timeline::Spread::RoundRobin
                };
                let (samples, started) =
                    timeline::run(target.clone(), connections, duration, spread, progress).await;
                let marks_text = match &marks {
                    Some(path) => match std::fs::read_to_string(path) {
                        Ok(text) => text,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                        Err(e) => {
                            return Err(e).with_context(|| format!("reading {}", path.display()))
                        }
                    },
                    None => String::new(),
                };
                let t = timeline::build(
                    &samples,
                    &target,
                    connections,
                    duration,
                    bucket_ms,
                    started,
                    &marks_text,
                );
                print!("{}", timeline::table(&t));
                if let Some(path) = &out {
                    std::fs::write(path, serde_json::to_vec_pretty(&t)?)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                if let Some(path) = &svg {
                    std::fs::write(path, timeline::svg(&t))
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            Cmd::Report { .. }
            | Cmd::ControlWrites { .. }
            | Cmd::Destinations { .. }
            | Cmd::DestinationsRestart { .. } => {}
        }
        Ok(())
    })
}
