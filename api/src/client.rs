//! A blocking HTTPS client for the node's API, on ureq: `sgctl`, a node asking its peers and
//! the end-to-end tests all talk to the API through it. TLS is our rustls configuration (the
//! node's CA, or the certificate pinned by fingerprint), never the public roots.

use crate::error::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sg_proto::tls::{self, ServerTrust};
use std::io::Read;
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
    #[error("cannot reach the API at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("talking to the API: {0}")]
    Io(String),
    #[error("the API answered something that is not JSON of the expected shape: {0}")]
    BadResponse(String),
    /// The API refused: its status, code and message.
    #[error("{} ({}, HTTP {status})", .body.message, .body.error)]
    Api { status: u16, body: ErrorBody },
}

/// An API answer: status, headers and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
}

impl ApiResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as `T` when the status is a success, else the API's error.
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        if !self.is_success() {
            return Err(self.error());
        }
        serde_json::from_value(self.body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// The error this answer carries (for a status that is not a success).
    pub fn error(&self) -> ClientError {
        match serde_json::from_value::<ErrorBody>(self.body.clone()) {
            Ok(body) => ClientError::Api {
                status: self.status,
                body,
            },
            Err(_) => ClientError::BadResponse(format!("HTTP {}: {}", self.status, self.body)),
        }
    }
}

/// Status, headers (lower-case names) and body of one exchange.
type Exchanged = (u16, Vec<(String, String)>, Vec<u8>);

#[derive(Clone)]
pub struct ApiClient {
    /// `scheme://authority[/prefix]`, no trailing slash.
    base: String,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ApiClient {
    // The admin token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// `url` is `https://host[:port][/prefix]` (or `http://` for a plain proxy in front).
    pub fn new(
        url: &str,
        token: Option<String>,
        trust: Option<ServerTrust>,
    ) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let https = if url.starts_with("https://") {
            true
        } else if url.starts_with("http://") {
            false
        } else {
            return Err(bad());
        };
        let rest = &url[if https { 8 } else { 7 }..];
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains(['?', '#', '@', ' ']) {
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
        let client = ApiClient {
            base: url.trim_end_matches('/').to_string(),
            token,
            agent: agent(tls.clone(), CONNECT_TIMEOUT, IO_TIMEOUT),
            tls,
        };
        // ureq's own URL parser has the last word (ports, IPv6 brackets).
        client
            .agent
            .get(&client.base)
            .request_url()
            .map_err(|_| bad())?;
        Ok(client)
    }

    /// Bounds connecting and each read or write by `timeout` (a node asking its peers).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(self.tls.clone(), timeout, timeout);
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

    /// A typed call: `body` serialized as JSON, a success read as `T`, a refusal as
    /// [`ClientError::Api`].
    pub fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let payload = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Io(e.to_string()))?,
            None => Vec::new(),
        };
        self.request_raw(method, path, &payload)?.into_typed()
    }

    /// A typed `GET`.
    pub fn fetch<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<(), T>("GET", path, None)
    }

    /// Sends one request and reads the whole answer, whatever its status.
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
        let (status, headers, body) = self.exchange(method, path, payload)?;
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
        Ok(ApiResponse {
            status,
            body,
            headers,
        })
    }

    /// A GET whose answer is text, not JSON (`/metrics`).
    pub fn get_text(&self, path: &str) -> Result<(u16, String), ClientError> {
        let (status, _, body) = self.exchange("GET", path, b"")?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn exchange(&self, method: &str, path: &str, payload: &[u8]) -> Result<Exchanged, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .request(method, &url)
            .set("Accept", "application/json");
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let sent = if !payload.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            req.set("Content-Type", "application/json")
                .send_bytes(payload)
        } else {
            req.call()
        };
        let resp = match sent {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(transport_error(&url, t)),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                let v = resp.header(&n)?.to_string();
                Some((n.to_ascii_lowercase(), v))
            })
            .collect();
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_RESPONSE)
            .read_to_end(&mut body)
            .map_err(|e| ClientError::Io(e.to_string()))?;
        Ok((status, headers, body))
    }
}

fn agent(tls: Option<Arc<rustls::ClientConfig>>, connect: Duration, io: Duration) -> ureq::Agent {
    let mut b = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(io)
        .timeout_write(io)
        .redirects(0)
        .user_agent(concat!("sg/", env!("CARGO_PKG_VERSION")));
    if let Some(config) = tls {
        b = b.tls_config(config);
    }
    b.build()
}

/// Tells a refused certificate from a refused connection.
fn transport_error(url: &str, t: ureq::Transport) -> ClientError {
    let text = t.to_string();
    let tls_error = std::error::Error::source(&t).and_then(|s| {
        s.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(ToString::to_string)
            .or_else(|| s.downcast_ref::<rustls::Error>().map(ToString::to_string))
    });
    match (tls_error, t.kind()) {
        (Some(e), _) => ClientError::Tls(e),
        (None, ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme) => {
            ClientError::BadUrl(url.to_string())
        }
        (None, ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed) => ClientError::Connect {
            url: url.to_string(),
            reason: text,
        },
        (None, _) => ClientError::Io(text),
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
    fn urls_parse() {
        assert!(ApiClient::new("http://127.0.0.1:9090/base/", None, None).is_ok());
        assert!(ApiClient::new("http://[::1]/", None, None).is_ok());
        assert!(ApiClient::new("ftp://x", None, None).is_err());
        assert!(ApiClient::new("http://", None, None).is_err());
        assert!(ApiClient::new("http://a:notaport", None, None).is_err());
        assert!(
            ApiClient::new("https://x:1", None, None).is_err(),
            "https needs a CA"
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("a b/ü"), "a%20b%2F%C3%BC");
    }
}
