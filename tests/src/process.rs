//! Processes and waiting: where the binaries are, free ports, polling, running commands
//! with a deadline, and sizes a long run may override.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Where the binaries under test live.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SG_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-xxxx -> target/debug/NAME
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (scripts/test.sh does: cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Polls `f` every 50 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port that was free a moment ago, below the ephemeral range (4000-9999) and beside
/// [`free_block`]'s: a port the kernel hands out as an ephemeral one may become some
/// outgoing connection's source port before the process it was meant for binds it (the
/// suite makes thousands of connections), which failed a node's start now and then.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const LOW: u16 = 4000;
    const COUNT: u16 = 6000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(40_503);
    for _ in 0..COUNT {
        let p = LOW + NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(seed) % COUNT;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
            return p;
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A block of `n` ports below the ephemeral range, free right now, for cloud ports.
pub(crate) fn free_block(n: u16) -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7919);
    for _ in 0..200 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(seed) % 200;
        let base = 10_000 + k * 110;
        if (base..base + n).all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return base;
        }
    }
    panic!("no free block of {n} ports");
}

pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` to its end (killed after `timeout`): its exit code (`None` if killed) and
/// everything it printed.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (Option<i32>, String) {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("out");
    let file = std::fs::File::create(&path).expect("output file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("handle"))
        .stderr(file)
        .spawn()
        .expect("start the command");
    let end = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() >= end {
            kill(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, read_log(&path))
}

/// Runs a command and panics with its output if it fails (test fixtures: openssl).
pub fn run_cmd(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where tests keep artifacts (screenshots): target/test-artifacts.
pub fn artifacts_dir() -> PathBuf {
    let dir = bin("sg-node")
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("test-artifacts"))
        .unwrap_or_else(|| PathBuf::from("target/test-artifacts"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A size a long run may override through the environment (`SG_SOAK_MINUTES=30`), else
/// `default`: the suite runs the short form, the scripts the long one.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends `signal` to process `pid` (one this test started); `false` if there is no such
/// process (`signal` 0 only asks whether it exists).
pub fn send_signal(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) takes no pointers; a stale pid at worst signals nothing.
    unsafe { libc::kill(pid, signal) == 0 }
}
