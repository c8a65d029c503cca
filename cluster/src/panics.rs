//! What a panic means depends on the thread: in a worker arbiter it ends one connection or
//! session and the node carries on; on a thread that holds the control plane (the main
//! arbiter with the Node and Gateway actors, the state thread) the node must exit so its
//! service manager restarts it from durable state. Threads say which they are here.

use std::cell::Cell;

/// The status a node exits with after a panic on the control plane.
pub const PANIC_EXIT: i32 = 70;

thread_local! {
    static CRITICAL: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as one whose panic must stop the process.
pub fn mark_critical_thread() {
    CRITICAL.with(|c| c.set(true));
}

pub fn is_critical_thread() -> bool {
    CRITICAL.with(|c| c.get())
}

/// Logs every panic; exits with status 70 if it happened on a critical thread.
pub fn install_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        tracing::error!(thread = %name, "panic: {info}");
        default(info);
        if is_critical_thread() {
            std::process::exit(PANIC_EXIT);
        }
    }));
}
