//! OpenStack Cinder v2/v3 volume routes (CINDER-7.1.x, CINDER-7.2.1). The
//! same handlers serve `/v2/{project_id}` and `/v3/{project_id}`: v3 at
//! microversion 3.0 behaves as v2.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::create_rules::CreatePolicy;
use domain::volume::AttachMode;
use domain::{DomainError, FieldReason, VolumeCommand};
use serde_json::{json, Value};

use super::list_filters;
use crate::app::volume_actions::{self, AttachRequest, DevicePolicy};
use crate::app::{self, queries, volume_create, volume_delete, volume_extend};
use crate::parse::{self, path_uuid};
use crate::{input, render, ApiError, AppState, Ctx, QueryParams};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        // CINDER-7.1.4 (id, links, name)
        .route(
            &format!("{prefix}/volumes"),
            post(create)
                .get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, false)),
        )
        // CINDER-7.1.5
        .route(
            &format!("{prefix}/volumes/detail"),
            get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, true)),
        )
        .route(
            &format!("{prefix}/volumes/{{volume_id}}"),
            get(show).put(update).delete(delete),
        )
        .route(
            &format!("{prefix}/volumes/{{volume_id}}/action"),
            post(action),
        )
        .merge(super::metadata::routes(
            prefix,
            super::metadata::Target::Volume,
        ))
}

/// CINDER-7.1.1: 202 with the new volume in `creating`.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let v = input::member(&obj, "volume").map_err(|e| ctx.err(e))?;
    super::schema::check_create(&ctx, v).map_err(|e| ctx.err(e))?;
    if ctx.api_version == "v3" {
        input::check_whole_size(v.get("size"), "size").map_err(|e| ctx.err(e))?;
    }
    let r = parse::create_request(v, CreatePolicy::OPEN).map_err(|e| ctx.err(e))?;
    let (app, caller) = (state.app(), ctx.caller());
    // 3.13 (g17): `group_id` creates the volume in a generic group.
    let group = match ctx.at_least(crate::microversion::GROUP_VOLUME) {
        true => input::opt_str(v, "group_id").map_err(|e| ctx.err(e))?,
        false => None,
    };
    let id = match group {
        Some(g) => {
            let job = app::new_job_id();
            app::group_volume_create::create(&app, &caller, &ctx.meta(), r, g, job).await
        }
        None => volume_create::create(&app, &caller, &ctx.meta(), r, app::new_job_id()).await,
    }
    .map_err(|e| type_not_found_on_v3(&ctx, e))?;
    let row = queries::volume(&app, &caller, &id.to_string())
        .await
        .map_err(|e| ctx.err(e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "volume": render::cinder_volume_typed(&ctx, &row, type_id(&state, &ctx, &row).await?.as_deref()) })),
    )
        .into_response())
}

pub(crate) fn next_link(ctx: &Ctx, path: &str, q: &HashMap<String, String>, last: &str) -> Value {
    let mut pairs: Vec<(&str, &str)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "marker" && k.as_str() != "offset")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort();
    pairs.push(("marker", last));
    let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    json!([{
        "href": format!("{}/{}/{}/{path}?{qs}", ctx.base_url, ctx.api_version, ctx.project_id),
        "rel": "next"
    }])
}

async fn list_page(
    state: AppState,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    detail: bool,
) -> Reply {
    let q = parse::query(&ctx, q)?;
    // 3.31 (a17): a non-admin's filters must be configured ones.
    parse::reject_invalid_filters(&ctx, parse::filter_keys(&q), "volume")
        .map_err(|e| ctx.err(e))?;
    let mut lq = parse::list_query(&ctx, &q).map_err(|e| ctx.err(e))?;
    // 3.34 (a17): `key~` like filters.
    lq.like = parse::like_filters(
        &ctx,
        &q,
        &[
            "name",
            "description",
            "status",
            "availability_zone",
            "volume_type",
        ],
    );
    // Cinder's own filter (EVS and Nova's proxy document none).
    lq.bootable = q
        .get("bootable")
        .map(|v| parse::bootable_filter(&ctx, v))
        .transpose()
        .map_err(|e| ctx.err(e))?;
    lq.created_at = list_filters::time_filters(&ctx, &q, "created_at").map_err(|e| ctx.err(e))?;
    lq.updated_at = list_filters::time_filters(&ctx, &q, "updated_at").map_err(|e| ctx.err(e))?;
    lq.consumes_quota = list_filters::consumes_quota(&ctx, &q).map_err(|e| ctx.err(e))?;
    let count = match list_filters::with_count(&ctx, &q).map_err(|e| ctx.err(e))? {
        true => Some(
            queries::count_volumes(&state.app(), lq.clone())
                .await
                .map_err(|e| ctx.err(e))?,
        ),
        false => None,
    };
    let (rows, more) = queries::volumes(&state.app(), lq)
        .await
        .map_err(|e| ctx.err(e))?;
    let ids = if detail {
        type_ids(&state, &ctx).await?
    } else {
        None
    };
    let volumes_links = match (has_next(&ctx, more, rows.len(), &q), rows.last()) {
        (true, Some(last)) => {
            let path = if detail { "volumes/detail" } else { "volumes" };
            Some(next_link(&ctx, path, &q, &last.id))
        }
        _ => None,
    };
    // Typed rows written straight to the body (render::RawJson).
    Ok(if detail {
        render::VolumePage {
            count,
            volumes: rows
                .iter()
                .map(|v| {
                    render::CinderVolume::new(&ctx, v, render::CinderView::ListDetail).with_type_id(
                        ids.as_ref()
                            .and_then(|m| m.get(&v.volume_type))
                            .map(String::as_str),
                    )
                })
                .collect(),
            volumes_links,
        }
        .response()
    } else {
        render::VolumePage {
            count,
            volumes: rows
                .iter()
                .map(|v| render::CinderVolumeSummary::new(&ctx, v))
                .collect(),
            volumes_links,
        }
        .response()
    })
}

/// Whether a page gets a `next` link. The seed's `/v2` links only when
/// more rows remain; Cinder (`/v3`) links whenever a page asked with a
/// limit came back full, and the next page may be empty (tempest's
/// pagination tests walk it that way).
pub(crate) fn has_next(ctx: &Ctx, more: bool, len: usize, q: &HashMap<String, String>) -> bool {
    more || (ctx.is_v3()
        && len > 0
        && q.contains_key("limit")
        && parse::limit(ctx, q).ok() == Some(len))
}

/// CINDER-7.1.6.
async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let row = visible(&state, &ctx, id).await?;
    let tid = type_id(&state, &ctx, &row).await?;
    Ok(
        Json(json!({ "volume": render::cinder_volume_show(&ctx, &row, false, tid.as_deref()) }))
            .into_response(),
    )
}

/// Microversion 3.63: the ids of the volume types, by name, when the body
/// shows them (a volume records its type by name; the types view has the
/// id). One read per request, not per row.
async fn type_ids(
    state: &AppState,
    ctx: &Ctx,
) -> Result<Option<HashMap<String, String>>, ApiError> {
    if !ctx.at_least(crate::microversion::VOLUME_TYPE_ID_IN_VOLUME_DETAIL) {
        return Ok(None);
    }
    app::volume_types::ids_by_name(&state.app())
        .await
        .map(Some)
        .map_err(|e| ctx.err(e))
}

/// [`type_ids`] for one volume.
async fn type_id(
    state: &AppState,
    ctx: &Ctx,
    row: &projections::VolumeRow,
) -> Result<Option<String>, ApiError> {
    Ok(type_ids(state, ctx)
        .await?
        .and_then(|mut ids| ids.remove(&row.volume_type)))
}

/// CINDER-7.1.3: name, description (or their `display_` spellings) and
/// metadata; 200 with the volume.
async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let raw_id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let id = path_uuid(&ctx, raw_id)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let v = input::member(&obj, "volume").map_err(|e| ctx.err(e))?;
    super::schema::check_update(&ctx, v).map_err(|e| ctx.err(e))?;
    let name = parse::either(v, "name", "display_name").map_err(|e| ctx.err(e))?;
    let description =
        parse::either(v, "description", "display_description").map_err(|e| ctx.err(e))?;
    let metadata = match v.get("metadata") {
        None => None,
        Some(m) => Some(input::metadata(Some(m)).map_err(|e| ctx.err(e))?),
    };
    let cmd = VolumeCommand::Update {
        name,
        description,
        metadata,
    };
    run(&state, &ctx, id, cmd).await?;
    let row = visible(&state, &ctx, raw_id).await?;
    let tid = type_id(&state, &ctx, &row).await?;
    Ok(
        Json(json!({ "volume": render::cinder_volume_typed(&ctx, &row, tid.as_deref()) }))
            .into_response(),
    )
}

/// CINDER-7.1.2: 202, the volume goes `deleting` and then away.
async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let raw_id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let id = path_uuid(&ctx, raw_id)?;
    let q = parse::query(&ctx, q)?;
    let cascade = match q.get("cascade").map(String::as_str) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
        Some(v) => {
            return Err(ctx.err(DomainError::invalid(
                "cascade",
                FieldReason::Invalid,
                format!("Invalid value '{v}' for cascade: expected true or false."),
            )))
        }
    };
    // 3.23 (a17): `force`, read as Cinder's `get_bool_param`.
    let force = match q.get("force").map(String::as_str) {
        Some(v) if ctx.is_v3() && ctx.at_least(crate::microversion::VOLUME_DELETE_FORCE) => {
            parse::bool_param("force", v).map_err(|e| ctx.err(e))?
        }
        _ => false,
    };
    volume_delete::delete_forced(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        cascade,
        force,
        app::new_job_id(),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `/v3` answers an unknown volume type, or a private one the caller was
/// not given, with Cinder's 404 (DECISIONS.md, Everywhere); `/v2` keeps
/// the seed's 400.
fn type_not_found_on_v3(ctx: &Ctx, e: app::AppError) -> ApiError {
    match e {
        app::AppError::Refused(r) if ctx.is_v3() => match r.error {
            DomainError::InvalidVolumeType(t) => ctx.err(DomainError::VolumeTypeNotFound(t)),
            other => ctx.err(other),
        },
        e => ctx.err(e),
    }
}

/// `POST …/volumes/{id}/action`: dispatch on the body's single key.
async fn action(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let raw_id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let id = path_uuid(&ctx, raw_id)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    if obj.len() != 1 {
        return Err(ctx.err(DomainError::invalid(
            "body",
            FieldReason::Invalid,
            "Malformed request body: exactly one action is expected.",
        )));
    }
    let name = obj.keys().next().cloned().unwrap_or_default();
    let name = name.as_str();
    match name {
        // CINDER-7.2.1
        "os-extend" => {
            if ctx.api_version == "v3" {
                let given = obj.get("os-extend").and_then(|e| e.get("new_size"));
                input::check_whole_size(given, "new_size").map_err(|e| ctx.err(e))?;
            }
            let new_size = extend_size(&obj).map_err(|e| ctx.err(e))?;
            volume_extend::extend(
                &state.app(),
                &ctx.caller(),
                &ctx.meta(),
                id,
                new_size,
                app::new_job_id(),
                // t17: /v3 extends an in-use volume from 3.42 on; /v2
                // keeps the seed's rule [5.1 #6].
                if ctx.is_v3() && !ctx.at_least(crate::microversion::EXTEND_IN_USE) {
                    domain::volume::ExtendPolicy::AVAILABLE_ONLY
                } else {
                    domain::volume::ExtendPolicy::OPEN
                },
            )
            .await
            .map_err(|e| ctx.err(e))?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        // t17: Cinder 3.40 revert to the latest snapshot.
        "revert" => super::revert::revert(&state, &ctx, id, &obj).await,
        // r17 (t17's list): Cinder 3.68 reimage.
        "os-reimage" => super::reimage::reimage(&state, &ctx, id, &obj).await,
        // t17: Cinder 3.71.
        "os-extend_volume_completion" => {
            super::revert::extend_completion(&state, &ctx, id, &obj).await
        }
        // CINDER-7.2.2: 200, no body.
        "os-set_bootable" => {
            let b = input::member(&obj, "os-set_bootable").map_err(|e| ctx.err(e))?;
            let bootable = input::opt_bool(b, "bootable")
                .map_err(|e| ctx.err(e))?
                .ok_or_else(|| {
                    ctx.err(DomainError::invalid(
                        "bootable",
                        FieldReason::Missing,
                        "'bootable' is required.",
                    ))
                })?;
            run(&state, &ctx, id, VolumeCommand::SetBootable { bootable }).await?;
            Ok(StatusCode::OK.into_response())
        }
        // CINDER-7.2.3: both spellings [5.1 #3]; 202.
        "os-update_readonly_flag" | "os-update_READONLY_flag" => {
            let b = match obj.get(name) {
                Some(Value::Object(m)) => m,
                _ => {
                    return Err(ctx.err(DomainError::invalid(
                        "os-update_readonly_flag",
                        FieldReason::Missing,
                        "Malformed request body: 'os-update_readonly_flag' object is required.",
                    )))
                }
            };
            let readonly = input::opt_bool(b, "readonly")
                .map_err(|e| ctx.err(e))?
                .ok_or_else(|| {
                    ctx.err(DomainError::invalid(
                        "readonly",
                        FieldReason::Missing,
                        "'readonly' is required.",
                    ))
                })?;
            run(&state, &ctx, id, VolumeCommand::SetReadonly { readonly }).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        // CINDER-7.2.5: available → in-use with an attachment record.
        "os-attach" => {
            let b = input::member(&obj, "os-attach").map_err(|e| ctx.err(e))?;
            let server_id = input::opt_str(b, "instance_uuid")
                .map_err(|e| ctx.err(e))?
                .ok_or_else(|| {
                    ctx.err(DomainError::invalid(
                        "instance_uuid",
                        FieldReason::Missing,
                        "'instance_uuid' is required.",
                    ))
                })?;
            let device = input::opt_str(b, "mountpoint")
                .map_err(|e| ctx.err(e))?
                .ok_or_else(|| {
                    ctx.err(DomainError::invalid(
                        "mountpoint",
                        FieldReason::Missing,
                        "'mountpoint' is required.",
                    ))
                })?;
            let host_name = input::opt_str(b, "host_name").map_err(|e| ctx.err(e))?;
            let mode = match input::opt_str(b, "mode")
                .map_err(|e| ctx.err(e))?
                .as_deref()
            {
                None | Some("rw") => AttachMode::Rw,
                Some("ro") => AttachMode::Ro,
                Some(m) => {
                    return Err(ctx.err(DomainError::invalid(
                        "mode",
                        FieldReason::Invalid,
                        format!("Invalid attach mode '{m}': rw or ro."),
                    )))
                }
            };
            // CINDER-7.2.5 documents a UUID (any case: the Huawei seed's
            // example is uppercase); the device path is the domain's rule.
            if !domain::text::is_hyphenated_uuid(&server_id) {
                return Err(ctx.err(DomainError::invalid(
                    "instance_uuid",
                    FieldReason::Invalid,
                    "Invalid input for field/attribute instance_uuid: must be a UUID.",
                )));
            }
            let r = AttachRequest {
                server_id,
                host_name,
                device: DevicePolicy::Given(device),
                mode,
            };
            volume_actions::attach(&state.app(), &ctx.caller(), &ctx.meta(), id, r)
                .await
                .map_err(|e| ctx.err(e))?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        // CINDER-7.2.6.
        "os-detach" => {
            let b = input::member(&obj, "os-detach").map_err(|e| ctx.err(e))?;
            let attachment_id = match input::opt_str(b, "attachment_id").map_err(|e| ctx.err(e))? {
                None => None,
                Some(a) => Some(
                    input::uuid(&a)
                        .ok_or_else(|| ctx.err(DomainError::AttachmentNotFound(a.clone())))?,
                ),
            };
            run(&state, &ctx, id, VolumeCommand::Detach { attachment_id }).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        // CINDER-7.2.7 / 7.2.8 [5.1 #38].
        // Retype without migration (issue 12): 202.
        "os-retype" => {
            let b = input::member(&obj, "os-retype").map_err(|e| ctx.err(e))?;
            let new_type = input::opt_str(b, "new_type")
                .map_err(|e| ctx.err(e))?
                .ok_or_else(|| {
                    ctx.err(DomainError::invalid(
                        "new_type",
                        FieldReason::Missing,
                        "'new_type' is a required property.",
                    ))
                })?;
            match input::opt_str(b, "migration_policy").map_err(|e| ctx.err(e))? {
                None => {}
                Some(p) if p == "never" || p == "on-demand" => {}
                Some(p) => {
                    return Err(ctx.err(DomainError::invalid(
                        "migration_policy",
                        FieldReason::Invalid,
                        format!("Invalid migration_policy '{p}': never or on-demand."),
                    )))
                }
            }
            crate::app::volume_retype::retype(
                &state.app(),
                &ctx.caller(),
                &ctx.meta(),
                id,
                new_type,
            )
            .await
            .map_err(|e| ctx.err(e))?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-reserve" => {
            run(&state, &ctx, id, VolumeCommand::Reserve).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-unreserve" => {
            run(&state, &ctx, id, VolumeCommand::Unreserve).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        // CINDER-7.2.4: export the volume's bytes as an image; 202.
        "os-volume_upload_image" => {
            let b = input::member(&obj, "os-volume_upload_image").map_err(|e| ctx.err(e))?;
            let body = super::upload::upload_image(&state, &ctx, id, b).await?;
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        // Connection info as the volume's backend registered it (issue
        // 16): os-brick's local connector for a file backend (issue 5:
        // the absolute path of the volume's active file), its RBD
        // connector for Ceph.
        "os-initialize_connection" => {
            visible(&state, &ctx, raw_id).await?;
            let info = crate::app::backends::connection_info(&state.app(), vec![id])
                .await
                .map_err(|e| ctx.err(e))?;
            let Some(info) = info.get(&id) else {
                return Err(ctx.err(crate::Problem::internal(format!(
                    "volume {id}: its backend is not registered"
                ))));
            };
            Ok(Json(json!({ "connection_info": info })).into_response())
        }
        "os-terminate_connection" => {
            visible(&state, &ctx, raw_id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        other => Err(ctx.err(DomainError::invalid(
            "body",
            FieldReason::Invalid,
            format!("Invalid volume action: {other}"),
        ))),
    }
}

/// `{"os-extend": {"new_size": N}}`.
pub(crate) fn extend_size(obj: &serde_json::Map<String, Value>) -> Result<i64, DomainError> {
    let ext = input::member(obj, "os-extend").map_err(|_| {
        DomainError::invalid("os-extend", FieldReason::Missing, "null extendVolumeReq!")
    })?;
    input::size(ext.get("new_size"), "new_size")?.ok_or_else(|| {
        DomainError::invalid(
            "os-extend",
            FieldReason::Missing,
            "null extendVolumeReq! 'new_size' is required.",
        )
    })
}

/// The volume `raw_id` if the caller may see it; 404 otherwise.
pub(crate) async fn visible(
    state: &AppState,
    ctx: &Ctx,
    raw_id: &str,
) -> Result<projections::VolumeRow, ApiError> {
    queries::volume(&state.app(), &ctx.caller(), raw_id)
        .await
        .map_err(|e| ctx.err(e))
}

/// Runs a single-volume command as the caller.
async fn run(
    state: &AppState,
    ctx: &Ctx,
    id: uuid::Uuid,
    cmd: VolumeCommand,
) -> Result<(), ApiError> {
    volume_actions::command(&state.app(), &ctx.caller(), &ctx.meta(), id, cmd)
        .await
        .map_err(|e| ctx.err(e))
}
