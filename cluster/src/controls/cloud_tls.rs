//! User-side TLS on a cloud port: the node terminates it, with a certificate given or one it
//! issues from its CA, and may demand client certificates.

use super::{cert_and_key, check_len, field_error, CloudTlsInput, CloudTlsMode, FieldError};
use crate::pki::CertificateAuthority;
use serde::{Deserialize, Serialize};
use sg_proto::tls;
use std::sync::Arc;

/// Lifetime of a certificate the node issues for a cloud port.
const ISSUED_CERT_DAYS: u64 = 825;

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
    use crate::controls::validate_resource_tls;
    use sg_proto::frame::ResourceTls;

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
