//! The node's certificates.
//!
//! With no `--tls-cert`, a node makes its own CA on first start (`ca.pem`, `ca.key`) and
//! issues its server certificate from it (`server.pem`, `server.key`), for every name the
//! node is reached by. The server certificate is kept across restarts (so a client that
//! pins its fingerprint keeps working) and reissued only when the names change or it nears
//! expiry. The same CA later signs certificates for TLS cloud ports.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sg_proto::tls::{self, TlsError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The node's own CA, able to sign server certificates.
pub struct CertificateAuthority {
    pub cert_pem: String,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

/// What a listener presents.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: String,
}

/// Result of loading or creating the node's TLS material.
pub struct NodePki {
    pub ca: Option<CertificateAuthority>,
    /// Where the CA certificate a client passes as `--ca` lives, when the node made it.
    pub ca_path: Option<PathBuf>,
    pub server: ServerIdentity,
    /// Human-readable lines on what was generated, logged once by the caller.
    pub notes: Vec<String>,
}

const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server.key";
const SERVER_NAMES_FILE: &str = "server.names";
/// Server certificates are issued for two years and renewed when less than 30 days remain.
const SERVER_CERT_DAYS: u64 = 730;
const RENEW_BEFORE_DAYS: u64 = 30;

/// Writes a file atomically with the given mode. The temporary file is new and this
/// file's own (`.NAME.PID.RANDOM.tmp`), and gets `mode` whatever the umask or a file left
/// by a crash: a key is never readable by others, not even for a moment.
pub fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| PkiError::Write {
        path: path.display().to_string(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "sg");
    dn.push(DnType::CommonName, "sg node CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
    Ok(params)
}

fn current_year() -> i32 {
    1970 + (crate::time::now_secs() / 31_556_952) as i32
}

impl CertificateAuthority {
    fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let issuer = ca_params()?.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_pem: issuer.pem(),
            issuer,
            key,
        })
    }

    /// Rebuilds the signer from the stored key. The stored `ca.pem` stays what clients
    /// trust; the rebuilt issuer has the same name and key, so what it signs chains to it.
    fn load(cert_pem: String, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = ca_params()?.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_pem,
            issuer,
            key,
        })
    }

    /// The CA's private key, PEM (for the cluster record, which every node issues from).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    /// Issues a server certificate for `names` (DNS names or IP addresses) with a new key.
    pub fn issue_server(&self, names: &[String], days: u64) -> Result<(String, String), PkiError> {
        self.issue_server_for(names, days, KeyPair::generate()?)
    }

    /// Issues a server certificate for `names` for `key` (kept across reissues, so clients
    /// that pin the node's key keep working).
    pub fn issue_server_for(
        &self,
        names: &[String],
        days: u64,
        key: KeyPair,
    ) -> Result<(String, String), PkiError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "sg");
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "sg".into()),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = std::time::SystemTime::now();
        params.not_before = (now - std::time::Duration::from_secs(86_400)).into();
        params.not_after = (now + std::time::Duration::from_secs(days * 86_400)).into();
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok((cert.pem() + &self.cert_pem, key.serialize_pem()))
    }
}

fn identity_from_pem(
    what: &str,
    chain_pem: &str,
    key_pem: &str,
) -> Result<ServerIdentity, PkiError> {
    let chain = tls::certs_from_pem(what, chain_pem)?;
    let key = tls::key_from_pem(what, key_pem)?;
    // The key's pin when it can be read (it survives a new certificate), else the
    // certificate's.
    let fingerprint =
        tls::key_fingerprint(&chain[0]).unwrap_or_else(|| tls::fingerprint(&chain[0]));
    Ok(ServerIdentity {
        chain,
        key,
        fingerprint,
    })
}

/// Loads the operator's certificate and key.
pub fn load_operator_identity(cert: &Path, key: &Path) -> Result<NodePki, PkiError> {
    let chain_pem = tls::read_file(cert)?;
    let key_pem = tls::read_file(key)?;
    let server = identity_from_pem(&cert.display().to_string(), &chain_pem, &key_pem)?;
    // Fail now, not at the first handshake, if the key does not match the certificate.
    tls::server_config(server.chain.clone(), server.key.clone_key())?;
    Ok(NodePki {
        ca: None,
        ca_path: None,
        server,
        notes: Vec::new(),
    })
}

/// The CA in `dir` (`ca.pem`, `ca.key`), generated there if missing; with a note when it
/// was generated.
pub fn load_or_create_ca(dir: &Path) -> Result<(CertificateAuthority, Option<String>), PkiError> {
    let ca_path = dir.join(CA_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    if ca_path.exists() && ca_key_path.exists() {
        let ca =
            CertificateAuthority::load(tls::read_file(&ca_path)?, &tls::read_file(&ca_key_path)?)?;
        return Ok((ca, None));
    }
    let ca = CertificateAuthority::generate()?;
    install_ca(dir, &ca.cert_pem, &ca.key_pem())?;
    let note = format!(
        "generated a CA certificate at {}: clients pass `--ca {}`",
        ca_path.display(),
        ca_path.display()
    );
    Ok((ca, Some(note)))
}

/// Writes a CA (a cluster's, shared by every node) into `dir`; the server certificate is
/// reissued from it at the next [`load_or_create`].
pub fn install_ca(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), PkiError> {
    // Checked before anything is written: a broken pair must not replace a working one.
    CertificateAuthority::load(cert_pem.to_string(), key_pem)?;
    write_private(&dir.join(CA_KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_private(&dir.join(CA_FILE), cert_pem.as_bytes(), 0o644)
}

/// Loads the node's own CA and server certificate from `dir`, creating what is missing.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<NodePki, PkiError> {
    let mut notes = Vec::new();
    let ca_path = dir.join(CA_FILE);
    let (ca, note) = load_or_create_ca(dir)?;
    notes.extend(note);

    let server_path = dir.join(SERVER_FILE);
    let server_key_path = dir.join(SERVER_KEY_FILE);
    let names_path = dir.join(SERVER_NAMES_FILE);
    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&names_path).ok();
    let fresh_enough = std::fs::metadata(&server_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() < (SERVER_CERT_DAYS - RENEW_BEFORE_DAYS) * 86_400);
    // A server certificate from another CA (this node joined a cluster) is reissued.
    let same_ca =
        std::fs::read_to_string(&server_path).is_ok_and(|chain| chain.contains(ca.cert_pem.trim()));
    let reuse = current.as_deref() == Some(wanted.as_str())
        && fresh_enough
        && same_ca
        && server_key_path.exists();
    let server = if reuse {
        identity_from_pem(
            &server_path.display().to_string(),
            &tls::read_file(&server_path)?,
            &tls::read_file(&server_key_path)?,
        )?
    } else {
        // New names or a renewal keep the key: clients pinning it keep working.
        let kept = std::fs::read_to_string(&server_key_path)
            .ok()
            .and_then(|pem| KeyPair::from_pem(&pem).ok());
        let (chain_pem, key_pem) = match kept {
            Some(key) => ca.issue_server_for(names, SERVER_CERT_DAYS, key)?,
            None => ca.issue_server(names, SERVER_CERT_DAYS)?,
        };
        write_private(&server_key_path, key_pem.as_bytes(), 0o600)?;
        write_private(&server_path, chain_pem.as_bytes(), 0o644)?;
        write_private(&names_path, wanted.as_bytes(), 0o644)?;
        let id = identity_from_pem("generated server certificate", &chain_pem, &key_pem)?;
        notes.push(format!(
            "issued a server certificate for {} (key SHA-256 {}): clients may pin the key with `--fingerprint`",
            names.join(", "),
            id.fingerprint
        ));
        id
    };
    Ok(NodePki {
        ca: Some(ca),
        ca_path: Some(ca_path),
        server,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_is_reused_and_private_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = load_or_create(dir.path(), &names).unwrap();
        assert_eq!(first.notes.len(), 2);
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create(dir.path(), &names).unwrap();
        assert!(second.notes.is_empty(), "nothing regenerated");
        assert_eq!(first.server.fingerprint, second.server.fingerprint);
        // New names: a new server certificate from the same CA (for the same key).
        let third = load_or_create(dir.path(), &["example.test".to_string()]).unwrap();
        assert_ne!(
            tls::fingerprint(&third.server.chain[0]),
            tls::fingerprint(&first.server.chain[0])
        );
        assert_eq!(
            third.ca.as_ref().unwrap().cert_pem,
            first.ca.as_ref().unwrap().cert_pem
        );
    }

    #[test]
    fn new_names_reissue_the_certificate_but_keep_the_key_and_its_pin() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &["a.example".to_string()]).unwrap();
        let second = load_or_create(dir.path(), &["b.example".to_string()]).unwrap();
        assert_ne!(
            tls::fingerprint(&first.server.chain[0]),
            tls::fingerprint(&second.server.chain[0]),
            "a new certificate"
        );
        assert_eq!(
            first.server.fingerprint, second.server.fingerprint,
            "the same key, so the same pin"
        );
        let pin = tls::parse_fingerprint(&first.server.fingerprint).unwrap();
        assert!(tls::pin_matches(&pin, &second.server.chain[0]));
    }

    #[test]
    fn a_stale_temporary_file_cannot_make_a_key_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // What the old scheme left behind after a crash: a world-readable `ca.tmp`.
        let stale = dir.path().join("ca.tmp");
        std::fs::write(&stale, b"old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        let key = dir.path().join("ca.key");
        write_private(&key, b"secret", 0o600).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .count();
        assert_eq!(leftovers, 1, "only the stale one, untouched");
    }

    #[test]
    fn the_server_certificate_verifies_against_the_ca() {
        use rustls::client::danger::ServerCertVerifier;
        let dir = tempfile::tempdir().unwrap();
        let pki = load_or_create(dir.path(), &["localhost".to_string()]).unwrap();
        let ca = tls::certs_from_pem("ca", &pki.ca.unwrap().cert_pem).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            tls::provider(),
        )
        .build()
        .unwrap();
        let name = tls::server_name("localhost").unwrap();
        verifier
            .verify_server_cert(
                &pki.server.chain[0],
                &pki.server.chain[1..],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .expect("chains to the CA");
    }
}
