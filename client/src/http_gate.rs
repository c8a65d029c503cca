//! ACL path rules for HTTP destinations, enforced on every request.
//!
//! [`HttpGate`] sits between a stream and the private service's socket. Bytes from the
//! cloud application are parsed as HTTP/1.x requests — head, then a Content-Length or
//! chunked body, then the next head — so every request on a keep-alive or pipelined
//! connection is checked, not just the first. A request whose path no rule allows never
//! reaches the service: the gate answers `403 Forbidden` itself and closes. (Requests
//! allowed before it on the same connection still reach the service; if they were
//! pipelined, their answers are not relayed once the 403 is sent.)
//!
//! The gate is strict where a lenient parser would let a request slip past it: the path is
//! matched after percent-decoding and removing dot segments (`/public/../admin` is
//! `/admin`), and anything two parsers could read differently — a bare LF, both
//! Content-Length and Transfer-Encoding, duplicate lengths, unknown codings, folded header
//! lines, protocol upgrades — is refused with 400 rather than guessed at.

use crate::http_head::{read_head_with, with_host, Authorities, Framing, Paths};
use bytes::{Buf, BytesMut};
use sg_proto::acl::{decide_path, Rule};
use sg_proto::pump::ReadReady;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest request head (or chunk line, or trailer section) the gate buffers; bigger ones
/// are refused.
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
    /// The CRLF that ends a chunk's data.
    ChunkCrlf,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The connection left HTTP (an upgrade or CONNECT where no path rules apply):
    /// everything from here on is forwarded as is.
    Passthrough,
}

/// What a gated connection's requests must satisfy.
#[derive(Debug, Clone)]
pub struct GatePolicy {
    /// Path rules from each ACL that applies (the node's, and a locked `--acl-file`): a
    /// request must pass every non-empty set.
    pub rules: Vec<Vec<Rule>>,
    /// What a request's Host (or absolute-form authority) may name.
    pub authorities: Authorities,
    /// Replace every request's Host header with this (`host_rewrite`, F28).
    pub rewrite_host: Option<String>,
}

impl GatePolicy {
    /// Whether path rules apply (then paths are read strictly, upgrades refused).
    fn has_path_rules(&self) -> bool {
        self.rules.iter().any(|set| !set.is_empty())
    }
}

/// Called once when a request is refused: (path, reason).
pub type OnRefuse = Box<dyn Fn(&str, &str) + Send>;

pub struct HttpGate<IO> {
    /// The service's connection; dropped (closed) once a request is refused and what was
    /// allowed before it is written, so the service is not left holding an open socket.
    inner: Option<IO>,
    policy: GatePolicy,
    state: Parse,
    /// Bytes not yet parsed (a partial head, chunk line or trailers).
    pending: BytesMut,
    /// How far `pending` was already searched for the end of a head or line.
    scanned: usize,
    /// Parsed and allowed, not yet written to the service.
    forward: BytesMut,
    /// Set once a request is refused: the response still to send, then EOF.
    refusal: Option<BytesMut>,
    on_refuse: OnRefuse,
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

/// Lines must end in CRLF: a bare CR or LF is something two parsers can disagree about.
fn strict_lines(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match c {
        b'\n' => i > 0 && b[i - 1] == b'\r',
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

impl<IO> HttpGate<IO> {
    pub fn new(inner: IO, policy: GatePolicy, on_refuse: OnRefuse) -> Self {
        HttpGate {
            inner: Some(inner),
            policy,
            state: Parse::Head,
            pending: BytesMut::new(),
            scanned: 0,
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
        self.scanned = 0;
    }

    /// Finds `pat` in `pending`, resuming where the last search stopped.
    fn find_pending(&mut self, pat: &[u8]) -> Option<usize> {
        let from = self.scanned.saturating_sub(pat.len() - 1);
        match self.pending[from..]
            .windows(pat.len())
            .position(|w| w == pat)
        {
            Some(i) => {
                self.scanned = 0;
                Some(from + i)
            }
            None => {
                self.scanned = self.pending.len();
                None
            }
        }
    }

    fn bad(&mut self, why: &str) {
        self.refuse("400 Bad Request", "", why);
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
                    let take = usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(self.pending.len());
                    let chunk = self.pending.split_to(take);
                    self.forward.extend_from_slice(&chunk);
                    let left = n - take as u64;
                    self.state = match (&self.state, left) {
                        (Parse::Body(_), 0) => Parse::Head,
                        (Parse::Body(_), l) => Parse::Body(l),
                        (_, 0) => Parse::ChunkCrlf,
                        (_, l) => Parse::ChunkData(l),
                    };
                }
                Parse::ChunkCrlf => {
                    // Exactly CRLF after the chunk's data.
                    if self.pending.len() < 2 {
                        return;
                    }
                    if &self.pending[..2] != b"\r\n" {
                        self.bad("chunk data not followed by CRLF");
                        return;
                    }
                    let crlf = self.pending.split_to(2);
                    self.forward.extend_from_slice(&crlf);
                    self.state = Parse::ChunkSize;
                }
                Parse::ChunkSize => {
                    let Some(end) = self.find_pending(b"\r\n") else {
                        if self.pending.len() > 1024 {
                            self.bad("malformed chunked body");
                        }
                        return;
                    };
                    let line = self.pending.split_to(end + 2);
                    if !strict_lines(&line) {
                        self.bad("a bare CR or LF in a chunk line");
                        return;
                    }
                    let text = String::from_utf8_lossy(&line[..end]);
                    let digits = text.split(';').next().unwrap_or("");
                    // Hex digits only (no sign, no spaces), at most 15 of them.
                    let size = (!digits.is_empty()
                        && digits.len() <= 15
                        && digits.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| u64::from_str_radix(digits, 16).ok())
                    .flatten();
                    self.forward.extend_from_slice(&line);
                    match size {
                        Some(0) => self.state = Parse::Trailers,
                        Some(n) => self.state = Parse::ChunkData(n),
                        None => self.bad("malformed chunk size"),
                    }
                }
                Parse::Trailers => {
                    let Some(end) = self.find_pending(b"\r\n") else {
                        if self.pending.len() > MAX_HEAD {
                            self.bad("trailers too large");
                        }
                        return;
                    };
                    let line = self.pending.split_to(end + 2);
                    if !strict_lines(&line) {
                        self.bad("a bare CR or LF in the trailers");
                        return;
                    }
                    self.forward.extend_from_slice(&line);
                    if end == 0 {
                        self.state = Parse::Head;
                    }
                }
                Parse::Head => {
                    // Empty lines before a request line are ignored (RFC 9112 2.2).
                    while self.pending.starts_with(b"\r\n") {
                        self.pending.advance(2);
                        self.scanned = 0;
                    }
                    if self.pending.is_empty() {
                        return;
                    }
                    let Some(end) = self.find_pending(b"\r\n\r\n") else {
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
        if !strict_lines(&head) {
            self.bad("a bare CR or LF in the request head");
            return;
        }
        let strict = self.policy.has_path_rules();
        let paths = if strict { Paths::Strict } else { Paths::AsSent };
        let request = match read_head_with(&head, &self.policy.authorities, paths) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(e.status(), "", &e.reason());
                return;
            }
        };
        let path = request.path.as_str();
        let verdict = self
            .policy
            .rules
            .iter()
            .filter(|set| !set.is_empty())
            .try_for_each(|set| decide_path(set, path));
        if let Err(why) = verdict {
            self.refuse("403 Forbidden", path, &why);
            return;
        }
        let leaves_http = request.method.eq_ignore_ascii_case("CONNECT") || request.upgrade;
        if strict && request.method.eq_ignore_ascii_case("CONNECT") {
            self.refuse(
                "403 Forbidden",
                path,
                "CONNECT is not allowed where ACL path rules apply",
            );
            return;
        }
        if strict && request.upgrade {
            self.refuse(
                "403 Forbidden",
                path,
                "protocol upgrades are not allowed where ACL path rules apply",
            );
            return;
        }
        match &self.policy.rewrite_host {
            Some(host) => self.forward.extend_from_slice(&with_host(&head, host)),
            None => self.forward.extend_from_slice(&head),
        }
        if leaves_http {
            // Only reached without path rules: what follows is not HTTP any more.
            self.state = Parse::Passthrough;
            return;
        }
        self.state = match request.framing {
            Framing::Chunked => Parse::ChunkSize,
            Framing::Length(n) => Parse::Body(n),
            Framing::Empty => Parse::Head,
        };
    }
}

impl<IO: AsyncWrite + Unpin> HttpGate<IO> {
    /// Writes what was allowed; `Ready(Ok)` once nothing is left.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(inner) = self.inner.as_mut() else {
            self.forward.clear();
            return Poll::Ready(Ok(()));
        };
        while !self.forward.is_empty() {
            match Pin::new(&mut *inner).poll_write(cx, &self.forward) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.forward.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// After a refusal: once what was allowed is out (or cannot go), close the service's
    /// connection.
    fn settle(&mut self, cx: &mut Context<'_>) {
        if self.refusal.is_some() && self.inner.is_some() && self.drain(cx).is_ready() {
            self.close_service();
        }
    }
}

impl<IO> HttpGate<IO> {
    fn close_service(&mut self) {
        self.inner = None;
        self.forward.clear();
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HttpGate<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            // After a refusal nothing more reaches the service, and nothing waits for it.
            this.settle(cx);
            return Poll::Ready(Ok(buf.len()));
        }
        // Take new bytes only when the previous ones are out, so the gate holds at most
        // one write and one head.
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        this.pending.extend_from_slice(buf);
        this.parse();
        if this.refusal.is_some() {
            this.settle(cx);
        } else {
            let _ = this.drain(cx)?;
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            // Refused: what the service will not take is dropped, never waited for.
            this.settle(cx);
            return Poll::Ready(Ok(()));
        }
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            this.settle(cx);
            return Poll::Ready(Ok(()));
        }
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
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
            // The 403, then end of stream: the service's answers are no longer relayed,
            // and once the answer is out its connection is closed whatever was left.
            let n = response.len().min(buf.remaining());
            buf.put_slice(&response[..n]);
            response.advance(n);
            if response.is_empty() {
                this.close_service();
            }
            return Poll::Ready(Ok(()));
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<IO: ReadReady> ReadReady for HttpGate<IO> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Some(inner) if self.refusal.is_none() => inner.poll_read_ready(cx),
            _ => Poll::Ready(Ok(())),
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
        let rules = vec![rules.iter().map(|r| parse_rule(r).unwrap()).collect()];
        let policy = GatePolicy {
            rules,
            authorities: Authorities::new(["api:80"]),
            rewrite_host: None,
        };
        let g = HttpGate::new(
            near,
            policy,
            Box::new(move |path, why| log.lock().unwrap().push(format!("{path}: {why}"))),
        );
        (g, far, seen)
    }

    #[tokio::test]
    async fn allowed_requests_pass_through_including_bodies_and_pipelining() {
        let (mut g, mut service, seen) = gate(&["acl allow api:80/public/"]);
        let reqs = b"POST /public/a HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\nhelloGET /public/b HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
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
        g.write_all(
            b"GET /public/ok HTTP/1.1\r\nHost: api\r\n\r\nGET /admin HTTP/1.1\r\nHost: api\r\n\r\n",
        )
        .await
        .unwrap();
        g.flush().await.unwrap();
        g.shutdown().await.unwrap();
        let mut got = Vec::new();
        service.read_to_end(&mut got).await.unwrap();
        assert_eq!(
            got, b"GET /public/ok HTTP/1.1\r\nHost: api\r\n\r\n",
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

    #[tokio::test]
    async fn a_refusal_closes_the_services_connection_while_the_application_stays() {
        let (mut g, mut service, _) = gate(&["acl allow api:80/public/"]);
        g.write_all(
            b"GET /public/ok HTTP/1.1\r\nHost: api\r\n\r\nGET /admin HTTP/1.1\r\nHost: api\r\n\r\n",
        )
        .await
        .unwrap();
        g.flush().await.unwrap();
        let mut answer = String::new();
        g.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        // The gate is still alive (the application has not closed), yet the service sees
        // the allowed request and then the end of its connection.
        let mut got = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            service.read_to_end(&mut got),
        )
        .await
        .expect("the service's connection is closed")
        .unwrap();
        assert_eq!(got, b"GET /public/ok HTTP/1.1\r\nHost: api\r\n\r\n");
        // Later bytes from the application are swallowed, not an error.
        g.write_all(b"GET /public/ok HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        drop(g);
    }

    async fn answer_to(rules: &[&str], request: &[u8]) -> (String, Vec<u8>) {
        let (mut g, mut service, _) = gate(rules);
        g.write_all(request).await.unwrap();
        g.flush().await.unwrap();
        g.shutdown().await.unwrap();
        let mut forwarded = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            service.read_to_end(&mut forwarded),
        )
        .await;
        let mut answer = String::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            g.read_to_string(&mut answer),
        )
        .await;
        (answer, forwarded)
    }

    #[tokio::test]
    async fn smuggling_and_bypass_attempts_are_refused() {
        let rules = ["acl allow api:80/public/"];
        for (request, why) in [
            (&b"GET /public/../admin HTTP/1.1\r\nHost: api\r\n\r\n"[..], "dot segments"),
            (b"GET /public/%2e%2e/admin HTTP/1.1\r\nHost: api\r\n\r\n", "encoded dot segments"),
            (b"GET /admin?next=http://x/public/ HTTP/1.1\r\nHost: api\r\n\r\n", "URL in the query"),
            (b"GET /public/x HTTP/1.1\nHost: api\n\nGET /admin HTTP/1.1\r\nHost: api\r\n\r\n", "bare LF"),
            (b"POST /public/x HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "CL and TE"),
            (b"POST /public/x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: xchunked\r\n\r\n", "unknown coding"),
            (b"POST /public/x HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "two lengths"),
            (b"POST /public/x HTTP/1.1\r\nHost: api\r\nContent-Length: +5\r\n\r\n", "signed length"),
            (b"GET /public/x HTTP/1.1\r\nHost: api\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n", "folded line"),
            (b"GET /public/x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding : chunked\r\n\r\n", "space before colon"),
            (b"GET /public/x HTTP/1.1\r\nHost: api\r\nUpgrade: h2c\r\n\r\nGET /admin HTTP/1.1\r\nHost: api\r\n\r\n", "upgrade"),
            (b"CONNECT /public/x HTTP/1.1\r\nHost: api\r\n\r\n", "CONNECT"),
            (b"GET /public/..;/admin HTTP/1.1\r\nHost: api\r\n\r\n", "Tomcat ..;"),
            (b"GET /public/;/../admin HTTP/1.1\r\nHost: api\r\n\r\n", "parameter segment"),
            (b"GET /public//../admin HTTP/1.1\r\nHost: api\r\n\r\n", "RFC 3986 //.."),
            (b"GET /public/#/../../admin HTTP/1.1\r\nHost: api\r\n\r\n", "raw #"),
            (b"GET /public/\xff/../../admin HTTP/1.1\r\nHost: api\r\n\r\n", "raw non-ASCII"),
            (b"GET /public/x HTTP/1.1\r\nHost: admin.internal\r\n\r\n", "another virtual host"),
            (b"GET http://admin.internal/public/x HTTP/1.1\r\nHost: api\r\n\r\n", "absolute form"),
            (b"GET /public/x HTTP/1.1\r\nX-A\x00dmin: 1\r\nHost: api\r\n\r\n", "bad header name"),
            (b"POST /public/x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXYGET /admin HTTP/1.1\r\nHost: api\r\n\r\n", "no CRLF after chunk"),
        ] {
            let (answer, forwarded) = answer_to(&rules, request).await;
            assert!(answer.starts_with("HTTP/1.1 4"), "{why}: {answer:?}");
            let text = String::from_utf8_lossy(&forwarded);
            assert!(!text.contains("/admin"), "{why}: /admin reached the service: {text:?}");
        }
    }

    #[tokio::test]
    async fn a_head_sent_byte_by_byte_is_checked_once_complete() {
        let (mut g, mut service, _) = gate(&["acl allow api:80/public/"]);
        for b in b"\r\nGET /public/ok HTTP/1.1\r\nHost: api\r\n\r\n" {
            g.write_all(&[*b]).await.unwrap();
        }
        g.flush().await.unwrap();
        g.shutdown().await.unwrap();
        let mut got = Vec::new();
        service.read_to_end(&mut got).await.unwrap();
        assert_eq!(
            got, b"GET /public/ok HTTP/1.1\r\nHost: api\r\n\r\n",
            "leading empty line skipped"
        );
    }
}
