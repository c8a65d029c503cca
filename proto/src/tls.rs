//! TLS configuration shared by both ends: rustls with the ring provider, TLS 1.2 and 1.3
//! only (rustls has nothing older), PEM loading with readable errors, and server
//! verification either against CA certificates or against a pinned SHA-256 fingerprint.

use crate::service_trust::{system_verifier, UploadedTrust};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::sync::Arc;

pub use crate::tls_material::{
    certs_from_pem, fingerprint, key_fingerprint, key_from_pem, parse_fingerprint, pin_matches,
    provider, read_file, ring_eq, server_name, TlsError,
};

/// The protocol versions every sg listener and dialer accepts.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server configuration for our listeners. Checks that the key matches the certificate.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(prefer_our_order(config))
}

/// A server configuration that requires a client certificate signed by one of `client_cas`.
pub fn server_config_mutual(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cas: Vec<CertificateDer<'static>>,
) -> Result<ServerConfig, TlsError> {
    let roots = root_store("client CA", client_cas)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Invalid {
                what: "client CA".into(),
                detail: e.to_string(),
            })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    Ok(prefer_our_order(config))
}

/// The server picks the cipher suite from its own list (AEADs with forward secrecy, the
/// strongest first), not the client's: a client that prefers something weaker still gets
/// the best suite both have, and scanners see a server cipher order.
fn prefer_our_order(mut config: ServerConfig) -> ServerConfig {
    config.ignore_client_order = true;
    config
}

fn root_store(what: &str, certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            what: what.into(),
            detail: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// How a dialer decides to trust the server it reached.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Certificates chaining to these CA certificates, for the name dialled.
    Roots(Vec<CertificateDer<'static>>),
    /// The end-entity certificate with this SHA-256 fingerprint, or any certificate of the
    /// public key with this SHA-256 (see [`key_fingerprint`]).
    Fingerprint([u8; 32]),
    /// A private service's certificate: one of these exactly, or one chaining to them (see
    /// [`crate::service_trust`]).
    Uploaded(Vec<CertificateDer<'static>>),
    /// The system's trust store, for private services with public certificates.
    System,
    /// Anything at all. Only for resource-side TLS with `reject_unauthorized: false`.
    AcceptAny,
}

impl ServerTrust {
    /// The CA certificates of a PEM file (a node's `ca.pem`, an operator's CA): what
    /// `--ca FILE` means for the client, sgctl and the load harness alike.
    pub fn from_ca_file(path: &std::path::Path) -> Result<ServerTrust, TlsError> {
        let pem = read_file(path)?;
        Ok(ServerTrust::Roots(certs_from_pem(
            &path.display().to_string(),
            &pem,
        )?))
    }
}

/// A client configuration. `identity` presents a client certificate (mutual TLS).
pub fn client_config(
    trust: ServerTrust,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_protocol_versions(VERSIONS)?;
    let builder = match trust {
        ServerTrust::Roots(cas) => builder.with_root_certificates(root_store("CA file", cas)?),
        ServerTrust::Fingerprint(fp) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    fingerprint: fp,
                    provider: provider(),
                    check: Check::Pinned,
                }))
        }
        ServerTrust::Uploaded(certs) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    fingerprint: [0; 32],
                    provider: provider(),
                    check: Check::Uploaded(UploadedTrust::new(certs, provider())?),
                }))
        }
        ServerTrust::System => builder.with_webpki_verifier(system_verifier(provider())?),
        ServerTrust::AcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                fingerprint: [0; 32],
                provider: provider(),
                check: Check::Nothing,
            })),
    };
    let config = match identity {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

#[derive(Debug)]
enum Check {
    Pinned,
    Nothing,
    /// A private service's uploaded certificates (see [`crate::service_trust`]).
    Uploaded(UploadedTrust),
}

/// Trusts one certificate by fingerprint, a private service's uploaded certificates, or
/// (for `AcceptAny`) any certificate, while
/// still checking that the server holds the certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
    check: Check,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            Check::Nothing => Ok(ServerCertVerified::assertion()),
            Check::Uploaded(trust) => {
                trust.verify(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Check::Pinned => {
                if pin_matches(&self.fingerprint, end_entity) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "server certificate fingerprint {} does not match the pinned one",
                        fingerprint(end_entity)
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
