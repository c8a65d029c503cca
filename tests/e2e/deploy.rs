//! The service units in deploy/systemd pass `systemd-analyze verify` (with the binaries this
//! build made standing in for /usr/local/bin), and keep the promises the binaries rely on:
//! restarts after a failure, none after a refused configuration, the descriptor limit.

use sg_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `unit` with its binaries pointed at this build, written as `file_name` in `dir`.
fn staged(dir: &Path, unit_text: &str, file_name: &str) -> PathBuf {
    let mut text = unit_text.to_string();
    for b in ["sg-node", "sg-client", "sgctl"] {
        text = text.replace(
            &format!("/usr/local/bin/{b}"),
            &bin(b).display().to_string(),
        );
    }
    let path = dir.join(file_name);
    std::fs::write(&path, text).expect("write unit");
    path
}

fn has(unit_text: &str, line: &str) -> bool {
    unit_text.lines().any(|l| l.trim() == line)
}

#[test]
fn the_service_units_verify_and_keep_their_promises() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = unit("sg-node.service");
    let client = unit("sg-client@.service");
    let files = [
        staged(dir.path(), &node, "sg-node.service"),
        staged(dir.path(), &client, "sg-client@prod.service"),
    ];
    // No man pages are installed here: --man=no. Anything it says (an unknown key is
    // only a warning) fails the test.
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(&files)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    for (text, prevent) in [
        (&node, "RestartPreventExitStatus=2"),
        (&client, "RestartPreventExitStatus=2 3 4"),
    ] {
        for line in [
            "Restart=on-failure",
            prevent,
            "LimitNOFILE=1048576",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "DynamicUser=yes",
        ] {
            assert!(has(text, line), "{line} in:\n{text}");
        }
    }
    assert!(has(&node, "StateDirectory=sg-node"));
    assert!(has(&node, "KillSignal=SIGTERM"), "SIGTERM drains the node");
}

#[test]
fn every_binary_prints_its_man_page_and_completions() {
    for b in ["sg-node", "sg-client", "sgctl"] {
        let run = |what: &str| {
            Command::new(bin(b))
                .args(["--generate", what])
                .output()
                .expect("run")
        };
        let man = run("man");
        assert!(man.status.success(), "{b}");
        let text = String::from_utf8_lossy(&man.stdout);
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{b}: {text}"
        );
        assert!(text.contains(b), "{b}");
        let bash = run("bash");
        assert!(bash.status.success(), "{b}");
        assert!(
            String::from_utf8_lossy(&bash.stdout).contains("complete -F"),
            "{b}"
        );
        assert!(run("zsh").status.success(), "{b}");
        let bad = run("tcsh-ish");
        assert_eq!(bad.status.code(), Some(2), "{b}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("--generate"),
            "{b}"
        );
    }
}
