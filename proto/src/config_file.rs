//! A binary's TOML config file and the errors its configuration can have, shared by sg-node
//! and sg-client so both report a missing, malformed or contradictory setting the same way.

use serde::de::DeserializeOwned;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

/// Reads and parses `path`; unknown keys are refused by the target type's serde attributes.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_toml(&path.display().to_string(), &text)
}

/// Parses config text that came from `origin` (a path, for the error).
pub fn parse_toml<T: DeserializeOwned>(origin: &str, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_string(),
        detail: e.to_string(),
    })
}
