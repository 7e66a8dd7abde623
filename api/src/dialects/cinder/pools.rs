//! `GET /scheduler-stats/get_pools` filters (a17): from 3.28 `name` and
//! any capability (compared as Cinder's `_equal_after_convert`), from 3.35
//! `volume_type`, the pools whose backend the scheduler rule lets serve the
//! type (`domain::scheduler`, as Cinder runs its filters). From 3.31 only
//! the configured pool filters (`name`, `volume_type`) are accepted, for
//! admins too. Below 3.28 every filter is dropped.

use std::collections::HashMap;

use domain::DomainError;
use serde_json::Value;

use crate::microversion::{POOL_FILTER, POOL_TYPE_FILTER};
use crate::{ApiError, AppState, Ctx};

/// The filters a pools request asked for.
#[derive(Default)]
pub struct PoolFilters {
    name: Option<String>,
    /// The type's extra specs.
    specs: Option<std::collections::BTreeMap<String, String>>,
    capabilities: Vec<(String, String)>,
}

impl PoolFilters {
    /// Whether pool `name` of backend `backend` with capabilities `caps`
    /// passes.
    pub fn keeps(
        &self,
        ratio: Option<f64>,
        name: &str,
        backend: &projections::backends::BackendRow,
        caps: &Value,
    ) -> bool {
        if self.name.as_deref().is_some_and(|n| n != name) {
            return false;
        }
        if let Some(specs) = &self.specs {
            if !domain::scheduler::satisfies(specs, &backend.offer(ratio).capabilities()) {
                return false;
            }
        }
        self.capabilities.iter().all(|(k, want)| match caps.get(k) {
            // Cinder: a bool capability against the value's boolean.
            Some(Value::Bool(b)) => {
                *b == matches!(
                    want.trim().to_lowercase().as_str(),
                    "1" | "t" | "true" | "on" | "y" | "yes"
                )
            }
            Some(Value::String(s)) => s == want,
            Some(Value::Null) | None => false,
            Some(other) => want.as_str() == other.to_string().as_str(),
        })
    }
}

pub async fn filters(
    state: &AppState,
    ctx: &Ctx,
    q: &HashMap<String, String>,
) -> Result<PoolFilters, ApiError> {
    let mut out = PoolFilters::default();
    if !(ctx.is_v3() && ctx.at_least(POOL_FILTER)) {
        return Ok(out);
    }
    let mut rest: HashMap<String, String> = q.clone();
    rest.remove("detail");
    crate::parse::reject_invalid_filters(ctx, rest.keys(), "pool").map_err(|e| ctx.err(e))?;
    let volume_type = rest.remove("volume_type");
    out.name = rest.remove("name");
    if let Some(t) = volume_type.filter(|_| ctx.at_least(POOL_TYPE_FILTER)) {
        let caller = ctx.caller();
        let raw = t.clone();
        let row = state
            .app()
            .read(move |c| crate::app::volume_types::visible(c, &caller, &raw))
            .await
            .map_err(|e| ctx.err(e))?
            .ok_or_else(|| ctx.err(DomainError::VolumeTypeNotFound(t)))?;
        out.specs = Some(row.extra_specs);
    }
    let mut caps: Vec<(String, String)> = rest.into_iter().collect();
    caps.sort();
    out.capabilities = caps;
    Ok(out)
}
