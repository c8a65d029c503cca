//! One HTTP/1.x request head, read the way the strictest server would read it.
//!
//! Path rules are only as good as the agreement between this reader and the private
//! service: if the gate sees `/public/x` and Tomcat serves `/admin`, the rule is worth
//! nothing. So where servers are known to disagree the head is refused rather than
//! interpreted: `;` path parameters (`/public/..;/admin` is `/admin` to Tomcat and Jetty),
//! empty segments together with `..` (`/public//../admin` is `/public/admin` under RFC 3986
//! and `/admin` where slashes are merged), a raw `#`, raw non-ASCII bytes, header names
//! that are not tokens, several `Host` headers, an absolute-form authority that differs
//! from `Host`, and an authority that does not name the destination (a virtual host
//! behind the same address could answer).
//!
//! `httparse` tokenizes (it refuses bad method tokens, bad header names and folded lines);
//! the checks above sit on top of it.

use sg_proto::acl::parse_ip_loose;

/// Most header lines one request may have.
pub const MAX_HEADERS: usize = 128;

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the gate needs from an acceptable head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// Percent-decoded, dot segments removed, slashes merged: what path rules match.
    pub path: String,
    pub framing: Framing,
    /// An `Upgrade` header is present (the connection would leave HTTP).
    pub upgrade: bool,
}

/// Why a head is not acceptable, with the status the gate answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed, or readable in more than one way.
    Malformed(String),
    /// 421: the request names another host than the destination.
    WrongHost(String),
    /// 431: too many header lines.
    TooManyHeaders,
}

impl HeadError {
    pub fn status(&self) -> &'static str {
        match self {
            HeadError::Malformed(_) => "400 Bad Request",
            HeadError::WrongHost(_) => "421 Misdirected Request",
            HeadError::TooManyHeaders => "431 Request Header Fields Too Large",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            HeadError::Malformed(why) | HeadError::WrongHost(why) => why.clone(),
            HeadError::TooManyHeaders => format!("more than {MAX_HEADERS} header lines"),
        }
    }
}

fn malformed(why: impl Into<String>) -> HeadError {
    HeadError::Malformed(why.into())
}

/// The names a request may give as its authority (`Host`, or an absolute-form target):
/// the private service's own `host:port`, and the cloud address the application dialled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorities {
    names: Vec<(String, u16)>,
    /// The gate replaces the Host header (`host_rewrite`), so the service never sees the
    /// one sent and it may name anything; an absolute-form target, which servers prefer
    /// to Host, must still name the destination.
    host_replaced: bool,
}

impl Authorities {
    /// From `host:port` strings (`[v6]:port` for IPv6); unreadable ones are skipped.
    pub fn new<'a>(items: impl IntoIterator<Item = &'a str>) -> Self {
        let names = items
            .into_iter()
            .filter_map(|a| split_authority(a).ok())
            .filter_map(|(h, p)| Some((h.to_ascii_lowercase(), p?)))
            .collect();
        Authorities {
            names,
            host_replaced: false,
        }
    }

    /// The same names, for a gate that replaces the Host header: see `host_replaced`.
    pub fn host_replaced(self) -> Self {
        Authorities {
            host_replaced: true,
            ..self
        }
    }

    /// Whether `host[:port]` is one of the names (the port, when given, must be its port;
    /// addresses match in any spelling).
    fn admits(&self, host: &str, port: Option<u16>) -> bool {
        let ip = parse_ip_loose(host);
        self.names.iter().any(|(name, p)| {
            let same_host =
                name.eq_ignore_ascii_case(host) || (ip.is_some() && parse_ip_loose(name) == ip);
            same_host && port.is_none_or(|port| port == *p)
        })
    }

    fn describe(&self) -> String {
        let list: Vec<String> = self
            .names
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect();
        list.join(", ")
    }
}

/// `host[:port]` → (host, port). The host is a registered name (letters, digits, `-._~`)
/// or a bracketed IPv6 address; no user info, no empty port.
fn split_authority(auth: &str) -> Result<(&str, Option<u16>), String> {
    let bad = || format!("the authority {auth:?} is not host[:port]");
    let (host, port) = if let Some(rest) = auth.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => (v6, None),
            p => (v6, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    if !auth.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(bad());
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
    };
    Ok((host, port))
}

/// Reads a complete head (request line to the empty line, CRLF endings already checked)
/// and checks it names `destination`.
pub fn read_head(head: &[u8], destination: &Authorities) -> Result<RequestHead, HeadError> {
    read_head_with(head, destination, Paths::Strict)
}

/// How a head's path is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paths {
    /// Normalized for path rules, refusing what servers read differently.
    Strict,
    /// Taken as sent (no path rules apply): `;` parameters and the like pass.
    AsSent,
}

/// [`read_head`], with the path read as `paths` says.
pub fn read_head_with(
    head: &[u8],
    destination: &Authorities,
    paths: Paths,
) -> Result<RequestHead, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(malformed("bytes after the request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => {
            return Err(malformed(format!(
                "not a valid HTTP/1.x request head ({e})"
            )))
        }
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(malformed("an incomplete request line"));
    };
    let http10 = version == 0;
    let (authority, path) = split_target(target)?;
    let path = match paths {
        Paths::Strict => normalize_path(path)?,
        Paths::AsSent => path.to_string(),
    };

    let mut host: Option<&str> = None;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut upgrade = false;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| malformed(format!("a non-UTF-8 value in header {}", h.name)))?
            .trim_matches([' ', '\t']);
        if h.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(malformed("more than one Host header"));
            }
            host = Some(value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed("a malformed Content-Length"));
            }
            let n: u64 = value.parse().unwrap_or(u64::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(malformed("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !value.eq_ignore_ascii_case("chunked") || http10 {
                return Err(malformed(
                    "a Transfer-Encoding other than one \"chunked\" on HTTP/1.1",
                ));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if chunked && length.is_some() {
        return Err(malformed("both Content-Length and Transfer-Encoding"));
    }
    if host.is_none() && !http10 {
        return Err(malformed("an HTTP/1.1 request without a Host header"));
    }
    if let (Some(a), Some(h)) = (authority, host) {
        if !a.eq_ignore_ascii_case(h) {
            return Err(malformed(format!(
                "the target names {a:?} but the Host header {h:?}"
            )));
        }
    }
    let checked = if destination.host_replaced {
        authority
    } else {
        authority.or(host)
    };
    if let Some(named) = checked {
        let (h, p) = split_authority(named).map_err(malformed)?;
        if !destination.admits(h, p) {
            return Err(HeadError::WrongHost(format!(
                "the request is for {named:?}, not this destination ({})",
                destination.describe()
            )));
        }
    }
    Ok(RequestHead {
        method: method.to_string(),
        path,
        framing: match (chunked, length) {
            (true, _) => Framing::Chunked,
            (false, Some(n)) if n > 0 => Framing::Length(n),
            _ => Framing::Empty,
        },
        upgrade,
    })
}

/// A request target → (absolute-form authority, raw path without the query).
fn split_target(target: &str) -> Result<(Option<&str>, &str), HeadError> {
    if let Some(b) = target.bytes().find(|b| !(0x21..0x7f).contains(b)) {
        return Err(malformed(format!(
            "byte 0x{b:02x} in the request target (only percent-encoded non-ASCII is read one way)"
        )));
    }
    if target.contains('#') {
        return Err(malformed("a '#' in the request target"));
    }
    let without_query = target.split('?').next().unwrap_or("");
    if without_query.starts_with('/') {
        return Ok((None, without_query));
    }
    if target == "*" {
        return Ok((None, "/"));
    }
    let lower = without_query.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &without_query[7..]
    } else if lower.starts_with("https://") {
        &without_query[8..]
    } else {
        return Err(malformed(
            "the request target is not a path or an http(s) URL",
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(malformed("user information in the request target"));
    }
    Ok((Some(authority), path))
}

/// `head` (already read by [`read_head`]) with its Host header set to `host`, added after
/// the request line when the request had none (HTTP/1.0).
pub fn with_host(head: &[u8], host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + host.len());
    let mut replaced = false;
    // Lines end in CRLF (checked before); the last two "lines" are the empty line's.
    let body = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let is_host = i > 0
            && line
                .iter()
                .position(|b| *b == b':')
                .is_some_and(|colon| line[..colon].eq_ignore_ascii_case(b"host"));
        if is_host {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(host.as_bytes());
            replaced = true;
        } else {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"\r\n");
        if i == 0 && !head_has_host(head) {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
            replaced = true;
        }
    }
    debug_assert!(replaced);
    out.extend_from_slice(b"\r\n");
    out
}

fn head_has_host(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n').skip(1).any(|line| {
        line.iter()
            .position(|b| *b == b':')
            .is_some_and(|colon| line[..colon].eq_ignore_ascii_case(b"host"))
    })
}

/// Percent-decodes and normalizes a path for matching. `Err` for what servers read
/// differently: encoded `/` `\` NUL or controls, `;` parameters, empty segments next to
/// `..`, and bytes that are not UTF-8 once decoded.
pub fn normalize_path(raw: &str) -> Result<String, HeadError> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or_else(|| malformed("a truncated %-escape in the path"))?;
            let text =
                std::str::from_utf8(hex).map_err(|_| malformed("a bad %-escape in the path"))?;
            let b = u8::from_str_radix(text, 16)
                .map_err(|_| malformed("a bad %-escape in the path"))?;
            if b == b'/' || b == b'\\' || b == 0 {
                return Err(malformed("an encoded '/', '\\' or NUL in the path"));
            }
            decoded.push(b);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    if decoded
        .iter()
        .any(|b| *b < 0x20 || *b == 0x7f || *b == b'\\')
    {
        return Err(malformed("control characters or '\\' in the path"));
    }
    if decoded.contains(&b';') {
        return Err(malformed(
            "a ';' in the path (servers disagree about path parameters)",
        ));
    }
    let text = String::from_utf8(decoded).map_err(|_| malformed("the path is not UTF-8"))?;
    let segments: Vec<&str> = text.split('/').collect();
    let interior_empty =
        segments.len() > 2 && segments[1..segments.len() - 1].iter().any(|s| s.is_empty());
    if interior_empty && segments.contains(&"..") {
        return Err(malformed(
            "an empty segment together with '..' (servers disagree about '//')",
        ));
    }
    // Remove dot segments and empty segments (RFC 3986 5.2.4, plus `//` merged).
    let mut kept: Vec<&str> = Vec::new();
    for seg in &segments {
        match *seg {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut path = format!("/{}", kept.join("/"));
    if text.ends_with('/') && path.len() > 1 {
        path.push('/');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Authorities {
        Authorities::new(["api:8080", "sg.example.com:31000", "127.0.0.1:31000"])
    }

    fn read(head: &str) -> Result<RequestHead, HeadError> {
        read_head(head.as_bytes(), &api())
    }

    #[test]
    fn paths_are_normalized_before_matching() {
        let p = |s| normalize_path(s).unwrap();
        assert_eq!(p("/a/b"), "/a/b");
        assert_eq!(p("/public/../admin"), "/admin");
        assert_eq!(p("/public/%2e%2e/admin"), "/admin");
        assert_eq!(p("/%61dmin"), "/admin");
        assert_eq!(p("//public//./x/"), "/public/x/");
        assert_eq!(p("/caf%C3%A9"), "/café");
        for bad in ["/a%2fb", "/a%5cb", "/a%zz", "/a%2", "/a%ff"] {
            assert!(normalize_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_servers_read_differently_is_refused() {
        for (target, why) in [
            ("/public/..;/admin", "Tomcat path parameter"),
            ("/public/;/../admin", "parameter segment"),
            ("/public/%3b/../admin", "encoded parameter"),
            ("/public//../admin", "empty segment before .."),
            ("/public/..//admin", "empty segment after .."),
            ("/public/%2e%2e//admin", "encoded .. next to //"),
            ("/public/x#/../../admin", "raw #"),
        ] {
            let head = format!("GET {target} HTTP/1.1\r\nHost: api:8080\r\n\r\n");
            assert!(
                matches!(read(&head), Err(HeadError::Malformed(_))),
                "{why}: {target}"
            );
        }
        let raw = b"GET /public/\xc3\xa9 HTTP/1.1\r\nHost: api:8080\r\n\r\n";
        assert!(read_head(raw, &api()).is_err(), "raw non-ASCII");
        let folded = "GET /public/ HTTP/1.1\r\nHost: api:8080\r\nX\x01Y: 1\r\n\r\n";
        assert!(read(folded).is_err(), "a header name that is not a token");
    }

    #[test]
    fn the_authority_must_name_the_destination() {
        let ok = |host: &str| read(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        for good in [
            "api:8080",
            "API",
            "sg.example.com:31000",
            "127.0.0.1:31000",
            "0x7f000001",
        ] {
            assert!(ok(good).is_ok(), "{good}");
        }
        for wrong in ["admin.internal", "api:9090", "127.0.0.2:31000"] {
            assert!(matches!(ok(wrong), Err(HeadError::WrongHost(_))), "{wrong}");
        }
        for bad in ["api:", "user@api", "api:80:80", "a b"] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        assert!(read("GET / HTTP/1.1\r\n\r\n").is_err(), "1.1 needs a Host");
        assert!(read("GET / HTTP/1.0\r\n\r\n").is_ok(), "1.0 need not");
        assert!(read("GET / HTTP/1.1\r\nHost: api\r\nHost: api\r\n\r\n").is_err());
        assert!(read("GET http://api:8080/x HTTP/1.1\r\nHost: api:8080\r\n\r\n").is_ok());
        assert!(
            read("GET http://admin/x HTTP/1.1\r\nHost: api:8080\r\n\r\n").is_err(),
            "absolute form and Host disagree"
        );
        assert!(matches!(
            read("GET http://admin/x HTTP/1.0\r\n\r\n"),
            Err(HeadError::WrongHost(_))
        ));
    }

    #[test]
    fn a_host_that_is_replaced_may_name_anything_but_an_absolute_target_may_not() {
        let replaced = api().host_replaced();
        let read = |h: &str| read_head(h.as_bytes(), &replaced);
        assert!(read("GET / HTTP/1.1\r\nHost: sg-load\r\n\r\n").is_ok());
        assert!(read("GET / HTTP/1.1\r\nHost: admin.internal\r\n\r\n").is_ok());
        assert!(matches!(
            read("GET http://admin.internal/ HTTP/1.1\r\nHost: admin.internal\r\n\r\n"),
            Err(HeadError::WrongHost(_))
        ));
        assert!(read("GET http://api:8080/ HTTP/1.1\r\nHost: api:8080\r\n\r\n").is_ok());
    }

    #[test]
    fn the_host_header_is_replaced_or_added() {
        let head = b"GET /a;b HTTP/1.1\r\nhOsT: cloud.example:30001\r\nX-A: 1\r\n\r\n";
        assert_eq!(
            with_host(head, "db.internal:8080"),
            b"GET /a;b HTTP/1.1\r\nHost: db.internal:8080\r\nX-A: 1\r\n\r\n"
        );
        assert_eq!(
            with_host(b"GET / HTTP/1.0\r\nX-A: 1\r\n\r\n", "db.internal"),
            b"GET / HTTP/1.0\r\nHost: db.internal\r\nX-A: 1\r\n\r\n"
        );
        assert_eq!(
            with_host(b"GET / HTTP/1.0\r\n\r\n", "db"),
            b"GET / HTTP/1.0\r\nHost: db\r\n\r\n"
        );
        // Without path rules a path is taken as sent.
        let r = read_head_with(
            b"GET /a;jsessionid=1 HTTP/1.1\r\nHost: api:8080\r\n\r\n",
            &api(),
            Paths::AsSent,
        )
        .unwrap();
        assert_eq!(r.path, "/a;jsessionid=1");
    }

    #[test]
    fn framing_is_read_strictly() {
        let h = read("POST /a HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        let h =
            read("POST /a HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        for bad in [
            "POST /a HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /a HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST /a HTTP/1.1\r\nHost: api\r\nContent-Length: +5\r\n\r\n",
            "POST /a HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: api\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: api\r\nTransfer-Encoding : chunked\r\n\r\n",
            "GET /a HTTP/2.0\r\nHost: api\r\n\r\n",
            "GET  /a HTTP/1.1\r\nHost: api\r\n\r\n",
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }
}
