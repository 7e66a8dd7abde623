//! Cinder's `GET /resource_filters[?resource=…]` (microversion 3.33): the
//! filters each list accepts from a non-admin, the same table the 3.31
//! check enforces (`parse::RESOURCE_FILTERS`). An unknown resource lists
//! nothing, as Cinder's `get_enabled_resource_filters`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::microversion::RESOURCE_FILTER_CONFIG;
use crate::parse::{query, RESOURCE_FILTERS};
use crate::{ApiError, AppState, Ctx, Problem, QueryParams, Reason};

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new().route(&format!("{prefix}/resource_filters"), get(index))
}

async fn index(State(_): State<AppState>, ctx: Ctx, q: QueryParams) -> Result<Response, ApiError> {
    if !(ctx.is_v3() && ctx.at_least(RESOURCE_FILTER_CONFIG)) {
        return Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The resource could not be found.",
        )));
    }
    let q = query(&ctx, q)?;
    let want = q.get("resource").filter(|r| !r.is_empty());
    let list: Vec<Value> = RESOURCE_FILTERS
        .iter()
        .filter(|(r, _)| want.is_none_or(|w| w == r))
        .map(|(r, f)| json!({"resource": r, "filters": f}))
        .collect();
    Ok(Json(json!({ "resource_filters": list })).into_response())
}
