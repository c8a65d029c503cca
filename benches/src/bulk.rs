//! Bulk throughput: a sink/source server and a client that measures one direction.
//!
//! The client's first byte says what it wants: `U` (upload: the server reads and discards)
//! or `D` (download: the server writes until the client leaves).

use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BLOCK: usize = 256 * 1024;

pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (mut sock, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut mode = [0u8; 1];
            if sock.read_exact(&mut mode).await.is_err() {
                return;
            }
            let mut buf = vec![0x5Au8; BLOCK];
            match mode[0] {
                b'U' => {
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
                b'D' => while sock.write_all(&buf).await.is_ok() {},
                _ => {}
            }
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Cloud application to private service.
    Up,
    /// Private service to cloud application.
    Down,
}

#[derive(Debug, Clone, Serialize)]
pub struct BulkResult {
    pub direction: Direction,
    pub connections: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
}

/// Moves data for `duration` (after a one-second warm-up) over `connections` connections.
pub async fn run(
    target: SocketAddr,
    direction: Direction,
    duration: Duration,
    connections: usize,
) -> std::io::Result<BulkResult> {
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        tasks.push(tokio::spawn(async move {
            let mut sock = TcpStream::connect(target).await?;
            sock.set_nodelay(true)?;
            let mode = if direction == Direction::Up {
                b'U'
            } else {
                b'D'
            };
            sock.write_all(&[mode]).await?;
            let mut buf = vec![0xA5u8; BLOCK];
            let mut counted = 0u64;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let n = match direction {
                    Direction::Up => {
                        sock.write_all(&buf).await?;
                        buf.len()
                    }
                    Direction::Down => {
                        let n = sock.read(&mut buf).await?;
                        if n == 0 {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the bulk server closed the connection",
                            ));
                        }
                        n
                    }
                };
                if Instant::now() >= measure_from {
                    counted += n as u64;
                }
            }
            Ok::<u64, std::io::Error>(counted)
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await.map_err(std::io::Error::other)??;
    }
    let seconds = duration.as_secs_f64();
    Ok(BulkResult {
        direction,
        connections: connections.max(1),
        bytes,
        seconds,
        gbit_per_s: bytes as f64 * 8.0 / seconds / 1e9,
    })
}
