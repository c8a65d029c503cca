//! A minimal HTTP/1.1 server: answers every request with a fixed body, keeps connections
//! alive, and handles pipelined requests. Enough to stand for a private web service.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head accepted; anything bigger closes the connection.
const MAX_HEAD: usize = 64 * 1024;

pub async fn serve(listener: TcpListener, body: Vec<u8>) -> std::io::Result<()> {
    let response = {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body);
        std::sync::Arc::new(r)
    };
    loop {
        let (sock, _) = listener.accept().await?;
        let response = response.clone();
        tokio::spawn(async move {
            let _ = connection(sock, &response).await;
        });
    }
}

async fn connection(mut sock: TcpStream, response: &[u8]) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut close = false;
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            close |= head.contains("connection: close");
            buf.drain(..end + 4);
            out.extend_from_slice(response);
        }
        if buf.len() > MAX_HEAD {
            return Ok(());
        }
        if !out.is_empty() {
            sock.write_all(&out).await?;
            out.clear();
        }
        if close {
            return sock.shutdown().await;
        }
    }
}
