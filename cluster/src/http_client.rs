//! A small blocking HTTPS client for the node's API, used by `sgctl` and the end-to-end
//! tests. One request per connection (`Connection: close`), JSON in and out.

use rustls::ClientConfig;
use serde_json::Value;
use sg_proto::tls::{self, ServerTrust};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read; the API never sends more.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not an API URL like https://127.0.0.1:9090")]
    BadUrl(String),
    #[error("cannot reach the API at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("talking to the API: {0}")]
    Io(#[from] std::io::Error),
    #[error("the API answered something that is not HTTP/JSON: {0}")]
    BadResponse(String),
}

/// An API answer: status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
}

impl ApiResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Clone)]
pub struct ApiClient {
    host: String,
    port: u16,
    prefix: String,
    token: Option<String>,
    tls: Option<Arc<ClientConfig>>,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl ApiClient {
    /// `url` is `https://host:port[/prefix]` (or `http://` for a plain proxy in front).
    pub fn new(
        url: &str,
        token: Option<String>,
        trust: Option<ServerTrust>,
    ) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
            None => (rest, String::new()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_string(), p.parse().map_err(|_| bad())?)
            }
            _ => (authority.to_string(), if https { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let tls = if https {
            let trust = trust.ok_or_else(|| {
                ClientError::Tls(
                    "no CA to verify the API with: pass --ca FILE (the node's DATA_DIR/ca.pem)"
                        .into(),
                )
            })?;
            Some(Arc::new(
                tls::client_config(trust, None).map_err(|e| ClientError::Tls(e.to_string()))?,
            ))
        } else {
            None
        };
        Ok(ApiClient {
            host,
            port,
            prefix,
            token,
            tls,
            connect_timeout: CONNECT_TIMEOUT,
            io_timeout: IO_TIMEOUT,
        })
    }

    /// Bounds connecting and each read or write by `timeout` (a node asking its peers).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.io_timeout = timeout;
        self
    }

    pub fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.request("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> Result<ApiResponse, ClientError> {
        self.request("POST", path, Some(body))
    }
    pub fn patch(&self, path: &str, body: &Value) -> Result<ApiResponse, ClientError> {
        self.request("PATCH", path, Some(body))
    }
    pub fn put(&self, path: &str, body: &Value) -> Result<ApiResponse, ClientError> {
        self.request("PUT", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.request("DELETE", path, None)
    }

    /// Sends one request and reads the whole answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, ClientError> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        self.request_raw(method, path, payload.as_bytes())
    }

    /// Like [`ApiClient::request`] with a body sent exactly as given (tests send bad JSON).
    pub fn request_raw(
        &self,
        method: &str,
        path: &str,
        payload: &[u8],
    ) -> Result<ApiResponse, ClientError> {
        let (status, body) = self.exchange(method, path, payload)?;
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                ClientError::BadResponse(format!(
                    "{e}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ))
            })?
        };
        Ok(ApiResponse { status, body })
    }

    /// A GET whose answer is text, not JSON (`/metrics`).
    pub fn get_text(&self, path: &str) -> Result<(u16, String), ClientError> {
        let (status, body) = self.exchange("GET", path, b"")?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        payload: &[u8],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let host_header = sg_proto::hostport::host_port(&self.host, self.port);
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.prefix
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if !payload.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                payload.len()
            ));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(payload);

        let tcp = self.connect()?;
        let raw = match &self.tls {
            Some(config) => {
                let name = sg_proto::tls::server_name(&self.host)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                stream.write_all(&request).map_err(tls_or_io)?;
                read_all(&mut stream)?
            }
            None => {
                let mut tcp = tcp;
                tcp.write_all(&request)?;
                read_all(&mut tcp)?
            }
        };
        parse_response(&raw)
    }

    fn connect(&self) -> Result<TcpStream, ClientError> {
        let target = format!("{}:{}", self.host.trim_matches(['[', ']']), self.port);
        let err = |source| ClientError::Connect {
            addr: target.clone(),
            source,
        };
        let addrs: Vec<_> = (self.host.trim_matches(['[', ']']), self.port)
            .to_socket_addrs()
            .map_err(err)?
            .collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.io_timeout))?;
                    s.set_write_timeout(Some(self.io_timeout))?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(err(last))
    }
}

fn tls_or_io(e: std::io::Error) -> ClientError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls_err) => ClientError::Tls(tls_err.to_string()),
        None => ClientError::Io(e),
    }
}

fn read_all<R: Read>(r: &mut R) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    match r.take(MAX_RESPONSE).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // A server that closes without TLS close_notify after a complete answer is fine.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(out),
        Err(e) => Err(tls_or_io(e)),
    }
}

fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| ClientError::BadResponse("no end of headers".into()))?;
    let head = std::str::from_utf8(&raw[..split])
        .map_err(|_| ClientError::BadResponse("headers are not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::BadResponse(format!("status line {status_line:?}")))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| ClientError::BadResponse("bad chunk".into()))?;
        let size_text = std::str::from_utf8(&data[..end]).unwrap_or("");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| ClientError::BadResponse("bad chunk size".into()))?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(ClientError::BadResponse("truncated chunk".into()));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let (status, body) =
            parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 9\r\n\r\n{\"a\":1}\r\n")
                .unwrap();
        assert_eq!(status, 201);
        assert_eq!(body, b"{\"a\":1}\r\n");
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.1, b"{\"b\":2}");
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert!(r.1.is_empty());
    }

    #[test]
    fn urls_parse() {
        let c = ApiClient::new("http://127.0.0.1:9090/base/", None, None).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.prefix.as_str()),
            ("127.0.0.1", 9090, "/base")
        );
        assert!(ApiClient::new("ftp://x", None, None).is_err());
        assert!(
            ApiClient::new("https://x:1", None, None).is_err(),
            "https needs a CA"
        );
    }
}
