//! The client's log: one place that sets it up (stderr or `-p FILE`) and lets the console
//! and the web UI change the level while the client runs.

use sg_proto::loglevel::LogLevel;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Registry};

/// Changes the log level at run time.
pub struct LogControl {
    handle: reload::Handle<tracing::level_filters::LevelFilter, Registry>,
    level: Mutex<LogLevel>,
}

impl LogControl {
    pub fn level(&self) -> LogLevel {
        *self.level.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_level(&self, level: LogLevel) -> Result<(), String> {
        self.handle
            .reload(level.filter())
            .map_err(|e| format!("cannot change the log level: {e}"))?;
        *self.level.lock().unwrap_or_else(|p| p.into_inner()) = level;
        Ok(())
    }
}

/// Installs the global logger.
pub fn init(level: LogLevel, file: Option<&Path>) -> Result<LogControl, String> {
    let (filter, handle) = reload::Layer::new(level.filter());
    let registry = tracing_subscriber::registry().with(filter);
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            registry
                .with(
                    fmt::layer()
                        .with_target(false)
                        .with_ansi(false)
                        .with_writer(Mutex::new(f)),
                )
                .try_init()
                .map_err(|e| e.to_string())?;
        }
        None => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init()
            .map_err(|e| e.to_string())?,
    }
    Ok(LogControl {
        handle,
        level: Mutex::new(level),
    })
}
