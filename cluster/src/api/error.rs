//! API errors: every failure is a status plus `{"error": "<machine code>", "message": "<what
//! to do>"}`.

use crate::state::StateError;
use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sg_api::{ErrorBody, ErrorCode};
use std::fmt;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    NotFound {
        what: &'static str,
        id: String,
    },
    NoSuchEndpoint {
        method: String,
        path: String,
    },
    Invalid {
        field: String,
        reason: String,
    },
    BadBody(String),
    LimitReached(String),
    Conflict {
        code: ErrorCode,
        message: String,
    },
    NoFreePort(String),
    Storage(String),
    /// The cluster's store cannot take changes now; nothing was changed.
    StoreUnavailable(String),
    /// Other nodes did not answer, and the answer depends on them.
    PeersUnreachable(String),
    Unavailable,
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::NotFound { .. } => ErrorCode::NotFound,
            ApiError::NoSuchEndpoint { .. } => ErrorCode::NoSuchEndpoint,
            ApiError::Invalid { .. } => ErrorCode::InvalidField,
            ApiError::BadBody(_) => ErrorCode::InvalidBody,
            ApiError::LimitReached(_) => ErrorCode::LimitReached,
            ApiError::Conflict { code, .. } => *code,
            ApiError::NoFreePort(_) => ErrorCode::NoFreePort,
            ApiError::Storage(_) => ErrorCode::StorageError,
            ApiError::StoreUnavailable(_) => ErrorCode::StoreUnavailable,
            ApiError::PeersUnreachable(_) => ErrorCode::NodesUnreachable,
            ApiError::Unavailable => ErrorCode::Unavailable,
        }
    }

    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized => write!(
                f,
                "send `Authorization: Bearer <admin token>`; the node wrote its token to DATA_DIR/admin.token"
            ),
            ApiError::NotFound { what, id } => write!(f, "{what} {id} does not exist"),
            ApiError::NoSuchEndpoint { method, path } => {
                write!(f, "no endpoint {method} {path}; see the README's API section")
            }
            ApiError::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            ApiError::BadBody(m)
            | ApiError::LimitReached(m)
            | ApiError::NoFreePort(m)
            | ApiError::Storage(m)
            | ApiError::StoreUnavailable(m)
            | ApiError::PeersUnreachable(m) => f.write_str(m),
            ApiError::Conflict { message, .. } => f.write_str(message),
            ApiError::Unavailable => write!(f, "the node is starting or stopping; retry shortly"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } | ApiError::NoSuchEndpoint { .. } => StatusCode::NOT_FOUND,
            ApiError::Invalid { .. } | ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::LimitReached(_) | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::NoFreePort(_)
            | ApiError::Unavailable
            | ApiError::StoreUnavailable(_)
            | ApiError::PeersUnreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(self, ApiError::Storage(_)) {
            tracing::error!("API request failed: {self}");
        }
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
        })
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotFound { what, id } => ApiError::NotFound { what, id },
            StateError::Invalid { field, reason } => ApiError::Invalid { field, reason },
            e @ StateError::LimitReached { .. } => ApiError::LimitReached(e.to_string()),
            StateError::Conflict { code, message } => ApiError::Conflict { code, message },
            e @ StateError::NoFreePort { .. } => ApiError::NoFreePort(e.to_string()),
            StateError::Store(e @ (StoreError::Unavailable(_) | StoreError::Stale { .. })) => {
                ApiError::StoreUnavailable(e.to_string())
            }
            StateError::Store(e) => ApiError::Storage(e.to_string()),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::Unavailable
    }
}
