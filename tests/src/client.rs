//! A real `sg-client` process serving one gateway.

use crate::{bin, kill, read_log, wait_until, Node};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `sg-client`.
pub struct Client {
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    log: PathBuf,
    _temp: tempfile::TempDir,
}

impl Client {
    /// Starts a client serving `gateways` ((id, token) pairs) through `node`.
    pub fn start(node: &Node, gateways: &[(&str, &str)], extra: &[&str]) -> Client {
        Client::start_servers(&[node], gateways, extra, &[])
    }

    pub fn start_servers(
        nodes: &[&Node],
        gateways: &[(&str, &str)],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Client {
        Client::launch(nodes, gateways, extra, env, false, &[])
    }

    /// Like [`Client::start`], run through `wrapper` (`ip netns exec NS`, say).
    pub fn start_wrapped(
        node: &Node,
        gateways: &[(&str, &str)],
        extra: &[&str],
        wrapper: &[&str],
    ) -> Client {
        Client::launch(&[node], gateways, extra, &[], false, wrapper)
    }

    /// Like [`Client::start`], with stdin piped for console commands (`--console`).
    pub fn start_console(node: &Node, gateways: &[(&str, &str)], extra: &[&str]) -> Client {
        let mut args = vec!["--console"];
        args.extend_from_slice(extra);
        Client::launch(&[node], gateways, &args, &[], true, &[])
    }

    fn launch(
        nodes: &[&Node],
        gateways: &[(&str, &str)],
        extra: &[&str],
        env: &[(&str, &str)],
        piped: bool,
        wrapper: &[&str],
    ) -> Client {
        let temp = tempfile::tempdir().expect("temp dir");
        let log = temp.path().join("client.log");
        let file = std::fs::File::create(&log).expect("client log");
        let ids: Vec<&str> = gateways.iter().map(|(id, _)| *id).collect();
        let tokens: Vec<&str> = gateways.iter().map(|(_, t)| *t).collect();
        let mut cmd = match wrapper.split_first() {
            None => Command::new(bin("sg-client")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("sg-client"));
                c
            }
        };
        cmd.args(&ids).arg("-t").arg(tokens.join("--"));
        for n in nodes {
            cmd.arg("--server").arg(n.tunnel());
        }
        // Tests run many clients at once: no web UI unless a test asks for one.
        if !extra.iter().any(|a| *a == "--ui-port" || *a == "--no-ui") {
            cmd.arg("--no-ui");
        }
        cmd.arg("--ca")
            .arg(nodes[0].ca_path())
            .args(extra)
            .env_remove("SG_TOKENS")
            .env_remove("SG_UI_PASSWORD")
            // A proxy of the machine running the tests is not the test's.
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start sg-client");
        let stdin = child.stdin.take();
        Client {
            child: Some(child),
            stdin,
            log,
            _temp: temp,
        }
    }

    /// Types a line at the client's console.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with start_console");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .expect("write to the console");
    }

    /// The path of the client's log (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the client to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < end {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- sg-client log ----\n{}", self.log());
        }
    }
}
