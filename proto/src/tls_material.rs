//! The raw material every TLS configuration is made of, read from text a user or a peer
//! gave: PEM certificates and keys, SHA-256 fingerprints and key pins, server names, and
//! the errors that name which input was wrong. Kept apart from [`crate::tls`] (which builds
//! configurations) so that [`crate::service_trust`] can use it without a cycle.

use ring::digest::{digest, SHA256};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: String },
    #[error("{what}: no PEM private key found")]
    NoKey { what: String },
    #[error("{what}: not valid PEM: {detail}")]
    Pem { what: String, detail: String },
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error("fingerprint {0:?} is not 32 hex bytes (SHA-256), e.g. AB:CD:...")]
    BadFingerprint(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider of this build (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn read_file(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Every certificate in a PEM document, in order.
pub fn certs_from_pem(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.into(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what: what.into() });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM document.
pub fn key_from_pem(what: &str, pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey { what: what.into() },
        other => TlsError::Pem {
            what: what.into(),
            detail: other.to_string(),
        },
    })
}

/// The SHA-256 fingerprint of a certificate as `AB:CD:...`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let d = digest(&SHA256, cert.as_ref());
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The SHA-256 of a certificate's public key (its SubjectPublicKeyInfo) as `AB:CD:...`: a
/// pin that survives a new certificate for the same key (new host names, a renewal).
pub fn key_fingerprint(cert: &CertificateDer<'_>) -> Option<String> {
    let d = digest(&SHA256, subject_public_key_info(cert.as_ref())?);
    Some(
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Whether `pin` is the certificate's SHA-256 or its public key's (see [`key_fingerprint`]).
pub fn pin_matches(pin: &[u8; 32], cert: &CertificateDer<'_>) -> bool {
    let whole = digest(&SHA256, cert.as_ref());
    let key = subject_public_key_info(cert.as_ref()).map(|spki| digest(&SHA256, spki));
    ring_eq(whole.as_ref(), pin) || key.is_some_and(|k| ring_eq(k.as_ref(), pin))
}

/// A DER element: its tag, the whole element, its content, and what follows it.
type DerElement<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// The DER element at the start of `input`; `None` for anything malformed (the bytes come
/// from a peer).
fn der_element(input: &[u8]) -> Option<DerElement<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((tag, &input[..header + len], &rest[..len], &rest[len..]))
}

/// The SubjectPublicKeyInfo of an X.509 certificate: Certificate → tbsCertificate → the
/// seventh field, counting the optional version.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xA0;
    let (SEQUENCE, _, certificate, _) = der_element(cert)? else {
        return None;
    };
    let (SEQUENCE, _, tbs, _) = der_element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    if let Some((VERSION, _, _, after)) = der_element(rest) {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = der_element(rest)?.3;
    }
    match der_element(rest)? {
        (SEQUENCE, whole, _, _) => Some(whole),
        _ => None,
    }
}

/// Parses `AB:CD:...` or plain hex into 32 bytes.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    let hex: String = text
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bad = || TlsError::BadFingerprint(text.to_string());
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The server name to verify for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(trimmed.to_string()).map_err(|e| TlsError::Invalid {
        what: format!("server name {host:?}"),
        detail: e.to_string(),
    })
}

/// Constant-time equality of two byte strings.
pub fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_der_never_panics_and_yields_no_key() {
        for bytes in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x03, 0x30, 0x01][..],
            &[0x30, 0x02, 0x30, 0x00][..],
        ] {
            let cert = CertificateDer::from(bytes.to_vec());
            assert!(key_fingerprint(&cert).is_none());
            assert!(!pin_matches(&[0; 32], &cert));
        }
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "00".repeat(31) + "ff";
        let fp = parse_fingerprint(&hex).unwrap();
        assert_eq!(fp[31], 0xff);
        let colons = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn pem_without_certificates_is_a_readable_error() {
        let err = certs_from_pem("test", "hello").unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let err = key_from_pem("test", "hello").unwrap_err();
        assert!(err.to_string().contains("no PEM private key"), "{err}");
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(ring_eq(b"abc", b"abc"));
        assert!(!ring_eq(b"abc", b"abd"));
        assert!(!ring_eq(b"abc", b"ab"));
    }
}
