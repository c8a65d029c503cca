//! The stop signal both binaries obey: SIGTERM (a service manager) or SIGINT (Ctrl-C).

/// Resolves on the first SIGTERM or SIGINT. Where SIGTERM cannot be watched, Ctrl-C still
/// works.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
