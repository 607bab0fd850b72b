//! The API's one error type. Every failure leaves as the contract's shape:
//! `{"error": {"type", "code", "message", "param"}}`. Internal errors are logged
//! with their whole chain and answered with a generic message.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use stewrd_shared::{
    db::{DbError, PoolError},
    ops::OpsError,
};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    param: Option<String>,
    retry_after: Option<u64>,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `conflict_error`, `gone_error`, `rate_limit_error`, `service_unavailable_error` or `api_error`.
    #[serde(rename = "type")]
    kind: String,
    /// A stable, machine-readable code (`missing_field`, `session_busy`, …).
    code: String,
    message: String,
    /// The field or parameter at fault, if any.
    param: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// 400: a body or parameter that cannot be used; `param` names it.
    pub fn invalid(
        code: &'static str,
        param: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            param: Some(param.into()),
            ..Self::new(StatusCode::BAD_REQUEST, code, message)
        }
    }

    /// 400 about the body as a whole.
    pub fn invalid_body(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 404. The same answer whether the thing is missing or another project's.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 410: what was asked for is past its retention.
    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, code, message)
    }

    /// 422: an idempotency key reused with another body.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 429 with `Retry-After`: too many wrong admin tokens from this address.
    pub fn too_many_attempts(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many wrong admin tokens from this address; try again in {seconds} s"),
            )
        }
    }

    /// 429 with `Retry-After`: a project's limit refuses the request (its queue
    /// is full, its token budget used up); nothing was stored.
    pub fn over_limit(
        code: &'static str,
        message: impl Into<String>,
        wait: std::time::Duration,
    ) -> Self {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }

    /// 408: the client sent its body too slowly.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} seconds",
                limit.as_secs()
            ),
        )
    }

    /// 502: a server the project configured (an MCP server) failed; the
    /// message says how, never with a header value.
    pub fn bad_gateway(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, code, message)
    }

    /// 503 with `Retry-After`: a dependency is down; nothing was changed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                message,
            )
        }
    }

    /// 500: logged here, answered generically. Only the error's own words
    /// are logged, not its causes': a refused statement's cause is Postgres's
    /// message and DETAIL, which quote the values it carried (a failing row
    /// holds a message's text); `DbError` says which failure it was without
    /// them.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; the request may be retried",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The human-readable message (never a secret).
    pub fn message(&self) -> &str {
        &self.message
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            404 => "not_found_error",
            409 => "conflict_error",
            410 => "gone_error",
            429 => "rate_limit_error",
            503 => "service_unavailable_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        }
    }
}

/// Waiting for a pooled connection failed: the same answers as a failed statement.
impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        DbError::from(error).into()
    }
}

impl From<OpsError> for ApiError {
    fn from(error: OpsError) -> Self {
        match error {
            OpsError::Invalid { param, message } => Self::invalid("invalid_value", param, message),
            OpsError::NotFound(what) => Self::not_found(what),
            OpsError::Db(error) => error.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                Self::unavailable("the database is unavailable; retry shortly")
            }
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorDetail {
                kind: self.kind().to_owned(),
                code: self.code.to_owned(),
                message: self.message,
                param: self.param,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
