//! Who is calling, for which project, in which dialect: extracted once per
//! request. noauth mode (DECISIONS.md, Admin; CLIENTS.md, noauth):
//! `X-Auth-Token: <user>:<project>` names the caller; the user `admin` has
//! the admin role. The URL's project must be the token's (400 otherwise).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::{ApiError, AppState, Problem, RequestId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenStack Cinder v2/v3 routes: Cinder fault bodies.
    Cinder,
    /// Huawei EVS custom routes (`cloudvolumes`, `os-vendor-*`, `/v1/…`).
    Evs,
}

impl Dialect {
    pub fn from_path(path: &str) -> Self {
        if path.contains("/cloudvolumes")
            || path.contains("/os-vendor-")
            || path.starts_with("/v1/")
        {
            Dialect::Evs
        } else {
            Dialect::Cinder
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dialect::Cinder => "cinder",
            Dialect::Evs => "evs",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ctx {
    pub user_id: String,
    pub project_id: String,
    pub is_admin: bool,
    pub dialect: Dialect,
    /// `v1`, `v2` or `v3`: links point back at the version that was asked.
    pub api_version: &'static str,
    /// `http://host:port`, from the Host header.
    pub base_url: String,
    pub request_id: String,
    pub route: String,
    /// The client's `Idempotency-Key`, if sent, kept with the events.
    pub idempotency_key: Option<String>,
}

impl Ctx {
    pub fn err(&self, p: impl Into<Problem>) -> ApiError {
        ApiError {
            dialect: self.dialect,
            problem: p.into(),
        }
    }

    /// Event metadata: who asked what, through which door.
    pub fn metadata(&self, correlation_id: Option<&str>) -> Value {
        json!({
            "request_id": self.request_id,
            "project_id": self.project_id,
            "user_id": self.user_id,
            "dialect": self.dialect.name(),
            "route": self.route,
            "idempotency_key": self.idempotency_key,
            "correlation_id": correlation_id,
        })
    }

    /// Whether the caller may see a resource owned by `owner`.
    pub fn can_see(&self, owner: &str) -> bool {
        self.is_admin || owner == self.project_id
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let path = parts.uri.path().to_string();
        let dialect = Dialect::from_path(&path);
        let fail = |problem: Problem| ApiError { dialect, problem };
        let token = header(parts, "x-auth-token");
        let (user, project) = match token.and_then(|t| t.split_once(':')) {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => (u.to_string(), p.to_string()),
            _ => match (
                header(parts, "x-user-id"),
                header(parts, "x-project-id"),
                token,
            ) {
                (Some(u), Some(p), _) => (u.to_string(), p.to_string()),
                // A bare token names the user; the project comes from the URL.
                _ => return Err(fail(Problem::unauthorized())),
            },
        };
        let params: HashMap<String, String> =
            Path::<HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map(|Path(p)| p)
                .unwrap_or_default();
        if let Some(url_project) = params.get("project_id") {
            if *url_project != project {
                return Err(fail(Problem::malformed_url()));
            }
        }
        let api_version = if path.starts_with("/v3/") {
            "v3"
        } else if path.starts_with("/v1/") {
            "v1"
        } else {
            "v2"
        };
        let host = header(parts, "host").unwrap_or("127.0.0.1:8776");
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        if project.len() > 255 || user.len() > 255 {
            return Err(fail(Problem::new(
                StatusCode::UNAUTHORIZED,
                "EVS.5401",
                "Authentication required.",
            )));
        }
        Ok(Ctx {
            is_admin: user == "admin",
            user_id: user,
            project_id: project,
            dialect,
            api_version,
            base_url: format!("http://{host}"),
            request_id,
            route: format!("{} {}", parts.method, path),
            idempotency_key: header(parts, "idempotency-key")
                .filter(|k| k.len() <= 255)
                .map(str::to_string),
        })
    }
}
