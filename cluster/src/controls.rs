//! A destination's security controls, parsed and checked in one place: **IP rules** (who
//! may connect to its cloud port) and **user-side TLS** (whether the node terminates TLS
//! on the cloud port, and whether it demands a client certificate). The state validates
//! requests with these types; the destination actor enforces with them.

use crate::pki::CertificateAuthority;
use crate::ports::parse_range;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sg_proto::frame::ResourceTls;
use sg_proto::service_trust::MAX_UPLOADED_CERTIFICATES;
use sg_proto::tls;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

/// IP rules one destination may have.
pub const MAX_IP_RULES: usize = 100;
/// Largest PEM document accepted for a certificate, key or CA bundle.
pub const MAX_PEM_LEN: usize = 64 * 1024;
/// Lifetime of a certificate the node issues for a cloud port.
const ISSUED_CERT_DAYS: u64 = 825;

/// A field that failed validation, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A certificate and its key come together or not at all; a lone one names the missing
/// field. Each argument is the field's path and its value.
fn cert_and_key<T>(
    cert: (&str, Option<T>),
    key: (&str, Option<T>),
) -> Result<Option<(T, T)>, FieldError> {
    match (cert.1, key.1) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(field_error(key.0, format!("give it with {}", cert.0))),
        (None, Some(_)) => Err(field_error(cert.0, format!("give it with {}", key.0))),
    }
}

pub use sg_api::destinations::{CloudTlsInput, CloudTlsMode, IpRule};

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

/// Checks resource-side TLS settings before they are stored and sent to clients.
/// `resource_host` is the name verified when no `server_name` is given.
pub fn validate_resource_tls(
    t: &ResourceTls,
    resource_host: &str,
) -> Result<ResourceTls, FieldError> {
    let mut t = t.clone();
    if !t.enabled {
        // Off: nothing else is kept.
        return Ok(ResourceTls::default());
    }
    for (field, pem) in [
        ("resource_tls.ca_pem", &t.ca_pem),
        ("resource_tls.client_cert_pem", &t.client_cert_pem),
        ("resource_tls.client_key_pem", &t.client_key_pem),
    ] {
        if let Some(p) = pem {
            check_len(field, p)?;
        }
    }
    // The client decides about the system's trust store on its own machine: the node
    // checks only what was uploaded.
    let trust = match &t.ca_pem {
        Some(ca) => {
            let certs = tls::certs_from_pem("ca_pem", ca)
                .map_err(|e| field_error("resource_tls.ca_pem", e.to_string()))?;
            if certs.len() > MAX_UPLOADED_CERTIFICATES {
                return Err(field_error(
                    "resource_tls.ca_pem",
                    format!(
                        "holds {} certificates; at most {MAX_UPLOADED_CERTIFICATES} may be uploaded",
                        certs.len()
                    ),
                ));
            }
            tls::ServerTrust::Uploaded(certs)
        }
        None => tls::ServerTrust::AcceptAny,
    };
    let identity = match cert_and_key(
        ("resource_tls.client_cert_pem", t.client_cert_pem.as_ref()),
        ("resource_tls.client_key_pem", t.client_key_pem.as_ref()),
    )? {
        Some((c, k)) => Some((
            tls::certs_from_pem("client_cert_pem", c)
                .map_err(|e| field_error("resource_tls.client_cert_pem", e.to_string()))?,
            tls::key_from_pem("client_key_pem", k)
                .map_err(|e| field_error("resource_tls.client_key_pem", e.to_string()))?,
        )),
        None => None,
    };
    match &t.server_name {
        Some(name) => {
            let name = name.trim().to_string();
            tls::server_name(&name)
                .map_err(|e| field_error("resource_tls.server_name", e.to_string()))?;
            t.server_name = Some(name);
        }
        None => {
            tls::server_name(resource_host).map_err(|e| {
                field_error(
                    "resource_tls.server_name",
                    format!("resource_host is not a name TLS can verify ({e}); give server_name"),
                )
            })?;
        }
    }
    // Building the client configuration checks the CA and that the key matches.
    let has_identity = identity.is_some();
    tls::client_config(trust, identity).map_err(|e| {
        if has_identity {
            field_error(
                "resource_tls.client_key_pem",
                format!("does not match client_cert_pem ({e})"),
            )
        } else {
            field_error("resource_tls.ca_pem", e.to_string())
        }
    })?;
    Ok(t)
}

/// User-side TLS as stored with the destination. The key never leaves the node.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloudTls {
    pub mode: CloudTlsMode,
    #[serde(default)]
    pub cert_pem: Option<String>,
    #[serde(default)]
    pub key_pem: Option<String>,
    #[serde(default)]
    pub client_ca_pem: Option<String>,
    /// The node issued the certificate from its own CA.
    #[serde(default)]
    pub issued_by_node: bool,
}

impl std::fmt::Debug for CloudTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTls")
            .field("mode", &self.mode)
            .field("issued_by_node", &self.issued_by_node)
            .finish_non_exhaustive()
    }
}

fn check_len(field: &str, pem: &str) -> Result<(), FieldError> {
    if pem.len() > MAX_PEM_LEN {
        return Err(field_error(
            field,
            format!("at most {MAX_PEM_LEN} bytes of PEM"),
        ));
    }
    Ok(())
}

/// The SHA-256 fingerprint of the first certificate of a stored PEM (what the API shows
/// instead of the PEM).
pub fn first_fingerprint(pem: Option<&str>) -> Option<String> {
    let certs = tls::certs_from_pem("", pem?).ok()?;
    certs.first().map(tls::fingerprint)
}

impl CloudTls {
    /// Validates a request. With `tls`/`mutual` and no certificate, the node issues one for
    /// `cloud_host` from its CA.
    pub fn from_input(
        input: CloudTlsInput,
        ca: Option<&CertificateAuthority>,
        cloud_host: &str,
    ) -> Result<CloudTls, FieldError> {
        if input.mode == CloudTlsMode::None {
            if input.cert_pem.is_some() || input.key_pem.is_some() || input.client_ca_pem.is_some()
            {
                return Err(field_error(
                    "cloud_tls.mode",
                    "certificates were given but mode is \"none\"; use \"tls\" or \"mutual\"",
                ));
            }
            return Ok(CloudTls::default());
        }
        let (cert_pem, key_pem, issued) = match cert_and_key(
            ("cloud_tls.cert_pem", input.cert_pem),
            ("cloud_tls.key_pem", input.key_pem),
        )? {
            Some((c, k)) => {
                check_len("cloud_tls.cert_pem", &c)?;
                check_len("cloud_tls.key_pem", &k)?;
                (c, k, false)
            }
            None => {
                let ca = ca.ok_or_else(|| {
                    field_error(
                        "cloud_tls.cert_pem",
                        "this node serves an operator certificate and has no CA to issue one; upload cert_pem and key_pem",
                    )
                })?;
                let (chain, key) = ca
                    .issue_server(&[cloud_host.to_string()], ISSUED_CERT_DAYS)
                    .map_err(|e| {
                        field_error(
                            "cloud_tls.cert_pem",
                            format!("could not issue a certificate: {e}"),
                        )
                    })?;
                (chain, key, true)
            }
        };
        let client_ca_pem = match (input.mode, input.client_ca_pem) {
            (CloudTlsMode::Mutual, Some(ca)) => {
                check_len("cloud_tls.client_ca_pem", &ca)?;
                Some(ca)
            }
            (CloudTlsMode::Mutual, None) => return Err(field_error(
                "cloud_tls.client_ca_pem",
                "mode \"mutual\" needs the CA that signs your applications' client certificates",
            )),
            (_, Some(_)) => {
                return Err(field_error(
                    "cloud_tls.client_ca_pem",
                    "only used with mode \"mutual\"",
                ))
            }
            (_, None) => None,
        };
        let stored = CloudTls {
            mode: input.mode,
            cert_pem: Some(cert_pem),
            key_pem: Some(key_pem),
            client_ca_pem,
            issued_by_node: issued,
        };
        // Building the configuration checks that everything parses and the key matches.
        stored.server_config()?;
        Ok(stored)
    }

    /// The rustls configuration for the cloud port, or `None` for plain TCP.
    pub fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, FieldError> {
        if self.mode == CloudTlsMode::None {
            return Ok(None);
        }
        let cert_pem = self.cert_pem.as_deref().unwrap_or("");
        let key_pem = self.key_pem.as_deref().unwrap_or("");
        let chain = tls::certs_from_pem("cert_pem", cert_pem)
            .map_err(|e| field_error("cloud_tls.cert_pem", e.to_string()))?;
        let key = tls::key_from_pem("key_pem", key_pem)
            .map_err(|e| field_error("cloud_tls.key_pem", e.to_string()))?;
        let config = match self.mode {
            CloudTlsMode::Mutual => {
                let cas = tls::certs_from_pem(
                    "client_ca_pem",
                    self.client_ca_pem.as_deref().unwrap_or(""),
                )
                .map_err(|e| field_error("cloud_tls.client_ca_pem", e.to_string()))?;
                tls::server_config_mutual(chain, key, cas)
            }
            _ => tls::server_config(chain, key),
        }
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("key") && text.contains("match") || text.contains("InconsistentKeys") {
                field_error(
                    "cloud_tls.key_pem",
                    "the private key does not match cert_pem",
                )
            } else {
                field_error("cloud_tls.cert_pem", text)
            }
        })?;
        Ok(Some(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn ca() -> CertificateAuthority {
        let dir = tempfile::tempdir().unwrap();
        crate::pki::load_or_create(dir.path(), &["localhost".to_string()])
            .unwrap()
            .ca
            .unwrap()
    }

    #[test]
    fn tls_without_a_certificate_is_issued_by_the_node() {
        let ca = ca();
        let t = CloudTls::from_input(
            CloudTlsInput {
                mode: CloudTlsMode::Tls,
                ..Default::default()
            },
            Some(&ca),
            "cloud.example",
        )
        .unwrap();
        assert!(t.issued_by_node);
        assert!(t.server_config().unwrap().is_some());
        assert!(
            !format!("{t:?}").contains("PRIVATE KEY"),
            "Debug never shows the key"
        );
        let v = serde_json::to_string(&crate::api::views::cloud_tls_view(&t)).unwrap();
        assert!(!v.contains("PRIVATE"), "the view never shows the key: {v}");
    }

    #[test]
    fn bad_pem_and_mismatched_keys_name_the_field() {
        let ca = ca();
        let (chain_a, _key_a) = ca.issue_server(&["a".into()], 30).unwrap();
        let (_chain_b, key_b) = ca.issue_server(&["b".into()], 30).unwrap();
        let input = |cert: &str, key: &str| CloudTlsInput {
            mode: CloudTlsMode::Tls,
            cert_pem: Some(cert.into()),
            key_pem: Some(key.into()),
            client_ca_pem: None,
        };
        let e = CloudTls::from_input(input("garbage", &key_b), Some(&ca), "x").unwrap_err();
        assert_eq!(e.field, "cloud_tls.cert_pem");
        let e = CloudTls::from_input(input(&chain_a, "garbage"), Some(&ca), "x").unwrap_err();
        assert_eq!(e.field, "cloud_tls.key_pem");
        let e = CloudTls::from_input(input(&chain_a, &key_b), Some(&ca), "x").unwrap_err();
        assert_eq!(e.field, "cloud_tls.key_pem", "{}", e.reason);
        assert!(e.reason.contains("does not match"), "{}", e.reason);
        let e = CloudTls::from_input(
            CloudTlsInput {
                mode: CloudTlsMode::Mutual,
                ..Default::default()
            },
            Some(&ca),
            "x",
        )
        .unwrap_err();
        assert_eq!(e.field, "cloud_tls.client_ca_pem");
    }

    #[test]
    fn a_certificate_without_its_key_names_the_missing_one() {
        let ca = ca();
        let (chain, key) = ca.issue_server(&["a".into()], 30).unwrap();
        let e = CloudTls::from_input(
            CloudTlsInput {
                mode: CloudTlsMode::Tls,
                cert_pem: Some(chain.clone()),
                ..Default::default()
            },
            Some(&ca),
            "x",
        )
        .unwrap_err();
        assert_eq!(e.field, "cloud_tls.key_pem");
        assert!(e.reason.contains("cloud_tls.cert_pem"), "{}", e.reason);
        let resource = |cert: Option<&str>, key: Option<&str>| ResourceTls {
            enabled: true,
            client_cert_pem: cert.map(str::to_string),
            client_key_pem: key.map(str::to_string),
            ..Default::default()
        };
        let e = validate_resource_tls(&resource(None, Some(&key)), "db").unwrap_err();
        assert_eq!(e.field, "resource_tls.client_cert_pem");
        let e = validate_resource_tls(&resource(Some(&chain), None), "db").unwrap_err();
        assert_eq!(e.field, "resource_tls.client_key_pem");
        assert!(validate_resource_tls(&resource(Some(&chain), Some(&key)), "db").is_ok());
    }
}
