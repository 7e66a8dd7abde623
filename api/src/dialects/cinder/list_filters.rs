//! The list parameters Cinder's later microversions add to the volume and
//! snapshot lists: `with_count` (3.45), `created_at` / `updated_at`
//! comparisons (3.60) and `consumes_quota` (3.65). Before its version a
//! parameter is dropped unread, as Cinder's `_MV_ADDED_FILTERS` drops it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use domain::{DomainError, FieldReason};
use projections::{TimeFilter, TimeOp};

use crate::microversion::{SUPPORT_COUNT_INFO, USE_QUOTA, VOLUME_TIME_COMPARISON_FILTER};
use crate::Ctx;

fn invalid(field: &'static str, message: String) -> DomainError {
    DomainError::invalid(field, FieldReason::Invalid, message)
}

/// oslo's strict boolean words (`utils.get_bool_param`).
fn strict_bool(field: &'static str, v: &str) -> Result<bool, DomainError> {
    match v.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(invalid(
            field,
            format!("Value '{v}' for '{field}' is not a boolean."),
        )),
    }
}

/// 3.45: whether the list answers with `count`, the number of rows its
/// filters match whatever the page.
pub fn with_count(ctx: &Ctx, q: &HashMap<String, String>) -> Result<bool, DomainError> {
    match q.get("with_count") {
        Some(v) if ctx.at_least(SUPPORT_COUNT_INFO) => strict_bool("with_count", v),
        _ => Ok(false),
    }
}

/// 3.65: the `consumes_quota` filter.
pub fn consumes_quota(ctx: &Ctx, q: &HashMap<String, String>) -> Result<Option<bool>, DomainError> {
    match q.get("consumes_quota") {
        Some(v) if ctx.at_least(USE_QUOTA) => strict_bool("consumes_quota", v).map(Some),
        _ => Ok(None),
    }
}

/// 3.60: `field=op:time[,op:time…]` with op one of gt, gte, eq, neq, lt,
/// lte and an ISO 8601 time, every comparison to hold
/// (`_handle_time_comparison_filters`).
pub fn time_filters(
    ctx: &Ctx,
    q: &HashMap<String, String>,
    field: &'static str,
) -> Result<Vec<TimeFilter>, DomainError> {
    let Some(raw) = q.get(field) else {
        return Ok(Vec::new());
    };
    if !ctx.at_least(VOLUME_TIME_COMPARISON_FILTER) {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(|unit| {
            // Cinder splits at the first ':' (the time keeps its own).
            let (op, time) = unit.split_once(':').unwrap_or((unit, unit));
            let op = TimeOp::parse(op)
                .ok_or_else(|| invalid(field, format!("Invalid {op} operator")))?;
            let at =
                iso_time(time).ok_or_else(|| invalid(field, format!("Invalid {time} value")))?;
            Ok(TimeFilter { op, at })
        })
        .collect()
}

/// An ISO 8601 time as `timeutils.parse_isotime` reads one: with an offset,
/// or without one (UTC), or a bare date (its midnight, UTC).
fn iso_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_as_oslo_reads_them() {
        let at = |s| iso_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-11-30T01:02:03Z").as_deref(),
            Some("2026-11-30T01:02:03+00:00")
        );
        assert_eq!(
            at("2026-11-30T03:02:03+02:00").as_deref(),
            Some("2026-11-30T01:02:03+00:00")
        );
        assert_eq!(
            at("2026-11-30T01:02:03.5").as_deref(),
            Some("2026-11-30T01:02:03.500+00:00")
        );
        assert_eq!(
            at("2026-11-30").as_deref(),
            Some("2026-11-30T00:00:00+00:00")
        );
        assert_eq!(at("yesterday"), None);
        assert_eq!(at(""), None);
    }
}
