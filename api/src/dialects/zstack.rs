//! ZStack (seed 003, row ZS-CreateVolumeSnapshot): `POST
//! /zstack/v1/volumes/{volumeUuid}/volume-snapshots`, synchronous as
//! documented, answering `{"inventory": VolumeSnapshotInventory}` only once
//! the snapshot exists on disk; beside it the two queries a ZStack client
//! needs next (`GET /zstack/v1/volume-snapshots[/{uuid}]`, with ZStack's
//! `q=field=value` conditions), answering `{"inventories": [...]}`.
//! (DECISIONS.md, ZStack.)
//!
//! Ids are 32 lowercase hex digits: the same objects as the dashed UUIDs of
//! every other dialect, and paths take either spelling. `Authorization:
//! OAuth <token>` carries the caller (noauth: `user:project`). Refusals are
//! `{"error": {"code", "description", "details"}}` with ZStack's codes
//! (`SYS.1002` invalid argument, `SYS.1003` not found, `ID.1001` bad
//! session, …) and a fitting HTTP status.
//!
//! Translation only: a snapshot is `app::snapshot_create::create_and_wait`
//! (the wait is the application layer's, bounded by the server's
//! `--sync-deadline-ms`); a deadline missed is 503 `SYS.1005` while the
//! snapshot completes or fails in the background. Chain facts (`treeUuid`,
//! `parentUuid`, `latest`) are the snapshot chain view's.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::{Aggregate, DomainError, ErrorKind, FieldReason, VolumeAggregate};
use projections::snapshots::SnapshotInChain;
use projections::VolumeRow;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{header, Credential, Dialect};
use crate::app::queries::{self, ChainFilter};
use crate::app::snapshot_create::{self, CreateSnapshotRequest, Synced};
use crate::app::{lookup, AppError};
use crate::{ApiError, AppState, Ctx, Problem, Reason};

#[derive(Debug)]
pub struct ZStack;

pub static ZSTACK: ZStack = ZStack;

impl Dialect for ZStack {
    fn name(&self) -> &'static str {
        "zstack"
    }

    /// `Authorization: OAuth <session>`: the session is a token of the
    /// built-in identity (noauth: `user:project`) (003:L187).
    fn credential(&self, parts: &Parts) -> Option<Credential> {
        header(parts, "authorization")
            .and_then(|a| {
                let (scheme, rest) = a.split_once(' ')?;
                scheme.eq_ignore_ascii_case("oauth").then(|| rest.trim())
            })
            .filter(|s| !s.is_empty())
            .map(|s| Credential::Token(s.to_string()))
    }

    fn render_error(&self, p: &Problem) -> Response {
        let (status, code, description) = code_of(p);
        let body = json!({ "error": {
            "code": code,
            "description": description,
            "details": p.message,
        }});
        (status, Json(body)).into_response()
    }
}

/// ZStack's error code (SysErrors, IdentityErrors) and brief description
/// for a refusal, with its HTTP status.
fn code_of(p: &Problem) -> (StatusCode, &'static str, &'static str) {
    const INVALID: (&str, &str) = ("SYS.1002", "An invalid argument was given");
    const NOT_FOUND: (&str, &str) = ("SYS.1003", "The resource could not be found");
    const OPERATION: (&str, &str) = ("SYS.1001", "The operation failed");
    let (code, description) = match &p.reason {
        Reason::Domain(e) => match e.kind() {
            ErrorKind::BadRequest => INVALID,
            ErrorKind::NotFound => NOT_FOUND,
            ErrorKind::Conflict => OPERATION,
            ErrorKind::OverLimit => ("ID.1003", "The quota is exceeded"),
            ErrorKind::Forbidden => ("ID.1002", "Permission denied"),
        },
        Reason::Vendor(code) => match *code {
            TIMEOUT => (TIMEOUT, "The operation timed out"),
            _ => OPERATION,
        },
        Reason::Unauthorized => ("ID.1001", "The session is invalid"),
        Reason::Forbidden => ("ID.1002", "Permission denied"),
        Reason::MalformedUrl => INVALID,
        Reason::NotFound | Reason::JobNotFound | Reason::VolumeTypeNotFound => NOT_FOUND,
        Reason::MethodNotAllowed => ("SYS.1006", "The operation is not supported"),
        Reason::BodyTooLarge => INVALID,
        Reason::Conflict => OPERATION,
        Reason::Internal => ("SYS.1000", "An internal error happened"),
    };
    (p.status, code, description)
}

/// A synchronous call's deadline passed (SysErrors TIMEOUT).
const TIMEOUT: &str = "SYS.1005";
/// The disk work failed (SysErrors OPERATION_ERROR).
const FAILED: &str = "SYS.1001";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/zstack/v1/volumes/{volume_uuid}/volume-snapshots",
            post(create),
        )
        .route("/zstack/v1/volume-snapshots", get(query))
        .route("/zstack/v1/volume-snapshots/{uuid}", get(show))
}

type Reply = Result<Response, ApiError>;

/// A path or query id: 32 lowercase hex digits (ZStack's spelling) or the
/// canonical dashed UUID. Anything else (uppercase, braces, `urn:uuid:`)
/// names nothing (issue 15 item 4).
fn zs_id(raw: &str) -> Option<Uuid> {
    domain::text::canonical_simple_uuid(raw).or_else(|| domain::text::canonical_uuid(raw))
}

/// ZStack's spelling of an id.
fn hex(id: &str) -> String {
    Uuid::parse_str(id)
        .map(|u| u.simple().to_string())
        .unwrap_or_else(|_| id.to_string())
}

/// `Jun 7, 2017 9:20:17 PM` (003:L192), in UTC.
fn zs_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%b %-d, %Y %-I:%M:%S %p").to_string()
}

fn invalid(field: &'static str, message: impl Into<String>) -> DomainError {
    DomainError::invalid(field, FieldReason::Invalid, message)
}

/// `systemTags`/`userTags`: absent, or a list of non-empty strings.
fn tags(body: &Map<String, Value>, key: &'static str) -> Result<Vec<String>, DomainError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| match t {
                Value::String(s) if !s.is_empty() && !domain::text::has_control(s, false) => {
                    Ok(s.clone())
                }
                _ => Err(invalid(
                    key,
                    format!(
                        "'{key}' must be a list of non-empty strings without control characters."
                    ),
                )),
            })
            .collect(),
        Some(_) => Err(invalid(key, format!("'{key}' must be a list."))),
    }
}

/// The body of a CreateVolumeSnapshot, read into a request for `volume`.
fn create_request(raw: &Bytes, volume: Uuid) -> Result<CreateSnapshotRequest, DomainError> {
    let body = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(invalid(
                "body",
                "The body must be a JSON object: {\"params\": {\"name\": ...}}.",
            ))
        }
    };
    let params = match body.get("params") {
        Some(Value::Object(p)) => p,
        _ => {
            return Err(DomainError::invalid(
                "params",
                FieldReason::Missing,
                "'params' is required and must be an object.",
            ))
        }
    };
    let name = match params.get("name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(DomainError::invalid(
                "name",
                FieldReason::Missing,
                "'params.name' is required.",
            ))
        }
        Some(_) => return Err(invalid("name", "'params.name' must be a string.")),
    };
    let description = crate::input::opt_str(params, "description")?;
    let snapshot_id = match crate::input::opt_str(params, "resourceUuid")? {
        None => None,
        Some(r) => Some(zs_id(&r).ok_or_else(|| {
            invalid(
                "resourceUuid",
                "'params.resourceUuid' must be a UUID (32 hex digits).",
            )
        })?),
    };
    // Tags are kept with the snapshot as its metadata (their format is
    // undocumented [5.4 #6]): visible through every dialect that shows it.
    let mut metadata = std::collections::BTreeMap::new();
    for (key, meta_key) in [
        ("systemTags", "zstack:systemTags"),
        ("userTags", "zstack:userTags"),
    ] {
        let t = tags(&body, key)?;
        if !t.is_empty() {
            metadata.insert(meta_key.to_string(), Value::from(t).to_string());
        }
    }
    Ok(CreateSnapshotRequest {
        volume_id: volume,
        name: Some(name),
        description,
        metadata,
        // ZStack snapshots a volume whether or not a VM uses it.
        force: true,
        full: false,
        snapshot_id,
    })
}

/// ZStack's snapshot status word.
fn status(s: domain::SnapshotStatus) -> &'static str {
    use domain::SnapshotStatus as S;
    match s {
        S::Creating => "Creating",
        S::Available | S::Rollbacking => "Ready",
        S::Deleting => "Deleting",
        S::Error | S::ErrorDeleting => "Error",
    }
}

/// A VolumeSnapshotInventory (003:L85-L171).
fn inventory(state: &AppState, s: &SnapshotInChain, v: Option<&VolumeRow>) -> Value {
    let snap = &s.snapshot;
    let path = Uuid::parse_str(&snap.id)
        .map(|id| (state.snapshot_file)(id))
        .unwrap_or_default();
    let format = Uuid::parse_str(&snap.volume_id)
        .map(|id| (state.connector)(id).format)
        .unwrap_or("qcow2");
    // The primary storage is the directory the backend keeps snapshots in:
    // a stable id named after it.
    let storage_dir = std::path::Path::new(&path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let primary = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(format!("primary-storage:{storage_dir}").as_bytes());
        hex::encode(&d[..16])
    };
    json!({
        "uuid": hex(&snap.id),
        "name": snap.name.clone().unwrap_or_default(),
        "description": snap.description.clone().unwrap_or_default(),
        // Taken by the host's image tool on the volume file (ZStack's
        // hypervisor-side snapshot), not by a storage array.
        "type": "Hypervisor",
        "volumeUuid": hex(&snap.volume_id),
        "treeUuid": hex(&s.chain.tree_id),
        "parentUuid": s.chain.parent_id.as_deref().map(hex),
        "primaryStorageUuid": primary,
        "primaryStorageInstallPath": path,
        // A bootable volume is a root volume; any other a data volume.
        "volumeType": if v.is_some_and(|v| v.bootable) { "Root" } else { "Data" },
        "format": format,
        "latest": s.chain.is_head,
        "size": snap.size.saturating_mul(1 << 30),
        "state": "Enabled",
        "status": status(snap.status),
        "createDate": zs_time(&snap.created_at),
        "lastOpDate": zs_time(snap.updated_at.as_ref().unwrap_or(&snap.created_at)),
        // No backup storage holds copies of snapshots here.
        "backupStorageRefs": [],
    })
}

/// ZS-CreateVolumeSnapshot.
async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(volume_uuid): Path<String>,
    body: Bytes,
) -> Reply {
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    let app_err = |e: AppError| ctx.err(e);
    // An id that is no UUID names no volume: refused (and recorded) as a
    // missing one, in the client's own words.
    let volume = match zs_id(&volume_uuid) {
        Some(id) => lookup::volume(&app, &caller, &meta, &id.to_string())
            .await
            .map_err(app_err)?,
        None => {
            let shown: String = volume_uuid.chars().take(64).collect();
            return Err(app_err(
                app.refuse(
                    &caller,
                    &meta,
                    VolumeAggregate::stream_id(&shown),
                    DomainError::VolumeNotFound(shown.clone()),
                )
                .await,
            ));
        }
    };
    let r = match create_request(&body, volume) {
        Ok(r) => r,
        Err(e) => {
            let stream = VolumeAggregate::stream_id(&volume.to_string());
            return Err(app_err(app.refuse(&caller, &meta, stream, e).await));
        }
    };
    let deadline = tokio::time::Instant::now() + state.sync_deadline;
    let outcome = snapshot_create::create_and_wait(&app, &caller, &meta, r, deadline)
        .await
        .map_err(app_err)?;
    match outcome {
        Synced::Ready(id) => {
            let (s, v) = queries::snapshot_in_chain(&app, &caller, id)
                .await
                .map_err(app_err)?;
            Ok(Json(json!({ "inventory": inventory(&state, &s, v.as_ref()) })).into_response())
        }
        Synced::Failed(id, reason) => Err(ctx.err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Reason::Vendor(FAILED),
            format!(
                "Snapshot {} could not be taken: {}",
                id.simple(),
                reason.unwrap_or_else(|| "the storage backend failed".into())
            ),
        ))),
        Synced::Pending(id) => {
            let mut resp = ctx
                .err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Reason::Vendor(TIMEOUT),
                    format!(
                        "Snapshot {} is still being taken; query \
                         /zstack/v1/volume-snapshots/{} for its end.",
                        id.simple(),
                        id.simple()
                    ),
                ))
                .into_response();
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            Ok(resp)
        }
    }
}

/// `GET /zstack/v1/volume-snapshots/{uuid}`: `{"inventories": [one]}`.
async fn show(State(state): State<AppState>, ctx: Ctx, Path(uuid): Path<String>) -> Reply {
    let app = state.app();
    let Some(id) = zs_id(&uuid) else {
        let shown: String = uuid.chars().take(64).collect();
        return Err(ctx.err(DomainError::SnapshotNotFound(shown)));
    };
    let (s, v) = queries::snapshot_in_chain(&app, &ctx.caller(), id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "inventories": [inventory(&state, &s, v.as_ref())] })).into_response())
}

/// The `q` conditions of a query: `field=value`, repeatable, all of them
/// holding (ZStack's query API). Fields: `uuid`, `volumeUuid`, `name`.
fn conditions(raw_query: Option<&str>) -> Result<Option<ChainFilter>, DomainError> {
    let mut f = ChainFilter::default();
    let Some(q) = raw_query else {
        return Ok(Some(f));
    };
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid("q", "The query string is not UTF-8."))
    };
    let mut uuid_seen = false;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (dec(k)?, dec(v)?);
        match k.as_str() {
            "q" => {}
            // Paging and field selection are ZStack's too; every match is
            // answered here (a project's snapshots are bounded by quota).
            "limit" | "start" | "count" | "replyWithCount" | "sort" | "fields" => continue,
            other => {
                return Err(invalid(
                    "q",
                    format!(
                        "Unknown query parameter '{}'.",
                        other.chars().take(64).collect::<String>()
                    ),
                ))
            }
        }
        let Some((field, value)) = v.split_once('=') else {
            return Err(invalid("q", "A condition is 'field=value'."));
        };
        match field {
            "uuid" => {
                // Two different uuids can never both hold.
                let Some(id) = zs_id(value) else {
                    return Ok(None);
                };
                if uuid_seen && !f.ids.contains(&id) {
                    return Ok(None);
                }
                uuid_seen = true;
                f.ids = vec![id];
            }
            "volumeUuid" => {
                let Some(id) = zs_id(value) else {
                    return Ok(None);
                };
                if f.volume_id.is_some_and(|v| v != id) {
                    return Ok(None);
                }
                f.volume_id = Some(id);
            }
            "name" => {
                if f.name.as_deref().is_some_and(|n| n != value) {
                    return Ok(None);
                }
                f.name = Some(value.to_string());
            }
            other => {
                return Err(invalid(
                    "q",
                    format!(
                        "Cannot query on '{}': the conditions are on uuid, volumeUuid or name.",
                        other.chars().take(64).collect::<String>()
                    ),
                ))
            }
        }
    }
    Ok(Some(f))
}

/// `GET /zstack/v1/volume-snapshots?q=…`: `{"inventories": [...]}`.
async fn query(State(state): State<AppState>, ctx: Ctx, uri: axum::http::Uri) -> Reply {
    let app = state.app();
    let Some(f) = conditions(uri.query()).map_err(|e| ctx.err(e))? else {
        return Ok(Json(json!({ "inventories": [] })).into_response());
    };
    let rows = queries::snapshots_in_chains(&app, &ctx.caller(), f)
        .await
        .map_err(|e| ctx.err(e))?;
    let inventories: Vec<Value> = rows
        .iter()
        .map(|(s, v)| inventory(&state, s, v.as_ref()))
        .collect();
    Ok(Json(json!({ "inventories": inventories })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_take_both_spellings() {
        let u = Uuid::new_v4();
        assert_eq!(zs_id(&u.simple().to_string()), Some(u));
        assert_eq!(zs_id(&u.to_string()), Some(u));
        assert_eq!(zs_id("../../etc/passwd"), None);
        assert_eq!(zs_id(&format!("{{{u}}}")), None);
        assert_eq!(zs_id("123"), None);
        assert_eq!(zs_id(&u.to_string().to_uppercase()), None);
        assert_eq!(zs_id(&u.simple().to_string().to_uppercase()), None);
    }

    #[test]
    fn times_as_zstack_prints_them() {
        let t = chrono::DateTime::parse_from_rfc3339("2017-06-07T21:20:17.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(zs_time(&t), "Jun 7, 2017 9:20:17 PM");
        let t = chrono::DateTime::parse_from_rfc3339("2017-12-17T00:05:09Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(zs_time(&t), "Dec 17, 2017 12:05:09 AM");
    }

    #[test]
    fn conditions_parse() {
        let u = Uuid::new_v4();
        let f = conditions(Some(&format!("q=uuid%3D{}&q=name=a%20b", u.simple())))
            .unwrap()
            .unwrap();
        assert_eq!(f.ids, vec![u]);
        assert_eq!(f.name.as_deref(), Some("a b"));
        assert!(conditions(Some("q=size=1")).is_err());
        assert!(conditions(Some("q=uuid")).is_err());
        assert!(conditions(Some("x=1")).is_err());
        assert!(conditions(Some("q=uuid=nope")).unwrap().is_none());
    }
}
