//! IP rules: who may connect to a destination's cloud port, by source network and port.

use super::{field_error, FieldError, IpRule};
use crate::ports::parse_range;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

/// IP rules one destination may have.
pub const MAX_IP_RULES: usize = 100;

/// IP rules ready to match against a connecting peer.
#[derive(Debug, Clone, Default)]
pub struct IpRules {
    rules: Vec<(IpNet, Option<RangeInclusive<u16>>)>,
    /// Stored rules that no longer parse: refuse everyone rather than open the port.
    refuse_all: bool,
}

/// `::ffff:a.b.c.d/120` is the IPv4 range `a.b.c.d/24`: peers are matched as IPv4.
fn canonical(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(n.trunc());
            }
        }
    }
    net
}

impl IpRules {
    /// Parses and normalizes rules (`10.1.2.3` becomes `10.1.2.3/32`).
    pub fn parse(input: &[IpRule]) -> Result<(IpRules, Vec<IpRule>), FieldError> {
        if input.len() > MAX_IP_RULES {
            return Err(field_error(
                "ip_rules",
                format!("at most {MAX_IP_RULES} rules"),
            ));
        }
        let mut rules = Vec::with_capacity(input.len());
        let mut normalized = Vec::with_capacity(input.len());
        for (i, rule) in input.iter().enumerate() {
            let text = rule.cidr.trim();
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    field_error(
                        format!("ip_rules[{i}].cidr"),
                        format!("{text:?} is not an IPv4 or IPv6 CIDR range like 203.0.113.0/24"),
                    )
                })?
                .trunc();
            let net = canonical(net);
            let ports = match &rule.ports {
                None => None,
                Some(p) => Some(parse_range(p).map_err(|_| {
                    field_error(
                        format!("ip_rules[{i}].ports"),
                        format!("{p:?} is not a port range within 1-65535 like 1024-65535"),
                    )
                })?),
            };
            normalized.push(IpRule {
                cidr: net.to_string(),
                ports: ports.as_ref().map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                }),
            });
            rules.push((net, ports));
        }
        Ok((
            IpRules {
                rules,
                refuse_all: false,
            },
            normalized,
        ))
    }

    /// Parses rules already validated when they were stored; if they no longer parse,
    /// nobody is allowed.
    pub fn from_stored(stored: &[IpRule]) -> IpRules {
        IpRules::parse(stored).map(|(r, _)| r).unwrap_or_else(|e| {
            tracing::error!(
                "stored IP rules do not parse ({}: {}); refusing every connection",
                e.field,
                e.reason
            );
            IpRules {
                rules: Vec::new(),
                refuse_all: true,
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && !self.refuse_all
    }

    /// Whether `peer` may connect. No rules means anyone may.
    pub fn allows(&self, peer: SocketAddr) -> bool {
        if self.refuse_all {
            return false;
        }
        if self.rules.is_empty() {
            return true;
        }
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = peer.ip().to_canonical();
        self.rules.iter().any(|(net, ports)| {
            net.contains(&ip) && ports.as_ref().is_none_or(|r| r.contains(&peer.port()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn rules(list: &[(&str, Option<&str>)]) -> Result<(IpRules, Vec<IpRule>), FieldError> {
        IpRules::parse(
            &list
                .iter()
                .map(|(c, p)| IpRule {
                    cidr: c.to_string(),
                    ports: p.map(str::to_string),
                })
                .collect::<Vec<_>>(),
        )
    }

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules_match_v4_v6_and_source_ports() {
        let (r, norm) = rules(&[
            ("203.0.113.0/24", Some("1024-65535")),
            ("2001:db8::/32", None),
            ("127.0.0.1", None),
        ])
        .unwrap();
        assert_eq!(norm[2].cidr, "127.0.0.1/32");
        assert!(r.allows(peer("203.0.113.7:40000")));
        assert!(
            !r.allows(peer("203.0.113.7:80")),
            "source port outside the range"
        );
        assert!(!r.allows(peer("198.51.100.1:40000")));
        assert!(r.allows(peer("[2001:db8::1]:5")));
        assert!(
            r.allows(peer("[::ffff:127.0.0.1]:5")),
            "v4-mapped peers match v4 rules"
        );
        assert!(!r.allows(peer("127.0.0.2:5")));
        assert!(
            IpRules::default().allows(peer("192.0.2.1:1")),
            "no rules: open"
        );
        let (mapped, norm) = rules(&[("::ffff:203.0.113.0/120", None)]).unwrap();
        assert_eq!(norm[0].cidr, "203.0.113.0/24");
        assert!(mapped.allows(peer("203.0.113.9:1")));
        let broken = IpRules::from_stored(&[IpRule {
            cidr: "nonsense".into(),
            ports: None,
        }]);
        assert!(
            !broken.allows(peer("203.0.113.9:1")),
            "unreadable stored rules refuse"
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        let e = rules(&[("10.0.0.0/8", None), ("10.0.0.0/33", None)]).unwrap_err();
        assert_eq!(e.field, "ip_rules[1].cidr");
        let e = rules(&[("10.0.0.0/8", Some("0-10"))]).unwrap_err();
        assert_eq!(e.field, "ip_rules[0].ports");
        let e = rules(&[("10.0.0.0/8", Some("70000"))]).unwrap_err();
        assert_eq!(e.field, "ip_rules[0].ports");
        let e = rules(&[("10.0.0.0/8", Some("9-3"))]).unwrap_err();
        assert_eq!(e.field, "ip_rules[0].ports");
    }
}
