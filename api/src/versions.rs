//! Version discovery (VER-5.1, VER-5.2; DECISIONS.md, Versions [5.1 #16];
//! CLIENTS.md, Discovery). Public: no token needed.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8776");
    format!("http://{host}")
}

/// One entry of a version document, shaped as VER-5.1 prints it.
fn version(base: &str, id: &str) -> Value {
    let (min, max, updated, status, path) = match id {
        "v1.0" => ("", "", "2014-06-28T12:20:21Z", "DEPRECATED", "v1"),
        "v2.0" => ("", "", "2014-06-28T12:20:21Z", "SUPPORTED", "v2"),
        _ => ("3.0", "", "2016-02-08T12:20:21Z", "CURRENT", "v3"),
    };
    // The advertised maximum is the one `/v3` negotiates (issue 17).
    let top = crate::microversion::VOLUME.max;
    let max = if id == "v3.0" {
        format!("{}.{}", top.0, top.1)
    } else {
        max.to_string()
    };
    json!({
        "min_version": min,
        "media-types": [
            {"type": "application/vnd.openstack.volume+json;version=1", "base": "application/json"},
            {"type": "application/vnd.openstack.volume+xml;version=1", "base": "application/xml"}
        ],
        "links": [
            {"rel": "describedby", "href": "http://docs.openstack.org/", "type": "text/html"},
            {"rel": "self", "href": format!("{base}/{path}/")}
        ],
        "id": id,
        "updated": updated,
        "version": max,
        "status": status,
    })
}

/// `GET /`: 300 Multiple Choices with v2.0 (SUPPORTED) and v3.0 (CURRENT).
async fn root(headers: HeaderMap) -> Response {
    let b = base(&headers);
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({ "versions": [version(&b, "v2.0"), version(&b, "v3.0")] })),
    )
        .into_response()
}

async fn one(headers: HeaderMap, id: &'static str) -> Response {
    Json(json!({ "versions": [version(&base(&headers), id)] })).into_response()
}

async fn project_root(headers: HeaderMap, ctx: Result<crate::Ctx, crate::ApiError>) -> Response {
    match ctx {
        Err(e) => e.into_response(),
        Ok(c) => {
            one(
                headers,
                if c.api_version == "v3" {
                    "v3.0"
                } else {
                    "v2.0"
                },
            )
            .await
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/v1", get(|h: HeaderMap| one(h, "v1.0")))
        .route("/v1/", get(|h: HeaderMap| one(h, "v1.0")))
        .route("/v2", get(|h: HeaderMap| one(h, "v2.0")))
        .route("/v2/", get(|h: HeaderMap| one(h, "v2.0")))
        // gophercloud and keystoneauth expect /v3 to redirect to /v3/.
        // keystoneauth hands `Location` straight to requests: it must be
        // absolute (CLIENTS.md, Discovery).
        .route(
            "/v3",
            get(|h: HeaderMap| async move {
                let loc = format!("{}/v3/", base(&h));
                (StatusCode::FOUND, [(header::LOCATION, loc)])
            }),
        )
        // Clients probe `/v3/{project}` without a token first and retry with
        // one after a 401 (CLIENTS.md): never a 404 here.
        .route("/v2/{project_id}", get(project_root))
        .route("/v3/{project_id}", get(project_root))
        .route("/v3/", get(|h: HeaderMap| one(h, "v3.0")))
}
