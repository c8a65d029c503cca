//! CPU time and memory of processes, read from /proc (Linux).

use serde::Serialize;
use std::time::Instant;

/// Clock ticks per second of /proc/PID/stat times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds of a process so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec())
}

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Measures how many cores a set of processes used over an interval.
pub struct CpuWatch {
    start: Instant,
    before: Vec<(u32, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub pid: u32,
    /// CPU seconds per wall second: 2.0 means two full cores.
    pub cores: f64,
}

impl CpuWatch {
    pub fn start(pids: &[u32]) -> Self {
        CpuWatch {
            start: Instant::now(),
            before: pids
                .iter()
                .filter_map(|p| cpu_seconds(*p).map(|c| (*p, c)))
                .collect(),
        }
    }

    pub fn finish(self) -> Vec<CpuUse> {
        let wall = self.start.elapsed().as_secs_f64().max(1e-6);
        self.before
            .iter()
            .filter_map(|(pid, c0)| {
                cpu_seconds(*pid).map(|c1| CpuUse {
                    pid: *pid,
                    cores: (c1 - c0) / wall,
                })
            })
            .collect()
    }
}
