//! The access control list, as operators write it and as both ends read it.
//!
//! Syntax (the same in the console, in an ACL file and in the API):
//!
//! ```text
//! acl allow HOST:PORT            acl deny HOST:PORT
//! acl allow :22                  (empty host or port means any)
//! acl allow HOST:PORT/api/v1     (HTTP destinations: only requests under this path)
//! no acl HOST:PORT               no acl          show acl
//! ```
//!
//! Decisions: the most specific matching rule wins (host and port, then host or port
//! alone, then any); at equal specificity `deny` wins; once any rule exists, whatever no
//! rule allows is refused. With no rules at all, the client allows exactly its gateway's
//! configured destinations (or nothing, with `--acl-default deny`). For HTTP destinations,
//! path rules then decide each request: the longest matching prefix wins (deny on a tie);
//! if the target has allow path rules and none matches, the request is refused with 403.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// One rule: `acl allow|deny [HOST]:[PORT][/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// Lower-cased; `None` matches any host.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Path prefix for HTTP destinations (starts with `/`).
    pub path: Option<String>,
}

impl Rule {
    /// 2 for host and port, 1 for one of them, 0 for neither.
    fn specificity(&self) -> u8 {
        u8::from(self.host.is_some()) + u8::from(self.port.is_some())
    }

    /// Whether the rule covers a stream to `host:port` dialled at `ip`: its host is that
    /// name, or an address (in any form) equal to the one dialled.
    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        self.host.as_deref().is_none_or(|h| {
            h.eq_ignore_ascii_case(host) || (ip.is_some() && parse_ip_loose(h) == ip)
        }) && self.port.is_none_or(|p| p == port)
    }

    /// Whether the rule names exactly this address.
    fn names(&self, ip: IpAddr) -> bool {
        self.host.as_deref().and_then(parse_ip_loose) == Some(ip)
    }

    /// The target part, as typed: `HOST:PORT/path`.
    pub fn target(&self) -> String {
        let host = self.host.as_deref().unwrap_or("");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let port = self.port.map(|p| p.to_string()).unwrap_or_default();
        format!("{host}:{port}{}", self.path.as_deref().unwrap_or(""))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
        };
        write!(f, "acl {verb} {}", self.target())
    }
}

/// A console or file command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Add(Rule),
    /// `no acl TARGET`: remove the rules for this target.
    Remove(Rule),
    /// `no acl`: remove every rule.
    Clear,
    Show,
}

/// Why a line is not an ACL command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The `HOST:PORT/path` part of a rule; absent parts mean "any".
struct Target {
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
}

fn parse_target(text: &str) -> Result<Target, ParseError> {
    let bad = |why: &str| {
        ParseError(format!(
            "{text:?}: {why}; expected HOST:PORT, :PORT, HOST: or HOST:PORT/path"
        ))
    };
    // [v6]:port/path  or  host:port/path
    let (host, rest) = if let Some(after) = text.strip_prefix('[') {
        let (h, r) = after.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let r = r
            .strip_prefix(':')
            .ok_or_else(|| bad("missing ':' after the address"))?;
        (h.to_string(), r)
    } else {
        let (h, r) = text.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        (h.to_string(), r)
    };
    let (port_text, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let port = if port_text.is_empty() {
        None
    } else {
        match port_text.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(bad("the port must be 1-65535")),
        }
    };
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad("the host has spaces or '/'"));
    }
    if let Some(p) = &path {
        if p.chars().any(char::is_whitespace) {
            return Err(bad("the path has spaces"));
        }
    }
    let host = (!host.is_empty()).then(|| host.to_ascii_lowercase());
    Ok(Target { host, port, path })
}

/// Parses one command (`acl allow …`, `acl deny …`, `no acl …`, `no acl`, `show acl`).
pub fn parse_command(line: &str) -> Result<Command, ParseError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["acl", verb @ ("allow" | "deny"), target] => {
            let Target { host, port, path } = parse_target(target)?;
            let action = if *verb == "allow" {
                Action::Allow
            } else {
                Action::Deny
            };
            Ok(Command::Add(Rule {
                action,
                host,
                port,
                path,
            }))
        }
        ["no", "acl"] => Ok(Command::Clear),
        ["no", "acl", target] => {
            let Target { host, port, path } = parse_target(target)?;
            Ok(Command::Remove(Rule {
                action: Action::Allow,
                host,
                port,
                path,
            }))
        }
        ["show", "acl"] => Ok(Command::Show),
        _ => Err(ParseError(format!(
            "{:?} is not an ACL command; use `acl allow HOST:PORT`, `acl deny HOST:PORT`, `no acl HOST:PORT`, `no acl` or `show acl`",
            line.trim()
        ))),
    }
}

/// Parses a stored or submitted rule (must be `acl allow|deny …`).
pub fn parse_rule(line: &str) -> Result<Rule, ParseError> {
    match parse_command(line)? {
        Command::Add(rule) => Ok(rule),
        _ => Err(ParseError(format!(
            "{:?} is not a rule; rules are `acl allow HOST:PORT` or `acl deny HOST:PORT`",
            line.trim()
        ))),
    }
}

/// Parses an ACL file: one rule per line, `#` comments, blank lines ignored. Errors name
/// the line.
pub fn parse_file(text: &str) -> Result<Vec<Rule>, ParseError> {
    let mut rules = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let rule = parse_rule(line).map_err(|e| ParseError(format!("line {}: {}", i + 1, e.0)))?;
        rules.push(rule);
    }
    Ok(rules)
}

/// An IP address in any form a resolver accepts: dotted quads, IPv6 (IPv4-mapped ones as
/// the IPv4 address) and the `inet_aton` shorthands — `10.5`, `0x0a000005`, `012.0.0.5`,
/// `167772165` — which all name 10.0.0.5. `None` for a host name.
pub fn parse_ip_loose(host: &str) -> Option<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => IpAddr::V4(inet_aton(host)?),
    };
    Some(canonical(ip))
}

/// IPv4-mapped IPv6 addresses are the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The classic BSD parser: one to four parts, each decimal, `0x` hex or `0` octal, the
/// last one filling the bytes that remain.
fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let number = |p: &str| -> Option<u64> {
        if p.is_empty() {
            return None;
        }
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X"))
        {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (p, 10)
        };
        if digits.is_empty() || digits.len() > 11 {
            return None;
        }
        u64::from_str_radix(digits, radix).ok()
    };
    let values: Vec<u64> = parts.iter().map(|p| number(p)).collect::<Option<_>>()?;
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|v| *v > 255) {
        return None;
    }
    let room = 8 * (4 - leading.len() as u32);
    if room < 64 && *last >= (1u64 << room) {
        return None;
    }
    let mut n: u64 = 0;
    for v in leading {
        n = (n << 8) | v;
    }
    n = (n << room) | last;
    u32::try_from(n).ok().map(Ipv4Addr::from)
}

/// Why an address may be dialled only when a rule names it: this machine, a link-local
/// neighbour, or a cloud provider's metadata service (which hands out credentials).
pub fn sensitive(ip: IpAddr) -> Option<&'static str> {
    const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match canonical(ip) {
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(169, 254, 169, 254) => {
            Some("a cloud metadata address")
        }
        IpAddr::V6(v6) if v6 == METADATA_V6 => Some("a cloud metadata address"),
        IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        _ => None,
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    sensitive(ip) == Some("a cloud metadata address")
}

/// What to do when there are no rules at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultPolicy {
    /// Allow the gateway's configured destinations.
    #[default]
    Destinations,
    /// Refuse everything.
    Deny,
}

/// What becomes of a target no rule names, in the words `show acl` uses (console, web UI,
/// API): with rules, it is denied; with none, the default policy decides.
pub fn unnamed_targets(has_rules: bool, default: DefaultPolicy) -> &'static str {
    match (has_rules, default) {
        (true, _) => "targets no rule names are denied",
        (false, DefaultPolicy::Destinations) => {
            "no rules: the gateway's configured destinations are allowed, every other target \
             is denied"
        }
        (false, DefaultPolicy::Deny) => "no rules and --acl-default deny: every target is denied",
    }
}

/// The outcome for a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        /// The HTTP path rules that then decide each request (empty: no filtering).
        path_rules: Vec<Rule>,
    },
    Deny {
        /// Why, in words for the log: the refusing rule or the default.
        reason: String,
    },
}

/// A parsed ACL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<Rule>,
    /// A rule that could not be read: the ACL then refuses everything (fail closed).
    unreadable: Option<String>,
}

impl Acl {
    pub fn new(rules: Vec<Rule>) -> Self {
        Acl {
            rules,
            unreadable: None,
        }
    }

    /// Parses rules sent by the node. The node validated them; if one still does not parse
    /// (a newer node's syntax), the ACL refuses everything rather than guess.
    pub fn from_strings(rules: &[String]) -> Self {
        let mut parsed = Vec::with_capacity(rules.len());
        for r in rules {
            match parse_rule(r) {
                Ok(rule) => parsed.push(rule),
                Err(e) => {
                    return Acl {
                        rules: Vec::new(),
                        unreadable: Some(format!(
                            "the ACL has a rule this client cannot read ({}): refusing everything",
                            e.0
                        )),
                    }
                }
            }
        }
        Acl::new(parsed)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.rules.iter().map(Rule::to_string).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies a console command; returns whether the rules changed.
    pub fn apply(&mut self, cmd: &Command) -> bool {
        let before = self.rules.clone();
        match cmd {
            Command::Add(rule) => {
                // A rule for the same target replaces the old one.
                self.rules.retain(|r| r.target() != rule.target());
                self.rules.push(rule.clone());
            }
            Command::Remove(target) => self.rules.retain(|r| r.target() != target.target()),
            Command::Clear => self.rules.clear(),
            Command::Show => {}
        }
        self.rules != before
    }

    /// Decides a stream to `host:port`. `configured` says whether it is one of the
    /// gateway's destinations (the default with no rules).
    pub fn decide(
        &self,
        host: &str,
        port: u16,
        configured: bool,
        default: DefaultPolicy,
    ) -> Decision {
        self.decide_at(host, None, port, configured, default)
    }

    /// Decides a stream to `host:port` that would be dialled at `ip` (the address the name
    /// resolved to, or the host itself in any form). Rules naming either match; a
    /// loopback, link-local or metadata address must be named by a rule (metadata even
    /// when there are no rules at all), so a name that resolves there, or an address
    /// written in another form, cannot slip past the rules.
    pub fn decide_at(
        &self,
        host: &str,
        ip: Option<IpAddr>,
        port: u16,
        configured: bool,
        default: DefaultPolicy,
    ) -> Decision {
        if let Some(why) = &self.unreadable {
            return Decision::Deny {
                reason: why.clone(),
            };
        }
        if let Some(ip) = ip.map(canonical) {
            if let Some(what) = sensitive(ip) {
                let named = self.rules.iter().any(|r| r.names(ip));
                if !named && (is_metadata(ip) || !self.rules.is_empty()) {
                    return Decision::Deny {
                        reason: format!(
                            "{host} is {ip}, {what}: only a rule naming {ip} allows it"
                        ),
                    };
                }
            }
        }
        let ip = ip.map(canonical);
        if self.rules.is_empty() {
            return match (default, configured) {
                (DefaultPolicy::Destinations, true) => Decision::Allow {
                    path_rules: Vec::new(),
                },
                (DefaultPolicy::Destinations, false) => Decision::Deny {
                    reason: format!(
                        "{host}:{port} is not a configured destination and the ACL is empty"
                    ),
                },
                (DefaultPolicy::Deny, _) => Decision::Deny {
                    reason: "the ACL is empty and --acl-default is deny".into(),
                },
            };
        }
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.matches(host, ip, port))
            .collect();
        // Stream-level rules are those without a path; a path rule also makes its target
        // reachable, with requests filtered by path.
        let Some(best) = matching.iter().map(|r| r.specificity()).max() else {
            return Decision::Deny {
                reason: format!("no ACL rule allows {host}:{port}"),
            };
        };
        let top: Vec<&&Rule> = matching
            .iter()
            .filter(|r| r.specificity() == best)
            .collect();
        if let Some(deny) = top
            .iter()
            .find(|r| r.action == Action::Deny && r.path.is_none())
        {
            return Decision::Deny {
                reason: format!("refused by `{deny}`"),
            };
        }
        // Path denials only filter requests; something must allow the target itself.
        if !top.iter().any(|r| r.action == Action::Allow) {
            return Decision::Deny {
                reason: format!("no ACL rule allows {host}:{port}"),
            };
        }
        // Allowed (by a plain rule, or by path rules that then filter each request).
        let path_rules: Vec<Rule> = matching
            .iter()
            .filter(|r| r.path.is_some())
            .map(|r| (*r).clone())
            .collect();
        Decision::Allow { path_rules }
    }
}

/// Decides one HTTP request path under a stream's path rules. `Err` carries the reason.
pub fn decide_path(path_rules: &[Rule], path: &str) -> Result<(), String> {
    if path_rules.is_empty() {
        return Ok(());
    }
    let mut best: Option<(usize, Action, &Rule)> = None;
    for r in path_rules {
        let prefix = r.path.as_deref().unwrap_or("/");
        if path.starts_with(prefix) {
            let better = match best {
                None => true,
                Some((len, action, _)) => {
                    prefix.len() > len
                        || (prefix.len() == len
                            && r.action == Action::Deny
                            && action == Action::Allow)
                }
            };
            if better {
                best = Some((prefix.len(), r.action, r));
            }
        }
    }
    match best {
        Some((_, Action::Allow, _)) => Ok(()),
        Some((_, Action::Deny, r)) => Err(format!("refused by `{r}`")),
        None if path_rules.iter().any(|r| r.action == Action::Allow) => {
            Err(format!("no ACL path rule allows {path}"))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_address_is_the_same_address() {
        let ten: IpAddr = Ipv4Addr::new(10, 0, 0, 5).into();
        for form in [
            "10.0.0.5",
            "10.5",
            "10.0.5",
            "0x0a000005",
            "012.0.0.5",
            "167772165",
            "::ffff:10.0.0.5",
            "[::ffff:10.0.0.5]",
        ] {
            assert_eq!(parse_ip_loose(form), Some(ten), "{form}");
        }
        for name in ["db.internal", "10.0.0.256", "1.2.3.4.5", "0x", "", "10..5"] {
            assert_eq!(parse_ip_loose(name), None, "{name}");
        }
    }

    #[test]
    fn a_deny_on_an_address_holds_however_the_destination_spells_it() {
        let acl = Acl::new(vec![
            parse_rule("acl allow :22").unwrap(),
            parse_rule("acl deny 10.0.0.5:22").unwrap(),
        ]);
        let ip = parse_ip_loose("0x0a000005");
        assert!(matches!(
            acl.decide_at("0x0a000005", ip, 22, true, DefaultPolicy::Destinations),
            Decision::Deny { .. }
        ));
        assert!(
            matches!(
                acl.decide_at("db.internal", ip, 22, true, DefaultPolicy::Destinations),
                Decision::Deny { .. }
            ),
            "a name that resolves to the denied address is denied too"
        );
        assert!(matches!(
            acl.decide_at(
                "10.0.0.6",
                parse_ip_loose("10.0.0.6"),
                22,
                true,
                DefaultPolicy::Destinations
            ),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn loopback_link_local_and_metadata_need_a_rule_naming_them() {
        let open = Acl::new(vec![parse_rule("acl allow :80").unwrap()]);
        for addr in [
            "127.0.0.1",
            "169.254.1.1",
            "169.254.169.254",
            "fd00:ec2::254",
            "::1",
            "fe80::1",
        ] {
            let ip = parse_ip_loose(addr);
            assert!(
                matches!(
                    open.decide_at("svc", ip, 80, true, DefaultPolicy::Destinations),
                    Decision::Deny { .. }
                ),
                "{addr}"
            );
        }
        let named = Acl::new(vec![parse_rule("acl allow 127.0.0.1:80").unwrap()]);
        assert!(matches!(
            named.decide_at(
                "localhost",
                parse_ip_loose("127.0.0.1"),
                80,
                true,
                DefaultPolicy::Destinations
            ),
            Decision::Allow { .. }
        ));
        // With no rules, configured destinations on this machine still work; metadata never.
        let none = Acl::default();
        assert!(matches!(
            none.decide_at(
                "127.0.0.1",
                parse_ip_loose("127.0.0.1"),
                80,
                true,
                DefaultPolicy::Destinations
            ),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            none.decide_at(
                "169.254.169.254",
                parse_ip_loose("169.254.169.254"),
                80,
                true,
                DefaultPolicy::Destinations
            ),
            Decision::Deny { .. }
        ));
    }

    fn acl(lines: &[&str]) -> Acl {
        Acl::new(lines.iter().map(|l| parse_rule(l).unwrap()).collect())
    }

    fn allowed(a: &Acl, host: &str, port: u16) -> bool {
        matches!(
            a.decide(host, port, true, DefaultPolicy::Destinations),
            Decision::Allow { .. }
        )
    }

    #[test]
    fn syntax_round_trips_and_errors_are_readable() {
        for line in [
            "acl allow 10.0.0.5:5432",
            "acl deny :22",
            "acl allow db.internal:",
            "acl allow api:8080/v1/",
            "acl allow [::1]:6379",
        ] {
            assert_eq!(parse_rule(line).unwrap().to_string(), line);
        }
        assert_eq!(parse_command("no acl").unwrap(), Command::Clear);
        assert_eq!(parse_command("show acl").unwrap(), Command::Show);
        assert!(matches!(
            parse_command("no acl h:1"),
            Ok(Command::Remove(_))
        ));
        let e = parse_rule("acl allow host").unwrap_err();
        assert!(e.0.contains("missing ':'"), "{e}");
        assert!(parse_rule("acl allow h:99999")
            .unwrap_err()
            .0
            .contains("1-65535"));
        assert!(parse_rule("acl permit h:1").is_err());
        assert!(parse_rule("show acl").unwrap_err().0.contains("not a rule"));
    }

    #[test]
    fn files_skip_comments_and_name_the_bad_line() {
        let rules = parse_file("# db\nacl allow db:5432  # primary\n\nacl deny :22\n").unwrap();
        assert_eq!(rules.len(), 2);
        let e = parse_file("acl allow a:1\nacl allow nonsense\n").unwrap_err();
        assert!(e.0.starts_with("line 2:"), "{e}");
    }

    #[test]
    fn the_most_specific_rule_wins_and_deny_wins_ties() {
        let a = acl(&["acl deny :5432", "acl allow db:5432"]);
        assert!(allowed(&a, "db", 5432), "host+port beats port alone");
        assert!(!allowed(&a, "other", 5432));
        let a = acl(&["acl allow db:", "acl deny :5432"]);
        assert!(!allowed(&a, "db", 5432), "equal specificity: deny wins");
        assert!(allowed(&a, "db", 80));
        let a = acl(&["acl allow :", "acl deny db:5432"]);
        assert!(!allowed(&a, "db", 5432));
        assert!(allowed(&a, "x", 1));
    }

    #[test]
    fn once_rules_exist_what_none_allows_is_refused() {
        let a = acl(&["acl allow db:5432"]);
        assert!(!allowed(&a, "cache", 6379), "configured but not allowed");
        match a.decide("cache", 6379, true, DefaultPolicy::Destinations) {
            Decision::Deny { reason } => {
                assert!(reason.contains("no ACL rule allows cache:6379"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn with_no_rules_the_default_decides() {
        let a = Acl::default();
        assert!(matches!(
            a.decide("h", 1, true, DefaultPolicy::Destinations),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            a.decide("h", 1, false, DefaultPolicy::Destinations),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            a.decide("h", 1, true, DefaultPolicy::Deny),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn path_rules_filter_http_requests() {
        let a = acl(&[
            "acl allow api:8080/public/",
            "acl deny api:8080/public/secret",
        ]);
        let Decision::Allow { path_rules } =
            a.decide("api", 8080, true, DefaultPolicy::Destinations)
        else {
            panic!("a path rule makes the target reachable")
        };
        assert!(decide_path(&path_rules, "/public/index.html").is_ok());
        assert!(decide_path(&path_rules, "/public/secret/x")
            .unwrap_err()
            .contains("refused by"));
        assert!(decide_path(&path_rules, "/admin")
            .unwrap_err()
            .contains("no ACL path rule allows /admin"));
        assert!(decide_path(&[], "/anything").is_ok());
    }

    #[test]
    fn deny_path_rules_only_filter_they_never_allow() {
        let a = acl(&["acl allow db:5432", "acl deny :/admin"]);
        assert!(allowed(&a, "db", 5432));
        assert!(
            !allowed(&a, "other", 80),
            "a deny path rule does not open other targets"
        );
    }

    #[test]
    fn an_unreadable_rule_refuses_everything() {
        let a = Acl::from_strings(&["acl allow db:5432".into(), "acl maybe x:1".into()]);
        match a.decide("db", 5432, true, DefaultPolicy::Destinations) {
            Decision::Deny { reason } => assert!(reason.contains("cannot read"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_edit_the_list() {
        let mut a = Acl::default();
        assert!(a.apply(&parse_command("acl allow db:5432").unwrap()));
        assert!(
            a.apply(&parse_command("acl deny db:5432").unwrap()),
            "same target: replaced"
        );
        assert_eq!(a.to_strings(), vec!["acl deny db:5432"]);
        assert!(a.apply(&parse_command("no acl db:5432").unwrap()));
        assert!(a.is_empty());
        assert!(!a.apply(&parse_command("no acl").unwrap()));
    }
}
