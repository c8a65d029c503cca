//! A destination's security controls, parsed and checked in one place: **IP rules** (who
//! may connect to its cloud port) and **user-side TLS** (whether the node terminates TLS
//! on the cloud port, and whether it demands a client certificate). The state validates
//! requests with these types; the destination actor enforces with them.

//! [`ip_rules`] holds the first, [`cloud_tls`] the second, and [`resource_tls`] checks the
//! TLS a client uses towards the private service; this file has what they share.

mod cloud_tls;
mod ip_rules;
mod resource_tls;

pub use cloud_tls::{first_fingerprint, CloudTls};
pub use ip_rules::{IpRules, MAX_IP_RULES};
pub use resource_tls::validate_resource_tls;

/// Largest PEM document accepted for a certificate, key or CA bundle.
pub const MAX_PEM_LEN: usize = 64 * 1024;

/// A field that failed validation, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

pub(crate) fn field_error(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
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

fn check_len(field: &str, pem: &str) -> Result<(), FieldError> {
    if pem.len() > MAX_PEM_LEN {
        return Err(field_error(
            field,
            format!("at most {MAX_PEM_LEN} bytes of PEM"),
        ));
    }
    Ok(())
}
