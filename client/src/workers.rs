//! The client's worker threads: one single-threaded runtime per core. A tunnel is placed
//! on one of them and its session and every stream it carries stay there, so handing bytes
//! between a session and its streams never wakes another thread. Tunnels arrive at any
//! time (the cluster names new nodes), so each worker takes them from a channel.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct WorkerPool {
    senders: Mutex<Vec<mpsc::UnboundedSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicUsize,
}

impl WorkerPool {
    /// Starts `n` worker threads (at least one).
    pub fn start(n: usize) -> std::io::Result<WorkerPool> {
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::unbounded_channel::<Job>();
            let thread = std::thread::Builder::new()
                .name(format!("sg-worker-{i}"))
                .spawn(move || run_worker(rx))?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(WorkerPool {
            senders: Mutex::new(senders),
            threads: Mutex::new(threads),
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `job` on the next worker, round-robin.
    pub fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if senders.is_empty() {
            return;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % senders.len();
        let _ = senders[i].send(Box::pin(job));
    }

    /// Takes no more jobs and waits until every worker has finished what it runs.
    pub fn join(&self) {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn run_worker(mut jobs: mpsc::UnboundedReceiver<Job>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start a worker runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let mut running = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => {
                        running.spawn(job);
                    }
                    None => break,
                },
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!("a tunnel task failed: {e}");
                    }
                }
            }
        }
        while running.join_next().await.is_some() {}
    });
}
