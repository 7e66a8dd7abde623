//! The built-in identity's Keystone v3 routes (issue 13; DESIGN.md URL map:
//! `/identity`, as devstack serves Keystone, so `/v3` stays Cinder's):
//! the version documents keystoneauth probes, and `/identity/v3/auth/tokens`
//! with the `password` method and a project scope: POST issues (201,
//! `X-Subject-Token`), GET (and HEAD) validates, DELETE revokes. Refusals
//! are Keystone's `{"error": {"code", "title", "message"}}`.
//!
//! Shapes follow Keystone's api-ref (`identity/v3`, "Password
//! authentication with scoped authorization", "Validate and show
//! information for token").

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::identity::{DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME};
use domain::DomainError;
use serde_json::{json, Value};

use super::{random_secret, sha256_hex, verify_password, AuthMode};
use crate::app::identity as uc;
use crate::app::policy::{self, Access};
use crate::app::RequestMeta;
use crate::dialects::{header, Dialect};
use crate::{AppState, Problem, Reason, RequestId};

#[derive(Debug)]
pub struct Keystone;

pub static KEYSTONE: Keystone = Keystone;

impl Dialect for Keystone {
    fn name(&self) -> &'static str {
        "keystone"
    }

    fn render_error(&self, p: &Problem) -> Response {
        let status = match &p.reason {
            Reason::Domain(e) => match e.kind() {
                domain::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                domain::ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                _ => p.status,
            },
            _ => p.status,
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let mut resp = (
            status,
            Json(json!({"error": {
                "code": status.as_u16(),
                "title": title,
                "message": p.message,
            }})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Keystone uri=\"/identity\""),
            );
        }
        resp
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/identity", get(versions))
        .route("/identity/", get(versions))
        .route("/identity/v3", get(version))
        .route("/identity/v3/", get(version))
        .route(
            "/identity/v3/auth/tokens",
            get(validate).post(issue).delete(revoke),
        )
}

fn base(headers: &HeaderMap) -> String {
    let host = header_str(headers, "host").unwrap_or("127.0.0.1:8776");
    format!("http://{host}")
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn v3(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json"
        }],
    })
}

/// `GET /identity`: 300 with the one version served.
async fn versions(headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"versions": {"values": [v3(&base(&headers))]}})),
    )
        .into_response()
}

async fn version(headers: HeaderMap) -> Response {
    Json(json!({"version": v3(&base(&headers))})).into_response()
}

fn unauthorized(msg: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, Reason::Unauthorized, msg)
}

fn bad_request(msg: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, Reason::Internal, msg)
}

fn err(p: Problem) -> Response {
    KEYSTONE.render_error(&p)
}

const AUTH_REQUIRED: &str = "The request you have made requires authentication.";

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn domain_ref() -> Value {
    json!({"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME})
}

/// This service's endpoints, at the address the client reached it by.
fn catalog(base: &str, project_id: &str) -> Value {
    let service = |kind: &str, name: &str, url: String| {
        let endpoints: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .map(|iface| {
                json!({
                    "id": sha256_hex(&format!("{kind}/{iface}"))[..32].to_string(),
                    "interface": iface,
                    "region": "RegionOne",
                    "region_id": "RegionOne",
                    "url": url,
                })
            })
            .collect();
        json!({
            "id": sha256_hex(kind)[..32].to_string(),
            "type": kind,
            "name": name,
            "endpoints": endpoints,
        })
    };
    json!([
        service("identity", "keystone", format!("{base}/identity")),
        service("block-storage", "cinder", format!("{base}/v3/{project_id}")),
        service("volumev3", "cinderv3", format!("{base}/v3/{project_id}")),
        service("volumev2", "cinderv2", format!("{base}/v2/{project_id}")),
        service("volume", "cinder", format!("{base}/v3/{project_id}")),
        service("image", "glance", format!("{base}/image")),
    ])
}

fn token_body(base: &str, rec: &uc::TokenRecord, with_catalog: bool) -> Value {
    let mut t = json!({
        "methods": ["password"],
        "user": {
            "id": rec.user.id,
            "name": rec.user.name,
            "domain": domain_ref(),
            "password_expires_at": null,
        },
        "project": {
            "id": rec.project.id,
            "name": rec.project.name,
            "domain": domain_ref(),
        },
        "is_domain": false,
        "roles": rec.roles.iter().map(|r| json!({"id": r.id(), "name": r.as_str()})).collect::<Vec<_>>(),
        "audit_ids": [rec.audit_id],
        "issued_at": time(rec.issued_at),
        "expires_at": time(rec.expires_at),
    });
    if with_catalog {
        t["catalog"] = catalog(base, &rec.project.id);
    }
    json!({ "token": t })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

/// A user or project reference: by id, or by name within a domain
/// (`domain.id` or `domain.name`; only the default domain exists).
fn reference(v: &Value, what: &str) -> Result<(Option<String>, Option<String>), Problem> {
    if let Some(id) = str_at(v, &["id"]) {
        return Ok((Some(id.to_string()), None));
    }
    let name = str_at(v, &["name"])
        .ok_or_else(|| bad_request(format!("Expecting to find id or name in {what}.")))?;
    let domain_ok = match (str_at(v, &["domain", "id"]), str_at(v, &["domain", "name"])) {
        (Some(id), _) => id == DEFAULT_DOMAIN_ID,
        (None, Some(n)) => n == DEFAULT_DOMAIN_NAME || n == DEFAULT_DOMAIN_ID,
        (None, None) => return Err(bad_request(format!("Expecting to find domain in {what}."))),
    };
    if !domain_ok {
        // An unknown domain names no one: the same 401 as a wrong name.
        return Err(unauthorized(AUTH_REQUIRED));
    }
    Ok((None, Some(name.to_string())))
}

/// `POST /identity/v3/auth/tokens`: password method, project scope.
async fn issue(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // An auth request is a few hundred bytes.
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return err(bad_request("The request body could not be read."));
    };
    match issue_inner(&state, &parts, &body).await {
        Ok(r) => r,
        Err(p) => err(p),
    }
}

async fn issue_inner(state: &AppState, parts: &Parts, body: &[u8]) -> Result<Response, Problem> {
    if state.identity.mode != AuthMode::Keystone {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The built-in identity is off (serve --auth noauth).",
        ));
    }
    let req: Value = serde_json::from_slice(body)
        .map_err(|_| bad_request("The request body is not valid JSON."))?;
    let auth = req
        .get("auth")
        .ok_or_else(|| bad_request("Expecting to find auth in request body."))?;
    let methods = auth
        .pointer("/identity/methods")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("Expecting to find identity.methods in auth."))?;
    if !methods.iter().any(|m| m == "password") {
        return Err(unauthorized(AUTH_REQUIRED));
    }
    let user_ref = auth
        .pointer("/identity/password/user")
        .ok_or_else(|| bad_request("Expecting to find password.user in identity."))?;
    let password = str_at(user_ref, &["password"])
        .ok_or_else(|| bad_request("Expecting to find password in user."))?;
    let (user_id, user_name) = reference(user_ref, "user")?;
    // Unscoped, domain- or system-scoped tokens are not served: every
    // route here acts within a project.
    let project_ref = auth.pointer("/scope/project").ok_or_else(|| {
        unauthorized("A project-scoped token is required: give auth.scope.project.")
    })?;
    let (project_id, project_name) = reference(project_ref, "project")?;

    let who = user_name.clone().or(user_id.clone()).unwrap_or_default();
    let addr = super::source(parts);
    let app = state.app();
    let meta = meta(parts);
    if state.identity.blocked(&who, &addr) {
        refuse(state, &meta, &who, &addr, "too many failed attempts").await;
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            Reason::Forbidden,
            "Too many failed authentication attempts; try again later.",
        ));
    }
    let found = uc::password_of(&app, user_id, user_name)
        .await
        .map_err(Problem::internal)?;
    // The hash is checked even for an unknown user (against a fixed
    // hash), so the time taken does not tell which names exist.
    let (user, ok) = {
        let password = password.to_string();
        let phc = found
            .as_ref()
            .and_then(|(_, h)| h.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        (found.map(|(u, _)| u), ok)
    };
    let Some(user) = user.filter(|_| ok) else {
        state.identity.failed(&who, &addr);
        refuse(state, &meta, &who, &addr, "wrong user name or password").await;
        return Err(unauthorized(AUTH_REQUIRED));
    };
    state.identity.succeeded(&who);
    let project = uc::project(&app, project_id, project_name)
        .await
        .map_err(Problem::internal)?;
    let roles = match &project {
        Some(p) => uc::roles(&app, user.id.clone(), p.id.clone())
            .await
            .map_err(Problem::internal)?,
        None => vec![],
    };
    let Some(project) = project.filter(|_| !roles.is_empty()) else {
        refuse(
            state,
            &meta,
            &who,
            &addr,
            "no role on the requested project",
        )
        .await;
        return Err(unauthorized(AUTH_REQUIRED));
    };
    let token = random_secret();
    let audit_id = random_secret()[..22].to_string();
    let issued = Utc::now();
    let lifetime = chrono::Duration::from_std(state.identity.token_lifetime)
        .unwrap_or(chrono::Duration::hours(24));
    let expires = issued + lifetime;
    uc::store_token(
        &app,
        sha256_hex(&token),
        user.id.clone(),
        project.id.clone(),
        audit_id.clone(),
        issued,
        expires,
    )
    .await
    .map_err(Problem::internal)?;
    let nocatalog = parts.uri.query().is_some_and(|q| q.contains("nocatalog"));
    let rec = uc::TokenRecord {
        hash: String::new(),
        user,
        project,
        roles,
        audit_id,
        issued_at: issued,
        expires_at: expires,
        revoked: false,
    };
    let body = token_body(&base(&parts.headers), &rec, !nocatalog);
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

/// An argon2id hash of a random string nobody knows: what an unknown
/// user's password is checked against.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| super::hash_password(&random_secret()).unwrap_or_default());

fn meta(parts: &Parts) -> RequestMeta {
    RequestMeta {
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        dialect: KEYSTONE.name(),
        route: format!("{} {}", parts.method, parts.uri.path()),
        idempotency_key: None,
        remote_addr: crate::context::remote_addr(parts),
    }
}

/// A failed authentication, in the audit trail like every refused
/// request: who was named and from where, never the password.
async fn refuse(state: &AppState, meta: &RequestMeta, who: &str, addr: &str, why: &str) {
    let error = DomainError::NotPermitted(format!(
        "password authentication for user {who} from {addr} refused: {why}"
    ));
    if let Err(e) = uc::record_refusal(&state.app(), meta, who, error).await {
        tracing::warn!(error = %e, "could not record a refused authentication");
    }
}

/// The caller's own token (`X-Auth-Token`) and the one asked about
/// (`X-Subject-Token`); a caller may look at its own tokens, an admin at
/// anyone's.
async fn subject(state: &AppState, parts: &Parts) -> Result<uc::TokenRecord, Problem> {
    if state.identity.mode != AuthMode::Keystone {
        return Err(unauthorized(AUTH_REQUIRED));
    }
    let own = header(parts, "x-auth-token").ok_or_else(|| unauthorized(AUTH_REQUIRED))?;
    let caller = super::live_token(&state.app(), own)
        .await
        .map_err(|_| unauthorized(AUTH_REQUIRED))?;
    let subject = header(parts, "x-subject-token")
        .ok_or_else(|| bad_request("Expecting to find X-Subject-Token in the request."))?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "Could not find token.",
        )
    };
    let rec = uc::token(&state.app(), sha256_hex(subject))
        .await
        .map_err(Problem::internal)?
        .ok_or_else(not_found)?;
    let admin = policy::permits(caller.roles[0], Access::AllProjects);
    if rec.user.id != caller.user.id && !admin {
        return Err(Problem::forbidden(
            "You are not authorized to perform the requested action.",
        ));
    }
    if rec.revoked || rec.expires_at <= Utc::now() || rec.roles.is_empty() {
        return Err(not_found());
    }
    Ok(rec)
}

/// `GET` (and `HEAD`) `/identity/v3/auth/tokens`.
async fn validate(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match subject(&state, &parts).await {
        Ok(rec) => {
            let nocatalog = parts.uri.query().is_some_and(|q| q.contains("nocatalog"));
            let body = token_body(&base(&parts.headers), &rec, !nocatalog);
            let mut resp = Json(body).into_response();
            if let Some(v) = parts.headers.get("x-subject-token") {
                resp.headers_mut().insert("x-subject-token", v.clone());
            }
            resp
        }
        Err(p) => err(p),
    }
}

/// `DELETE /identity/v3/auth/tokens`: 204, and the token stops working.
async fn revoke(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match subject(&state, &parts).await {
        Ok(rec) => match uc::revoke_token(&state.app(), rec.hash).await {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => err(Problem::internal(e)),
        },
        Err(p) => err(p),
    }
}
