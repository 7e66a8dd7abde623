//! Who is calling, for which project, through which dialect: extracted once
//! per request. The dialect is the one whose routes matched (a request
//! extension set by `dialects::serve`), and it authenticates the caller.
//! The URL's project must be the token's (400 otherwise), except that an
//! admin of the built-in identity acts on another project by naming it in
//! the URL (issue 13).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::app::policy::{self, Access};
use crate::app::{Caller, RequestMeta};
use crate::dialects::{self, DialectRef};
use crate::{ApiError, AppState, Problem, Reason, RequestId};
use axum::http::StatusCode;
use domain::{DomainError, FieldReason};

#[derive(Debug, Clone)]
pub struct Ctx {
    pub user_id: String,
    pub project_id: String,
    pub is_admin: bool,
    /// The strongest role the credential holds (`app::policy`).
    pub role: domain::identity::Role,
    pub dialect: DialectRef,
    /// `v1`, `v2` or `v3`: links point back at the version that was asked.
    pub api_version: &'static str,
    /// `http://host:port`, from the Host header.
    pub base_url: String,
    pub request_id: String,
    pub route: String,
    /// The client's `Idempotency-Key`, if sent, kept with the events.
    pub idempotency_key: Option<String>,
    /// The client's address (`server.rs` puts it in every request's
    /// extensions), recorded with the events (issue 14).
    pub remote_addr: Option<String>,
    /// The volume microversion `/v3` negotiated (`microversion::negotiate`
    /// puts it in the request's extensions); 3.0 elsewhere, where `/v2`
    /// behaves as 3.0 does.
    pub microversion: (u32, u32),
}

impl Ctx {
    pub fn err(&self, p: impl Into<Problem>) -> ApiError {
        let mut problem = p.into();
        // `/v3` answers as Cinder does: a named thing that does not exist
        // (a marker, a source snapshot or volume, a volume type) is a 404
        // `itemNotFound`, where the Huawei seed's `/v2` documents a 400
        // (DECISIONS.md, Everywhere).
        if self.is_v3() {
            if let Reason::Domain(DomainError::InvalidField {
                reason: FieldReason::NotFound,
                ..
            }) = problem.reason
            {
                problem.status = StatusCode::NOT_FOUND;
            }
        }
        ApiError {
            dialect: self.dialect,
            problem,
        }
    }

    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.user_id.clone(),
            project_id: self.project_id.clone(),
            is_admin: self.is_admin,
            role: self.role,
        }
    }

    pub fn meta(&self) -> RequestMeta {
        RequestMeta {
            request_id: self.request_id.clone(),
            dialect: self.dialect.name(),
            route: self.route.clone(),
            idempotency_key: self.idempotency_key.clone(),
            remote_addr: self.remote_addr.clone(),
        }
    }

    /// `/v3`: upstream Cinder's shapes, where `/v2` keeps the seed's.
    pub fn is_v3(&self) -> bool {
        self.api_version == "v3"
    }

    /// Whether the negotiated volume microversion is `v` or later.
    pub fn at_least(&self, v: (u32, u32)) -> bool {
        self.microversion >= v
    }

    /// Whether the caller may see a resource owned by `owner`.
    pub fn can_see(&self, owner: &str) -> bool {
        self.is_admin || owner == self.project_id
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let path = parts.uri.path().to_string();
        let dialect = parts
            .extensions
            .get::<DialectRef>()
            .copied()
            .unwrap_or_else(|| dialects::for_unrouted(&path));
        let fail = |problem: Problem| ApiError { dialect, problem };
        let mut who = crate::identity::authenticate(&state.app(), &state.identity, dialect, parts)
            .await
            .map_err(fail)?;
        let is_admin = policy::permits(who.role, Access::AllProjects);
        let params: HashMap<String, String> =
            Path::<HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map(|Path(p)| p)
                .unwrap_or_default();
        if let Some(url_project) = params.get("project_id") {
            if *url_project != who.project_id {
                // noauth keeps Cinder's answer for everyone (DECISIONS.md,
                // Project in the URL); with real identities an admin
                // reaches another project by asking for it.
                if is_admin && state.identity.mode == crate::identity::AuthMode::Keystone {
                    who.project_id = url_project.clone();
                } else {
                    return Err(fail(Problem::malformed_url()));
                }
            }
        }
        let api_version = if path.starts_with("/v3/") {
            "v3"
        } else if path.starts_with("/v1/") {
            "v1"
        } else {
            "v2"
        };
        let host = dialects::header(parts, "host").unwrap_or("127.0.0.1:8776");
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(Ctx {
            is_admin,
            role: who.role,
            user_id: who.user_id,
            project_id: who.project_id,
            dialect,
            api_version,
            base_url: format!("http://{host}"),
            request_id,
            route: format!("{} {}", parts.method, path),
            idempotency_key: dialects::header(parts, "idempotency-key")
                .filter(|k| k.len() <= 255)
                .map(str::to_string),
            remote_addr: remote_addr(parts),
            microversion: parts
                .extensions
                .get::<crate::microversion::Version>()
                .map_or(crate::microversion::VOLUME.default, |v| v.0),
        })
    }
}

/// The peer's `ip:port`, if the connection was TCP.
pub fn remote_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string())
}
