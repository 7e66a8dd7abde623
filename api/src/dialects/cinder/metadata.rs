//! Metadata routes, one implementation for volumes (CINDER-7.1.10 … 7.1.15)
//! and snapshots (CINDER-7.3.7 … 7.3.12): POST merges, PUT replaces all,
//! `/{key}` reads, sets or deletes one key.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::metadata::{Metadata, MetadataEdit};
use domain::{DomainError, FieldReason, SnapshotCommand};
use serde_json::{json, Value};

use crate::app::{snapshot_actions, volume_actions};
use crate::parse::path_uuid;
use crate::{input, ApiError, AppState, Ctx};

type Reply = Result<Response, ApiError>;

#[derive(Clone, Copy)]
pub enum Target {
    Volume,
    Snapshot,
}

impl Target {
    fn collection(self) -> &'static str {
        match self {
            Target::Volume => "volumes",
            Target::Snapshot => "snapshots",
        }
    }
    fn param(self) -> &'static str {
        match self {
            Target::Volume => "volume_id",
            Target::Snapshot => "snapshot_id",
        }
    }
}

pub fn routes(prefix: &str, t: Target) -> Router<AppState> {
    let base = format!("{prefix}/{}/{{{}}}/metadata", t.collection(), t.param());
    Router::new()
        .route(
            &base,
            get(
                move |s: State<AppState>, c: Ctx, p: Path<HashMap<String, String>>| {
                    read_all(s, c, p, t)
                },
            )
            .post(
                move |s: State<AppState>, c: Ctx, p: Path<HashMap<String, String>>, b: Bytes| {
                    write_all(s, c, p, b, t, false)
                },
            )
            .put(
                move |s: State<AppState>,
                      c: Ctx,
                      p: Path<HashMap<String, String>>,
                      h: HeaderMap,
                      b: Bytes| async move {
                    if !if_match(&s, &c, &p, &h, t).await? {
                        return Ok(StatusCode::PRECONDITION_FAILED.into_response());
                    }
                    write_all(s, c, p, b, t, true).await
                },
            ),
        )
        .route(
            &format!("{base}/{{key}}"),
            get(
                move |s: State<AppState>, c: Ctx, p: Path<HashMap<String, String>>| {
                    read_one(s, c, p, t)
                },
            )
            .put(
                move |s: State<AppState>,
                      c: Ctx,
                      p: Path<HashMap<String, String>>,
                      h: HeaderMap,
                      b: Bytes| async move {
                    if !if_match(&s, &c, &p, &h, t).await? {
                        return Ok(StatusCode::PRECONDITION_FAILED.into_response());
                    }
                    write_one(s, c, p, b, t).await
                },
            )
            .delete(
                move |s: State<AppState>, c: Ctx, p: Path<HashMap<String, String>>| {
                    delete_one(s, c, p, t)
                },
            ),
        )
}

async fn current(
    state: &AppState,
    ctx: &Ctx,
    p: &HashMap<String, String>,
    t: Target,
) -> Result<Metadata, ApiError> {
    let raw = p.get(t.param()).map(String::as_str).unwrap_or_default();
    Ok(match t {
        Target::Volume => super::volumes::visible(state, ctx, raw).await?.metadata,
        Target::Snapshot => {
            super::snapshots::visible_snapshot(state, ctx, raw)
                .await?
                .metadata
        }
    })
}

async fn edit(
    state: &AppState,
    ctx: &Ctx,
    p: &HashMap<String, String>,
    t: Target,
    e: MetadataEdit,
) -> Result<Metadata, ApiError> {
    let raw = p.get(t.param()).cloned().unwrap_or_default();
    match t {
        Target::Volume => {
            let id = path_uuid(ctx, &raw)?;
            // The metadata as the edit left it (no read after the write).
            return volume_actions::edit_metadata(&state.app(), &ctx.caller(), &ctx.meta(), id, e)
                .await
                .map_err(|e| ctx.err(e));
        }
        Target::Snapshot => {
            let id = input::uuid(&raw)
                .ok_or_else(|| ctx.err(DomainError::SnapshotNotFound(raw.clone())))?;
            let cmd = SnapshotCommand::EditMetadata(e);
            snapshot_actions::command(&state.app(), &ctx.caller(), &ctx.meta(), id, cmd)
                .await
                .map_err(|e| ctx.err(e))?;
        }
    }
    current(state, ctx, p, t).await
}

/// CINDER-7.1.11 / 7.3.8. From 3.15 (a17) a volume's metadata carries
/// an `ETag`.
async fn read_all(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    t: Target,
) -> Reply {
    let md = current(&state, &ctx, &p, t).await?;
    let mut resp = Json(json!({ "metadata": md })).into_response();
    if etags(&ctx, t) {
        if let Ok(v) = HeaderValue::from_str(&etag(&md)) {
            resp.headers_mut().insert(ETAG, v);
        }
    }
    Ok(resp)
}

/// Whether this request has Cinder's metadata ETags (3.15, volumes).
fn etags(ctx: &Ctx, t: Target) -> bool {
    matches!(t, Target::Volume) && ctx.is_v3() && ctx.at_least(crate::microversion::ETAGS)
}

/// Cinder's ETag is the md5 of `json.dumps({"metadata": …})`; this one
/// hashes the same text (Python's separators and `\u` escapes, keys in
/// order) with SHA-256, the digest this tree has. Clients treat it as
/// opaque (RFC 9110): they send back what they read.
fn etag(md: &Metadata) -> String {
    use sha2::{Digest, Sha256};
    fn py(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    let body: Vec<String> = md
        .iter()
        .map(|(k, v)| format!("{}: {}", py(k), py(v)))
        .collect();
    let text = format!("{{\"metadata\": {{{}}}}}", body.join(", "));
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// 3.15: whether a write may go on; one with `If-Match` naming none of
/// the metadata's current ETag is answered 412 before anything else
/// (Cinder's is bodiless; the dialect layer gives every refusal its
/// fault body).
async fn if_match(
    state: &AppState,
    ctx: &Ctx,
    p: &HashMap<String, String>,
    h: &HeaderMap,
    t: Target,
) -> Result<bool, ApiError> {
    let Some(want) = h.get(IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(true);
    };
    if !etags(ctx, t) {
        return Ok(true);
    }
    let now = etag(&current(state, ctx, p, t).await?);
    let matches = want
        .split(',')
        .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|e| e == "*" || e == now);
    Ok(matches)
}

/// CINDER-7.1.10 / 7.3.7 (POST, merge) and 7.1.12 / 7.3.10 (PUT, replace).
async fn write_all(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
    t: Target,
    replace: bool,
) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let md = match obj.get("metadata") {
        Some(Value::Object(_)) => input::metadata(obj.get("metadata")).map_err(|e| ctx.err(e))?,
        _ => {
            return Err(ctx.err(DomainError::invalid(
                "metadata",
                FieldReason::Missing,
                "Malformed request body: 'metadata' object is required.",
            )))
        }
    };
    let e = if replace {
        MetadataEdit::Replace(md)
    } else {
        MetadataEdit::Merge(md)
    };
    let now = edit(&state, &ctx, &p, t, e).await?;
    Ok(Json(json!({"metadata": now})).into_response())
}

/// CINDER-7.1.13 / 7.3.11.
async fn read_one(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    t: Target,
) -> Reply {
    let key = p.get("key").cloned().unwrap_or_default();
    let md = current(&state, &ctx, &p, t).await?;
    match md.get(&key) {
        Some(v) => Ok(Json(json!({"meta": {key: v}})).into_response()),
        None => Err(ctx.err(DomainError::MetadataKeyNotFound(key))),
    }
}

/// CINDER-7.1.14 / 7.3.9: the body's `meta` holds exactly the path's key.
async fn write_one(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
    t: Target,
) -> Reply {
    let key = p.get("key").cloned().unwrap_or_default();
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let meta = input::member(&obj, "meta").map_err(|e| ctx.err(e))?;
    let md = input::metadata(Some(&Value::Object(meta.clone()))).map_err(|e| ctx.err(e))?;
    let value = match (md.len(), md.get(&key)) {
        (1, Some(v)) => v.clone(),
        _ => {
            return Err(ctx.err(DomainError::invalid(
                "meta",
                FieldReason::Invalid,
                "Request body and URI mismatch: 'meta' must hold exactly the key in the URL.",
            )))
        }
    };
    edit(
        &state,
        &ctx,
        &p,
        t,
        MetadataEdit::SetItem {
            key: key.clone(),
            value: value.clone(),
        },
    )
    .await?;
    Ok(Json(json!({"meta": {key: value}})).into_response())
}

/// CINDER-7.1.15 / 7.3.12: 200 with no body.
async fn delete_one(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    t: Target,
) -> Reply {
    let key = p.get("key").cloned().unwrap_or_default();
    edit(&state, &ctx, &p, t, MetadataEdit::DeleteItem { key }).await?;
    Ok(StatusCode::OK.into_response())
}
