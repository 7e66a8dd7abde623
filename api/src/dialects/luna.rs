//! The small provider's API (seed 002, rows LUNA-*): `/api/volume/{action}`
//! with twelve actions, GET or POST, parameters from the query string, a
//! form body or a JSON body (DECISIONS.md, The small provider). Answers
//! `{"success": "yes", …}` with every number as a JSON string [5.3 #5];
//! refusals `{"success": "no", "error": "…"}` with a fitting HTTP status.
//!
//! Volumes are named by a numeric `id` (the log position of their creation
//! event, stable across restarts and replays) or by their UUID, shown as
//! `identification`; a volume made here is the same object as
//! `/v3/{project}/volumes/{uuid}`. Translation only: each action parses
//! its parameters, resolves the client's ids (`app::lookup`), calls one use
//! case and renders; the rules (extend only unattached, sizes, zones) are
//! the domain's.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::create_rules::CreatePolicy;
use domain::volume::{AttachMode, ExtendPolicy};
use domain::{DomainError, ErrorKind, FieldReason, SnapshotCommand, VolumeCommand};
use projections::snapshots::SnapshotRow;
use projections::VolumeRow;
use serde_json::{json, Map, Value};

use super::{Dialect, DialectRef};
use crate::app::snapshot_create::{self, CreateSnapshotRequest};
use crate::app::snapshot_export::{self, ExportSnapshotRequest};
use crate::app::volume_actions::{self, AttachRequest, DevicePolicy};
use crate::app::volume_create::{self, CreateVolumeRequest, SourceRef};
use crate::app::{self, lookup, queries, snapshot_actions, volume_delete, volume_extend, AppError};
use crate::{input, ApiError, AppState, Ctx, Problem, Reason};

#[derive(Debug)]
pub struct Luna;

pub static LUNA: Luna = Luna;

impl Dialect for Luna {
    fn name(&self) -> &'static str {
        "luna"
    }

    /// `api_id` + `api_key` as parameters (query, form or JSON body: the
    /// body's are found by `identity::params_credential` before the
    /// handler runs), else `X-Auth-Token` (DECISIONS.md, small provider).
    fn credential(&self, parts: &Parts) -> Option<super::Credential> {
        parts
            .extensions
            .get::<super::Credential>()
            .cloned()
            .or_else(|| super::openstack_credential(parts))
    }

    fn render_error(&self, p: &Problem) -> Response {
        let body = json!({ "success": "no", "error": p.message });
        (status(p), Json(body)).into_response()
    }
}

/// The seed documents no statuses [5.3 #7]: the HTTP meaning of each
/// refusal. A request the volume's state forbids (attach an attached
/// volume, extend an attached one) is a 409 conflict here.
fn status(p: &Problem) -> StatusCode {
    use DomainError::*;
    match &p.reason {
        Reason::Domain(e) => match e {
            AttachWrongStatus(_)
            | DetachWrongStatus(_)
            | ExtendAttached(_)
            | ExtendWrongStatus(_)
            | ExtendMultiattachInUse
            | ExtendErrorExtending
            | DeleteWrongStatus(_)
            | VolumeHasSnapshots(_)
            | SnapshotDeleteWrongStatus(_)
            | SnapshotNotAvailable(_)
            | SnapshotVolumeWrongStatus(_)
            | UploadWrongStatus(_) => StatusCode::CONFLICT,
            e => match e.kind() {
                ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::OverLimit => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            },
        },
        _ => p.status,
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/volume/{action}", get(action).post(action))
}

type Reply = Result<Response, ApiError>;

/// The request's parameters: the query string, then the body (form or
/// JSON, by `Content-Type`; sniffed when there is none), the body winning
/// on a key both carry. Form and query values are strings; a JSON body
/// keeps its types, so `api::input` checks them.
pub struct Params(pub Map<String, Value>);

fn malformed(what: &str) -> Problem {
    DomainError::invalid(
        "body",
        FieldReason::Invalid,
        format!("Malformed request: {what}."),
    )
    .into()
}

/// `application/x-www-form-urlencoded`, strictly: bytes and escapes must
/// decode to UTF-8 and every pair must name a key.
fn decode_form(raw: &[u8], what: &str, out: &mut Map<String, Value>) -> Result<(), Problem> {
    let text = std::str::from_utf8(raw).map_err(|_| malformed(&format!("{what} is not UTF-8")))?;
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| malformed(&format!("{what} has an escape that is not UTF-8")))
    };
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = dec(k)?;
        if k.is_empty() {
            return Err(malformed(&format!("{what} has a value without a name")));
        }
        out.insert(k, Value::String(dec(v)?));
    }
    Ok(())
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let dialect = req
            .extensions()
            .get::<DialectRef>()
            .copied()
            .unwrap_or(DialectRef(&LUNA));
        let fail = |problem: Problem| ApiError { dialect, problem };
        let mut out = Map::new();
        if let Some(q) = req.uri().query() {
            decode_form(q.as_bytes(), "the query string", &mut out).map_err(fail)?;
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let body = Bytes::from_request(req, state).await.map_err(|r| {
            fail(if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Reason::BodyTooLarge,
                    "Request body too large.",
                )
            } else {
                malformed("the body could not be read")
            })
        })?;
        let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        // No body is no parameters, whatever the Content-Type says (HTTP
        // libraries send a default one on GET too).
        if body.is_empty() {
            return Ok(Params(out));
        }
        let json = match content_type.as_deref() {
            Some("application/json") => true,
            Some("application/x-www-form-urlencoded") => false,
            None | Some("") if first.is_none() => return Ok(Params(out)),
            None | Some("") => matches!(first, Some(b'{' | b'[')),
            Some(other) if first.is_some() => {
                return Err(fail(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    Reason::Internal,
                    format!(
                        "Unsupported Content-Type '{other}': send application/json or \
                         application/x-www-form-urlencoded."
                    ),
                )))
            }
            Some(_) => return Ok(Params(out)),
        };
        if json {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => out.extend(m),
                Ok(_) => return Err(fail(malformed("the JSON body must be an object"))),
                Err(_) => return Err(fail(malformed("the body is not valid JSON"))),
            }
        } else {
            decode_form(&body, "the form body", &mut out).map_err(fail)?;
        }
        Ok(Params(out))
    }
}

fn missing(key: &'static str) -> DomainError {
    DomainError::invalid(key, FieldReason::Missing, format!("'{key}' is required."))
}

/// A required string.
fn text(p: &Map<String, Value>, key: &'static str) -> Result<String, DomainError> {
    input::opt_str(p, key)?.ok_or_else(|| missing(key))
}

/// An id: a string, or a JSON integer (the document prints numbers as
/// strings, clients send either).
fn id(p: &Map<String, Value>, key: &'static str) -> Result<String, DomainError> {
    match p.get(key) {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        _ => text(p, key),
    }
}

/// A size in whole GB: a JSON integer, or a string of digits. Decimals are
/// refused, not truncated (the provider documents no truncation); the range
/// is the domain's (1–32768).
fn size(p: &Map<String, Value>, key: &'static str) -> Result<i64, DomainError> {
    let not_whole = || {
        DomainError::invalid(
            key,
            FieldReason::WrongType,
            format!("'{key}' must be a whole number of GB."),
        )
    };
    match p.get(key) {
        None | Some(Value::Null) => Err(missing(key)),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Ok(i),
            (None, Some(_)) => Ok(i64::MAX),
            _ => Err(not_whole()),
        },
        // A form parameter is a string: plain decimal digits only (no
        // sign, padding or exponent; issue 15 item 4).
        Some(Value::String(s)) => input::digits(s, key).map_err(|_| not_whole()),
        Some(_) => Err(not_whole()),
    }
}

/// `region` names a zone of the catalog; the domain refuses others.
fn region(p: &Map<String, Value>, key: &'static str) -> Result<Option<String>, DomainError> {
    input::opt_str(p, key)
}

fn yes(mut extra: Map<String, Value>) -> Response {
    extra.insert("success".into(), json!("yes"));
    Json(Value::Object(extra)).into_response()
}

fn done() -> Reply {
    Ok(yes(Map::new()))
}

/// `2018-12-17T01:00:15Z`, as the seed prints times (002:L32).
fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The list's word for a volume [5.3 #2]: `active` once it exists.
fn list_status(status: &str) -> &str {
    match status {
        "creating" | "deleting" => status,
        s if s.starts_with("error") => "error",
        _ => "active",
    }
}

/// LUNA-volume-list: one volume (also nested in snapshot-list).
fn volume_item(v: &VolumeRow) -> Value {
    json!({
        "id": v.seq.to_string(),
        "identification": v.id,
        "name": v.name.clone().unwrap_or_default(),
        "region": v.availability_zone,
        "size": v.size.to_string(),
        "status": list_status(v.status.as_str()),
        "time_created": time(&v.created_at),
        "user_id": v.user_id,
    })
}

/// LUNA-volume-info: `attached` is the server id, or "" when detached.
fn volume_info(v: &VolumeRow) -> Value {
    let attached = v
        .attachments
        .first()
        .map(|a| a.attachment.server_id.as_str())
        .unwrap_or("");
    json!({
        "attached": attached,
        "created": time(&v.created_at),
        "id": v.seq.to_string(),
        "identification": v.id,
        "name": v.name.clone().unwrap_or_default(),
        "size": v.size.to_string(),
        // Info's word [5.3 #2]: `available` or `in-use` (any other state
        // as the volume is in).
        "status": v.status.as_str(),
    })
}

/// LUNA-volume-snapshot-list: one snapshot with its volume. `user_id` is
/// the account that owns the snapshot's volume (the view keeps no
/// per-snapshot user).
fn snapshot_item(s: &SnapshotRow, v: Option<&VolumeRow>) -> Value {
    json!({
        "id": s.id,
        "name": s.name.clone().unwrap_or_default(),
        "region": s.availability_zone,
        "size": s.size.to_string(),
        "status": s.status.as_str(),
        "user_id": v.map(|v| v.user_id.as_str()).unwrap_or(""),
        "volume": v.map(volume_item).unwrap_or(Value::Null),
    })
}

async fn action(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(action): Path<String>,
    Params(p): Params,
) -> Reply {
    let err = |e: DomainError| ctx.err(e);
    let app_err = |e: AppError| ctx.err(e);
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    match action.as_str() {
        // LUNA-volume-create: `volume_id` is the new volume's number.
        "create" => {
            let zone = region(&p, "region")
                .map_err(err)?
                .ok_or_else(|| err(missing("region")))?;
            let label = text(&p, "label").map_err(err)?;
            let size = size(&p, "size").map_err(err)?;
            let image = input::opt_str(&p, "image").map_err(err)?;
            let snapshot = input::opt_str(&p, "snapshot_id").map_err(err)?;
            domain::volume::check_single_source(&[image.is_some(), snapshot.is_some()])
                .map_err(err)?;
            let source = match (image, snapshot) {
                (Some(i), _) => Some(SourceRef::Image(input::uuid(&i).ok_or_else(|| {
                    err(DomainError::invalid(
                        "image",
                        FieldReason::NotFound,
                        "invalid image: no such image.",
                    ))
                })?)),
                (_, Some(s)) => Some(SourceRef::Snapshot(input::uuid(&s).ok_or_else(|| {
                    err(DomainError::invalid(
                        "snapshot_id",
                        FieldReason::NotFound,
                        "invalid snapshot_id: no such snapshot.",
                    ))
                })?)),
                _ => None,
            };
            let r = CreateVolumeRequest {
                name: Some(label),
                description: None,
                size: Some(size),
                availability_zone: Some(zone),
                volume_type: None,
                metadata: Default::default(),
                multiattach: false,
                source,
                backup_id: None,
                policy: CreatePolicy::OPEN,
            };
            let id = volume_create::create(&app, &caller, &meta, r, app::new_job_id())
                .await
                .map_err(app_err)?;
            let v = lookup::volume_row(&app, &caller, &id.to_string())
                .await
                .map_err(app_err)?;
            let mut out = Map::new();
            out.insert("volume_id".into(), json!(v.seq.to_string()));
            Ok(yes(out))
        }
        // LUNA-volume-list: `region` filters (optional [5.3 #1]).
        "list" => {
            let zone = region(&p, "region").map_err(err)?;
            let rows = queries::volumes_in_zone(&app, &caller, zone)
                .await
                .map_err(app_err)?;
            let mut out = Map::new();
            out.insert(
                "volumes".into(),
                Value::Array(rows.iter().map(volume_item).collect()),
            );
            Ok(yes(out))
        }
        // LUNA-volume-info.
        "info" => {
            let raw = id(&p, "volume_id").map_err(err)?;
            let v = lookup::volume_row(&app, &caller, &raw)
                .await
                .map_err(app_err)?;
            let mut out = Map::new();
            out.insert("volume".into(), volume_info(&v));
            Ok(yes(out))
        }
        // LUNA-volume-attach: `target=auto` takes the next free /dev/vdX
        // [5.3 #3]; a named device is taken as given.
        "attach" => {
            let raw = id(&p, "volume_id").map_err(err)?;
            let vm = text(&p, "vm_id").map_err(err)?;
            let server_id = input::uuid(&vm)
                .ok_or_else(|| {
                    err(DomainError::invalid(
                        "vm_id",
                        FieldReason::Invalid,
                        "'vm_id' must be the VM's UUID.",
                    ))
                })?
                .to_string();
            let target = text(&p, "target").map_err(err)?;
            let device = if target == "auto" {
                DevicePolicy::NextFree
            } else if is_device(&target) {
                DevicePolicy::Given(target)
            } else {
                return Err(err(DomainError::invalid(
                    "target",
                    FieldReason::Invalid,
                    "'target' must be 'auto' or a device such as '/dev/vdb' or '/dev/hdb'.",
                )));
            };
            let vol = lookup::volume(&app, &caller, &meta, &raw)
                .await
                .map_err(app_err)?;
            let r = AttachRequest {
                server_id,
                host_name: None,
                device,
                mode: AttachMode::Rw,
            };
            volume_actions::attach(&app, &caller, &meta, vol, r)
                .await
                .map_err(app_err)?;
            done()
        }
        // LUNA-volume-detach.
        "detach" => {
            let raw = id(&p, "volume_id").map_err(err)?;
            let vol = lookup::volume(&app, &caller, &meta, &raw)
                .await
                .map_err(app_err)?;
            let cmd = VolumeCommand::Detach {
                attachment_id: None,
            };
            volume_actions::command(&app, &caller, &meta, vol, cmd)
                .await
                .map_err(app_err)?;
            done()
        }
        // LUNA-volume-extend: "an unattached volume" [5.3 #8].
        "extend" => {
            let raw = id(&p, "volume_id").map_err(err)?;
            let new_size = size(&p, "size").map_err(err)?;
            let vol = lookup::volume(&app, &caller, &meta, &raw)
                .await
                .map_err(app_err)?;
            volume_extend::extend(
                &app,
                &caller,
                &meta,
                vol,
                new_size,
                app::new_job_id(),
                ExtendPolicy::UNATTACHED_ONLY,
            )
            .await
            .map_err(app_err)?;
            done()
        }
        // LUNA-volume-rename: the name is stored verbatim (the domain
        // bounds its length).
        "rename" => {
            let raw = id(&p, "volume_id").map_err(err)?;
            let name = text(&p, "name").map_err(err)?;
            let vol = lookup::volume(&app, &caller, &meta, &raw)
                .await
                .map_err(app_err)?;
            let cmd = VolumeCommand::Update {
                name: Some(name),
                description: None,
                metadata: None,
            };
            volume_actions::command(&app, &caller, &meta, vol, cmd)
                .await
                .map_err(app_err)?;
            done()
        }
        // LUNA-volume-delete: a volume with snapshots is refused (no
        // cascade in this dialect).
        "delete" => {
            let raw = id(&p, "volume_id").map_err(err)?;
            let vol = lookup::volume(&app, &caller, &meta, &raw)
                .await
                .map_err(app_err)?;
            volume_delete::delete(&app, &caller, &meta, vol, false, app::new_job_id())
                .await
                .map_err(app_err)?;
            done()
        }
        // LUNA-volume-snapshot-create: no `region` [5.3 #4]. The seed
        // documents no `force`: an attached volume is snapshotted too.
        "snapshot-create" => {
            let raw = id(&p, "volume_id").map_err(err)?;
            let label = text(&p, "label").map_err(err)?;
            let vol = lookup::volume(&app, &caller, &meta, &raw)
                .await
                .map_err(app_err)?;
            let r = CreateSnapshotRequest {
                volume_id: vol,
                name: Some(label),
                description: None,
                metadata: Default::default(),
                force: true,
                full: false,
                snapshot_id: None,
            };
            let sid = snapshot_create::create(&app, &caller, &meta, r)
                .await
                .map_err(app_err)?;
            let mut out = Map::new();
            out.insert("snapshot_id".into(), json!(sid.to_string()));
            Ok(yes(out))
        }
        // LUNA-volume-snapshot-list: `region` is required [5.3 #4].
        "snapshot-list" => {
            let zone = region(&p, "region")
                .map_err(err)?
                .ok_or_else(|| err(missing("region")))?;
            let rows = queries::snapshots_in_zone(&app, &caller, zone)
                .await
                .map_err(app_err)?;
            let mut out = Map::new();
            out.insert(
                "snapshots".into(),
                Value::Array(
                    rows.iter()
                        .map(|(s, v)| snapshot_item(s, v.as_ref()))
                        .collect(),
                ),
            );
            Ok(yes(out))
        }
        // LUNA-volume-snapshot-replicate: an image of the snapshot's bytes.
        // `image_id` is the image's UUID, not a number as the seed prints
        // (002:L82): the image catalog names images by UUID
        // (`/image/v2/images/{id}`, `imageRef` of a create) and every
        // object has one id across dialects, so the id a client gets here
        // is the one every other route takes.
        "snapshot-replicate" => {
            let zone = region(&p, "region")
                .map_err(err)?
                .ok_or_else(|| err(missing("region")))?;
            let raw = id(&p, "snapshot_id").map_err(err)?;
            let image_name = text(&p, "image_name").map_err(err)?;
            let dst = region(&p, "dst_region")
                .map_err(err)?
                .ok_or_else(|| err(missing("dst_region")))?;
            let sid = lookup::snapshot(&app, &caller, &meta, &raw, Some(&zone))
                .await
                .map_err(app_err)?;
            let r = ExportSnapshotRequest {
                snapshot_id: sid,
                source_zone: Some(zone),
                destination_zone: Some(dst),
                image_name,
                // qcow2: the backend's own format, and it carries only the
                // allocated data (the seed names no format).
                disk_format: Some("qcow2".into()),
            };
            let image = snapshot_export::export(&app, &caller, &meta, r, app::new_job_id())
                .await
                .map_err(app_err)?;
            let mut out = Map::new();
            out.insert("image_id".into(), json!(image.to_string()));
            Ok(yes(out))
        }
        // LUNA-volume-snapshot-delete.
        "snapshot-delete" => {
            let zone = region(&p, "region")
                .map_err(err)?
                .ok_or_else(|| err(missing("region")))?;
            let raw = id(&p, "snapshot_id").map_err(err)?;
            let sid = lookup::snapshot(&app, &caller, &meta, &raw, Some(&zone))
                .await
                .map_err(app_err)?;
            snapshot_actions::command(&app, &caller, &meta, sid, SnapshotCommand::Delete)
                .await
                .map_err(app_err)?;
            done()
        }
        other => Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            format!(
                "Unknown action 'volume/{}'.",
                other.chars().take(64).collect::<String>()
            ),
        ))),
    }
}

/// `/dev/vdb`, `/dev/hda`, `/dev/sdc`, `/dev/xvdd`: a virtio, ide, scsi or
/// xen disk name.
fn is_device(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("/dev/") else {
        return false;
    };
    ["vd", "hd", "sd", "xvd"].iter().any(|p| {
        rest.strip_prefix(p).is_some_and(|l| {
            !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_lowercase())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_strictly() {
        let mut m = Map::new();
        decode_form(b"a=1&b=x+y%21&&c", "q", &mut m).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x y!");
        assert_eq!(m["c"], "");
        assert!(decode_form(b"a=%FF", "q", &mut Map::new()).is_err());
        assert!(decode_form(b"=1", "q", &mut Map::new()).is_err());
        assert!(decode_form(&[b'a', b'=', 0xff], "q", &mut Map::new()).is_err());
    }

    #[test]
    fn sizes_are_whole_numbers() {
        let p = |v: Value| {
            let mut m = Map::new();
            m.insert("size".into(), v);
            size(&m, "size")
        };
        assert_eq!(p(json!("150")).unwrap(), 150);
        assert_eq!(p(json!(150)).unwrap(), 150);
        assert_eq!(p(json!(-3)).unwrap(), -3);
        assert_eq!(p(json!("99999999999999999999")).unwrap(), i64::MAX);
        for bad in [
            json!("-3"),
            json!(" 7 "),
            json!("1e3"),
            json!("+1"),
            json!("1.5"),
            json!(1.5),
            json!("ten"),
            json!(""),
            json!(true),
            json!([1]),
        ] {
            assert!(p(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_and_devices() {
        let t = chrono::DateTime::parse_from_rfc3339("2018-12-17T01:00:15.123456Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(time(&t), "2018-12-17T01:00:15Z");
        assert!(is_device("/dev/vdb") && is_device("/dev/hda") && is_device("/dev/xvdaa"));
        assert!(!is_device("/dev/../etc") && !is_device("vdb") && !is_device("/dev/vd"));
    }
}
