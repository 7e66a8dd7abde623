//! Nova's volume proxy (seed 004, rows NOVA-*): `/v2.1/{project_id}/
//! os-volumes…` and `/os-snapshots…`, also without the project id (the
//! project is the token's). Deprecated in Nova and gone from compute
//! microversion 2.36 on: `microversion::COMPUTE` serves ≤ 2.35 and answers
//! 404 above (DECISIONS.md, Nova proxy).
//!
//! Requests are snake_case (`display_name`), responses camelCase
//! (`displayName`, `createdAt`, …) with exactly Nova's fields; create
//! answers 200 (the volume `creating`), delete 202 with no body [5.5 #4].
//! Refusals are Nova's fault bodies, the same shape as Cinder's
//! (`{"itemNotFound": {"message", "code": 404}}`). A volume made here is the
//! same object as `/v3/{project}/volumes/{id}`. Translation only: each
//! handler parses, calls one use case, renders.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use domain::create_rules::CreatePolicy;
use domain::{DomainError, FieldReason, SnapshotCommand};
use projections::snapshots::{SnapshotQuery, SnapshotRow};
use projections::VolumeRow;
use serde_json::{json, Map, Value};

use super::cinder::CINDER;
use super::Dialect;
use crate::app::snapshot_create::{self, CreateSnapshotRequest};
use crate::app::volume_create::{self, CreateVolumeRequest, SourceRef};
use crate::app::{self, lookup, queries, snapshot_actions, volume_delete, AppError};
use crate::render::cinder_time;
use crate::{input, parse, ApiError, AppState, Ctx, Problem, QueryParams};

#[derive(Debug)]
pub struct Nova;

pub static NOVA: Nova = Nova;

impl Dialect for Nova {
    fn name(&self) -> &'static str {
        "nova"
    }

    /// Nova's faults are OpenStack's: the Cinder body, named by status. A
    /// source a create names that does not exist (`snapshot_id`) is
    /// `itemNotFound`, as Nova answers it (NOVA-os-volumes-create lists
    /// 404).
    fn render_error(&self, p: &Problem) -> Response {
        match &p.reason {
            crate::Reason::Domain(DomainError::InvalidField {
                reason: FieldReason::NotFound,
                ..
            }) => CINDER.render_error(&Problem {
                status: StatusCode::NOT_FOUND,
                ..p.clone()
            }),
            _ => CINDER.render_error(p),
        }
    }
}

pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for prefix in ["/v2.1/{project_id}", "/v2.1"] {
        r = r
            .route(
                &format!("{prefix}/os-volumes"),
                get(volume_list).post(volume_create),
            )
            .route(&format!("{prefix}/os-volumes/detail"), get(volume_list))
            .route(
                &format!("{prefix}/os-volumes/{{volume_id}}"),
                get(volume_show).delete(volume_delete),
            )
            .route(
                &format!("{prefix}/os-snapshots"),
                get(snapshot_list).post(snapshot_create),
            )
            .route(&format!("{prefix}/os-snapshots/detail"), get(snapshot_list))
            .route(
                &format!("{prefix}/os-snapshots/{{snapshot_id}}"),
                get(snapshot_show).delete(snapshot_delete),
            );
    }
    r.layer(middleware::from_fn(crate::microversion::negotiate_compute))
}

type Reply = Result<Response, ApiError>;

/// A NovaVolume (004, NOVA-os-volumes-*): Nova's volume view. An
/// unattached volume lists one empty attachment (`[{}]`), as Nova does.
fn volume(v: &VolumeRow) -> Value {
    let attachments: Vec<Value> = if v.attachments.is_empty() {
        vec![json!({})]
    } else {
        v.attachments
            .iter()
            .map(|a| {
                json!({
                    "id": v.id,
                    "volumeId": v.id,
                    "serverId": a.attachment.server_id,
                    "device": a.attachment.device,
                })
            })
            .collect()
    };
    json!({
        "id": v.id,
        "status": v.status.as_str(),
        "size": v.size,
        "availabilityZone": v.availability_zone,
        "createdAt": cinder_time(&v.created_at),
        "attachments": attachments,
        "displayName": v.name,
        "displayDescription": v.description,
        "volumeType": v.volume_type,
        "snapshotId": v.snapshot_id,
        "metadata": v.metadata,
    })
}

/// A NovaSnapshot.
fn snapshot(s: &SnapshotRow) -> Value {
    json!({
        "id": s.id,
        "volumeId": s.volume_id,
        "status": s.status.as_str(),
        "size": s.size,
        "createdAt": cinder_time(&s.created_at),
        "displayName": s.name,
        "displayDescription": s.description,
    })
}

/// The body's one member `key`, an object with only `allowed` keys
/// (Nova's request schemas refuse additional properties).
fn member(
    body: &Bytes,
    key: &'static str,
    allowed: &[&str],
) -> Result<Map<String, Value>, DomainError> {
    let obj = input::json_object(body)?;
    if let Some(extra) = obj.keys().find(|k| k.as_str() != key) {
        return Err(DomainError::invalid(
            "body",
            FieldReason::Invalid,
            format!(
                "Invalid input for field/attribute {}. Additional properties are not allowed.",
                extra.chars().take(64).collect::<String>()
            ),
        ));
    }
    let m = input::member(&obj, key)?.clone();
    if let Some(extra) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(DomainError::invalid(
            "body",
            FieldReason::Invalid,
            format!(
                "Invalid input for field/attribute {key}. Additional properties are not \
                 allowed ('{}' was unexpected).",
                extra.chars().take(64).collect::<String>()
            ),
        ));
    }
    Ok(m)
}

/// `size`: a JSON integer, as the seed's parameters type it (issue 15
/// item 4: no strings, no fractions).
fn size(v: &Map<String, Value>) -> Result<i64, DomainError> {
    input::integer(v.get("size"), "size")
        .map_err(|_| {
            DomainError::invalid(
                "size",
                FieldReason::WrongType,
                "Invalid input for field/attribute size. 'size' must be a whole number.",
            )
        })?
        .ok_or_else(|| {
            DomainError::invalid(
                "size",
                FieldReason::Missing,
                "Invalid input for field/attribute volume. 'size' is a required property.",
            )
        })
}

/// NOVA-os-volumes-create: 200 with the volume `creating`.
async fn volume_create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let err = |e: DomainError| ctx.err(e);
    let v = member(
        &body,
        "volume",
        &[
            "size",
            "availability_zone",
            "display_name",
            "display_description",
            "metadata",
            "volume_type",
            "snapshot_id",
        ],
    )
    .map_err(err)?;
    let source = match input::opt_str(&v, "snapshot_id").map_err(err)? {
        None => None,
        Some(s) => Some(SourceRef::Snapshot(input::uuid(&s).ok_or_else(|| {
            err(DomainError::SnapshotNotFound(s.chars().take(64).collect()))
        })?)),
    };
    let r = CreateVolumeRequest {
        name: input::opt_str(&v, "display_name").map_err(err)?,
        description: input::opt_str(&v, "display_description").map_err(err)?,
        size: Some(size(&v).map_err(err)?),
        availability_zone: input::opt_str(&v, "availability_zone").map_err(err)?,
        volume_type: input::opt_str(&v, "volume_type").map_err(err)?,
        metadata: input::metadata(v.get("metadata")).map_err(err)?,
        multiattach: false,
        source,
        backup_id: None,
        policy: CreatePolicy::OPEN,
    };
    let (app, caller) = (state.app(), ctx.caller());
    let id = volume_create::create(&app, &caller, &ctx.meta(), r, app::new_job_id())
        .await
        .map_err(|e| ctx.err(e))?;
    let row = queries::volume(&app, &caller, &id.to_string())
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "volume": volume(&row) })).into_response())
}

/// NOVA-os-volumes-list and NOVA-os-volumes-detail: the same view.
/// Nova's `limit`/`offset` page the list.
async fn volume_list(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    let q = parse::query(&ctx, q)?;
    let lq = parse::list_query(&ctx, &q).map_err(|e| ctx.err(e))?;
    let (rows, _) = queries::volumes(&state.app(), lq)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "volumes": rows.iter().map(volume).collect::<Vec<_>>() })).into_response())
}

/// NOVA-os-volumes-show.
async fn volume_show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<std::collections::HashMap<String, String>>,
) -> Reply {
    let raw = p.get("volume_id").cloned().unwrap_or_default();
    let row = queries::volume(&state.app(), &ctx.caller(), &raw)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "volume": volume(&row) })).into_response())
}

/// NOVA-os-volumes-delete: 202, no body. A volume with snapshots is
/// refused (no cascade through the proxy).
async fn volume_delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<std::collections::HashMap<String, String>>,
) -> Reply {
    let raw = p.get("volume_id").cloned().unwrap_or_default();
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    let app_err = |e: AppError| ctx.err(e);
    let id = uuid_ref(&app, &ctx, &raw, true).await?;
    volume_delete::delete(&app, &caller, &meta, id, false, app::new_job_id())
        .await
        .map_err(app_err)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// A path id for a command: only a UUID names a volume or snapshot here
/// (never the small provider's numbers); anything else is refused, and
/// recorded, as a missing one.
async fn uuid_ref(
    app: &app::App,
    ctx: &Ctx,
    raw: &str,
    is_volume: bool,
) -> Result<uuid::Uuid, ApiError> {
    let (caller, meta) = (ctx.caller(), ctx.meta());
    let shown: String = raw.chars().take(64).collect();
    match input::uuid(raw) {
        Some(id) if is_volume => lookup::volume(app, &caller, &meta, &id.to_string())
            .await
            .map_err(|e| ctx.err(e)),
        Some(id) => lookup::snapshot(app, &caller, &meta, &id.to_string(), None)
            .await
            .map_err(|e| ctx.err(e)),
        None => {
            let (stream, e) = if is_volume {
                (
                    format!("volume-{shown}"),
                    DomainError::VolumeNotFound(shown.clone()),
                )
            } else {
                (
                    format!("snapshot-{shown}"),
                    DomainError::SnapshotNotFound(shown.clone()),
                )
            };
            Err(ctx.err(app.refuse(&caller, &meta, stream, e).await))
        }
    }
}

/// NOVA-os-snapshots-create: 200 with the snapshot `creating`.
async fn snapshot_create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let err = |e: DomainError| ctx.err(e);
    let s = member(
        &body,
        "snapshot",
        &["volume_id", "force", "display_name", "display_description"],
    )
    .map_err(err)?;
    let volume_id = input::opt_str(&s, "volume_id")
        .map_err(err)?
        .ok_or_else(|| {
            err(DomainError::invalid(
                "volume_id",
                FieldReason::Missing,
                "Invalid input for field/attribute snapshot. 'volume_id' is a required property.",
            ))
        })?;
    let force = input::opt_bool(&s, "force").map_err(err)?.unwrap_or(false);
    let name = input::opt_str(&s, "display_name").map_err(err)?;
    let description = input::opt_str(&s, "display_description").map_err(err)?;
    let app = state.app();
    let vol = uuid_ref(&app, &ctx, &volume_id, true).await?;
    let r = CreateSnapshotRequest {
        volume_id: vol,
        name,
        description,
        metadata: Default::default(),
        force,
        full: false,
        snapshot_id: None,
    };
    let caller = ctx.caller();
    let sid = snapshot_create::create(&app, &caller, &ctx.meta(), r)
        .await
        .map_err(|e| ctx.err(e))?;
    let row = queries::snapshot(&app, &caller, &sid.to_string())
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "snapshot": snapshot(&row) })).into_response())
}

/// NOVA-os-snapshots-list and NOVA-os-snapshots-detail.
async fn snapshot_list(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    let q = parse::query(&ctx, q)?;
    let sq = SnapshotQuery {
        project_id: Some(ctx.project_id.clone()),
        limit: input::limit(q.get("limit").map(String::as_str)).map_err(|e| ctx.err(e))?,
        offset: input::offset(q.get("offset").map(String::as_str)).map_err(|e| ctx.err(e))?,
        ..SnapshotQuery::default()
    };
    let (rows, _) = queries::snapshots(&state.app(), sq)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "snapshots": rows.iter().map(snapshot).collect::<Vec<_>>() })).into_response())
}

/// NOVA-os-snapshots-show.
async fn snapshot_show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<std::collections::HashMap<String, String>>,
) -> Reply {
    let raw = p.get("snapshot_id").cloned().unwrap_or_default();
    let row = queries::snapshot(&state.app(), &ctx.caller(), &raw)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "snapshot": snapshot(&row) })).into_response())
}

/// NOVA-os-snapshots-delete: 202, no body; the deletion ends in the
/// background (clients list until it is gone).
async fn snapshot_delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<std::collections::HashMap<String, String>>,
) -> Reply {
    let raw = p.get("snapshot_id").cloned().unwrap_or_default();
    let app = state.app();
    let id = uuid_ref(&app, &ctx, &raw, false).await?;
    snapshot_actions::command(
        &app,
        &ctx.caller(),
        &ctx.meta(),
        id,
        SnapshotCommand::Delete,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_refuse_extra_keys() {
        let b = Bytes::from_static(br#"{"volume": {"size": 1, "name": "x"}}"#);
        assert!(member(&b, "volume", &["size"]).is_err());
        let b = Bytes::from_static(br#"{"volume": {"size": 1}, "x": 1}"#);
        assert!(member(&b, "volume", &["size"]).is_err());
        let b = Bytes::from_static(br#"{"volume": {"size": 2}}"#);
        let m = member(&b, "volume", &["size"]).unwrap();
        assert_eq!(size(&m).unwrap(), 2);
        for bad in [json!(1.5), json!("1.5"), json!("2"), json!(""), json!(true)] {
            let mut m = Map::new();
            m.insert("size".into(), bad);
            assert!(size(&m).is_err());
        }
    }
}
