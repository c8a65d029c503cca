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
    stat_seconds(&format!("/proc/{pid}/stat"))
}

/// One thread's CPU time so far: (thread id, name, seconds).
pub type ThreadTime = (u32, String, f64);

/// CPU seconds of each thread of a process.
pub fn thread_seconds(pid: u32) -> Vec<ThreadTime> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm"))
                .ok()?
                .trim()
                .to_string();
            let secs = stat_seconds(&e.path().join("stat").display().to_string())?;
            Some((tid, name, secs))
        })
        .collect()
}

fn stat_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
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

/// Measures how many cores a set of processes (and each of their threads) used over an
/// interval.
pub struct CpuWatch {
    start: Instant,
    before: Vec<(u32, f64, Vec<ThreadTime>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub pid: u32,
    /// CPU seconds per wall second: 2.0 means two full cores.
    pub cores: f64,
    /// CPU seconds (user + system) used over the interval.
    pub seconds: f64,
    /// The same per thread, busiest first (threads under 1% of a core left out).
    pub threads: Vec<ThreadUse>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadUse {
    pub name: String,
    pub cores: f64,
}

impl CpuWatch {
    pub fn start(pids: &[u32]) -> Self {
        CpuWatch {
            start: Instant::now(),
            before: pids
                .iter()
                .filter_map(|p| cpu_seconds(*p).map(|c| (*p, c, thread_seconds(*p))))
                .collect(),
        }
    }

    pub fn finish(self) -> Vec<CpuUse> {
        let wall = self.start.elapsed().as_secs_f64().max(1e-6);
        self.before
            .iter()
            .filter_map(|(pid, c0, threads0)| {
                let c1 = cpu_seconds(*pid)?;
                let mut threads: Vec<ThreadUse> = thread_seconds(*pid)
                    .into_iter()
                    .filter_map(|(tid, name, s1)| {
                        let s0 = threads0.iter().find(|t| t.0 == tid).map_or(0.0, |t| t.2);
                        let cores = (s1 - s0) / wall;
                        (cores >= 0.01).then_some(ThreadUse { name, cores })
                    })
                    .collect();
                threads.sort_by(|a, b| b.cores.total_cmp(&a.cores));
                Some(CpuUse {
                    pid: *pid,
                    cores: (c1 - c0) / wall,
                    seconds: c1 - c0,
                    threads,
                })
            })
            .collect()
    }
}
