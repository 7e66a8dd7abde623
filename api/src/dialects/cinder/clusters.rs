//! Cinder's clusters (microversion 3.7; replication fields from 3.26):
//! `GET /clusters[/detail]`, `GET /clusters/{name}`, `PUT
//! /clusters/{enable|disable}`, admin only.
//!
//! A cluster is a set of volume services configured with the same
//! `cluster` name for active-active HA. This service runs one host and has
//! no such setting, so no service belongs to a cluster: the clusters are
//! computed from the services (`admin::all_services`, each `cluster_of`
//! none) and the list is empty; a named cluster is not found, as Cinder
//! answers for a name it does not know.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use serde_json::{json, Value};

use crate::microversion::{CLUSTER_SUPPORT, REPLICATION_CLUSTER};
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx, Problem, QueryParams, Reason};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{prefix}/clusters"),
            get(|s, c, q| list(s, c, q, false)),
        )
        .route(
            &format!("{prefix}/clusters/detail"),
            get(|s, c, q| list(s, c, q, true)),
        )
        // One pattern: `PUT /clusters/enable` and `GET /clusters/<name>`.
        .route(
            &format!("{prefix}/clusters/{{name}}"),
            get(show).put(update),
        )
}

/// The cluster a service (by host) belongs to: none here (see above).
pub fn cluster_of(_host: &str) -> Option<String> {
    None
}

fn not_found(ctx: &Ctx, msg: String) -> ApiError {
    ctx.err(Problem::new(StatusCode::NOT_FOUND, Reason::NotFound, msg))
}

fn served(ctx: &Ctx) -> Result<(), ApiError> {
    if !(ctx.is_v3() && ctx.at_least(CLUSTER_SUPPORT)) {
        return Err(not_found(ctx, "The resource could not be found.".into()));
    }
    if !ctx.is_admin {
        return Err(ctx.err(Problem::forbidden(
            "Policy doesn't allow clusters:get_all to be performed.",
        )));
    }
    Ok(())
}

/// One cluster: its services (binary, host) by name.
struct Cluster {
    name: String,
    binary: &'static str,
    hosts: Vec<String>,
}

fn clusters(state: &AppState) -> Vec<Cluster> {
    let mut by: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    // No service is clustered (`cluster_of`), so the backends the volume
    // services are named after need not be read.
    for (binary, host, _) in super::admin::all_services(state, &[]) {
        if let Some(c) = cluster_of(&host) {
            by.entry((c, binary)).or_default().push(host);
        }
    }
    by.into_iter()
        .map(|((name, binary), hosts)| Cluster {
            name,
            binary,
            hosts,
        })
        .collect()
}

/// Cinder's clusters view (`summary` or `detail`).
fn render(ctx: &Ctx, c: &Cluster, detail: bool) -> Value {
    // Every service answers while this process does.
    let mut v = json!({
        "name": c.name,
        "binary": c.binary,
        "state": "up",
        "status": "enabled",
    });
    if detail {
        v["num_hosts"] = json!(c.hosts.len());
        v["num_down_hosts"] = json!(0);
        v["last_heartbeat"] = json!(crate::render::cinder_time(&chrono::Utc::now()));
        v["created_at"] = Value::Null;
        v["updated_at"] = Value::Null;
        v["disabled_reason"] = Value::Null;
    }
    if ctx.at_least(REPLICATION_CLUSTER) {
        v["replication_status"] = json!("disabled");
        v["frozen"] = json!(false);
        v["active_backend_id"] = Value::Null;
    }
    v
}

const FILTERS: [&str; 6] = [
    "name",
    "binary",
    "is_up",
    "disabled",
    "num_hosts",
    "num_down_hosts",
];
const REPLICATION_FILTERS: [&str; 3] = ["replication_status", "frozen", "active_backend_id"];

async fn list(State(state): State<AppState>, ctx: Ctx, q: QueryParams, detail: bool) -> Reply {
    served(&ctx)?;
    let q = query(&ctx, q)?;
    let replication = ctx.at_least(REPLICATION_CLUSTER);
    let mut invalid: Vec<&str> = q
        .keys()
        .map(String::as_str)
        .filter(|k| !(FILTERS.contains(k) || replication && REPLICATION_FILTERS.contains(k)))
        .collect();
    if !invalid.is_empty() {
        invalid.sort();
        return Err(ctx.err(DomainError::invalid(
            "query",
            FieldReason::Invalid,
            format!(
                "Invalid input received: Invalid filter keys: {}",
                invalid.join(", ")
            ),
        )));
    }
    let keep = |c: &Cluster| {
        q.get("name").is_none_or(|n| *n == c.name)
            && q.get("binary").is_none_or(|b| b == c.binary)
            && q.get("num_hosts")
                .is_none_or(|n| *n == c.hosts.len().to_string())
    };
    let list: Vec<Value> = clusters(&state)
        .iter()
        .filter(|c| keep(c))
        .map(|c| render(&ctx, c, detail))
        .collect();
    Ok(Json(json!({ "clusters": list })).into_response())
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    q: QueryParams,
) -> Reply {
    served(&ctx)?;
    let q = query(&ctx, q)?;
    let name = p.get("name").cloned().unwrap_or_default();
    let binary = q
        .get("binary")
        .map(String::as_str)
        .unwrap_or("cinder-volume");
    clusters(&state)
        .iter()
        .find(|c| c.name == name && c.binary == binary)
        .map(|c| Json(json!({ "cluster": render(&ctx, c, true) })).into_response())
        .ok_or_else(|| not_found(&ctx, format!("Cluster {name} could not be found.")))
}

/// `PUT /clusters/enable|disable` with `{"name", "binary"?,
/// "disabled_reason"?}` (Cinder's schema: `name` a required string).
async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    served(&ctx)?;
    let action = p.get("name").cloned().unwrap_or_default();
    if action != "enable" && action != "disable" {
        return Err(not_found(&ctx, "The resource could not be found.".into()));
    }
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let name = input::opt_str(&obj, "name")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "name",
                FieldReason::Missing,
                "Invalid input for field/attribute name. Value: None. 'name' is a required property",
            ))
        })?;
    let binary = input::opt_str(&obj, "binary")
        .map_err(|e| ctx.err(e))?
        .unwrap_or_else(|| "cinder-volume".into());
    match clusters(&state)
        .iter()
        .find(|c| c.name == name && c.binary == binary)
    {
        // No cluster exists to switch (see the module comment).
        Some(c) => Err(ctx.err(DomainError::invalid(
            "name",
            FieldReason::Invalid,
            format!(
                "Cluster {} runs inside blockledger and cannot be {action}d.",
                c.name
            ),
        ))),
        None => Err(not_found(
            &ctx,
            format!("Cluster {name} could not be found."),
        )),
    }
}
