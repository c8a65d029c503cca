//! `--service`: a small supervisor in front of the client.
//!
//! The supervisor starts the client again as its worker (same arguments, without
//! `--service`) and restarts it whenever it exits — after 1 s, doubling while it keeps
//! failing fast, never more than 60 s (F15). SIGTERM and SIGINT are passed on to the worker
//! for a clean stop, and then the supervisor exits too. A worker that exits because its
//! configuration is wrong (status 2) is not restarted: it would fail the same way forever.
//! Nor is one an operator ended (status [`EXIT_KILLED`]), unless `--restart-after-kill`.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// Tells a process it runs as the service's worker.
pub const WORKER_ENV: &str = "SG_CLIENT_SERVICE_WORKER";
/// The client's exit status when an operator ended it (`sgctl gateway clients kill`).
pub const EXIT_KILLED: u8 = 4;

/// Longest wait before a restart.
pub const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
/// A worker that ran this long was healthy: the next restart is quick again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}

/// Runs the supervisor until a signal stops it.
pub fn supervise(restart_after_kill: bool) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sg-client: cannot find my own executable: {e}");
            return ExitCode::from(1);
        }
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--service")
        .collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sg-client: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            eprintln!("sg-client: cannot watch signals");
            return ExitCode::from(1);
        };
        let mut delay = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            let mut child = match tokio::process::Command::from(worker_command(&exe, &args)).spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("service: cannot start the worker: {e}; retrying in {}s", delay.as_secs());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RESTART_DELAY);
                    continue;
                }
            };
            let pid = child.id().unwrap_or(0);
            tracing::info!("service: started worker pid {pid}");
            let stop = tokio::select! {
                status = child.wait() => {
                    let status = status.map(|s| s.code()).unwrap_or(None);
                    if status == Some(2) {
                        tracing::error!("service: the worker refused its configuration (exit 2); not restarting");
                        return ExitCode::from(2);
                    }
                    if status == Some(i32::from(EXIT_KILLED)) {
                        if !restart_after_kill {
                            tracing::warn!("service: an operator ended the worker (exit {EXIT_KILLED}); not restarting (--restart-after-kill would)");
                            return ExitCode::from(EXIT_KILLED);
                        }
                        tracing::warn!("service: an operator ended the worker (exit {EXIT_KILLED}); starting a fresh one (--restart-after-kill)");
                        delay = Duration::from_secs(1);
                    }
                    if status == Some(0) {
                        // `q` at the console or a clean stop: the operator meant it.
                        tracing::info!("service: the worker stopped cleanly; stopping the service");
                        return ExitCode::SUCCESS;
                    }
                    if started.elapsed() >= HEALTHY_RUN {
                        delay = Duration::from_secs(1);
                    }
                    tracing::warn!(
                        "service: worker pid {pid} exited ({}); restarting in {}s",
                        status.map_or("killed by a signal".to_string(), |c| format!("status {c}")),
                        delay.as_secs()
                    );
                    false
                }
                _ = term.recv() => true,
                _ = int.recv() => true,
            };
            if stop {
                tracing::info!("service: stopping worker pid {pid}");
                if let Ok(p) = i32::try_from(pid) {
                    if p > 0 {
                        // SAFETY: kill(2) on our own child's pid (never 0: that is our group).
                        unsafe {
                            libc::kill(p, libc::SIGTERM);
                        }
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                let _ = child.kill().await;
                return ExitCode::SUCCESS;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = term.recv() => return ExitCode::SUCCESS,
                _ = int.recv() => return ExitCode::SUCCESS,
            }
            delay = (delay * 2).min(MAX_RESTART_DELAY);
        }
    })
}

fn worker_command(exe: &std::path::Path, args: &[String]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.args(args).env(WORKER_ENV, "1");
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to send SIGTERM to the
    // worker when the supervisor dies, so no worker outlives its service.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}
