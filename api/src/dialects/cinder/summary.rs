//! Cinder's `GET /volumes/summary` (microversion 3.12; `metadata` from
//! 3.36): how many volumes the caller has (an admin with `all_tenants`:
//! everyone's) under the volume-list filters, and their total size.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::microversion::{VOLUME_SUMMARY, VOLUME_SUMMARY_METADATA};
use crate::{parse, ApiError, AppState, Ctx, QueryParams};

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new().route(&format!("{prefix}/volumes/summary"), get(summary))
}

async fn summary(
    State(state): State<AppState>,
    ctx: Ctx,
    q: QueryParams,
) -> Result<Response, ApiError> {
    if !(ctx.is_v3() && ctx.at_least(VOLUME_SUMMARY)) {
        // Below 3.12 `summary` is read as a volume id, which is not found.
        return Err(ctx.err(domain::DomainError::VolumeNotFound("summary".into())));
    }
    let q = parse::query(&ctx, q)?;
    let lq = parse::list_query(&ctx, &q).map_err(|e| ctx.err(e))?;
    let (count, size, metadata) = crate::app::queries::volume_summary(&state.app(), lq)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut body = json!({"volume-summary": {"total_count": count, "total_size": size}});
    if ctx.at_least(VOLUME_SUMMARY_METADATA) {
        body["volume-summary"]["metadata"] = json!(metadata);
    }
    Ok(Json(body).into_response())
}
