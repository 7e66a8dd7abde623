//! Cinder's generic volume groups under `/v3` (issue 17, microversions
//! 3.11 group types and group specs, 3.13 groups, 3.14 group snapshots,
//! 3.19/3.20 reset status, 3.25 `volumes`, 3.29 group snapshot lists,
//! 3.38 replication actions, 3.58 `project_id`). Each handler checks the
//! negotiated version (below it the route does not exist: 404, as Cinder's
//! `VersionNotFoundForAPIMethod`), parses, calls one use case and renders
//! Cinder's view (`cinder/api/v3/views/groups.py`, `group_snapshots.py`,
//! `group_types.py`).

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::group::GroupStatus;
use domain::group_snapshot::GroupSnapshotStatus;
use domain::{DomainError, FieldReason};
use projections::groups::{GroupRow, GroupSnapshotRow, GroupTypeRow};
use serde_json::{json, Value};

use crate::app::group_create::{CreateGroupRequest, GroupSourceRef};
use crate::app::group_queries::{self as gq, ListScope};
use crate::app::group_types::{self as types_uc, CreateGroupTypeRequest, Paging};
use crate::app::group_update::UpdateGroupRequest;
use crate::app::{self, group_actions, group_create, group_delete, group_update};
use crate::app::{group_snapshot_actions, group_snapshot_create, group_snapshot_delete};
use crate::microversion as mv;
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx, Problem, QueryParams, Reason};

type Reply = Result<Response, ApiError>;
type P = Path<HashMap<String, String>>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{prefix}/group_types"),
            get(types_list).post(types_create),
        )
        .route(
            &format!("{prefix}/group_types/{{type_id}}"),
            get(types_show).put(types_update).delete(types_delete),
        )
        .route(
            &format!("{prefix}/group_types/{{type_id}}/group_specs"),
            get(specs_index).post(specs_create),
        )
        .route(
            &format!("{prefix}/group_types/{{type_id}}/group_specs/{{key}}"),
            get(spec_show).put(spec_update).delete(spec_delete),
        )
        .route(
            &format!("{prefix}/groups"),
            get(groups_list).post(groups_create),
        )
        .route(&format!("{prefix}/groups/detail"), get(groups_detail))
        .route(
            &format!("{prefix}/groups/action"),
            post(groups_create_from_src),
        )
        .route(
            &format!("{prefix}/groups/{{group_id}}"),
            get(groups_show).put(groups_update),
        )
        .route(
            &format!("{prefix}/groups/{{group_id}}/action"),
            post(groups_action),
        )
        .route(
            &format!("{prefix}/group_snapshots"),
            get(gs_list).post(gs_create),
        )
        .route(&format!("{prefix}/group_snapshots/detail"), get(gs_detail))
        .route(
            &format!("{prefix}/group_snapshots/{{gs_id}}"),
            get(gs_show).delete(gs_delete),
        )
        .route(
            &format!("{prefix}/group_snapshots/{{gs_id}}/action"),
            post(gs_action),
        )
}

fn param(p: &HashMap<String, String>, k: &str) -> String {
    p.get(k).cloned().unwrap_or_default()
}

fn bad(field: &'static str, msg: impl Into<String>) -> DomainError {
    DomainError::invalid(field, FieldReason::Invalid, msg)
}

fn missing(field: &'static str) -> DomainError {
    DomainError::invalid(
        field,
        FieldReason::Missing,
        format!("'{field}' is a required property."),
    )
}

/// Below `v` (or on `/v2`) the route does not exist.
fn need(ctx: &Ctx, v: (u32, u32)) -> Result<(), ApiError> {
    if ctx.is_v3() && ctx.at_least(v) {
        Ok(())
    } else {
        Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The resource could not be found.",
        )))
    }
}

/// Cinder's `bool_from_string(strict=True)`.
fn strict_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A boolean body field that Cinder also takes as its text.
fn body_bool(v: Option<&Value>, field: &'static str) -> Result<Option<bool>, DomainError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => strict_bool(s)
            .map(Some)
            .ok_or_else(|| bad(field, format!("Invalid value '{s}' for {field}."))),
        Some(_) => Err(bad(field, format!("{field} must be a boolean."))),
    }
}

/// Cinder's `get_sort_params` (`sort=k[:dir],…` or `sort_key`/`sort_dir`)
/// and `get_pagination_params` (`marker`, `limit`, `offset`).
fn paging(ctx: &Ctx, q: &HashMap<String, String>) -> Result<Paging, DomainError> {
    let dir = |d: &str| match d.trim().to_ascii_lowercase().as_str() {
        "asc" => Ok(true),
        "desc" => Ok(false),
        other => Err(bad("sort_dir", format!("Invalid sort direction: {other}"))),
    };
    let mut sort = Vec::new();
    if let Some(s) = q.get("sort") {
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
            sort.push((k.trim().to_string(), dir(d)?));
        }
    } else if let Some(k) = q.get("sort_key") {
        let d = q.get("sort_dir").map(String::as_str).unwrap_or("desc");
        sort.push((k.trim().to_string(), dir(d)?));
    }
    Ok(Paging {
        sort,
        marker: q.get("marker").cloned(),
        // Cinder caps every page at `osapi_max_limit` (1000).
        limit: Some(crate::parse::limit(ctx, q)?),
        offset: input::offset(q.get("offset").map(String::as_str))?,
    })
}

/// Cinder's `_get_collection_links`: a `next` link (the same query with
/// the page's last id as `marker`) when the page is full.
fn links(
    ctx: &Ctx,
    body: &mut Value,
    key: &str,
    path: &str,
    q: &HashMap<String, String>,
    p_limit: Option<usize>,
    ids: &[&str],
) {
    let limit = p_limit.unwrap_or(domain::limits::MAX_PAGE_LIMIT as usize);
    if let Some(last) = ids.last().filter(|_| limit > 0 && ids.len() == limit) {
        body[key] = super::volumes::next_link(ctx, path, q, last);
    }
}

/// An object of string values (group specs); anything else 400.
fn string_map(
    v: Option<&Value>,
    field: &'static str,
) -> Result<BTreeMap<String, String>, DomainError> {
    super::types::string_map(v, field)
}

// Group types (3.11).

/// Cinder's group type view: `group_specs` for admin only (policy
/// `group:access_group_types_specs`).
fn group_type(ctx: &Ctx, t: &GroupTypeRow) -> Value {
    let mut v = json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "is_public": t.is_public,
    });
    if ctx.is_admin {
        v["group_specs"] = json!(t.group_specs);
    }
    v
}

/// `is_public`: admin's filter (absent: public only; `None`: all), as
/// Cinder's `_parse_is_public`; members see public types only.
async fn types_list(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let q = query(&ctx, q)?;
    let is_public = if !ctx.is_admin {
        Some(true)
    } else {
        match q.get("is_public") {
            None => Some(true),
            Some(s) if s.eq_ignore_ascii_case("none") => None,
            Some(s) => Some(strict_bool(s).ok_or_else(|| {
                ctx.err(bad("is_public", format!("Invalid is_public filter [{s}]")))
            })?),
        }
    };
    let p = paging(&ctx, &q).map_err(|e| ctx.err(e))?;
    let limit = p.limit;
    let rows = types_uc::page(&state.app(), &ctx.caller(), is_public, p)
        .await
        .map_err(|e| ctx.err(e))?;
    let all: Vec<Value> = rows.iter().map(|t| group_type(&ctx, t)).collect();
    let mut body = json!({ "group_types": all });
    let ids: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
    links(
        &ctx,
        &mut body,
        "group_type_links",
        "group_types",
        &q,
        limit,
        &ids,
    );
    Ok(Json(body).into_response())
}

async fn types_show(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let raw = param(&p, "type_id");
    if raw == "default" {
        // No default group type is configured here (Cinder's
        // `default_group_type` unset).
        return Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "Default group type can not be found.",
        )));
    }
    let t = types_uc::show(&state.app(), &ctx.caller(), raw)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "group_type": group_type(&ctx, &t) })).into_response())
}

async fn types_create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let t = input::member(&obj, "group_type").map_err(e)?;
    let name = input::opt_str(t, "name")
        .map_err(e)?
        .ok_or_else(|| e(missing("name")))?;
    let r = CreateGroupTypeRequest {
        name,
        description: input::opt_str(t, "description").map_err(e)?,
        is_public: body_bool(t.get("is_public"), "is_public")
            .map_err(e)?
            .unwrap_or(true),
        group_specs: string_map(t.get("group_specs").filter(|v| !v.is_null()), "group_specs")
            .map_err(e)?,
    };
    let t = types_uc::create(&state.app(), &ctx.caller(), &ctx.meta(), r)
        .await
        .map_err(|x| ctx.err(x))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "group_type": group_type(&ctx, &t) })),
    )
        .into_response())
}

async fn types_update(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let t = input::member(&obj, "group_type").map_err(e)?;
    let t = types_uc::update(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        input::opt_str(t, "name").map_err(e)?,
        input::opt_str(t, "description").map_err(e)?,
        body_bool(t.get("is_public"), "is_public").map_err(e)?,
    )
    .await
    .map_err(|x| ctx.err(x))?;
    Ok(Json(json!({ "group_type": group_type(&ctx, &t) })).into_response())
}

async fn types_delete(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    types_uc::delete(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn specs_index(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let t = types_uc::specs(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "group_specs": t.group_specs })).into_response())
}

/// `POST …/group_specs {"group_specs": {...}}`: merges; 202 with the body.
async fn specs_create(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let specs = match obj.get("group_specs") {
        Some(v @ Value::Object(_)) => string_map(Some(v), "group_specs"),
        _ => Err(missing("group_specs")),
    }
    .map_err(e)?;
    types_uc::set_specs(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        specs.clone(),
    )
    .await
    .map_err(|x| ctx.err(x))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "group_specs": specs }))).into_response())
}

async fn spec_show(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let key = param(&p, "key");
    let t = types_uc::specs(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    match t.group_specs.get(&key) {
        Some(v) => Ok(Json(json!({ key: v })).into_response()),
        None => Err(ctx.err(DomainError::GroupSpecNotFound { type_id: t.id, key })),
    }
}

/// `PUT …/group_specs/{key} {"<key>": "<value>"}`: exactly that one key.
async fn spec_update(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    let e = |e: DomainError| ctx.err(e);
    let key = param(&p, "key");
    let obj = input::json_object(&body).map_err(e)?;
    if obj.len() != 1 {
        return Err(e(bad("body", "Request body must hold exactly one spec.")));
    }
    if !obj.contains_key(&key) {
        return Err(e(bad("body", "Request body and URI mismatch")));
    }
    let specs = string_map(Some(&Value::Object(obj)), "group_specs").map_err(e)?;
    types_uc::set_specs(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        specs.clone(),
    )
    .await
    .map_err(|x| ctx.err(x))?;
    Ok(Json(json!(specs)).into_response())
}

async fn spec_delete(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    need(&ctx, mv::GROUP_TYPE)?;
    types_uc::delete_spec(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        param(&p, "key"),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

// Groups (3.13).

/// Cinder's group detail view, field by field as the version grows it.
fn group_detail(ctx: &Ctx, g: &GroupRow, list_volume: bool) -> Value {
    let mut v = json!({
        "id": g.id,
        "status": g.status.as_str(),
        "availability_zone": g.availability_zone,
        "created_at": crate::render::cinder_time(&g.created_at),
        "name": g.name,
        "description": g.description,
        "group_type": g.group_type_id,
        "volume_types": g.volume_types,
    });
    if ctx.at_least(mv::GROUP_SNAPSHOTS) {
        v["group_snapshot_id"] = json!(g.group_snapshot_id);
        v["source_group_id"] = json!(g.source_group_id);
    }
    if ctx.at_least(mv::GROUP_VOLUME_LIST) && list_volume {
        v["volumes"] = json!(g.volumes);
    }
    if ctx.at_least(mv::GROUP_REPLICATION) {
        // Cinder records `disabled` for every group it creates; a group
        // here never replicates (see the replication actions).
        v["replication_status"] = json!("disabled");
    }
    if ctx.at_least(mv::GROUP_GROUPSNAPSHOT_PROJECT_ID) && ctx.is_admin {
        v["project_id"] = json!(g.project_id);
    }
    v
}

fn group_summary(g: &GroupRow) -> Value {
    json!({"id": g.id, "name": g.name})
}

/// `list_volume` of show and detail list (3.25), Cinder's `get_bool_param`.
fn list_volume(ctx: &Ctx, q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("list_volume") {
        None => Ok(false),
        Some(s) => strict_bool(s).ok_or_else(|| {
            ctx.err(bad(
                "list_volume",
                format!("Invalid value '{s}' for list_volume"),
            ))
        }),
    }
}

fn scope(q: &HashMap<String, String>) -> ListScope {
    ListScope {
        all_tenants: input::all_tenants(q),
        project_id: q.get("project_id").cloned(),
    }
}

/// Exact-value filters the list takes; paging keys and unknown ones aside.
fn filters(q: &HashMap<String, String>, known: fn(&str) -> bool) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| known(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    f.sort();
    f
}

async fn groups_page(state: AppState, ctx: Ctx, q: QueryParams, detail: bool) -> Reply {
    need(&ctx, mv::GROUP_VOLUME)?;
    let q = query(&ctx, q)?;
    let p = paging(&ctx, &q).map_err(|e| ctx.err(e))?;
    let limit = p.limit;
    let lv = list_volume(&ctx, &q)?;
    let rows = gq::list(
        &state.app(),
        &ctx.caller(),
        scope(&q),
        filters(&q, gq::is_group_filter),
        p,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    let all: Vec<Value> = rows
        .iter()
        .map(|g| {
            if detail {
                group_detail(&ctx, g, lv)
            } else {
                group_summary(g)
            }
        })
        .collect();
    let mut body = json!({ "groups": all });
    let ids: Vec<&str> = rows.iter().map(|g| g.id.as_str()).collect();
    let path = if detail { "groups/detail" } else { "groups" };
    links(&ctx, &mut body, "group_links", path, &q, limit, &ids);
    Ok(Json(body).into_response())
}

async fn groups_list(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    groups_page(state, ctx, q, false).await
}

async fn groups_detail(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    groups_page(state, ctx, q, true).await
}

async fn groups_show(State(state): State<AppState>, ctx: Ctx, Path(p): P, q: QueryParams) -> Reply {
    need(&ctx, mv::GROUP_VOLUME)?;
    let q = query(&ctx, q)?;
    let lv = list_volume(&ctx, &q)?;
    let g = gq::show(&state.app(), &ctx.caller(), param(&p, "group_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "group": group_detail(&ctx, &g, lv) })).into_response())
}

fn string_list(v: Option<&Value>, field: &'static str) -> Result<Vec<String>, DomainError> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| bad(field, format!("'{field}' must be a list of strings.")))
            })
            .collect(),
        None | Some(Value::Null) => Err(missing(field)),
        Some(_) => Err(bad(field, format!("'{field}' must be a list of strings."))),
    }
}

/// A name or description: Cinder strips them.
fn stripped(
    obj: &serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, DomainError> {
    Ok(input::opt_str(obj, key)?.map(|s| s.trim().to_string()))
}

async fn groups_create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_VOLUME)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let g = input::member(&obj, "group").map_err(e)?;
    let volume_types = string_list(g.get("volume_types"), "volume_types").map_err(e)?;
    if volume_types.is_empty() {
        return Err(e(bad("volume_types", "volume_types must not be empty.")));
    }
    let r = CreateGroupRequest {
        name: stripped(g, "name").map_err(e)?,
        description: stripped(g, "description").map_err(e)?,
        group_type: input::opt_str(g, "group_type")
            .map_err(e)?
            .ok_or_else(|| e(missing("group_type")))?,
        volume_types,
        availability_zone: input::opt_str(g, "availability_zone").map_err(e)?,
    };
    let g = group_create::create(&state.app(), &ctx.caller(), &ctx.meta(), r)
        .await
        .map_err(|x| ctx.err(x))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "group": group_summary(&g) })),
    )
        .into_response())
}

/// `POST /groups/action {"create-from-src": {...}}` (3.14).
async fn groups_create_from_src(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_SNAPSHOTS)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let b = input::member(&obj, "create-from-src").map_err(e)?;
    let gs = input::opt_str(b, "group_snapshot_id").map_err(e)?;
    let sg = input::opt_str(b, "source_group_id").map_err(e)?;
    let source = match (gs, sg) {
        (Some(g), None) => GroupSourceRef::GroupSnapshot(g),
        (None, Some(s)) => GroupSourceRef::Group(s),
        _ => {
            return Err(e(bad(
                "create-from-src",
                "Exactly one of group_snapshot_id and source_group_id must be provided.",
            )))
        }
    };
    let g = group_create::create_from_source(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        stripped(b, "name").map_err(e)?,
        stripped(b, "description").map_err(e)?,
        source,
        app::new_job_id(),
    )
    .await
    .map_err(|x| ctx.err(x))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "group": group_summary(&g) })),
    )
        .into_response())
}

/// Comma-separated ids (Cinder strips leading and trailing commas).
fn id_list(
    obj: &serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<Vec<String>, DomainError> {
    Ok(input::opt_str(obj, key)?
        .map(|s| {
            s.trim_matches(',')
                .split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default())
}

async fn groups_update(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_VOLUME)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let g = input::member(&obj, "group").map_err(e)?;
    if !["name", "description", "add_volumes", "remove_volumes"]
        .iter()
        .any(|k| g.contains_key(*k))
    {
        return Err(e(bad(
            "group",
            "Name, description, add_volumes, and remove_volumes can not be all empty in the request body.",
        )));
    }
    let r = UpdateGroupRequest {
        name: stripped(g, "name").map_err(e)?,
        description: stripped(g, "description").map_err(e)?,
        add_volumes: id_list(g, "add_volumes").map_err(e)?,
        remove_volumes: id_list(g, "remove_volumes").map_err(e)?,
    };
    group_update::update(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "group_id"),
        r,
    )
    .await
    .map_err(|x| ctx.err(x))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /groups/{id}/action`: `delete` (3.13), `reset_status` (3.20),
/// the replication actions (3.38).
async fn groups_action(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_VOLUME)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let id = param(&p, "group_id");
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    if let Some(d) = obj.get("delete") {
        let Value::Object(d) = d else {
            return Err(e(bad("delete", "'delete' must be an object.")));
        };
        let delete_volumes = body_bool(d.get("delete-volumes"), "delete-volumes")
            .map_err(e)?
            .unwrap_or(false);
        group_delete::delete(&app, &caller, &meta, id, delete_volumes, app::new_job_id())
            .await
            .map_err(|x| ctx.err(x))?;
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    if obj.contains_key("reset_status") {
        need(&ctx, mv::GROUP_VOLUME_RESET_STATUS)?;
        let b = input::member(&obj, "reset_status").map_err(e)?;
        let raw = input::opt_str(b, "status")
            .map_err(e)?
            .ok_or_else(|| e(missing("status")))?
            .to_lowercase();
        let status = GroupStatus::parse(&raw)
            .ok_or_else(|| e(bad("status", format!("Group status {raw} not allowed."))))?;
        group_actions::reset_status(&app, &caller, &meta, id, status)
            .await
            .map_err(|x| ctx.err(x))?;
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    if [
        "enable_replication",
        "disable_replication",
        "failover_replication",
        "list_replication_targets",
    ]
    .iter()
    .any(|k| obj.contains_key(*k))
    {
        need(&ctx, mv::GROUP_REPLICATION)?;
        group_actions::replication(&app, &caller, &meta, id)
            .await
            .map_err(|x| ctx.err(x))?;
        // The domain refuses every replication action here; nothing to
        // answer on success.
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    Err(e(bad("body", "There is no such action.")))
}

// Group snapshots (3.14).

fn gs_detail_view(ctx: &Ctx, g: &GroupSnapshotRow) -> Value {
    let mut v = json!({
        "id": g.id,
        "group_id": g.group_id,
        "group_type_id": g.group_type_id,
        "status": g.status.as_str(),
        "created_at": crate::render::cinder_time(&g.created_at),
        "name": g.name,
        "description": g.description,
    });
    if ctx.at_least(mv::GROUP_GROUPSNAPSHOT_PROJECT_ID) && ctx.is_admin {
        v["project_id"] = json!(g.project_id);
    }
    v
}

async fn gs_page(state: AppState, ctx: Ctx, q: QueryParams, detail: bool) -> Reply {
    need(&ctx, mv::GROUP_SNAPSHOTS)?;
    let q = query(&ctx, q)?;
    // Below 3.29 Cinder reads no filter, order or page: the project's all.
    let (scope, filters, p) = if ctx.at_least(mv::GROUP_SNAPSHOT_PAGINATION) {
        (
            scope(&q),
            filters(&q, gq::is_group_snapshot_filter),
            paging(&ctx, &q).map_err(|e| ctx.err(e))?,
        )
    } else {
        Default::default()
    };
    let limit = p.limit;
    let rows = gq::list_snapshots(&state.app(), &ctx.caller(), scope, filters, p)
        .await
        .map_err(|e| ctx.err(e))?;
    let all: Vec<Value> = rows
        .iter()
        .map(|g| {
            if detail {
                gs_detail_view(&ctx, g)
            } else {
                json!({"id": g.id, "name": g.name})
            }
        })
        .collect();
    let mut body = json!({ "group_snapshots": all });
    let ids: Vec<&str> = rows.iter().map(|g| g.id.as_str()).collect();
    let path = if detail {
        "group_snapshots/detail"
    } else {
        "group_snapshots"
    };
    links(
        &ctx,
        &mut body,
        "group_snapshot_links",
        path,
        &q,
        limit,
        &ids,
    );
    Ok(Json(body).into_response())
}

async fn gs_list(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    gs_page(state, ctx, q, false).await
}

async fn gs_detail(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    gs_page(state, ctx, q, true).await
}

async fn gs_show(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    need(&ctx, mv::GROUP_SNAPSHOTS)?;
    let g = gq::show_snapshot(&state.app(), &ctx.caller(), param(&p, "gs_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "group_snapshot": gs_detail_view(&ctx, &g) })).into_response())
}

async fn gs_create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_SNAPSHOTS)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let b = input::member(&obj, "group_snapshot").map_err(e)?;
    let group_id = input::opt_str(b, "group_id")
        .map_err(e)?
        .ok_or_else(|| e(missing("group_id")))?;
    let g = group_snapshot_create::create(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        group_id,
        input::opt_str(b, "name").map_err(e)?,
        input::opt_str(b, "description").map_err(e)?,
        app::new_job_id(),
    )
    .await
    .map_err(|x| ctx.err(x))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "group_snapshot": {"id": g.id, "name": g.name, "group_type_id": g.group_type_id} })),
    )
        .into_response())
}

async fn gs_delete(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    need(&ctx, mv::GROUP_SNAPSHOTS)?;
    group_snapshot_delete::delete(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "gs_id"),
        app::new_job_id(),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /group_snapshots/{id}/action {"reset_status": {"status": …}}` (3.19).
async fn gs_action(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    need(&ctx, mv::GROUP_SNAPSHOT_RESET_STATUS)?;
    let e = |e: DomainError| ctx.err(e);
    let obj = input::json_object(&body).map_err(e)?;
    let b = input::member(&obj, "reset_status").map_err(e)?;
    let raw = input::opt_str(b, "status")
        .map_err(e)?
        .ok_or_else(|| e(missing("status")))?
        .to_lowercase();
    let status = GroupSnapshotStatus::parse(&raw).ok_or_else(|| {
        e(bad(
            "status",
            format!("Group snapshot status {raw} not allowed."),
        ))
    })?;
    group_snapshot_actions::reset_status(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "gs_id"),
        status,
    )
    .await
    .map_err(|x| ctx.err(x))?;
    Ok(StatusCode::ACCEPTED.into_response())
}
