//! Cinder's admin information routes, describing this service as it is:
//! `/os-services`, `/os-hosts`, `/scheduler-stats/get_pools` and
//! `/capabilities/{host}` (tempest's admin tests and `openstack volume
//! service list`, `cinder get-pools` read them).
//!
//! What they describe: one host (`blockledger`) running a scheduler and,
//! per registered backend (issue 16: the backends view; the seed types'
//! SSD, SAS and SATA first, then every `--storage` and remote executor's),
//! a volume backend `blockledger@<backend>`, whose pools are the
//! availability zones: `blockledger@<backend>#<zone>`, the name a volume's
//! `os-vol-host-attr:host` carries on `/v3`. Capacity is each backend's
//! last report; a backend that has not reported is `down` (3.49).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::Utc;
use domain::{DomainError, FieldReason};
use serde_json::{json, Value};

use crate::app::queries;
use crate::parse::query;
use crate::render::{cinder_time, pool_name, HOST};
use crate::{input, ApiError, AppState, Ctx, Problem, Reason};
use projections::backends::BackendRow;

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/os-services"), get(services))
        .route(
            &format!("{prefix}/os-services/{{action}}"),
            put(service_action),
        )
        .route(&format!("{prefix}/os-hosts"), get(hosts))
        .route(&format!("{prefix}/os-hosts/{{host}}"), get(host_show))
        .route(&format!("{prefix}/scheduler-stats/get_pools"), get(pools))
        .route(
            &format!("{prefix}/capabilities/{{host}}"),
            get(capabilities),
        )
}

const SCHEDULER: &str = "cinder-scheduler";
const VOLUME: &str = "cinder-volume";
/// The scheduler judges a type's extra specs against these (one source).
const VENDOR: &str = domain::scheduler::VENDOR_NAME;
const DRIVER_VERSION: &str = env!("CARGO_PKG_VERSION");

fn admin_only(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.is_admin {
        Ok(())
    } else {
        Err(ctx.err(Problem::forbidden("Policy doesn't allow this operation.")))
    }
}

/// Every registered backend (the backends view).
pub(crate) async fn backends(state: &AppState, ctx: &Ctx) -> Result<Vec<BackendRow>, ApiError> {
    crate::app::backends::list(&state.app())
        .await
        .map_err(|e| ctx.err(e))
}

/// One service: (binary, host, zone): the scheduler, and a volume service
/// per backend.
pub(crate) fn all_services(
    state: &AppState,
    backends: &[BackendRow],
) -> Vec<(&'static str, String, String)> {
    let zone = state.catalog.default_zone().to_string();
    let mut out = vec![(SCHEDULER, HOST.to_string(), zone.clone())];
    for b in backends {
        out.push((VOLUME, backend_host(&b.name), zone.clone()));
    }
    out
}

fn backend_host(backend: &str) -> String {
    format!("{HOST}@{backend}")
}

/// The backend whose host is `host` (`blockledger@<backend>`).
fn backend_at<'a>(backends: &'a [BackendRow], host: &str) -> Option<&'a BackendRow> {
    backends.iter().find(|b| backend_host(&b.name) == host)
}

/// The host part of `host[@backend[#pool]]`.
fn host_part(h: &str) -> &str {
    h.split(['@', '#']).next().unwrap_or(h)
}

fn not_found(ctx: &Ctx, what: String) -> ApiError {
    ctx.err(Problem::new(StatusCode::NOT_FOUND, Reason::NotFound, what))
}

/// `GET /os-services[?host=&binary=]`.
async fn services(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    admin_only(&ctx)?;
    let q = query(&ctx, q)?;
    let now = cinder_time(&Utc::now());
    let backends = backends(&state, &ctx).await?;
    let list: Vec<Value> = all_services(&state, &backends)
        .into_iter()
        .filter(|(_, host, _)| {
            q.get("host")
                .is_none_or(|h| h == host || host_part(host) == h)
        })
        .filter(|(binary, _, _)| q.get("binary").is_none_or(|b| b == binary))
        .map(|(binary, host, zone)| {
            let mut s = json!({
                "binary": binary,
                "host": host,
                "zone": zone,
                "status": "enabled",
                "state": "up",
                "updated_at": now,
                "disabled_reason": null,
            });
            // 3.7 (a17): the service's cluster (clusters.rs).
            if ctx.at_least(crate::microversion::CLUSTER_SUPPORT) {
                s["cluster"] = json!(super::clusters::cluster_of(&host));
            }
            // 3.49: a volume service's backend state, as its pools report
            // it: up once its server reported the capacity the pools show,
            // down while it has not.
            if binary == VOLUME && ctx.at_least(crate::microversion::BACKEND_STATE_REPORT) {
                let up = backends
                    .iter()
                    .any(|b| backend_host(&b.name) == host && b.total_bytes.is_some());
                s["backend_state"] = json!(if up { "up" } else { "down" });
            }
            s
        })
        .collect();
    Ok(Json(json!({ "services": list })).into_response())
}

/// `PUT /os-services/{enable|disable|disable-log-reason|freeze|thaw}`.
/// Services here cannot be switched off (the executor is part of this
/// process): an unknown host or binary is refused as Cinder refuses it,
/// a known one with a clear 400.
async fn service_action(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    admin_only(&ctx)?;
    let action = p.get("action").cloned().unwrap_or_default();
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let host = input::opt_str(&obj, "host").map_err(|e| ctx.err(e))?;
    let backends = backends(&state, &ctx).await?;
    let known = all_services(&state, &backends);
    let host_known = |h: &str| known.iter().any(|(_, s, _)| s == h || host_part(s) == h);
    let bad = |m: String| ctx.err(DomainError::invalid("host", FieldReason::Invalid, m));
    match action.as_str() {
        // 3.32 (a17): every binary runs in this process and logs through
        // one filter (api::log_levels): a level set for one is set for all.
        "set-log" | "get-log" if ctx.at_least(crate::microversion::LOG_LEVEL) => {
            log_action(&known, &ctx, &action, &obj)
        }
        "freeze" | "thaw" => {
            let h = host.unwrap_or_default();
            if !host_known(&h) {
                return Err(bad(format!("Host {h} is not a volume backend host.")));
            }
            Err(bad(format!("Host {h} cannot be frozen or thawed here.")))
        }
        "enable" | "disable" | "disable-log-reason" => {
            let h = host.unwrap_or_default();
            let binary = input::opt_str(&obj, "binary")
                .map_err(|e| ctx.err(e))?
                .unwrap_or_default();
            if action == "disable-log-reason"
                && input::opt_str(&obj, "disabled_reason")
                    .map_err(|e| ctx.err(e))?
                    .is_none_or(|r| r.trim().is_empty())
            {
                return Err(ctx.err(DomainError::invalid(
                    "disabled_reason",
                    FieldReason::Missing,
                    "Disabled reason contains invalid characters or is too long",
                )));
            }
            if !host_known(&h) {
                return Err(not_found(&ctx, format!("Host {h} could not be found.")));
            }
            if !known
                .iter()
                .any(|(b, s, _)| *b == binary && (*s == h || host_part(s) == h))
            {
                return Err(not_found(
                    &ctx,
                    format!("Service {binary} on host {h} could not be found."),
                ));
            }
            Err(bad(format!(
                "Service {binary} on {h} runs inside blockledger and cannot be {action}d."
            )))
        }
        _ => Err(not_found(&ctx, "The resource could not be found.".into())),
    }
}

const LOG_BINARIES: [&str; 4] = [
    "cinder-scheduler",
    "cinder-volume",
    "cinder-backup",
    "cinder-api",
];

/// `PUT /os-services/set-log` (`level`, `prefix`, `binary`, `server`)
/// and `get-log`, as Cinder's `_log_params_binaries_services` picks the
/// services: an empty or `*` binary is every one, `cinder-api` this API.
fn log_action(
    services: &[(&'static str, String, String)],
    ctx: &Ctx,
    action: &str,
    obj: &serde_json::Map<String, Value>,
) -> Reply {
    let allowed: &[&str] = if action == "set-log" {
        &["binary", "server", "prefix", "level"]
    } else {
        &["binary", "server", "prefix"]
    };
    let bad = |m: String| ctx.err(DomainError::invalid("body", FieldReason::Invalid, m));
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let text = |k: &'static str| input::opt_str(obj, k).map_err(|e| ctx.err(e));
    let binary = text("binary")?.unwrap_or_default();
    let server = text("server")?.filter(|s| !s.is_empty());
    let prefix = text("prefix")?.unwrap_or_default();
    let binaries: Vec<&str> = match binary.as_str() {
        "" | "*" => LOG_BINARIES.to_vec(),
        b if LOG_BINARIES.contains(&b) => vec![b],
        b => {
            return Err(bad(format!(
                "Invalid input received: {b} is not a valid binary."
            )))
        }
    };
    let mut targets: Vec<(String, String)> = Vec::new();
    if binaries.contains(&"cinder-api") && server.as_deref().is_none_or(|s| s == HOST) {
        targets.push(("cinder-api".into(), HOST.into()));
    }
    for (b, h, _) in services {
        if binaries.contains(b) && server.as_deref().is_none_or(|s| s == h) {
            targets.push((b.to_string(), h.clone()));
        }
    }
    if action == "set-log" {
        let level = text("level")?.unwrap_or_default();
        if !targets.is_empty() {
            crate::log_levels::set(&prefix, &level)
                .map_err(|m| bad(format!("Invalid input received: {m}")))?;
        } else if !matches!(
            level.to_uppercase().as_str(),
            "DEBUG" | "INFO" | "WARNING" | "ERROR"
        ) {
            return Err(bad(format!(
                "Invalid input received: Invalid log level {level}"
            )));
        }
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let levels = crate::log_levels::get(&prefix).unwrap_or_default();
    let list: Vec<Value> = targets
        .into_iter()
        .map(|(b, h)| json!({"binary": b, "host": h, "levels": levels}))
        .collect();
    Ok(Json(json!({ "log_levels": list })).into_response())
}

/// `GET /os-hosts`.
async fn hosts(State(state): State<AppState>, ctx: Ctx) -> Reply {
    admin_only(&ctx)?;
    let now = cinder_time(&Utc::now());
    let backends = backends(&state, &ctx).await?;
    let list: Vec<Value> = all_services(&state, &backends)
        .into_iter()
        .map(|(binary, host, zone)| {
            json!({
                "service-status": "available",
                "service": binary,
                "zone": zone,
                "service-state": "enabled",
                "host_name": host,
                "last-update": now,
            })
        })
        .collect();
    Ok(Json(json!({ "hosts": list })).into_response())
}

/// `GET /os-hosts/{host}`: usage on one volume backend, in total and per
/// project (Cinder prints counts as strings).
async fn host_show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    admin_only(&ctx)?;
    let host = p.get("host").cloned().unwrap_or_default();
    let backends = backends(&state, &ctx).await?;
    let Some(b) = backend_at(&backends, &host) else {
        return Err(not_found(&ctx, format!("Host {host} could not be found.")));
    };
    let usage = queries::usage_of_backend(&state.app(), b.name.clone())
        .await
        .map_err(|e| ctx.err(e))?;
    let row = |project: &str, vols: i64, vgb: i64, snaps: i64, sgb: i64| {
        json!({"resource": {
            "host": host,
            "project": project,
            "volume_count": vols.to_string(),
            "total_volume_gb": vgb.to_string(),
            "snapshot_count": snaps.to_string(),
            "total_snapshot_gb": sgb.to_string(),
        }})
    };
    let total = usage.iter().fold((0, 0, 0, 0), |a, u| {
        (
            a.0 + u.volumes,
            a.1 + u.volume_gb,
            a.2 + u.snapshots,
            a.3 + u.snapshot_gb,
        )
    });
    let mut out = vec![row("(total)", total.0, total.1, total.2, total.3)];
    out.extend(usage.iter().map(|u| {
        row(
            &u.project_id,
            u.volumes,
            u.volume_gb,
            u.snapshots,
            u.snapshot_gb,
        )
    }));
    Ok(Json(json!({ "host": out })).into_response())
}

/// A backend's capabilities as a pool reports them: capacity as its
/// server last reported it (Cinder's `unknown` before the first report).
fn pool_capabilities(b: &BackendRow) -> Value {
    let gib = |b: u64| (b as f64 / (1u64 << 30) as f64 * 100.0).floor() / 100.0;
    let (total, free) = match (b.total_bytes, b.free_bytes) {
        (Some(t), Some(f)) => (json!(gib(t)), json!(gib(f))),
        _ => (json!("unknown"), json!("unknown")),
    };
    json!({
        "volume_backend_name": b.name,
        "vendor_name": VENDOR,
        "driver_version": DRIVER_VERSION,
        "storage_protocol": b.storage_protocol,
        "total_capacity_gb": total,
        "free_capacity_gb": free,
        "reserved_percentage": 0,
        "QoS_support": false,
        "timestamp": cinder_time(&b.reported_at.unwrap_or_else(Utc::now)),
    })
}

/// `GET /scheduler-stats/get_pools[?detail=true]`.
async fn pools(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    admin_only(&ctx)?;
    let q = query(&ctx, q)?;
    let detail = q
        .get("detail")
        .is_some_and(|d| matches!(d.to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
    let filters = super::pools::filters(&state, &ctx, &q).await?;
    let mut list = Vec::new();
    for b in backends(&state, &ctx).await? {
        for zone in &state.catalog.zones {
            let name = pool_name(zone, &b.name);
            let caps = pool_capabilities(&b);
            if !filters.keeps(state.catalog.max_over_subscription_ratio, &name, &b, &caps) {
                continue;
            }
            let mut pool = json!({ "name": name });
            if detail {
                pool["capabilities"] = caps;
            }
            list.push(pool);
        }
    }
    Ok(Json(json!({ "pools": list })).into_response())
}

/// `GET /capabilities/{host}`: a backend's (`host@backend`, a pool suffix
/// ignored) capabilities and the properties a volume type may pin.
async fn capabilities(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    admin_only(&ctx)?;
    let raw = p.get("host").cloned().unwrap_or_default();
    let host = raw.split('#').next().unwrap_or_default();
    let backends = backends(&state, &ctx).await?;
    let Some(b) = backend_at(&backends, host) else {
        return Err(not_found(&ctx, format!("Host {raw} could not be found.")));
    };
    let thin = if b.kind == "rbd" {
        "Volumes are thin RBD images."
    } else {
        "Volumes are sparse qcow2 or raw files."
    };
    Ok(Json(json!({
        "namespace": format!("OS::Storage::Capabilities::{host}"),
        "vendor_name": VENDOR,
        "volume_backend_name": b.name,
        "pool_name": null,
        "driver_version": DRIVER_VERSION,
        "storage_protocol": b.storage_protocol,
        "display_name": null,
        "description": null,
        "visibility": null,
        "replication_targets": [],
        "properties": {
            "thin_provisioning": {
                "title": "Thin Provisioning",
                "description": thin,
                "type": "boolean"
            }
        },
    }))
    .into_response())
}
