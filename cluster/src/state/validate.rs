//! Checks of single request fields — names, hosts, ports, timeouts, token lifetimes,
//! health checks — each returning the field-named [`StateError`] the API shows.

use super::{StateError, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS};
use crate::inputs;
use crate::records::DestinationRecord;
use crate::time::now_secs;
use sg_api::destinations::HealthCheckInput;
use sg_proto::frame::AppProtocol;
use sg_proto::health::HealthCheck;

const MAX_NAME_LEN: usize = 64;
const MAX_HOST_LEN: usize = 253;

/// A health check as asked for, with the defaults filled in.
pub(super) fn health_check_of(input: HealthCheckInput) -> HealthCheck {
    let d = HealthCheck::default();
    HealthCheck {
        kind: input.kind.map_or(d.kind, inputs::health_kind),
        path: input.path,
        interval_secs: input.interval_secs.unwrap_or(d.interval_secs),
        timeout_secs: input.timeout_secs.unwrap_or(d.timeout_secs),
        unhealthy_after: input.unhealthy_after.unwrap_or(d.unhealthy_after),
        healthy_after: input.healthy_after.unwrap_or(d.healthy_after),
    }
}

/// A health check's settings, checked; the default check is stored as `None`.
pub(super) fn validate_health_check(
    c: Option<HealthCheckInput>,
) -> Result<Option<HealthCheck>, StateError> {
    let Some(c) = c.map(health_check_of) else {
        return Ok(None);
    };
    c.validate()
        .map_err(|e| StateError::invalid(format!("health_check.{}", e.field), e.reason.clone()))?;
    Ok((c != HealthCheck::default()).then_some(c))
}

/// Host rewriting reads HTTP requests: only an HTTP destination can have it.
pub(super) fn check_host_rewrite(d: &DestinationRecord) -> Result<(), StateError> {
    if d.host_rewrite && d.protocol != AppProtocol::Http {
        return Err(StateError::invalid(
            "host_rewrite",
            "needs \"protocol\": \"http\" (the client rewrites the Host of HTTP requests)",
        ));
    }
    Ok(())
}

pub(super) fn validate_name(field: &str, name: &str) -> Result<String, StateError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StateError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(StateError::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(StateError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

pub(super) fn validate_host(host: &str) -> Result<String, StateError> {
    let host = host.trim();
    if host.is_empty() {
        return Err(StateError::invalid("resource_host", "must not be empty"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(StateError::invalid(
            "resource_host",
            format!("must be at most {MAX_HOST_LEN} characters"),
        ));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
    {
        return Err(StateError::invalid(
            "resource_host",
            "must be a host name or IP address, without scheme, path or spaces",
        ));
    }
    Ok(host.to_string())
}

/// Longest idle timeout one may set: an hour.
pub const MAX_IDLE_TIMEOUT_SECS: u32 = 3600;

pub(super) fn validate_idle_timeout(secs: u32) -> Result<u32, StateError> {
    if secs > MAX_IDLE_TIMEOUT_SECS {
        return Err(StateError::invalid(
            "idle_timeout_secs",
            format!("must be 0 (never) or 1-{MAX_IDLE_TIMEOUT_SECS}"),
        ));
    }
    Ok(secs)
}

pub(super) fn validate_port(field: &str, port: u32) -> Result<u16, StateError> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(StateError::invalid(
            field,
            format!("{port} is not a port (1-65535)"),
        )),
    }
}

pub(super) fn token_expiry(days: Option<u32>) -> Result<u64, StateError> {
    let days = days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if days == 0 || days > MAX_TOKEN_DAYS {
        return Err(StateError::invalid(
            "token_expires_in_days",
            format!("must be between 1 and {MAX_TOKEN_DAYS}"),
        ));
    }
    Ok(now_secs() + u64::from(days) * 86_400)
}
