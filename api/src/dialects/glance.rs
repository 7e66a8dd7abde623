//! A minimal Glance v2-compatible image catalog under `/image` (issue 4):
//! version document, list with filters and pagination, show, create
//! (register), delete, download and upload of the bytes. Images belong to
//! a project; `public` ones are visible to every project.

use std::collections::HashMap;
use std::io::Read;
use std::sync::mpsc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::image::{ImageCommand, ImageStatus};
use domain::{DomainError, FieldReason};
use futures_util::StreamExt;
use projections::images::{ImageQuery, ImageRow};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::Dialect;
use crate::app::image_catalog::{self, RegisterImageRequest};
use crate::app::queries;
use crate::parse::{check_marker, query};
use crate::{input, ApiError, AppState, Ctx, Problem};

type Reply = Result<Response, ApiError>;

/// The Glance-style image catalog under `/image`: OpenStack fault bodies as
/// on the Cinder routes, but its own name in the log.
#[derive(Debug)]
pub struct Glance;

pub static GLANCE: Glance = Glance;

impl Dialect for Glance {
    fn name(&self) -> &'static str {
        "glance"
    }

    fn render_error(&self, p: &Problem) -> Response {
        super::cinder::CINDER.render_error(p)
    }
}

/// Where image bytes live: implemented by the executor's image store and
/// handed to the API, which never decides a file layout itself.
pub trait ImageFiles: Send + Sync {
    /// Stores uploaded bytes as image `id`, checking them against the
    /// declared format; returns (size, virtual size, sha256 hex).
    fn import(
        &self,
        id: Uuid,
        declared: &str,
        data: &mut dyn Read,
    ) -> Result<(u64, u64, String), String>;
    /// The stored file of an active image.
    fn path(&self, id: Uuid) -> std::path::PathBuf;
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/image", get(versions))
        .route("/image/", get(versions))
        .route("/image/v2/images", get(list).post(create))
        .route(
            "/image/v2/images/{image_id}",
            get(show).delete(delete).patch(update),
        )
        .route(
            "/image/v2/images/{image_id}/file",
            get(download).put(upload),
        )
}

async fn versions(headers: HeaderMap) -> Response {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8776");
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"versions": [{
            "id": "v2.0",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": format!("http://{host}/image/v2/")}],
        }]})),
    )
        .into_response()
}

/// Glance v2 image body, plus `progress` and the source of an export.
pub fn render(i: &ImageRow, progress: Option<u8>) -> Value {
    let progress = match i.status.as_str() {
        "active" => 100,
        "saving" => progress.unwrap_or(0),
        _ => 0,
    };
    json!({
        "id": i.id,
        "name": i.name,
        "status": i.status.as_str(),
        "visibility": i.visibility.as_str(),
        "owner": i.project_id,
        "disk_format": i.disk_format,
        "container_format": i.container_format,
        "size": i.size,
        "virtual_size": i.virtual_size,
        "min_disk": i.min_disk,
        "min_ram": 0,
        "protected": i.protected,
        "tags": [],
        // Glance's `checksum` is MD5; this service hashes with SHA-256 only,
        // so it fills the multihash fields, which clients verify instead.
        "checksum": null,
        "os_hash_algo": i.checksum_sha256.as_ref().map(|_| "sha256"),
        "os_hash_value": i.checksum_sha256,
        "os_type": i.os_type,
        "source_volume_id": i.source_volume_id,
        "source_snapshot_id": i.source_snapshot_id,
        "fail_reason": i.fail_reason,
        "progress": progress,
        "created_at": crate::render::glance_time(&i.created_at),
        "updated_at": crate::render::glance_time(&i.updated_at),
        "self": format!("/image/v2/images/{}", i.id),
        "file": format!("/image/v2/images/{}/file", i.id),
        "schema": "/image/v2/schemas/image",
    })
}

fn not_found(ctx: &Ctx, raw: &str) -> ApiError {
    ctx.err(DomainError::ImageNotFound(raw.to_string()))
}

/// An image the caller may read: its own, or a public one.
pub async fn visible_image(state: &AppState, ctx: &Ctx, raw: &str) -> Result<ImageRow, ApiError> {
    queries::image(&state.app(), &ctx.caller(), raw)
        .await
        .map_err(|e| ctx.err(e))
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let q = query(&ctx, q)?;
    check_marker(&q).map_err(|e| ctx.err(e))?;
    let iq = ImageQuery {
        project_id: if ctx.is_admin {
            None
        } else {
            Some(ctx.project_id.clone())
        },
        name: q.get("name").cloned(),
        status: q.get("status").cloned(),
        visibility: q.get("visibility").cloned(),
        disk_format: q.get("disk_format").cloned(),
        marker: q.get("marker").cloned(),
        limit: input::limit(q.get("limit").map(String::as_str)).map_err(|e| ctx.err(e))?,
    };
    let limit = iq.limit;
    let (rows, more) = queries::images(&state.app(), iq)
        .await
        .map_err(|e| ctx.err(e))?;
    let items: Vec<Value> = rows
        .iter()
        .map(|i| render(i, input::uuid(&i.id).and_then(|id| (state.progress)(id))))
        .collect();
    let mut body =
        json!({"images": items, "schema": "/image/v2/schemas/images", "first": "/image/v2/images"});
    if let (true, Some(last)) = (more, rows.last()) {
        body["next"] = json!(format!(
            "/image/v2/images?limit={}&marker={}",
            limit, last.id
        ));
    }
    Ok(Json(body).into_response())
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw = p.get("image_id").cloned().unwrap_or_default();
    let i = visible_image(&state, &ctx, &raw).await?;
    let progress = input::uuid(&i.id).and_then(|id| (state.progress)(id));
    Ok(Json(render(&i, progress)).into_response())
}

/// `POST /image/v2/images`: registers a queued image to upload into.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let name = input::opt_str(&obj, "name")
        .map_err(|e| ctx.err(e))?
        .unwrap_or_default();
    // As Glance's image schema: the enumerations are strings and never
    // null, the minimums non-negative JSON integers (issue 15 item 4:
    // `min_disk` `0.9` or `"1e3"`, `visibility` `null` were accepted).
    let disk_format = input::opt_str_not_null(&obj, "disk_format")
        .map_err(|e| ctx.err(e))?
        .unwrap_or_else(|| "raw".into());
    let container_format = input::opt_str_not_null(&obj, "container_format")
        .map_err(|e| ctx.err(e))?
        .unwrap_or_else(|| "bare".into());
    let visibility = input::opt_str_not_null(&obj, "visibility")
        .map_err(|e| ctx.err(e))?
        .unwrap_or_else(|| "private".into());
    let min_disk = minimum(&obj, "min_disk").map_err(|e| ctx.err(e))?;
    let protected = match obj.get("protected") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ctx.err(not_boolean("protected"))),
    };
    // Accepted and checked as Glance does; nothing here uses memory sizes.
    minimum(&obj, "min_ram").map_err(|e| ctx.err(e))?;
    let r = RegisterImageRequest {
        name,
        disk_format,
        container_format,
        visibility,
        protected,
        min_disk,
    };
    let id = image_catalog::register(&state.app(), &ctx.caller(), &ctx.meta(), r)
        .await
        .map_err(|e| ctx.err(e))?;
    let i = visible_image(&state, &ctx, &id.to_string()).await?;
    Ok((StatusCode::CREATED, Json(render(&i, None))).into_response())
}

/// `min_disk`/`min_ram`: a non-negative JSON integer, 0 when absent; null
/// is refused as Glance's schema refuses it.
fn minimum(obj: &serde_json::Map<String, Value>, key: &'static str) -> Result<i64, DomainError> {
    let v = obj.get(key);
    let n = match v {
        Some(Value::Null) => None,
        _ => Some(input::integer(v, key)?.unwrap_or(0)),
    };
    match n {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(DomainError::invalid(
            key,
            domain::FieldReason::Invalid,
            format!("Invalid input for field/attribute {key}: must be a non-negative integer."),
        )),
    }
}

fn not_boolean(key: &str) -> DomainError {
    DomainError::invalid(
        "protected",
        FieldReason::WrongType,
        format!("Invalid input for field/attribute {key}: must be a boolean."),
    )
}

/// `PATCH` (a JSON patch, Glance's `openstack-images-v2.1-json-patch`):
/// this catalog changes only `/protected`, how an owner lifts the
/// protection (Cinder's upload-to-image sets it from microversion 3.1)
/// before deleting; any other path is refused, never silently ignored.
async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let raw = p.get("image_id").cloned().unwrap_or_default();
    let id = input::uuid(&raw).ok_or_else(|| not_found(&ctx, &raw))?;
    let bad = |m: String| ctx.err(DomainError::invalid("body", FieldReason::Invalid, m));
    let ops: Vec<Value> =
        serde_json::from_slice(&body).map_err(|_| bad("Malformed JSON patch.".into()))?;
    let mut cmds = Vec::new();
    for op in &ops {
        let (kind, path) = (op["op"].as_str(), op["path"].as_str());
        match (kind, path) {
            (Some("replace" | "add"), Some("/protected")) => match op.get("value") {
                Some(Value::Bool(b)) => cmds.push(ImageCommand::SetProtected { protected: *b }),
                _ => return Err(ctx.err(not_boolean("protected"))),
            },
            _ => {
                return Err(bad(format!(
                    "Unsupported patch operation {op}: this catalog changes only /protected."
                )))
            }
        }
    }
    let (app, caller) = (state.app(), ctx.caller());
    for cmd in cmds {
        image_catalog::command(&app, &caller, &ctx.meta(), id, cmd)
            .await
            .map_err(|e| ctx.err(e))?;
    }
    let i = visible_image(&state, &ctx, &raw).await?;
    let progress = input::uuid(&i.id).and_then(|id| (state.progress)(id));
    Ok(Json(render(&i, progress)).into_response())
}

/// `DELETE`: 204; the executor removes the file.
async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw = p.get("image_id").cloned().unwrap_or_default();
    let id = input::uuid(&raw).ok_or_else(|| not_found(&ctx, &raw))?;
    image_catalog::command(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        ImageCommand::Delete,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/file`: streams the bytes with Content-Length and the SHA-256.
async fn download(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw = p.get("image_id").cloned().unwrap_or_default();
    let i = visible_image(&state, &ctx, &raw).await?;
    // Glance answers 204 No Content for an image without data yet.
    if i.status != ImageStatus::Active {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let id = input::uuid(&i.id).ok_or_else(|| not_found(&ctx, &raw))?;
    let file = tokio::fs::File::open(state.images.path(id))
        .await
        .map_err(|e| ctx.err(Problem::internal(e)))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ctx.err(Problem::internal(e)))?
        .len();
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Some(sum) = i
        .checksum_sha256
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        h.insert("x-image-meta-checksum-sha256", sum);
    }
    Ok(resp)
}

/// Reads a request body chunk by chunk on a blocking thread.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// `PUT …/file`: imports the body as the image's bytes; 204.
async fn upload(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Body,
) -> Reply {
    let raw = p.get("image_id").cloned().unwrap_or_default();
    let i = visible_image(&state, &ctx, &raw).await?;
    let id = input::uuid(&i.id).ok_or_else(|| not_found(&ctx, &raw))?;
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    image_catalog::command(&app, &caller, &meta, id, ImageCommand::BeginUpload)
        .await
        .map_err(|e| ctx.err(e))?;
    let (tx, rx) = mpsc::sync_channel::<Bytes>(8);
    let files = state.images.clone();
    let declared = i.disk_format.clone();
    let import = tokio::task::spawn_blocking(move || {
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        files.import(id, &declared, &mut r)
    });
    let mut stream = body.into_data_stream();
    let mut upload_err = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => {
                let tx = tx.clone();
                // The channel is bounded: wait for the writer off the runtime.
                if tokio::task::spawn_blocking(move || tx.send(b))
                    .await
                    .map(|r| r.is_err())
                    .unwrap_or(true)
                {
                    break;
                }
            }
            Err(e) => {
                upload_err = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let result = import.await.map_err(|e| e.to_string()).and_then(|r| r);
    let cmd = match (upload_err, result) {
        (None, Ok((size, virtual_size, checksum_sha256))) => ImageCommand::Complete {
            size,
            virtual_size,
            checksum_sha256,
        },
        (Some(e), _) | (None, Err(e)) => ImageCommand::Fail { reason: e },
    };
    let failed = matches!(cmd, ImageCommand::Fail { .. });
    image_catalog::command(&app, &caller, &meta, id, cmd)
        .await
        .map_err(|e| ctx.err(e))?;
    if failed {
        let i = visible_image(&state, &ctx, &raw).await?;
        return Err(ctx.err(DomainError::invalid(
            "file",
            FieldReason::Invalid,
            format!("Image upload failed: {}", i.fail_reason.unwrap_or_default()),
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
