//! The way out of a locked-down network (F25): the client reaches its nodes through an
//! HTTP CONNECT or SOCKS5 proxy, and TLS to the node runs inside that tunnel, verified as
//! always.
//!
//! `--proxy URL` wins over `HTTPS_PROXY` / `https_proxy`; `NO_PROXY` / `no_proxy` names
//! the nodes dialled directly. Supported: `http://[user:pass@]host:port` (CONNECT, basic
//! authentication), `socks5://[user:pass@]host:port` (the client resolves the node's name)
//! and `socks5h://...` (the proxy resolves it). Every way a proxy can fail is a
//! [`ProxyError`] that names the proxy and what it said; the caller logs it once per attempt
//! and backs off as for any failed dial. A proxy that stalls is bounded by the caller's
//! deadline.

use base64::Engine;
use sg_proto::secret::Secret;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest CONNECT answer head the client reads.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT.
    Http,
    /// SOCKS5; `remote_dns`: the proxy resolves the target's name (`socks5h`).
    Socks5 { remote_dns: bool },
}

/// One proxy, as a URL named it.
#[derive(Clone, PartialEq, Eq)]
pub struct EgressProxy {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub auth: Option<(String, Secret)>,
}

impl fmt::Display for EgressProxy {
    /// The URL with the password left out, for logs and the console.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
        };
        let user = match &self.auth {
            Some((u, _)) => format!("{u}:***@"),
            None => String::new(),
        };
        write!(
            f,
            "{scheme}://{user}{}",
            sg_proto::hostport::host_port(&self.host, self.port)
        )
    }
}

impl fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `%XX` escapes in the user info of a URL.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3).ok_or("a truncated %-escape")?)
                .map_err(|_| "a bad %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad %-escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "user info that is not UTF-8".to_string())
}

impl EgressProxy {
    /// Reads a proxy URL; the error says what is wrong with it (the caller names the flag
    /// or variable it came from).
    pub fn parse(url: &str) -> Result<EgressProxy, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "expected SCHEME://[USER:PASS@]HOST:PORT".to_string())?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks5" => ProxyKind::Socks5 { remote_dns: false },
            "socks5h" => ProxyKind::Socks5 { remote_dns: true },
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}: use http, socks5 or socks5h"
                ))
            }
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err("a proxy URL has no path, query or fragment".into());
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let auth = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u
                    .split_once(':')
                    .ok_or_else(|| "user info must be USER:PASS".to_string())?;
                let (user, pass) = (percent_decode(user)?, percent_decode(pass)?);
                if user.is_empty() || user.len() > 255 || pass.len() > 255 {
                    return Err(
                        "the user name must be 1-255 bytes and the password at most 255".into(),
                    );
                }
                Some((user, Secret::new(pass)))
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6
                .split_once("]:")
                .ok_or_else(|| "expected [IPv6]:PORT".to_string())?;
            (h.to_string(), p)
        } else {
            let (h, p) = hostport
                .rsplit_once(':')
                .ok_or_else(|| "the proxy needs a port (HOST:PORT)".to_string())?;
            (h.to_string(), p)
        };
        if host.is_empty() {
            return Err("the proxy needs a host".into());
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{port:?} is not a port (1-65535)"))?;
        Ok(EgressProxy {
            kind,
            host,
            port,
            auth,
        })
    }
}

/// Which nodes are dialled directly although a proxy is set (`NO_PROXY`): `*`, host names
/// (a name matches itself and its subdomains; a leading `.` is the same), IP addresses and
/// CIDR blocks; ports are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    names: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                out.all = true;
                continue;
            }
            let item = match item.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(v6),
                None => item,
            };
            if let Some((ip, bits)) = item.split_once('/') {
                if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                    out.nets.push((ip, bits));
                }
                continue;
            }
            if let Ok(ip) = item.parse::<IpAddr>() {
                out.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
                continue;
            }
            let name = item.split(':').next().unwrap_or(item);
            out.names
                .push(name.trim_start_matches('.').to_ascii_lowercase());
        }
        out
    }

    /// Whether `host` (a name or an address) is dialled without the proxy.
    pub fn exempts(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.nets.iter().any(|(net, bits)| in_net(ip, *net, *bits));
        }
        let host = host.to_ascii_lowercase();
        self.names
            .iter()
            .any(|n| host == *n || host.ends_with(&format!(".{n}")))
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let bits = u32::from(bits.min(32));
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let bits = u32::from(bits.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The client's proxy settings, from the flag and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub proxy: Option<EgressProxy>,
    pub no_proxy: NoProxy,
    /// The proxy came from `HTTPS_PROXY`, not `--proxy`: then nodes on this host
    /// (`localhost`, loopback addresses) are dialled directly, as most tools do.
    pub from_env: bool,
}

impl ProxySettings {
    /// `flag` (`--proxy`) wins over `HTTPS_PROXY`, then `https_proxy`; `env` reads a
    /// variable. An empty value means none. The error names where the bad URL came from.
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxySettings, String> {
        let from_env = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        };
        let chosen = match flag {
            Some(f) => Some(("--proxy", f.to_string())),
            None => from_env(&["HTTPS_PROXY", "https_proxy"]),
        };
        let env_chosen = chosen
            .as_ref()
            .is_some_and(|(source, _)| *source != "--proxy");
        let proxy = match chosen {
            None => None,
            Some((source, url)) => Some(
                EgressProxy::parse(url.trim())
                    .map_err(|e| format!("{source} {:?}: {e}", redact(&url)))?,
            ),
        };
        let no_proxy = from_env(&["NO_PROXY", "no_proxy"])
            .map(|(_, v)| NoProxy::parse(&v))
            .unwrap_or_default();
        Ok(ProxySettings {
            proxy,
            no_proxy,
            from_env: env_chosen,
        })
    }

    /// The proxy to dial `host` through, if any.
    pub fn for_host(&self, host: &str) -> Option<&EgressProxy> {
        let local = || {
            let h = host.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        };
        self.proxy
            .as_ref()
            .filter(|_| !(self.no_proxy.exempts(host) || (self.from_env && local())))
    }
}

/// A URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, rest)), Some((_, host))) if rest.contains('@') => {
            let user = rest.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// Why a connection through a proxy did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot reach the proxy {proxy}: {source}")]
    Unreachable {
        proxy: String,
        source: std::io::Error,
    },
    #[error(
        "the proxy {proxy} asks for authentication (407); give it as USER:PASS@ in the proxy URL"
    )]
    AuthRequired { proxy: String },
    #[error("the proxy {proxy} did not accept the credentials given for {user:?}")]
    AuthRefused { proxy: String, user: String },
    #[error("the proxy {proxy} refused to connect to {target}: {answer}")]
    Refused {
        proxy: String,
        target: String,
        answer: String,
    },
    #[error("the proxy {proxy} answered something that is not {protocol}: {what}")]
    Garbage {
        proxy: String,
        protocol: &'static str,
        what: String,
    },
    #[error("the proxy {proxy} closed the connection during its handshake")]
    Closed { proxy: String },
    #[error("cannot resolve {host} for the proxy {proxy}: {source}")]
    Resolve {
        proxy: String,
        host: String,
        source: std::io::Error,
    },
}

/// A TCP connection to the proxy; `bind` is `--client-bind`'s source address.
async fn dial_proxy(proxy: &EgressProxy, bind: Option<IpAddr>) -> Result<TcpStream, ProxyError> {
    let unreachable = |source| ProxyError::Unreachable {
        proxy: proxy.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((proxy.host.as_str(), proxy.port))
        .await
        .map_err(unreachable)?
        .filter(|a| bind.is_none_or(|b| a.is_ipv4() == b.is_ipv4()))
        .collect();
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no address of the right family",
    );
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(unreachable)?;
        if let Some(b) = bind {
            socket.bind(SocketAddr::new(b, 0)).map_err(unreachable)?;
        }
        match socket.connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(unreachable(last))
}

/// A connection to `host:port` through `proxy`, ready for the TLS handshake.
pub async fn connect(
    proxy: &EgressProxy,
    host: &str,
    port: u16,
    bind: Option<IpAddr>,
) -> Result<TcpStream, ProxyError> {
    let mut s = dial_proxy(proxy, bind).await?;
    match proxy.kind {
        ProxyKind::Http => http_connect(&mut s, proxy, host, port).await?,
        ProxyKind::Socks5 { remote_dns } => {
            socks5_connect(&mut s, proxy, host, port, remote_dns).await?
        }
    }
    Ok(s)
}

fn closed_or(proxy: &EgressProxy, e: std::io::Error) -> ProxyError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ProxyError::Closed {
            proxy: proxy.to_string(),
        }
    } else {
        ProxyError::Unreachable {
            proxy: proxy.to_string(),
            source: e,
        }
    }
}

async fn http_connect(
    s: &mut TcpStream,
    proxy: &EgressProxy,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let target = sg_proto::hostport::host_port(host, port);
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, pass)) = &proxy.auth {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", pass.expose()));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| closed_or(proxy, e))?;
    // Byte by byte up to the end of the head: nothing after it may be consumed, as it is
    // the node's (it speaks only after the TLS ClientHello, but the rule costs nothing).
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_ANSWER_HEAD {
            return Err(ProxyError::Garbage {
                proxy: proxy.to_string(),
                protocol: "HTTP",
                what: format!("an answer head over {MAX_ANSWER_HEAD} bytes"),
            });
        }
        let b = s.read_u8().await.map_err(|e| closed_or(proxy, e))?;
        head.push(b);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut answer = httparse::Response::new(&mut headers);
    let garbage = |what: String| ProxyError::Garbage {
        proxy: proxy.to_string(),
        protocol: "HTTP",
        what,
    };
    match answer.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(garbage("an incomplete answer".into())),
        Err(e) => {
            let first: String = String::from_utf8_lossy(&head[..head.len().min(80)])
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            return Err(garbage(format!("{e} ({first:?})")));
        }
    }
    let code = answer.code.unwrap_or(0);
    let reason: String = answer
        .reason
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    match code {
        200..=299 => Ok(()),
        // 407 is the rule; some proxies (tinyproxy) answer wrong credentials with 401.
        401 | 407 => match &proxy.auth {
            None => Err(ProxyError::AuthRequired {
                proxy: proxy.to_string(),
            }),
            Some((user, _)) => Err(ProxyError::AuthRefused {
                proxy: proxy.to_string(),
                user: user.clone(),
            }),
        },
        _ => Err(ProxyError::Refused {
            proxy: proxy.to_string(),
            target,
            answer: format!("{code} {reason}"),
        }),
    }
}

/// SOCKS5 reply codes (RFC 1928 section 6) in words.
fn socks_reply(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by the proxy's rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "an unknown reply code",
    }
}

async fn socks5_connect(
    s: &mut TcpStream,
    proxy: &EgressProxy,
    host: &str,
    port: u16,
    remote_dns: bool,
) -> Result<(), ProxyError> {
    let io = |e| closed_or(proxy, e);
    let garbage = |what: String| ProxyError::Garbage {
        proxy: proxy.to_string(),
        protocol: "SOCKS5",
        what,
    };
    // Greeting: no authentication, and user/password when we have them.
    let methods: &[u8] = if proxy.auth.is_some() { &[0, 2] } else { &[0] };
    let mut hello = vec![5, methods.len() as u8];
    hello.extend_from_slice(methods);
    s.write_all(&hello).await.map_err(io)?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.map_err(io)?;
    if choice[0] != 5 {
        return Err(garbage(format!(
            "version {} in its method choice",
            choice[0]
        )));
    }
    match (choice[1], &proxy.auth) {
        (0, _) => {}
        (2, Some((user, pass))) => {
            let mut login = vec![1, user.len() as u8];
            login.extend_from_slice(user.as_bytes());
            login.push(pass.expose().len() as u8);
            login.extend_from_slice(pass.expose().as_bytes());
            s.write_all(&login).await.map_err(io)?;
            let mut status = [0u8; 2];
            s.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(ProxyError::AuthRefused {
                    proxy: proxy.to_string(),
                    user: user.clone(),
                });
            }
        }
        (0xff, None) | (2, None) => {
            return Err(ProxyError::AuthRequired {
                proxy: proxy.to_string(),
            })
        }
        (0xff, Some((user, _))) => {
            return Err(ProxyError::AuthRefused {
                proxy: proxy.to_string(),
                user: user.clone(),
            })
        }
        (m, _) => return Err(garbage(format!("method {m}, which was not offered"))),
    }
    // The request: a name for socks5h, else an address resolved here.
    let mut request = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(ip) => push_ip(&mut request, ip),
        Err(_) if remote_dns => {
            if host.len() > 255 {
                return Err(garbage(format!("{host} is too long a name for SOCKS5")));
            }
            request.push(3);
            request.push(host.len() as u8);
            request.extend_from_slice(host.as_bytes());
        }
        Err(_) => {
            let ip = tokio::net::lookup_host((host, port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .map(|a| a.ip())
                .ok_or_else(|| ProxyError::Resolve {
                    proxy: proxy.to_string(),
                    host: host.to_string(),
                    source: std::io::ErrorKind::NotFound.into(),
                })?;
            push_ip(&mut request, ip);
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    s.write_all(&request).await.map_err(io)?;
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply[0] != 5 {
        return Err(garbage(format!("version {} in its reply", reply[0])));
    }
    if reply[1] != 0 {
        return Err(ProxyError::Refused {
            proxy: proxy.to_string(),
            target: sg_proto::hostport::host_port(host, port),
            answer: socks_reply(reply[1]).to_string(),
        });
    }
    // The bound address, which we do not need, then the stream is ours.
    let skip = match reply[3] {
        1 => 4,
        4 => 16,
        3 => usize::from(s.read_u8().await.map_err(io)?),
        t => return Err(garbage(format!("address type {t} in its reply"))),
    };
    let mut rest = vec![0u8; skip + 2];
    s.read_exact(&mut rest).await.map_err(io)?;
    Ok(())
}

fn push_ip(request: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            request.push(1);
            request.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            request.push(4);
            request.extend_from_slice(&v6.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_read_strictly() {
        let p = EgressProxy::parse("http://alice:s%40cret@proxy.corp:3128").unwrap();
        assert_eq!(p.kind, ProxyKind::Http);
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        let (user, pass) = p.auth.clone().unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("alice", "s@cret"));
        assert_eq!(p.to_string(), "http://alice:***@proxy.corp:3128");
        let s = EgressProxy::parse("socks5h://[::1]:1080/").unwrap();
        assert_eq!(s.kind, ProxyKind::Socks5 { remote_dns: true });
        assert_eq!(s.host, "::1");
        for bad in [
            "proxy:3128",
            "ftp://proxy:21",
            "http://proxy",
            "http://proxy:0",
            "http://proxy:99999",
            "http://:3128",
            "http://proxy:3128/path",
            "http://alice@proxy:3128",
        ] {
            assert!(EgressProxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_flag_wins_and_a_bad_url_names_its_source_without_the_password() {
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://env-proxy:3128".to_string()),
            "NO_PROXY" => Some("localhost,.corp, 10.0.0.0/8,[::1]".to_string()),
            _ => None,
        };
        let s = ProxySettings::resolve(Some("socks5://flag:1080"), env).unwrap();
        assert_eq!(s.proxy.as_ref().unwrap().host, "flag");
        let s = ProxySettings::resolve(None, env).unwrap();
        assert_eq!(s.proxy.as_ref().unwrap().host, "env-proxy");
        assert!(s.for_host("node.corp").is_none());
        assert!(s.for_host("corp").is_none());
        assert!(s.for_host("10.1.2.3").is_none());
        assert!(s.for_host("::1").is_none());
        assert!(s.for_host("node.example.com").is_some());
        assert!(s.for_host("notcorp").is_some());
        assert!(
            s.for_host("127.0.0.1").is_none(),
            "loopback is direct with HTTPS_PROXY"
        );
        let flag = ProxySettings::resolve(Some("http://p:3128"), |_| None).unwrap();
        assert!(flag.for_host("127.0.0.1").is_some(), "but not with --proxy");
        let err = ProxySettings::resolve(Some("http://u:hunter2@proxy"), |_| None).unwrap_err();
        assert!(err.starts_with("--proxy"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = ProxySettings::resolve(None, |k| {
            (k == "https_proxy").then(|| "gopher://x:1".to_string())
        })
        .unwrap_err();
        assert!(err.starts_with("https_proxy"), "{err}");
    }
}
