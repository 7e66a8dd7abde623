//! Dialects are owned by the router, not guessed from the path: each
//! dialect's routes are wrapped by `serve`, which tags every request with
//! the dialect that matched (so `Ctx` knows who authenticates and who
//! renders errors) and gives axum's own plain-text refusals (405, 413) the
//! dialect's error body.
//!
//! A dialect is a small trait: how a caller proves who it is, how a refusal
//! looks. Everything else a dialect does is translation in its adapter
//! modules, on top of `crate::app`.

pub mod cinder;
pub mod evs;
pub mod glance;
pub mod idc;
pub mod luna;
pub mod nova;
pub mod zstack;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use crate::{Problem, Reason};

/// Who a credential says the caller is (before any URL check).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub project_id: String,
    /// The strongest role held on `project_id`.
    pub role: domain::identity::Role,
}

/// What a request carries to prove who it is, as its dialect spells it;
/// `crate::identity::authenticate` says whom it names (a token of the
/// built-in identity, or noauth's `user:project`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Token(String),
    /// `X-User-Id` + `X-Project-Id`: noauth only (CLIENTS.md, noauth).
    UserProject {
        user: String,
        project: String,
    },
    /// The small provider's `api_id` + `api_key` (DECISIONS.md).
    ApiKey {
        id: String,
        secret: String,
    },
}

pub trait Dialect: Send + Sync + std::fmt::Debug + 'static {
    /// Recorded in every event's metadata (`dialect`).
    fn name(&self) -> &'static str;

    /// The credential the request carries. The default is the OpenStack
    /// one, `X-Auth-Token` (Cinder, EVS, Nova, the image catalog, the
    /// Chinese cloud), or noauth's `X-User-Id` + `X-Project-Id`.
    fn credential(&self, parts: &Parts) -> Option<Credential> {
        openstack_credential(parts)
    }

    /// The refusal in this dialect's body, code and status.
    fn render_error(&self, p: &Problem) -> Response;
}

/// `X-Auth-Token`, or noauth's `X-User-Id` + `X-Project-Id`.
pub fn openstack_credential(parts: &Parts) -> Option<Credential> {
    if let Some(t) = header(parts, "x-auth-token") {
        return Some(Credential::Token(t.to_string()));
    }
    match (header(parts, "x-user-id"), header(parts, "x-project-id")) {
        (Some(u), Some(p)) => Some(Credential::UserProject {
            user: u.to_string(),
            project: p.to_string(),
        }),
        _ => None,
    }
}

/// The dialect a route belongs to, as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct DialectRef(pub &'static dyn Dialect);

impl DialectRef {
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

pub fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Longest user or project name a token may carry.
const MAX_NAME_BYTES: usize = 255;

/// noauth mode (DECISIONS.md, Admin; CLIENTS.md, noauth): the token
/// `<user>:<project>` (or `X-User-Id` + `X-Project-Id`) names the caller;
/// the user `admin` has the admin role, everyone else is a member.
pub fn noauth(credential: Option<Credential>) -> Result<Principal, Problem> {
    let (user, project) = match credential {
        Some(Credential::Token(t)) => match t.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => (u.to_string(), p.to_string()),
            _ => return Err(Problem::unauthorized()),
        },
        Some(Credential::UserProject { user, project }) => (user, project),
        Some(Credential::ApiKey { .. }) | None => return Err(Problem::unauthorized()),
    };
    if project.len() > MAX_NAME_BYTES || user.len() > MAX_NAME_BYTES {
        return Err(Problem::unauthorized());
    }
    use domain::identity::Role;
    Ok(Principal {
        role: if user == "admin" {
            Role::Admin
        } else {
            Role::Member
        },
        user_id: user,
        project_id: project,
    })
}

/// Wraps a dialect's routes: every request they match carries the dialect,
/// and a keyed retry is answered from the log (`idempotency`), refused in
/// the dialect's own words when it must be.
pub fn serve<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    dialect: &'static dyn Dialect,
    idem: &crate::idempotency::Idempotency,
) -> Router<S> {
    routes
        .layer(middleware::from_fn_with_state(
            idem.clone(),
            crate::idempotency::enforce,
        ))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            tag(DialectRef(dialect), req, next)
        }))
}

async fn tag(dialect: DialectRef, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(dialect);
    let resp = next.run(req).await;
    refuse_plain(dialect, resp)
}

/// Rejections made by axum itself (a body over the size limit, a method a
/// route does not serve) come as plain text: give them the dialect's error
/// body like every other refusal.
pub fn refuse_plain(dialect: DialectRef, resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (reason, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (Reason::BodyTooLarge, "Request body too large."),
        StatusCode::METHOD_NOT_ALLOWED => (
            Reason::MethodNotAllowed,
            "Method not allowed on this resource.",
        ),
        StatusCode::NOT_FOUND => (Reason::NotFound, "The resource could not be found."),
        s => (Reason::Internal, s.canonical_reason().unwrap_or("Error")),
    };
    dialect
        .0
        .render_error(&Problem::new(status, reason, message))
}

/// For a path no route matched there is no dialect to ask; the URL map's
/// prefixes name the one whose error body a client there expects.
pub fn for_unrouted(path: &str) -> DialectRef {
    if path.starts_with("/api/") {
        DialectRef(&luna::LUNA)
    } else if path.starts_with("/zstack/") {
        DialectRef(&zstack::ZSTACK)
    } else if path.starts_with("/v2.1/") || path == "/v2.1" {
        DialectRef(&nova::NOVA)
    } else if path.contains("/cloudvolumes")
        || path.contains("/os-vendor-")
        || path.starts_with("/v1/")
    {
        DialectRef(&evs::EVS)
    } else {
        DialectRef(&cinder::CINDER)
    }
}
