//! One problem type for every refusal the API makes; each dialect renders it
//! in its own shape (see `dialects`). A `Problem` says *what* went wrong in
//! dialect-neutral terms (a typed domain refusal, or a transport-level
//! reason); the dialect picks the body, the code and, where its document
//! says so, the status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{DomainError, ErrorKind};

use crate::dialects::DialectRef;

/// Why a request was refused, before any dialect names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A domain rule or a request field (typed: kind, reason, field).
    Domain(DomainError),
    /// A code the dialect's own adapter chose while parsing its own wire
    /// format (e.g. EVS.1008 "null createVolumeReq!"): only that dialect
    /// creates and renders these.
    Vendor(&'static str),
    Unauthorized,
    Forbidden,
    MalformedUrl,
    /// No route, or a resource the route names does not exist.
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
    /// The request conflicts with the resource's state or an earlier
    /// request (an Idempotency-Key reused with another body).
    Conflict,
    JobNotFound,
    VolumeTypeNotFound,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, reason: Reason, message: impl Into<String>) -> Self {
        Problem {
            status,
            reason,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            Reason::Unauthorized,
            "Authentication required.",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, Reason::Forbidden, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Problem::new(StatusCode::CONFLICT, Reason::Conflict, message)
    }

    pub fn malformed_url() -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Reason::MalformedUrl,
            "Malformed request url",
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Reason::Internal,
            "Internal server error.",
        )
    }

    /// A 400 with a code of the dialect's own (see `Reason::Vendor`).
    pub fn vendor(code: &'static str, message: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, Reason::Vendor(code), message)
    }
}

/// The status a domain refusal takes on routes that follow HTTP semantics
/// (Cinder); a dialect may document others (EVS quotas are 400).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::OverLimit => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        Problem::new(status_of(e.kind()), Reason::Domain(e), message)
    }
}

impl From<eventstore::StoreError> for Problem {
    fn from(e: eventstore::StoreError) -> Self {
        Problem::internal(e)
    }
}

impl From<crate::app::AppError> for Problem {
    fn from(e: crate::app::AppError) -> Self {
        match e {
            crate::app::AppError::Refused(r) => r.error.into(),
            crate::app::AppError::Store(s) => s.into(),
        }
    }
}

/// A problem bound to the dialect that must render it.
#[derive(Debug)]
pub struct ApiError {
    pub dialect: DialectRef,
    pub problem: Problem,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.dialect.0.render_error(&self.problem)
    }
}
