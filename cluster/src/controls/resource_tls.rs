//! Resource-side TLS: what a client uses towards the private service, checked before it is
//! stored and sent to clients.

use super::{cert_and_key, check_len, field_error, FieldError};
use sg_proto::frame::ResourceTls;
use sg_proto::service_trust::MAX_UPLOADED_CERTIFICATES;
use sg_proto::tls;

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
