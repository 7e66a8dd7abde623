//! The web console (issue 14): a small static page over the JSON API, at
//! `/console`. The page, its script and its style sheet are compiled into
//! the binary (`include_str!`), so there is no build step and nothing to
//! install beside the server; the page logs in with the same credentials as
//! any client and then only calls the documented routes (Cinder lists, the
//! image catalog, the events API), so it can show nothing a client could
//! not ask for itself.
//!
//! The routes here need no credential: they serve the same bytes to
//! everyone, plus `/console/config.json`, which says how to log in (the
//! built-in identity or noauth), the one thing the page cannot learn from
//! the API without a credential.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::identity::AuthMode;
use crate::AppState;

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const STYLE_CSS: &str = include_str!("../console/style.css");

/// Only this origin's script and style, no inline script, no framing: the
/// page shows data other people wrote (names, descriptions), so a name that
/// happens to be markup must stay text even if an escape were missed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; form-action 'none'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/style.css",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/console/config.json", get(config))
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The bytes change only with the binary; a short cache keeps an
    // upgraded server's page from being stale for long.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// How the page logs in: `keystone` (user name, password and project at
/// `/identity/v3/auth/tokens`) or `noauth` (the token `user:project`, as
/// every noauth client sends it).
async fn config(State(state): State<AppState>) -> Response {
    let auth = match state.identity.mode {
        AuthMode::Keystone => "keystone",
        AuthMode::Noauth => "noauth",
    };
    let mut resp = Json(json!({ "auth": auth })).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
