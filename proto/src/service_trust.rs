//! How a client trusts a private service's certificate (resource-side TLS, [F11]).
//!
//! The replaced product let users upload the service's certificate itself — most private
//! services run on a self-signed `openssl req -x509` certificate, which carries `CA:TRUE`
//! and so can never pass as an end entity in a WebPKI path. An uploaded certificate is
//! therefore two things at once: a *pin* (the service presents exactly this certificate)
//! and, when it can be one, a *trust anchor* (the service's certificate chains to it, for
//! the name dialled). With nothing uploaded and `reject_unauthorized`, the system's trust
//! store is used, for services with public certificates.
//!
//! Either way the server must prove it holds the certificate's key: the handshake
//! signature is checked against the presented certificate as always.

use crate::tls_material::TlsError;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use std::sync::Arc;

/// Most certificates one destination may upload (the replaced product took up to 6 CA
/// files).
pub const MAX_UPLOADED_CERTIFICATES: usize = 6;

/// Trusts a service that presents one of the uploaded certificates, or one that chains to
/// an uploaded CA for the name dialled. It is one `Check` of `tls`'s verifier, which
/// checks the handshake signature for every kind of trust.
#[derive(Debug)]
pub struct UploadedTrust {
    pins: Vec<CertificateDer<'static>>,
    /// `None` when no uploaded certificate can serve as a trust anchor (a v1 certificate,
    /// say): then only the pins trust anything.
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl UploadedTrust {
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                what: "ca_pem".into(),
            });
        }
        if certs.len() > MAX_UPLOADED_CERTIFICATES {
            return Err(TlsError::Invalid {
                what: "ca_pem".into(),
                detail: format!(
                    "{} certificates; at most {MAX_UPLOADED_CERTIFICATES} may be uploaded",
                    certs.len()
                ),
            });
        }
        let mut roots = RootCertStore::empty();
        // A certificate that cannot be an anchor still works as a pin.
        let _ = roots.add_parsable_certificates(certs.iter().cloned());
        let chain = chain_verifier(roots, &provider)?;
        Ok(UploadedTrust { pins: certs, chain })
    }
}

/// A verifier of the system's trust store (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).
pub fn system_verifier(
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let _ = roots.add_parsable_certificates(found.certs);
    chain_verifier(roots, &provider)?.ok_or_else(|| TlsError::Invalid {
        what: "the system trust store".into(),
        detail: match found.errors.first() {
            Some(e) => format!("no usable certificate ({e})"),
            None => "no certificate found (install ca-certificates, or set SSL_CERT_FILE)".into(),
        },
    })
}

fn chain_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<WebPkiServerVerifier>>, TlsError> {
    if roots.is_empty() {
        return Ok(None);
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map(Some)
        .map_err(|e| TlsError::Invalid {
            what: "ca_pem".into(),
            detail: e.to_string(),
        })
}

impl UploadedTrust {
    /// Whether the presented certificate is trusted (the handshake signature is checked
    /// by the verifier this trust sits in, as for every sg verifier).
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The exact certificate that was uploaded: trusted as is, like a fingerprint.
        if self.pins.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(chain) => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(CertificateError::UnknownIssuer.into()),
        }
    }
}

/// A failed handshake with a private service, in words an operator can act on. `io` is
/// what tokio-rustls returned; anything that is not a certificate problem keeps its text.
pub fn explain_handshake_error(io: &std::io::Error) -> String {
    let Some(err) = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return io.to_string();
    };
    let rustls::Error::InvalidCertificate(cert) = err else {
        return err.to_string();
    };
    let detail = format!("{cert:?}");
    match cert {
        CertificateError::UnknownIssuer => "the service's certificate is not one of the uploaded \
            certificates and is not signed by an uploaded CA (or, with none uploaded, by a CA \
            of the system trust store)"
            .into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "the service's certificate is not valid for the name dialled ({detail}); set \
                 resource_tls.server_name to a name it holds, or upload the certificate itself"
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the service's certificate has expired ({detail})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the service's certificate is not valid yet ({detail})")
        }
        _ if detail.contains("UnsupportedCertVersion") => "the service's certificate is an \
            X.509 v1 certificate, which is not accepted; reissue it as v3 (openssl req -x509 \
            makes v3)"
            .into(),
        _ if detail.contains("CaUsedAsEndEntity") => "the service's certificate is not one of \
            the uploaded certificates, and it is a CA certificate (a self-signed `openssl req \
            -x509` one?) that no CA can vouch for; upload that very certificate to trust it"
            .into(),
        _ => format!("the service's certificate was refused: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verify(v: &UploadedTrust, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("some.other.name").unwrap();
        v.verify(cert, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn the_uploaded_certificate_itself_is_trusted_even_as_a_ca_and_for_any_name() {
        let (own, other) = (self_signed("localhost"), self_signed("localhost"));
        let v = UploadedTrust::new(vec![own.clone()], crate::tls_material::provider()).unwrap();
        assert!(verify(&v, &own).is_ok());
        let refused = verify(&v, &other).unwrap_err();
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused);
        assert!(
            explain_handshake_error(&io).contains("not one of the uploaded certificates"),
            "{}",
            explain_handshake_error(&io)
        );
    }

    #[test]
    fn at_most_six_certificates_and_at_least_one() {
        let six: Vec<_> = (0..6).map(|_| self_signed("x")).collect();
        assert!(UploadedTrust::new(six.clone(), crate::tls_material::provider()).is_ok());
        let mut seven = six;
        seven.push(self_signed("x"));
        let e = UploadedTrust::new(seven, crate::tls_material::provider()).unwrap_err();
        assert!(e.to_string().contains("at most 6"), "{e}");
        assert!(UploadedTrust::new(Vec::new(), crate::tls_material::provider()).is_err());
    }

    #[test]
    fn other_handshake_failures_keep_their_own_words() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(explain_handshake_error(&io), "reset by peer");
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        assert!(explain_handshake_error(&io).contains("has expired"));
    }
}
