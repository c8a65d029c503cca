//! OpenSSL as a real TLS peer and as the CA of test certificates.

use crate::{run_cmd, wait_until};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// What `openssl s_client` saw talking to a TLS cloud port: it sends `line`, waits for the
/// echo, and reports the whole output.
pub struct OpensslRun {
    pub output: String,
    pub echoed: bool,
}

/// Runs the real `openssl s_client` against `port`, verifying with `ca`, with `extra`
/// arguments (e.g. `-cert`/`-key`).
pub fn openssl_echo(port: u16, ca: &Path, extra: &[&str], line: &str) -> OpensslRun {
    use std::sync::Mutex;
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(ca)
        .arg("-verify_return_error")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/test.sh installs it)");
    let output = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = output.clone();
        readers.push(std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut o) = out.lock() {
                    o.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
        // Keep stdin open while waiting for the echo (EOF would end s_client early).
        let echoed = wait_until(Duration::from_secs(10), || {
            let o = output.lock().map(|o| o.clone()).unwrap_or_default();
            o.matches(line).count() >= 1 && o.contains("Verify return code")
                || matches!(child.try_wait(), Ok(Some(_)))
        });
        let _ = echoed;
        drop(stdin);
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    let output = output.lock().map(|o| o.clone()).unwrap_or_default();
    // The echo is the line coming back after the handshake report.
    let echoed = output
        .split("Verify return code")
        .nth(1)
        .is_some_and(|after| after.contains(line));
    OpensslRun { output, echoed }
}

/// What a test certificate is for.
#[derive(Debug, Clone, Copy)]
pub enum CertUse {
    /// A TLS server for localhost and 127.0.0.1.
    Server,
    /// A TLS client (mutual TLS).
    Client,
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Makes a self-signed CA with the openssl CLI (ECDSA P-256): `DIR/NAME.key`, `DIR/NAME.pem`.
pub fn openssl_ca(dir: &Path, name: &str, cn: &str) {
    let (key, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={cn}"),
    );
    let mut args = vec!["req", "-x509"];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj, "-days", "2"]);
    run_cmd(dir, "openssl", &args);
}

/// Makes a certificate signed by CA `ca` (made with [`openssl_ca`]): `DIR/NAME.key`,
/// `DIR/NAME.pem`.
pub fn openssl_cert(dir: &Path, name: &str, ca: &str, usage: CertUse) {
    let ext = match usage {
        CertUse::Server => "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        CertUse::Client => "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    };
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).expect("write extensions");
    let (key, csr, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("/CN={name}"),
    );
    let mut args = vec!["req"];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    run_cmd(dir, "openssl", &args);
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    run_cmd(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ],
    );
}
