//! The Chinese cloud's volume API (seed 000, rows IDC-* in API.md; rulings
//! in DECISIONS.md, "The Chinese cloud"): `/v2/zone/{zone}/volumes…`,
//! `/v2/zone/{zone}/volume_snapshots…`, and the two extensions the rulings
//! add (create, job poll). The zone in the path is an availability zone of
//! the catalog, and it scopes the objects: a volume is found only in its
//! own zone. Every asynchronous call answers the Job Response; errors are
//! `{"ret_code", "message"}`.
//!
//! Translation only: each handler parses, calls one use case of
//! `crate::app`, and renders in this dialect's names, types and times.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::create_rules::CreatePolicy;
use domain::{DomainError, FieldReason, SnapshotCommand, VolumeCommand, VolumeStatus};
use projections::jobs::{JobKind, JobRow, JobStatus};
use projections::snapshots::{ChainQuery, SnapshotInChain};
use projections::{ListQuery, VolumeRow};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::Dialect;
use crate::app::snapshot_create::{self, CreateSnapshotRequest};
use crate::app::snapshot_export::{self, ExportSnapshotRequest};
use crate::app::volume_create::{self, CreateVolumeRequest, SourceRef};
use crate::app::{
    self, queries, snapshot_actions, snapshot_rollback, volume_actions, volume_delete,
    volume_extend,
};
use crate::{input, ApiError, AppState, Ctx, Problem, Reason};

type Reply = Result<Response, ApiError>;

#[derive(Debug)]
pub struct Idc;

pub static IDC: Idc = Idc;

impl Dialect for Idc {
    fn name(&self) -> &'static str {
        "idc"
    }

    /// `{"ret_code": <non-zero>, "message"}` (DECISIONS.md): the codes are
    /// the family's (parameter, auth, permission, not found, conflict,
    /// quota, server), the HTTP status the one the refusal has everywhere.
    fn render_error(&self, p: &Problem) -> Response {
        let ret_code = match p.status.as_u16() {
            401 => 1200,
            403 => 1300,
            404 => 2100,
            409 => 2500,
            413 => 2400,
            400..=499 => 1100,
            _ => 5000,
        };
        (
            p.status,
            Json(json!({"ret_code": ret_code, "message": p.message})),
        )
            .into_response()
    }
}

pub fn routes() -> Router<AppState> {
    let z = "/v2/zone/{zone}";
    Router::new()
        // IDC-volumes-list, IDC-volumes-modify; create is the extension.
        .route(
            &format!("{z}/volumes"),
            get(list_volumes).put(modify).post(create),
        )
        .route(&format!("{z}/volumes/{{vol_id}}"), delete(delete_volume))
        .route(&format!("{z}/volumes/resize"), post(resize))
        .route(
            &format!("{z}/volumes/attach"),
            post(
                |s: State<AppState>, c: Ctx, p: Path<HashMap<String, String>>, b: Bytes| {
                    attachment(s.0, c, p.0, b, true)
                },
            ),
        )
        .route(
            &format!("{z}/volumes/detach"),
            post(
                |s: State<AppState>, c: Ctx, p: Path<HashMap<String, String>>, b: Bytes| {
                    attachment(s.0, c, p.0, b, false)
                },
            ),
        )
        .route(
            &format!("{z}/volume_snapshots"),
            get(list_snapshots).post(create_snapshots),
        )
        .route(
            &format!("{z}/volume_snapshots/{{snapshot_id}}"),
            delete(delete_snapshot),
        )
        .route(&format!("{z}/volume_snapshots/apply"), post(apply))
        .route(
            &format!("{z}/volume_snapshots/capture_instance"),
            post(capture_instance),
        )
        .route(
            &format!("{z}/volume_snapshots/create_volume"),
            post(create_volume_from_snapshot),
        )
        // The extension: poll a job.
        .route(&format!("{z}/jobs/{{job_id}}"), get(job))
}

/// Seconds, UTC, `Z`: the family's ISO 8601 form.
fn idc_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn e(ctx: &Ctx) -> impl Fn(DomainError) -> ApiError + '_ {
    move |err| ctx.err(err)
}

/// The zone of the path, which must be one of the catalog's.
fn zone(state: &AppState, ctx: &Ctx, p: &HashMap<String, String>) -> Result<String, ApiError> {
    let z = p.get("zone").cloned().unwrap_or_default();
    state
        .catalog
        .resolve_zone(Some(&z))
        .map_err(|err| ctx.err(err))
}

/// The query string as repeated keys: `volumes=a&volumes=b`,
/// `volumes[]=a`, `volumes.1=a` all name the array `volumes`.
fn query_pairs(ctx: &Ctx, raw: Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    let raw = raw.unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw).map_err(|_| {
        ctx.err(DomainError::invalid(
            "query",
            FieldReason::Invalid,
            "Malformed query string.",
        ))
    })?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| {
            let base = k.strip_suffix("[]").map(str::to_string).unwrap_or_else(|| {
                match k.split_once('.') {
                    Some((b, n)) if n.chars().all(|c| c.is_ascii_digit()) => b.to_string(),
                    _ => k.clone(),
                }
            });
            (base, v)
        })
        .collect())
}

fn all<'a>(q: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

fn one<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn int(q: &[(String, String)], key: &'static str) -> Result<Option<i64>, DomainError> {
    match one(q, key) {
        None => Ok(None),
        Some(v) => input::query_int(v).map(Some).ok_or_else(|| {
            DomainError::invalid(
                key,
                FieldReason::WrongType,
                format!("{key} must be an integer."),
            )
        }),
    }
}

/// `offset` (0-based) and `limit` (default 10, at most 100).
fn paging(q: &[(String, String)]) -> Result<(usize, usize), DomainError> {
    let offset = int(q, "offset")?.unwrap_or(0);
    let limit = int(q, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if offset < 0 {
        return Err(DomainError::invalid(
            "offset",
            FieldReason::Invalid,
            "offset must be 0 or more.",
        ));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(DomainError::invalid(
            "limit",
            FieldReason::OutOfRange,
            format!("limit must be 1 to {MAX_LIMIT}."),
        ));
    }
    Ok((offset.min(u32::MAX as i64) as usize, limit as usize))
}

/// The seed's default page (000:L21).
const DEFAULT_LIMIT: i64 = 10;
/// The largest page, as the family's other lists.
const MAX_LIMIT: i64 = 100;

/// A body: a JSON object.
fn body(ctx: &Ctx, b: &Bytes) -> Result<Map<String, Value>, ApiError> {
    input::json_object(b).map_err(e(ctx))
}

/// A string array field (`["a", "b"]`; a lone string is one element).
fn ids(
    ctx: &Ctx,
    obj: &Map<String, Value>,
    key: &'static str,
    not_found: fn(String) -> DomainError,
) -> Result<Vec<Uuid>, ApiError> {
    let raw: Vec<String> = match obj.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ctx.err(DomainError::invalid(
                    key,
                    FieldReason::WrongType,
                    format!("'{key}' must be an array of strings."),
                ))
            })?,
        Some(Value::String(s)) => vec![s.clone()],
        _ => {
            return Err(ctx.err(DomainError::invalid(
                key,
                FieldReason::Missing,
                format!("'{key}' is required."),
            )))
        }
    };
    if raw.is_empty() || raw.len() > MAX_LIMIT as usize {
        return Err(ctx.err(DomainError::invalid(
            key,
            FieldReason::OutOfRange,
            format!("'{key}' must name 1 to {MAX_LIMIT} resources."),
        )));
    }
    raw.into_iter()
        .map(|r| input::uuid(&r).ok_or_else(|| ctx.err(not_found(r))))
        .collect()
}

fn required_str(
    ctx: &Ctx,
    obj: &Map<String, Value>,
    key: &'static str,
) -> Result<String, ApiError> {
    input::opt_str(obj, key).map_err(e(ctx))?.ok_or_else(|| {
        ctx.err(DomainError::invalid(
            key,
            FieldReason::Missing,
            format!("'{key}' is required."),
        ))
    })
}

/// A volume the caller may see, in the path's zone (else not found).
async fn volume_in_zone(
    state: &AppState,
    ctx: &Ctx,
    zone: &str,
    id: &str,
) -> Result<VolumeRow, ApiError> {
    let app = state.app();
    match queries::volume(&app, &ctx.caller(), id).await {
        Ok(v) if v.availability_zone == zone => Ok(v),
        Err(crate::app::AppError::Store(s)) => Err(ctx.err(s)),
        // Missing, another project's, or in another zone: refused, and the
        // refusal recorded like any other.
        _ => {
            let err = DomainError::VolumeNotFound(id.to_string());
            Err(ctx.err(
                app.refuse(&ctx.caller(), &ctx.meta(), format!("volume-{id}"), err)
                    .await,
            ))
        }
    }
}

async fn snapshot_in_zone(
    state: &AppState,
    ctx: &Ctx,
    zone: &str,
    id: &str,
) -> Result<projections::snapshots::SnapshotRow, ApiError> {
    let app = state.app();
    match queries::snapshot(&app, &ctx.caller(), id).await {
        Ok(s) if s.availability_zone == zone => Ok(s),
        Err(crate::app::AppError::Store(s)) => Err(ctx.err(s)),
        _ => {
            let err = DomainError::SnapshotNotFound(id.to_string());
            Err(ctx.err(
                app.refuse(&ctx.caller(), &ctx.meta(), format!("snapshot-{id}"), err)
                    .await,
            ))
        }
    }
}

/// The action name a job shows (the family's verbs).
fn action(kind: JobKind) -> &'static str {
    match kind {
        JobKind::CreateVolume | JobKind::BatchCreateVolume => "CreateVolumes",
        JobKind::ExtendVolume => "ResizeVolumes",
        JobKind::DeleteVolume => "DeleteVolumes",
        JobKind::RollbackVolume => "ApplySnapshots",
        JobKind::CreateSnapshot => "CreateSnapshots",
        JobKind::DeleteSnapshot => "DeleteSnapshots",
        JobKind::ExportImage => "CaptureInstanceFromSnapshot",
        JobKind::AttachVolume => "AttachVolumes",
        JobKind::DetachVolume => "DetachVolumes",
    }
}

/// The family's job statuses.
fn job_status(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Init => "pending",
        JobStatus::Running => "working",
        JobStatus::Success => "successful",
        JobStatus::Fail => "failed",
    }
}

/// The Job Response (000:L80-L91): ten strings.
fn job_response(j: &JobRow) -> Value {
    let resources: Vec<Value> = if j.sub_jobs.is_empty() {
        vec![entity(j)]
    } else {
        j.sub_jobs.iter().map(entity).collect()
    };
    json!({
        "job_id": j.job_id,
        // The short form a console shows: the id's first eight characters.
        "id_prefix": j.job_id.chars().take(8).collect::<String>(),
        "action": action(j.kind),
        "request_id": j.request_id.clone().unwrap_or_default(),
        "status": job_status(j.status),
        "create_time": idc_time(&j.begin_time),
        "begin_time": idc_time(&j.begin_time),
        "finished_time": j.end_time.as_ref().map(idc_time).unwrap_or_default(),
        "info": j.failure.clone().unwrap_or_default(),
        // What the job works on, as JSON text (the field is a String).
        "extra": Value::Array(resources).to_string(),
    })
}

fn entity(j: &JobRow) -> Value {
    match &j.entity {
        projections::jobs::JobEntity::Volume(id) => json!({"volume_id": id}),
        projections::jobs::JobEntity::Snapshot(id) => json!({"snapshot_id": id}),
        projections::jobs::JobEntity::Image(id) => json!({"image_id": id}),
        projections::jobs::JobEntity::Batch => json!({}),
    }
}

/// Answers the Job Response of `job_id`, as the log has it now.
async fn job_reply(state: &AppState, ctx: &Ctx, job_id: String) -> Reply {
    match queries::job(&state.app(), &ctx.caller(), job_id.clone())
        .await
        .map_err(|err| ctx.err(err))?
    {
        Some(j) => Ok(Json(job_response(&j)).into_response()),
        None => Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::JobNotFound,
            format!("Job {job_id} could not be found."),
        ))),
    }
}

/// The family's status and transition status of a volume.
fn volume_status(s: VolumeStatus) -> (&'static str, &'static str) {
    use VolumeStatus as S;
    match s {
        S::Creating => ("pending", "creating"),
        S::Available => ("available", ""),
        S::InUse => ("in-use", ""),
        S::Attaching => ("available", "attaching"),
        S::Extending => ("available", "resizing"),
        S::Deleting => ("available", "deleting"),
        S::Rollingback => ("available", "recovering"),
        S::Uploading => ("available", "capturing"),
        S::AwaitingTransfer => ("available", "transferring"),
        other => (other.as_str(), ""),
    }
}

fn render_volume(v: &VolumeRow, verbose: bool) -> Value {
    let (status, transition) = volume_status(v.status);
    let mut out = json!({
        "volume_id": v.id,
        "volume_name": v.name.clone().unwrap_or_default(),
        "description": v.description.clone().unwrap_or_default(),
        "size": v.size,
        "status": status,
        "transition_status": transition,
        "create_time": idc_time(&v.created_at),
        "status_time": idc_time(v.updated_at.as_ref().unwrap_or(&v.created_at)),
        "instance": v.attachments.iter().map(|a| json!({
            "instance_id": a.attachment.server_id,
            "device": a.attachment.device,
        })).collect::<Vec<_>>(),
    });
    if verbose {
        out["volume_type"] = json!(v.volume_type);
        out["zone_id"] = json!(v.availability_zone);
        out["tags"] = json!(v.metadata);
    }
    out
}

/// `volume_type` is an Int in the seed: the catalog's types by position
/// (0 = the first); a type's name is taken too.
fn volume_type(state: &AppState, raw: &str) -> Result<String, DomainError> {
    let digits = !raw.is_empty() && raw.len() < 10 && raw.bytes().all(|b| b.is_ascii_digit());
    let by_index = digits
        .then(|| raw.parse::<usize>().ok())
        .flatten()
        .and_then(|i| state.catalog.types.get(i))
        .map(|t| t.name.clone());
    // A name goes to the use case, which resolves it against the volume
    // types view (so a type an admin created is usable here too).
    Ok(by_index.unwrap_or_else(|| raw.to_string()))
}

/// IDC-volumes-list: every filter optional [5.2 #1]; `total_count` counts
/// all matches, whatever the page.
async fn list_volumes(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let q = query_pairs(&ctx, raw)?;
    let (offset, limit) = paging(&q).map_err(e(&ctx))?;
    let ids: Vec<String> = all(&q, "volumes").into_iter().map(str::to_string).collect();
    let mut statuses = Vec::new();
    for s in all(&q, "status") {
        // The family's words, onto this service's.
        let ours = match s {
            "pending" => "creating",
            other => other,
        };
        if !VolumeStatus::is_documented(ours) {
            return Err(ctx.err(DomainError::invalid(
                "status",
                FieldReason::Invalid,
                format!("Unknown volume status '{s}'."),
            )));
        }
        statuses.push(ours.to_string());
    }
    let vtype = match one(&q, "volume_type") {
        Some(t) => Some(volume_type(&state, t).map_err(e(&ctx))?),
        None => None,
    };
    let verbose = int(&q, "verbose").map_err(e(&ctx))?.unwrap_or(0) > 0;
    let mut metadata = std::collections::BTreeMap::new();
    for t in all(&q, "tags") {
        metadata.insert(t.to_string(), "true".to_string());
    }
    let lq = ListQuery {
        project_id: Some(ctx.project_id.clone()),
        availability_zone: Some(zone),
        ids,
        statuses,
        search: one(&q, "search_word")
            .filter(|w| !w.is_empty())
            .map(str::to_string),
        volume_type: vtype,
        metadata,
        limit,
        offset,
        ..Default::default()
    };
    let app = state.app();
    let (total, (rows, _)) = (
        queries::count_volumes(&app, lq.clone())
            .await
            .map_err(|err| ctx.err(err))?,
        queries::volumes(&app, lq)
            .await
            .map_err(|err| ctx.err(err))?,
    );
    let volumes: Vec<Value> = rows.iter().map(|v| render_volume(v, verbose)).collect();
    Ok(Json(json!({"volumes": volumes, "total_count": total})).into_response())
}

/// The extension (DECISIONS.md [5.2 #5]): `volume_name`, `size`,
/// `volume_type`, `count` in the path's zone; a Job Response.
async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    b: Bytes,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    // The seed types these Int: a JSON integer only (issue 15 item 4).
    let count = input::integer(obj.get("count"), "count")
        .map_err(e(&ctx))?
        .unwrap_or(1);
    let vtype = match obj.get("volume_type") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_u64() => {
            Some(volume_type(&state, &n.to_string()).map_err(e(&ctx))?)
        }
        Some(Value::String(s)) => Some(volume_type(&state, s).map_err(e(&ctx))?),
        Some(_) => {
            return Err(ctx.err(DomainError::invalid(
                "volume_type",
                FieldReason::WrongType,
                "volume_type must be an integer or a type name.",
            )))
        }
    };
    let size = input::integer(obj.get("size"), "size").map_err(e(&ctx))?;
    let r = CreateVolumeRequest {
        name: input::opt_str(&obj, "volume_name").map_err(e(&ctx))?,
        description: input::opt_str(&obj, "description").map_err(e(&ctx))?,
        size,
        availability_zone: Some(zone),
        volume_type: vtype,
        metadata: Default::default(),
        multiattach: false,
        source: None,
        backup_id: None,
        policy: CreatePolicy::OPEN,
    };
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    let job_id = app::new_job_id();
    if count == 1 {
        volume_create::create(&app, &caller, &meta, r, job_id.clone())
            .await
            .map_err(|err| ctx.err(err))?;
    } else {
        volume_create::create_batch(&app, &caller, &meta, r, count, job_id.clone())
            .await
            .map_err(|err| ctx.err(err))?;
    }
    job_reply(&state, &ctx, job_id).await
}

/// IDC-volumes-delete: the path id wins; a `volumes` query that omits it
/// is a 400 [5.2 #2].
async fn delete_volume(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let raw_id = p.get("vol_id").cloned().unwrap_or_default();
    let q = query_pairs(&ctx, raw)?;
    let named = all(&q, "volumes");
    if !named.is_empty() && !named.contains(&raw_id.as_str()) {
        return Err(ctx.err(DomainError::invalid(
            "volumes",
            FieldReason::Conflict,
            "The volumes query must name the volume of the path.",
        )));
    }
    let v = volume_in_zone(&state, &ctx, &zone, &raw_id).await?;
    let id = input::uuid(&v.id).ok_or_else(|| ctx.err(DomainError::VolumeNotFound(raw_id)))?;
    let job_id = app::new_job_id();
    volume_delete::delete(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        false,
        job_id.clone(),
    )
    .await
    .map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// IDC-volumes-modify: `volume` required, `volume_name`/`description`
/// optional [5.2 #4]; synchronous, so the answer is the seed's "NONE"
/// alternative: an empty object.
async fn modify(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    b: Bytes,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    let raw_id = required_str(&ctx, &obj, "volume")?;
    let v = volume_in_zone(&state, &ctx, &zone, &raw_id).await?;
    let id = input::uuid(&v.id).ok_or_else(|| ctx.err(DomainError::VolumeNotFound(raw_id)))?;
    let cmd = VolumeCommand::Update {
        name: input::opt_str(&obj, "volume_name").map_err(e(&ctx))?,
        description: input::opt_str(&obj, "description").map_err(e(&ctx))?,
        metadata: None,
    };
    volume_actions::command(&state.app(), &ctx.caller(), &ctx.meta(), id, cmd)
        .await
        .map_err(|err| ctx.err(err))?;
    Ok(Json(json!({})).into_response())
}

/// The volumes a body names, each checked to be in the path's zone.
async fn zone_volumes(
    state: &AppState,
    ctx: &Ctx,
    zone: &str,
    obj: &Map<String, Value>,
) -> Result<Vec<Uuid>, ApiError> {
    let ids = ids(ctx, obj, "volumes", DomainError::VolumeNotFound)?;
    for id in &ids {
        volume_in_zone(state, ctx, zone, &id.to_string()).await?;
    }
    Ok(ids)
}

/// IDC-volumes-resize: several volumes to one size, all or nothing.
async fn resize(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    b: Bytes,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    let size = input::integer(obj.get("size"), "size")
        .map_err(e(&ctx))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "size",
                FieldReason::Missing,
                "'size' is required.",
            ))
        })?;
    let ids = zone_volumes(&state, &ctx, &zone, &obj).await?;
    let job_id = app::new_job_id();
    volume_extend::extend_many(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        ids,
        size,
        job_id.clone(),
        domain::volume::ExtendPolicy::OPEN,
    )
    .await
    .map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// IDC-volumes-attach (each volume at the instance's next free device)
/// and IDC-volumes-detach: one body, one job.
async fn attachment(
    state: AppState,
    ctx: Ctx,
    p: HashMap<String, String>,
    b: Bytes,
    attach: bool,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    let instance = required_str(&ctx, &obj, "instance_id")?;
    let ids = zone_volumes(&state, &ctx, &zone, &obj).await?;
    let job_id = app::new_job_id();
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    let done = if attach {
        volume_actions::attach_many(&app, &caller, &meta, ids, instance, job_id.clone()).await
    } else {
        volume_actions::detach_many(&app, &caller, &meta, ids, instance, job_id.clone()).await
    };
    done.map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// IDC-snapshots-create: one snapshot of each of `resources[]`, named
/// `snapshot_name`. `is_full` 1 asks for a full copy instead of a layer
/// over the volume's chain [5.2 #8]: the executor flattens the snapshot's
/// file so it stands alone; `snapshot_type` shows which.
async fn create_snapshots(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    b: Bytes,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    let ids = ids(&ctx, &obj, "resources", DomainError::VolumeNotFound)?;
    for id in &ids {
        volume_in_zone(&state, &ctx, &zone, &id.to_string()).await?;
    }
    let name = input::opt_str(&obj, "snapshot_name").map_err(e(&ctx))?;
    let full = match obj.get("is_full") {
        None | Some(Value::Null) => false,
        Some(v) => match v.as_i64() {
            Some(0) => false,
            Some(1) => true,
            _ => {
                return Err(ctx.err(DomainError::invalid(
                    "is_full",
                    FieldReason::Invalid,
                    "is_full must be 0 or 1.",
                )))
            }
        },
    };
    let requests = ids
        .into_iter()
        .map(|volume_id| CreateSnapshotRequest {
            volume_id,
            name: name.clone(),
            description: None,
            metadata: Default::default(),
            // The family snapshots attached disks too.
            force: true,
            full,
            snapshot_id: None,
        })
        .collect();
    let job_id = app::new_job_id();
    snapshot_create::create_many(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        requests,
        job_id.clone(),
    )
    .await
    .map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// IDC-snapshots-delete: the path id wins (the query's `snapshot`, if
/// given, must name it).
async fn delete_snapshot(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let raw_id = p.get("snapshot_id").cloned().unwrap_or_default();
    let q = query_pairs(&ctx, raw)?;
    if one(&q, "snapshot").is_some_and(|s| s != raw_id) {
        return Err(ctx.err(DomainError::invalid(
            "snapshot",
            FieldReason::Conflict,
            "The snapshot query must name the snapshot of the path.",
        )));
    }
    let s = snapshot_in_zone(&state, &ctx, &zone, &raw_id).await?;
    let id = input::uuid(&s.id).ok_or_else(|| ctx.err(DomainError::SnapshotNotFound(raw_id)))?;
    let job_id = app::new_job_id();
    snapshot_actions::command_with_job(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        SnapshotCommand::Delete,
        job_id.clone(),
    )
    .await
    .map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// IDC-snapshots-apply: each snapshot's own volume rolls back to it.
async fn apply(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    b: Bytes,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    let ids = ids(&ctx, &obj, "snapshots", DomainError::SnapshotNotFound)?;
    for id in &ids {
        snapshot_in_zone(&state, &ctx, &zone, &id.to_string()).await?;
    }
    let job_id = app::new_job_id();
    snapshot_rollback::rollback_many(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        ids,
        job_id.clone(),
    )
    .await
    .map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// IDC-snapshots-capture-instance: the snapshot's bytes become an image of
/// the catalog (downloadable from `/image/v2/images/{id}/file`).
async fn capture_instance(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    b: Bytes,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    let raw = required_str(&ctx, &obj, "snapshot")?;
    let s = snapshot_in_zone(&state, &ctx, &zone, &raw).await?;
    let snapshot_id =
        input::uuid(&s.id).ok_or_else(|| ctx.err(DomainError::SnapshotNotFound(raw)))?;
    let r = ExportSnapshotRequest {
        snapshot_id,
        image_name: required_str(&ctx, &obj, "image_name")?,
        disk_format: input::opt_str(&obj, "disk_format").map_err(e(&ctx))?,
        // `snapshot_in_zone` has checked the path's zone.
        source_zone: None,
        destination_zone: None,
    };
    domain::image::check_image_name(&r.image_name).map_err(e(&ctx))?;
    let job_id = app::new_job_id();
    snapshot_export::export(&state.app(), &ctx.caller(), &ctx.meta(), r, job_id.clone())
        .await
        .map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// IDC-snapshots-create-volume: a new volume (in the snapshot's zone) with
/// the snapshot's bytes.
async fn create_volume_from_snapshot(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    b: Bytes,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let obj = body(&ctx, &b)?;
    let raw = required_str(&ctx, &obj, "snapshot")?;
    let s = snapshot_in_zone(&state, &ctx, &zone, &raw).await?;
    let snapshot_id =
        input::uuid(&s.id).ok_or_else(|| ctx.err(DomainError::SnapshotNotFound(raw)))?;
    let r = CreateVolumeRequest {
        name: input::opt_str(&obj, "volume_name").map_err(e(&ctx))?,
        description: None,
        size: None,
        availability_zone: None,
        volume_type: None,
        metadata: Default::default(),
        multiattach: false,
        source: Some(SourceRef::Snapshot(snapshot_id)),
        backup_id: None,
        policy: CreatePolicy::OPEN,
    };
    let job_id = app::new_job_id();
    volume_create::create(&state.app(), &ctx.caller(), &ctx.meta(), r, job_id.clone())
        .await
        .map_err(|err| ctx.err(err))?;
    job_reply(&state, &ctx, job_id).await
}

/// The extension: poll a job of the caller's project.
async fn job(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    zone(&state, &ctx, &p)?;
    let job_id = p.get("job_id").cloned().unwrap_or_default();
    job_reply(&state, &ctx, job_id).await
}

/// IDC-snapshots-list, with the chain fields [5.2 #8]: `root_id` the first
/// snapshot of the chain, `parent_id` the previous one, `is_head` 1 on the
/// newest (the one the volume's bytes now descend from), `head_chain` 1 on
/// the path from the head to the root; `total_size`/`total_count` sum the
/// chain.
async fn list_snapshots(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let zone = zone(&state, &ctx, &p)?;
    let q = query_pairs(&ctx, raw)?;
    let (offset, limit) = paging(&q).map_err(e(&ctx))?;
    let verbose = int(&q, "verbose").map_err(e(&ctx))?.unwrap_or(0) > 0;
    let snapshot_type = int(&q, "snapshot_type").map_err(e(&ctx))?;
    let mut statuses = Vec::new();
    for s in all(&q, "status") {
        if !domain::SnapshotStatus::is_documented(s) {
            return Err(ctx.err(DomainError::invalid(
                "status",
                FieldReason::Invalid,
                format!("Unknown snapshot status '{s}'."),
            )));
        }
        statuses.push(s.to_string());
    }
    let sq = ChainQuery {
        project_id: Some(ctx.project_id.clone()),
        availability_zone: Some(zone),
        ids: all(&q, "snapshots")
            .into_iter()
            .map(str::to_string)
            .collect(),
        volume_id: one(&q, "resource_id").map(str::to_string),
        statuses,
        search: one(&q, "search_word")
            .filter(|w| !w.is_empty())
            .map(str::to_string),
        root_id: one(&q, "root_id").map(str::to_string),
        full: snapshot_type.map(|t| t == 1),
        offset,
        limit,
    };
    let (rows, total) = queries::snapshot_chains(&state.app(), sq)
        .await
        .map_err(|err| ctx.err(err))?;
    let snapshots: Vec<Value> = rows.iter().map(|c| render_snapshot(c, verbose)).collect();
    Ok(Json(json!({"snapshots": snapshots, "total_count": total})).into_response())
}

fn render_snapshot(c: &SnapshotInChain, verbose: bool) -> Value {
    let s = &c.snapshot;
    let (status, transition) = match s.status {
        domain::SnapshotStatus::Creating => ("pending", "creating"),
        domain::SnapshotStatus::Deleting => ("available", "deleting"),
        domain::SnapshotStatus::Rollbacking => ("available", "applying"),
        other => (other.as_str(), ""),
    };
    let full = s.full;
    let mut out = json!({
        "snapshot_id": s.id,
        "snapshot_name": s.name.clone().unwrap_or_default(),
        "description": s.description.clone().unwrap_or_default(),
        "snapshot_type": i64::from(full),
        "status": status,
        "transition_status": transition,
        "create_time": idc_time(&s.created_at),
        "status_time": idc_time(s.updated_at.as_ref().unwrap_or(&s.created_at)),
        "snapshot_time": idc_time(&s.created_at),
        "is_taken": i64::from(s.status == domain::SnapshotStatus::Available),
        "is_head": i64::from(c.chain.is_head),
        "head_chain": i64::from(c.on_head_chain),
        "root_id": c.chain.root_id,
        "parent_id": c.chain.parent_id.clone().unwrap_or_default(),
        "size": s.size,
        "total_size": c.chain_size,
        "total_count": c.chain_count,
        "lastest_snapshot_time": idc_time(&c.latest_in_chain),
    });
    if verbose {
        out["resource_id"] = json!(s.volume_id);
        out["zone_id"] = json!(s.availability_zone);
    }
    out
}
