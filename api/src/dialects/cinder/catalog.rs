//! Read-mostly Cinder routes over the configured catalog and the quota
//! view: availability zones (7.1.17; types are in `types`),
//! extensions (7.1.16), quota sets (7.1.9, and the admin PUT).

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::quota;
use domain::{DomainError, FieldReason};
use serde_json::{json, Map, Value};

use crate::app::{queries, quota_set};
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx, Problem};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/os-availability-zone"), get(zones))
        .route(&format!("{prefix}/extensions"), get(extensions))
        .route(
            &format!("{prefix}/os-quota-sets/{{target_project_id}}"),
            get(quota_show)
                .put(quota_update)
                .delete(super::limits::quota_delete),
        )
        .route(
            &format!("{prefix}/os-quota-sets/{{target_project_id}}/defaults"),
            get(quota_defaults),
        )
}

async fn zones(State(state): State<AppState>, _ctx: Ctx) -> Reply {
    let all: Vec<Value> = state
        .catalog
        .zones
        .iter()
        .map(|z| json!({"zoneState": {"available": true}, "zoneName": z}))
        .collect();
    Ok(Json(json!({"availabilityZoneInfo": all})).into_response())
}

/// The extensions this service really provides (API.md 3.11 lists what the
/// Huawei cloud printed; only the ones served here are claimed).
async fn extensions(_ctx: Ctx) -> Reply {
    let ext = |name: &str, alias: &str, description: &str| {
        json!({
            "updated": "2013-04-18T00:00:00+00:00",
            "description": description,
            "links": [],
            "alias": alias,
            "name": name,
        })
    };
    Ok(Json(json!({"extensions": [
        ext("VolumeTenantAttribute", "os-vol-tenant-attr", "Expose the internal project_id as an attribute of a volume."),
        ext("Quotas", "os-quota-sets", "Quota management support."),
        ext("VolumeActions", "os-volume-actions", "Enable volume actions."),
        ext("VolumeHostAttribute", "os-vol-host-attr", "Expose host as an attribute of a volume."),
        ext("AvailabilityZones", "os-availability-zone", "Describe Availability Zones."),
        ext("VolumeMigStatusAttribute", "os-vol-mig-status-attr", "Expose migration_status as an attribute of a volume."),
        ext("ExtendedSnapshotAttributes", "os-extended-snapshot-attributes", "Extended SnapshotAttributes support."),
        ext("VolumeTransfer", "os-volume-transfer", "Volume transfer management support."),
        ext("VolumeImageMetadata", "os-vol-image-meta", "Show image metadata associated with the volume."),
        ext("Hosts", "os-hosts", "Admin-only host administration."),
        ext("Services", "os-services", "Services support."),
        ext("QuotaClasses", "os-quota-class-sets", "Quota classes management support."),
        ext("UsedLimits", "os-used-limits", "Provide data on limited resources that are being used."),
        ext("Scheduler_stats", "scheduler-stats", "Scheduler stats support."),
        ext("Capabilities", "capabilities", "Capabilities support."),
    ]}))
    .into_response())
}

/// Non-admins may only read their own project's quotas.
pub(super) fn target(ctx: &Ctx, p: &HashMap<String, String>) -> Result<String, ApiError> {
    let t = p.get("target_project_id").cloned().unwrap_or_default();
    if !ctx.is_admin && t != ctx.project_id {
        return Err(ctx.err(Problem::forbidden(
            "Policy check failed: a project may read only its own quotas.",
        )));
    }
    Ok(t)
}

/// The keys a quota body prints: Cinder's on `/v3`, the seed's on `/v2`.
/// Per-type keys for every type of the volume types view.
pub(super) async fn quota_keys(state: &AppState, ctx: &Ctx) -> Result<Vec<String>, ApiError> {
    let names = crate::app::volume_types::names(&state.app())
        .await
        .map_err(|e| ctx.err(e))?;
    let mut keys = quota::keys(&names);
    if !ctx.is_v3() {
        keys.retain(|k| quota::in_seed(k));
    }
    Ok(keys)
}

/// CINDER-7.1.9: with `usage=true|True` each key is
/// `{in_use, limit, reserved, allocated}`; without, just the limit.
async fn quota_show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let project = target(&ctx, &p)?;
    let q = query(&ctx, q)?;
    let usage = match q.get("usage").map(String::as_str) {
        None | Some("false" | "False") => false,
        Some("true" | "True") => true,
        Some(v) => {
            return Err(ctx.err(DomainError::invalid(
                "usage",
                FieldReason::Invalid,
                format!("Invalid value '{v}' for usage."),
            )))
        }
    };
    let (limits, in_use) = queries::quota(&state.app(), project.clone())
        .await
        .map_err(|e| ctx.err(e))?;
    let mut set = Map::new();
    set.insert("id".into(), json!(project));
    for k in quota_keys(&state, &ctx).await? {
        let limit = quota::limit_of(&limits, &k);
        set.insert(
            k.clone(),
            if usage {
                json!({"in_use": in_use.get(&k).copied().unwrap_or(0), "limit": limit, "reserved": 0, "allocated": 0})
            } else {
                json!(limit)
            },
        );
    }
    Ok(Json(json!({"quota_set": set})).into_response())
}

async fn quota_defaults(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let project = target(&ctx, &p)?;
    let defaults = queries::quota_class(&state.app(), quota::DEFAULT_CLASS.into())
        .await
        .map_err(|e| ctx.err(e))?;
    let mut set = Map::new();
    set.insert("id".into(), json!(project));
    for k in quota_keys(&state, &ctx).await? {
        set.insert(k.clone(), json!(quota::limit_of(&defaults, &k)));
    }
    Ok(Json(json!({"quota_set": set})).into_response())
}

/// Admin `PUT /os-quota-sets/{project_id}`: limits are events.
async fn quota_update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    if !ctx.is_admin {
        return Err(ctx.err(Problem::forbidden("Policy check failed.")));
    }
    let project = p.get("target_project_id").cloned().unwrap_or_default();
    let changes = limit_changes(&ctx, &body, "quota_set")?;
    let app = state.app();
    quota_set::set(&app, &ctx.caller(), &ctx.meta(), project.clone(), changes)
        .await
        .map_err(|e| ctx.err(e))?;
    let (limits, _) = queries::quota(&app, project)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut out = Map::new();
    for k in quota_keys(&state, &ctx).await? {
        out.insert(k.clone(), json!(quota::limit_of(&limits, &k)));
    }
    Ok(Json(json!({"quota_set": out})).into_response())
}

/// The limits named in a `{"<wrapper>": {"key": n, …}}` body (`id` and
/// `tenant_id` are echoes, not limits).
pub(super) fn limit_changes(
    ctx: &Ctx,
    body: &Bytes,
    wrapper: &'static str,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let obj = input::json_object(body).map_err(|e| ctx.err(e))?;
    let set = input::member(&obj, wrapper).map_err(|e| ctx.err(e))?;
    let mut changes = BTreeMap::new();
    for (k, v) in set {
        if k == "id" || k == "tenant_id" {
            continue;
        }
        // An integer; `/v2` truncates a decimal as it does sizes.
        let n = if ctx.is_v3() {
            input::integer(Some(v), wrapper)
        } else {
            input::size(Some(v), wrapper)
        };
        let n = n.ok().flatten().ok_or_else(|| {
            ctx.err(DomainError::invalid(
                wrapper,
                FieldReason::WrongType,
                format!("Quota '{k}' must be an integer."),
            ))
        })?;
        changes.insert(k.clone(), n);
    }
    Ok(changes)
}
