//! What a project may use, as Cinder serves it beside the quota sets:
//! `GET /limits` (absolute limits and usage, what `cinder absolute-limits`
//! and `openstack limits show --absolute` print), `DELETE
//! /os-quota-sets/{project}` (back to the defaults) and the quota classes
//! (`/os-quota-class-sets/{class}`; the `default` class's limits are every
//! project's defaults). Limits are events like every other change.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::quota;
use serde_json::{json, Map, Value};

use super::catalog::{limit_changes, quota_keys, target};
use crate::app::{queries, quota_set};
use crate::{ApiError, AppState, Ctx, Problem};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/limits"), get(limits))
        .route(
            &format!("{prefix}/os-quota-class-sets/{{class_name}}"),
            get(class_show).put(class_update),
        )
}

/// Cinder's `absolute` names for the quota keys (`rate` is always empty:
/// no rate limits are configured).
const ABSOLUTE: [(&str, &str, &str); 5] = [
    ("volumes", "maxTotalVolumes", "totalVolumesUsed"),
    ("snapshots", "maxTotalSnapshots", "totalSnapshotsUsed"),
    ("gigabytes", "maxTotalVolumeGigabytes", "totalGigabytesUsed"),
    ("backups", "maxTotalBackups", "totalBackupsUsed"),
    (
        "backup_gigabytes",
        "maxTotalBackupGigabytes",
        "totalBackupGigabytesUsed",
    ),
];

/// `GET /limits`: the caller's project; from 3.39 (a17) an admin's
/// `project_id` (or older `tenant_id`) names another, as Cinder's.
async fn limits(State(state): State<AppState>, ctx: Ctx, q: crate::QueryParams) -> Reply {
    let q = crate::parse::query(&ctx, q)?;
    let project =
        if ctx.is_v3() && ctx.is_admin && ctx.at_least(crate::microversion::LIMITS_ADMIN_FILTER) {
            q.get("project_id")
                .or_else(|| q.get("tenant_id"))
                .cloned()
                .unwrap_or_else(|| ctx.project_id.clone())
        } else {
            ctx.project_id.clone()
        };
    let (limits, in_use) = queries::quota(&state.app(), project)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut absolute = Map::new();
    for (key, max, used) in ABSOLUTE {
        absolute.insert(max.into(), json!(quota::limit_of(&limits, key)));
        absolute.insert(used.into(), json!(in_use.get(key).copied().unwrap_or(0)));
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": absolute}})).into_response())
}

/// `DELETE /os-quota-sets/{project}` (admin): 200, empty body.
pub(super) async fn quota_delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    if !ctx.is_admin {
        return Err(ctx.err(Problem::forbidden("Policy check failed.")));
    }
    let project = target(&ctx, &p)?;
    quota_set::reset(&state.app(), &ctx.caller(), &ctx.meta(), project)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(().into_response())
}

fn class_name(ctx: &Ctx, p: &HashMap<String, String>) -> Result<String, ApiError> {
    if !ctx.is_admin {
        return Err(ctx.err(Problem::forbidden("Policy check failed.")));
    }
    Ok(p.get("class_name").cloned().unwrap_or_default())
}

/// The class's limit for every key (its own where set, else built in).
async fn class_body(
    state: &AppState,
    ctx: &Ctx,
    class: &str,
) -> Result<Map<String, Value>, ApiError> {
    let own = queries::quota_class(&state.app(), class.to_string())
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(quota_keys(state, ctx)
        .await?
        .into_iter()
        .map(|k| {
            let v = json!(quota::limit_of(&own, &k));
            (k, v)
        })
        .collect())
}

/// `GET /os-quota-class-sets/{class}` (admin).
async fn class_show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let class = class_name(&ctx, &p)?;
    let mut body = class_body(&state, &ctx, &class).await?;
    body.insert("id".into(), json!(class));
    Ok(Json(json!({ "quota_class_set": body })).into_response())
}

/// `PUT /os-quota-class-sets/{class}` (admin): the class after the change.
async fn class_update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let class = class_name(&ctx, &p)?;
    let changes = limit_changes(&ctx, &body, "quota_class_set")?;
    quota_set::set_class(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        class.clone(),
        changes,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    let body = class_body(&state, &ctx, &class).await?;
    Ok(Json(json!({ "quota_class_set": body })).into_response())
}
