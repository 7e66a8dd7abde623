//! Who a credential names (issue 13). In `keystone` mode (the default) a
//! token issued by the built-in identity (`keystone`: `/identity/v3`), or
//! the small provider's API key, maps to (user, project, role); in
//! `noauth` mode (development and tests, loopback only) the token
//! `user:project` names the caller itself.
//!
//! Secrets are never kept in clear: passwords as argon2id hashes (a
//! memory-hard hash, because passwords are guessable and a stolen database
//! must not make guessing cheap), tokens and API key secrets as SHA-256
//! (they are 256 random bits: nothing to guess, so a fast hash suffices
//! and keeps every request's lookup cheap).

pub mod keystone;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::app::identity as uc;
use crate::app::policy::{self, Access};
use crate::app::App;
use crate::dialects::{self, Credential, DialectRef, Principal};
use crate::{ApiError, AppState, Problem};

/// How callers prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The built-in identity's tokens and API keys.
    Keystone,
    /// `X-Auth-Token: user:project`, trusted as said: loopback only.
    Noauth,
}

/// The identity settings and the failed-password counters.
#[derive(Debug)]
pub struct Identity {
    pub mode: AuthMode,
    pub token_lifetime: Duration,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Failed password attempts allowed per user name within `WINDOW`.
pub const MAX_FAILURES_PER_USER: u32 = 5;
/// And per source address (one address may try several names).
pub const MAX_FAILURES_PER_ADDRESS: u32 = 20;
/// The counting window: a blocked user or address may try again after it.
pub const WINDOW: Duration = Duration::from_secs(300);

impl Identity {
    pub fn new(mode: AuthMode, token_lifetime: Duration) -> Self {
        Identity {
            mode,
            token_lifetime,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// noauth, 24 h tokens: what tests that build a state by hand want.
    pub fn noauth() -> Self {
        Self::new(AuthMode::Noauth, Duration::from_secs(24 * 3600))
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether either key has used up its failures in the current window.
    pub fn blocked(&self, user: &str, addr: &str) -> bool {
        let now = Instant::now();
        let m = self.counts();
        let over = |k: String, max: u32| {
            m.get(&k)
                .is_some_and(|(since, n)| now.duration_since(*since) < WINDOW && *n >= max)
        };
        over(format!("user:{user}"), MAX_FAILURES_PER_USER)
            || over(format!("addr:{addr}"), MAX_FAILURES_PER_ADDRESS)
    }

    pub fn failed(&self, user: &str, addr: &str) {
        let now = Instant::now();
        let mut m = self.counts();
        // Old windows go, so the map is bounded by recent failures.
        m.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        for k in [format!("user:{user}"), format!("addr:{addr}")] {
            let e = m.entry(k).or_insert((now, 0));
            e.1 += 1;
        }
    }

    pub fn succeeded(&self, user: &str) {
        self.counts().remove(&format!("user:{user}"));
    }
}

/// An argon2id hash (PHC string, with its own random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// 256 random bits from the OS, as 64 hex digits: tokens, API key
/// secrets, generated passwords.
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The caller a request's credential names, in its dialect's terms.
pub async fn authenticate(
    app: &App,
    identity: &Identity,
    dialect: DialectRef,
    parts: &Parts,
) -> Result<Principal, Problem> {
    let credential = dialect.0.credential(parts);
    match identity.mode {
        AuthMode::Noauth => dialects::noauth(credential),
        AuthMode::Keystone => match credential {
            Some(Credential::Token(t)) => token_principal(app, &t).await,
            Some(Credential::ApiKey { id, secret }) => key_principal(app, id, &secret).await,
            // Anything else names itself: not trusted here.
            Some(Credential::UserProject { .. }) | None => Err(Problem::unauthorized()),
        },
    }
}

/// A live token: known, not revoked, not expired, its user still holding a
/// role on its project.
pub async fn live_token(app: &App, token: &str) -> Result<uc::TokenRecord, Problem> {
    let rec = uc::token(app, sha256_hex(token))
        .await
        .map_err(Problem::internal)?;
    match rec {
        Some(r) if !r.revoked && r.expires_at > Utc::now() && !r.roles.is_empty() => Ok(r),
        _ => Err(Problem::unauthorized()),
    }
}

async fn token_principal(app: &App, token: &str) -> Result<Principal, Problem> {
    let r = live_token(app, token).await?;
    Ok(Principal {
        user_id: r.user.id,
        project_id: r.project.id,
        role: r.roles[0],
    })
}

async fn key_principal(app: &App, id: String, secret: &str) -> Result<Principal, Problem> {
    let Some((user_id, project_id, hash)) = uc::key(app, id).await.map_err(Problem::internal)?
    else {
        return Err(Problem::unauthorized());
    };
    if !constant_time_eq(&sha256_hex(secret), &hash) {
        return Err(Problem::unauthorized());
    }
    let roles = uc::roles(app, user_id.clone(), project_id.clone())
        .await
        .map_err(Problem::internal)?;
    let role = *roles.first().ok_or_else(Problem::unauthorized)?;
    Ok(Principal {
        user_id,
        project_id,
        role,
    })
}

/// Compares two hex digests without an early exit, so the time taken
/// tells nothing of where they differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The source address of a request, for the per-address failure count.
pub fn source(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The small provider's `api_id` + `api_key` from the query string or the
/// body (form or JSON), found before its handler reads the body, and put
/// on the request for `Dialect::credential`. The body is put back as read.
pub async fn params_credential(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut found: HashMap<String, String> = HashMap::new();
    if let Some(q) = parts.uri.query() {
        collect_form(q.as_bytes(), &mut found);
    }
    // The same bound as the server's buffered bodies; a larger body is
    // refused by the handler's own reading as before.
    const LIMIT: usize = 2 * 1024 * 1024;
    let bytes = match axum::body::to_bytes(body, LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            let dialect = parts
                .extensions
                .get::<DialectRef>()
                .copied()
                .unwrap_or(DialectRef(&dialects::luna::LUNA));
            return ApiError {
                dialect,
                problem: Problem::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    crate::Reason::BodyTooLarge,
                    "Request body too large.",
                ),
            }
            .into_response();
        }
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'{') {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(&bytes) {
            for k in ["api_id", "api_key"] {
                if let Some(serde_json::Value::String(v)) = m.get(k) {
                    found.insert(k.into(), v.clone());
                }
            }
        }
    } else {
        collect_form(&bytes, &mut found);
    }
    if let (Some(id), Some(secret)) = (found.remove("api_id"), found.remove("api_key")) {
        parts.extensions.insert(Credential::ApiKey { id, secret });
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn collect_form(raw: &[u8], out: &mut HashMap<String, String>) {
    for (k, v) in form_urlencoded_pairs(raw) {
        if k == "api_id" || k == "api_key" {
            out.insert(k, v);
        }
    }
}

fn form_urlencoded_pairs(raw: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw).unwrap_or_default()
}

/// The operator's routes (`/metrics`): open in noauth mode (which listens
/// on loopback only), an admin token in keystone mode.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.identity.mode == AuthMode::Noauth {
            return Ok(Operator);
        }
        let dialect = DialectRef(&dialects::cinder::CINDER);
        let who = authenticate(&state.app(), &state.identity, dialect, parts)
            .await
            .map_err(|problem| ApiError { dialect, problem })?;
        if policy::permits(who.role, Access::AllProjects) {
            Ok(Operator)
        } else {
            Err(ApiError {
                dialect,
                problem: Problem::forbidden("Policy doesn't allow this operation to be performed."),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn failures_block_a_user_then_an_address() {
        let id = Identity::noauth();
        for _ in 0..MAX_FAILURES_PER_USER {
            assert!(!id.blocked("alice", "10.0.0.1"));
            id.failed("alice", "10.0.0.1");
        }
        assert!(id.blocked("alice", "10.0.0.2"));
        assert!(!id.blocked("bob", "10.0.0.2"));
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            id.failed(&format!("u{i}"), "10.0.0.3");
        }
        assert!(id.blocked("carol", "10.0.0.3"));
        id.succeeded("alice");
        assert!(!id.blocked("alice", "10.0.0.2"));
    }

    #[test]
    fn secrets_are_random_and_long() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(constant_time_eq(&sha256_hex(&a), &sha256_hex(&a)));
        assert!(!constant_time_eq(&sha256_hex(&a), &sha256_hex(&b)));
    }
}
