//! One error, rendered per route family (DECISIONS.md, Errors [5.1 #4]):
//! Cinder fault bodies `{"badRequest": {"message", "code": 400}}` on the
//! Cinder routes, `{"error": {"message", "code": "EVS.xxxx"}}` on the EVS
//! custom routes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::DomainError;
use serde_json::json;

use crate::Dialect;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    /// The Huawei A.1 code (EVS custom routes).
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "EVS.5401",
            "Authentication required.",
        )
    }

    pub fn malformed_url() -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "EVS.5400", "Malformed request url")
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "EVS.5500",
            "Internal server error.",
        )
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        Problem::new(status, e.code(), e.to_string())
    }
}

impl From<eventstore::StoreError> for Problem {
    fn from(e: eventstore::StoreError) -> Self {
        Problem::internal(e)
    }
}

impl From<eventstore::rusqlite::Error> for Problem {
    fn from(e: eventstore::rusqlite::Error) -> Self {
        Problem::internal(e)
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub dialect: Dialect,
    pub problem: Problem,
}

/// The Cinder fault name for a status, as python-cinderclient and
/// openstacksdk read it (CLIENTS.md, Errors).
pub fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        _ => "computeFault",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let p = self.problem;
        let body = match self.dialect {
            Dialect::Cinder => json!({
                fault_name(p.status): { "message": p.message, "code": p.status.as_u16() }
            }),
            Dialect::Evs => json!({ "error": { "message": p.message, "code": p.code } }),
        };
        // A.1 documents the quota codes as 400 on the EVS routes; Cinder
        // answers 413 overLimit (DECISIONS.md, Quotas).
        let status = match (self.dialect, p.code) {
            (Dialect::Evs, "EVS.1034" | "EVS.1042") => StatusCode::BAD_REQUEST,
            _ => p.status,
        };
        (status, Json(body)).into_response()
    }
}
