//! Cinder's `POST /workers/cleanup` (microversion 3.24), admin only: ask
//! the volume services matching the body's filters to clean up work that
//! a dead service left behind. Here the executor already does this for
//! itself: at start it redoes every request the log holds without an
//! outcome (executor/src/lib.rs, its low-water mark), so a service that
//! answers has nothing left over. The answer names the matching services
//! that are up (`cleaning`; all of them, as the executor is in this
//! process) and those that are not (`unavailable`, none).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use serde_json::{json, Map, Value};

use crate::app::queries;
use crate::microversion::WORKERS_CLEANUP;
use crate::{input, ApiError, AppState, Ctx, Problem, Reason};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new().route(&format!("{prefix}/workers/cleanup"), post(cleanup))
}

/// Cinder's `cleanup` schema: these keys only.
const KEYS: [&str; 8] = [
    "cluster_name",
    "disabled",
    "host",
    "is_up",
    "binary",
    "resource_id",
    "resource_type",
    "service_id",
];

fn invalid(ctx: &Ctx, msg: String) -> ApiError {
    ctx.err(DomainError::invalid("body", FieldReason::Invalid, msg))
}

/// oslo's `bool_from_string` of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(
            s.trim().to_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "y" | "yes"
        ),
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    }
}

async fn cleanup(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    if !(ctx.is_v3() && ctx.at_least(WORKERS_CLEANUP)) {
        return Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The resource could not be found.",
        )));
    }
    if !ctx.is_admin {
        return Err(ctx.err(Problem::forbidden(
            "Policy doesn't allow workers:cleanup to be performed.",
        )));
    }
    let obj: Map<String, Value> = if body.is_empty() {
        Map::new()
    } else {
        input::json_object(&body).map_err(|e| ctx.err(e))?
    };
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(
            &ctx,
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        ));
    }
    let text = |k: &'static str| input::opt_str(&obj, k).map_err(|e| ctx.err(e));
    if let Some(t) = text("resource_type")? {
        let t = {
            let mut c = t.to_lowercase();
            if let Some(f) = c.get_mut(0..1) {
                f.make_ascii_uppercase();
            }
            c
        };
        if t != "Volume" && t != "Snapshot" {
            return Err(invalid(
                &ctx,
                format!(
                    "Invalid input received: Resource type {t} not valid, must be Volume or Snapshot"
                ),
            ));
        }
    }
    let mut host = text("host")?;
    let located = ["service_id", "cluster_name", "host"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if let (Some(rid), false) = (text("resource_id")?, located) {
        // Cinder's `workers` table holds the resources a service is
        // working on; here that is a volume with its disk work pending.
        let app = state.app();
        let pending = match queries::volume(&app, &ctx.caller(), &rid).await {
            Ok(v) => {
                use domain::VolumeStatus as S;
                matches!(
                    v.status,
                    S::Creating | S::Extending | S::Deleting | S::Rollingback | S::Uploading
                )
                .then_some(v)
            }
            Err(_) => None,
        };
        let Some(v) = pending else {
            return Err(invalid(
                &ctx,
                format!(
                    "Invalid input received: There is no resource with UUID {rid} pending cleanup."
                ),
            ));
        };
        host = Some(format!("{}@{}", crate::render::HOST, v.backend));
    }
    let binary = text("binary")?;
    let cluster = text("cluster_name")?;
    let service_id = obj.get("service_id").and_then(Value::as_i64);
    let want_up = obj.get("is_up").filter(|v| !v.is_null()).map(truthy);
    let want_disabled = obj.get("disabled").filter(|v| !v.is_null()).map(truthy);
    let mut cleaning = Vec::new();
    let backends = super::admin::backends(&state, &ctx).await?;
    for (i, (b, h, _)) in super::admin::all_services(&state, &backends)
        .into_iter()
        .enumerate()
    {
        let id = i as i64 + 1;
        let host_matches = host.as_deref().is_none_or(|want| {
            h == want
                || h.split(['@', '#']).next() == Some(want)
                || want.split('#').next() == Some(h.as_str())
        });
        let matches = b == "cinder-volume"
            && binary.as_deref().is_none_or(|w| w == b)
            && host_matches
            && service_id.is_none_or(|s| s == id)
            && cluster.as_deref().is_none_or(|c| super::clusters::cluster_of(&h).as_deref() == Some(c))
            // Every service is up and enabled while this process serves.
            && want_up.is_none_or(|u| u)
            && want_disabled.is_none_or(|d| !d);
        if matches {
            cleaning.push(json!({
                "id": id,
                "host": h,
                "binary": b,
                "cluster_name": super::clusters::cluster_of(&h),
            }));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "cleaning": cleaning, "unavailable": [] })),
    )
        .into_response())
}
