//! Logging for both binaries, set up in one place: text or JSON lines (`--log-format`), on
//! stderr or in a file (`-p FILE`), at the `-l` level — or per module, with `RUST_LOG`
//! (`RUST_LOG=info,sg_cluster::etcd=debug`) — and a level that can change while the process
//! runs (the node's API, the client's console and web UI).

use crate::loglevel::LogLevel;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: `2026-12-02T10:00:00Z  INFO message key=value`.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, the span ids), for
    /// log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{s:?} is not a log format: use text or json")),
        }
    }
}

/// The logging flags both binaries take (flattened into their command lines).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// Log level: ERROR, WARN, INFO, DEBUG or TRACE.
    #[arg(short = 'l', long, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Write the log to this file instead of stderr.
    #[arg(short = 'p', long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// text (default) or json (one object per line, for log collectors). RUST_LOG sets
    /// per-module levels (`info,sg_cluster::etcd=debug`, `info,sg_client::health=debug`).
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<LogFormat>,
}

/// How the process logs: the flags, else the config file's `log_level`, `log_file` and
/// `log_format` keys, else INFO as text on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub level: LogLevel,
    pub file: Option<PathBuf>,
    pub format: LogFormat,
}

impl LogArgs {
    /// The settings, with the flags winning over the config file's keys.
    pub fn or_file(
        self,
        level: Option<LogLevel>,
        file: Option<PathBuf>,
        format: Option<LogFormat>,
    ) -> LogSettings {
        LogSettings {
            level: self.log_level.or(level).unwrap_or(LogLevel::Info),
            file: self.log_file.or(file),
            format: self.log_format.or(format).unwrap_or_default(),
        }
    }
}

/// Why the logger could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{FILTER_ENV}={spec:?} is not a filter ({reason}); use e.g. info,sg_cluster=debug")]
    BadFilter { spec: String, reason: String },
    #[error("cannot open log file {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a logger is installed already: {0}")]
    Installed(String),
}

/// The environment variable with per-module filters.
pub const FILTER_ENV: &str = "RUST_LOG";

/// Changes the log level at run time.
pub struct LogControl {
    handle: reload::Handle<Targets, Registry>,
    level: Mutex<LogLevel>,
    /// The `RUST_LOG` filters the process started with, until a level replaces them.
    filters: Mutex<Option<String>>,
}

impl LogControl {
    pub fn level(&self) -> LogLevel {
        *self.level.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The per-module filters in force, if the process started with `RUST_LOG` and no level
    /// has been set since.
    pub fn filters(&self) -> Option<String> {
        self.filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One level for every module from now on (per-module filters are dropped).
    pub fn set_level(&self, level: LogLevel) -> Result<(), String> {
        self.handle
            .reload(Targets::new().with_default(level.filter()))
            .map_err(|e| format!("cannot change the log level: {e}"))?;
        *self.level.lock().unwrap_or_else(|p| p.into_inner()) = level;
        *self.filters.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// The installed logger's control, once [`init`] ran.
pub fn control() -> Option<&'static LogControl> {
    CONTROL.get()
}

/// Installs the global logger. `RUST_LOG`, when set, wins over `level`; a malformed one is
/// an error naming it.
pub fn init(settings: &LogSettings) -> Result<&'static LogControl, LogError> {
    let (level, format, file) = (settings.level, settings.format, settings.file.as_deref());
    let from_env = std::env::var(FILTER_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let targets = match &from_env {
        Some(spec) => Targets::from_str(spec).map_err(|e| LogError::BadFilter {
            spec: spec.clone(),
            reason: e.to_string(),
        })?,
        None => Targets::new().with_default(level.filter()),
    };
    let (filter, handle) = reload::Layer::new(targets);
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LogError::File {
                    path: path.to_path_buf(),
                    source,
                })?;
            let f = std::sync::Arc::new(Mutex::new(f));
            Box::new(move || Box::new(SharedFile(f.clone())))
        }
        None => Box::new(|| Box::new(std::io::stderr())),
    };
    let ansi = file.is_none();
    let layer = match format {
        LogFormat::Text => fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| LogError::Installed(e.to_string()))?;
    let control = LogControl {
        handle,
        level: Mutex::new(level),
        filters: Mutex::new(from_env),
    };
    Ok(CONTROL.get_or_init(|| control))
}

/// A log file several threads write to, a whole line at a time.
struct SharedFile(std::sync::Arc<Mutex<std::fs::File>>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_named_as_operators_type_them() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml"
            .parse::<LogFormat>()
            .unwrap_err()
            .contains("text or json"));
    }
}
