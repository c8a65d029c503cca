//! ACL path rules for HTTP destinations, enforced on every request.
//!
//! [`HttpGate`] sits between a stream and the private service's socket. Bytes from the
//! cloud application are parsed as HTTP/1.x requests — head, then a Content-Length or
//! chunked body, then the next head — so every request on a keep-alive or pipelined
//! connection is checked, not just the first. A request whose path no rule allows never
//! reaches the service: the gate answers `403 Forbidden` itself and closes. (Requests
//! allowed before it on the same connection still reach the service; if they were
//! pipelined, their answers are not relayed once the 403 is sent.)

use bytes::{Buf, BytesMut};
use sg_proto::acl::{decide_path, Rule};
use sg_proto::pump::ReadReady;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest request head the gate buffers; bigger ones are refused (431).
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum Parse {
    /// Collecting a request head.
    Head,
    /// Forwarding this many body bytes.
    Body(u64),
    /// A chunked body: collecting a chunk-size line.
    ChunkSize,
    /// Forwarding this many chunk bytes, then the CRLF after them.
    ChunkData(u64),
    ChunkCrlf(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// After an upgrade (WebSocket) or CONNECT: no more HTTP to inspect.
    Passthrough,
}

/// Called once when a request is refused: (path, reason).
pub type OnRefuse = Box<dyn Fn(&str, &str) + Send>;

pub struct HttpGate<IO> {
    inner: IO,
    rules: Vec<Rule>,
    state: Parse,
    /// Bytes not yet parsed (a partial head, chunk line or trailers).
    pending: BytesMut,
    /// Parsed and allowed, not yet written to the service.
    forward: BytesMut,
    /// Set once a request is refused: the response still to send, then EOF.
    refusal: Option<BytesMut>,
    on_refuse: OnRefuse,
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn forbidden(status: &str, why: &str) -> BytesMut {
    let body = format!("refused by the sg client's ACL: {why}\n");
    BytesMut::from(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// The path of a request target (origin-form `/p?q` or absolute-form `http://h/p`).
fn target_path(target: &str) -> &str {
    let t = match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => target,
    };
    t.split(['?', '#']).next().unwrap_or(t)
}

impl<IO> HttpGate<IO> {
    pub fn new(inner: IO, rules: Vec<Rule>, on_refuse: OnRefuse) -> Self {
        HttpGate {
            inner,
            rules,
            state: Parse::Head,
            pending: BytesMut::new(),
            forward: BytesMut::new(),
            refusal: None,
            on_refuse,
        }
    }

    /// Refuses the request being parsed. Requests allowed before it still go to the
    /// service; nothing after it does.
    fn refuse(&mut self, status: &str, path: &str, why: &str) {
        (self.on_refuse)(path, why);
        self.refusal = Some(forbidden(status, why));
        self.pending.clear();
    }

    /// Runs the parser over everything pending, moving allowed bytes to `forward`.
    fn parse(&mut self) {
        while self.refusal.is_none() && !self.pending.is_empty() {
            match self.state {
                Parse::Passthrough => {
                    let all = self.pending.split();
                    self.forward.extend_from_slice(&all);
                }
                Parse::Body(n) | Parse::ChunkData(n) => {
                    let take = (n as usize).min(self.pending.len());
                    let chunk = self.pending.split_to(take);
                    self.forward.extend_from_slice(&chunk);
                    let left = n - take as u64;
                    self.state = match (&self.state, left) {
                        (Parse::Body(_), 0) => Parse::Head,
                        (Parse::Body(_), l) => Parse::Body(l),
                        (_, 0) => Parse::ChunkCrlf(2),
                        (_, l) => Parse::ChunkData(l),
                    };
                }
                Parse::ChunkCrlf(n) => {
                    let take = (n as usize).min(self.pending.len());
                    let chunk = self.pending.split_to(take);
                    self.forward.extend_from_slice(&chunk);
                    let left = n - take as u8;
                    self.state = if left == 0 {
                        Parse::ChunkSize
                    } else {
                        Parse::ChunkCrlf(left)
                    };
                }
                Parse::ChunkSize => {
                    let Some(end) = find_crlf(&self.pending) else {
                        if self.pending.len() > 1024 {
                            self.refuse("400 Bad Request", "", "malformed chunked body");
                        }
                        return;
                    };
                    let line = self.pending.split_to(end + 2);
                    let text = String::from_utf8_lossy(&line[..end]);
                    let size = u64::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16);
                    self.forward.extend_from_slice(&line);
                    match size {
                        Ok(0) => self.state = Parse::Trailers,
                        Ok(n) => self.state = Parse::ChunkData(n),
                        Err(_) => self.refuse("400 Bad Request", "", "malformed chunk size"),
                    }
                }
                Parse::Trailers => {
                    let Some(end) = find_crlf(&self.pending) else {
                        return;
                    };
                    let line = self.pending.split_to(end + 2);
                    self.forward.extend_from_slice(&line);
                    if end == 0 {
                        self.state = Parse::Head;
                    }
                }
                Parse::Head => {
                    let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if self.pending.len() > MAX_HEAD {
                            self.refuse(
                                "431 Request Header Fields Too Large",
                                "",
                                "request head too large",
                            );
                        }
                        return;
                    };
                    let head = self.pending.split_to(end + 4);
                    self.on_head(head);
                }
            }
        }
    }

    fn on_head(&mut self, head: BytesMut) {
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if method.is_empty() || target.is_empty() {
            self.refuse("400 Bad Request", "", "not an HTTP request");
            return;
        }
        let path = target_path(target).to_string();
        if let Err(why) = decide_path(&self.rules, &path) {
            self.refuse("403 Forbidden", &path, &why);
            return;
        }
        let mut length = 0u64;
        let (mut chunked, mut upgrade) = (false, method.eq_ignore_ascii_case("CONNECT"));
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                match value.parse() {
                    Ok(n) => length = n,
                    Err(_) => {
                        self.refuse("400 Bad Request", &path, "malformed Content-Length");
                        return;
                    }
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        self.forward.extend_from_slice(&head);
        self.state = if upgrade {
            Parse::Passthrough
        } else if chunked {
            Parse::ChunkSize
        } else if length > 0 {
            Parse::Body(length)
        } else {
            Parse::Head
        };
    }
}

impl<IO: AsyncWrite + Unpin> HttpGate<IO> {
    /// Writes what was allowed; `Ready(Ok)` once nothing is left.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.forward.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.forward) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.forward.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HttpGate<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Take new bytes only when the previous ones are out, so the gate holds at most
        // one write and one head.
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        if this.refusal.is_some() {
            // After a refusal nothing more reaches the service.
            return Poll::Ready(Ok(buf.len()));
        }
        this.pending.extend_from_slice(buf);
        this.parse();
        let _ = this.drain(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HttpGate<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(response) = &mut this.refusal {
            // The 403, then end of stream: the service's answers are no longer relayed.
            let n = response.len().min(buf.remaining());
            buf.put_slice(&response[..n]);
            response.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: ReadReady> ReadReady for HttpGate<IO> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.refusal.is_some() {
            Poll::Ready(Ok(()))
        } else {
            self.inner.poll_read_ready(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sg_proto::acl::parse_rule;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn gate(
        rules: &[&str],
    ) -> (
        HttpGate<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Mutex<Vec<String>>>,
    ) {
        let (near, far) = tokio::io::duplex(1 << 16);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let rules = rules.iter().map(|r| parse_rule(r).unwrap()).collect();
        let g = HttpGate::new(
            near,
            rules,
            Box::new(move |path, why| log.lock().unwrap().push(format!("{path}: {why}"))),
        );
        (g, far, seen)
    }

    #[tokio::test]
    async fn allowed_requests_pass_through_including_bodies_and_pipelining() {
        let (mut g, mut service, seen) = gate(&["acl allow api:80/public/"]);
        let reqs = b"POST /public/a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /public/b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        g.write_all(reqs).await.unwrap();
        g.flush().await.unwrap();
        let mut got = vec![0u8; reqs.len()];
        service.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..], &reqs[..]);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_refused_request_never_reaches_the_service_and_gets_403() {
        let (mut g, mut service, seen) = gate(&["acl allow api:80/public/"]);
        // The first request is fine; the second, pipelined behind it, is not.
        g.write_all(b"GET /public/ok HTTP/1.1\r\n\r\nGET /admin HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        g.flush().await.unwrap();
        g.shutdown().await.unwrap();
        let mut got = Vec::new();
        service.read_to_end(&mut got).await.unwrap();
        assert_eq!(
            got, b"GET /public/ok HTTP/1.1\r\n\r\n",
            "only the allowed request"
        );
        let mut answer = String::new();
        g.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{answer}");
        assert!(
            answer.contains("no ACL path rule allows /admin"),
            "{answer}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn paths_come_from_origin_and_absolute_forms() {
        assert_eq!(target_path("/a/b?x=1"), "/a/b");
        assert_eq!(target_path("http://h:80/a/b?x"), "/a/b");
        assert_eq!(target_path("http://h"), "/");
    }
}
