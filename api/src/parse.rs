//! Request parsing the OpenStack-family adapters (Cinder and EVS) share:
//! a create body into a dialect-neutral request, list query strings into
//! a `ListQuery`. Translation only: no rule is decided here.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use domain::create_rules::CreatePolicy;
use domain::{DomainError, FieldReason};
use projections::{ListQuery, SortDir, SortKey};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::app::volume_create::{CreateVolumeRequest, SourceRef};
use crate::{input, ApiError, Ctx};

/// `name`, else its v1 spelling `display_name` (and so on).
pub fn either(
    v: &Map<String, Value>,
    a: &'static str,
    b: &'static str,
) -> Result<Option<String>, DomainError> {
    Ok(match input::opt_str(v, a)? {
        Some(s) => Some(s),
        None => input::opt_str(v, b)?,
    })
}

fn source_id(raw: String, field: &'static str, message: &str) -> Result<Uuid, DomainError> {
    input::uuid(&raw).ok_or_else(|| DomainError::invalid(field, FieldReason::Invalid, message))
}

/// The `volume` object of a create request.
pub fn create_request(
    v: &Map<String, Value>,
    policy: CreatePolicy,
) -> Result<CreateVolumeRequest, DomainError> {
    let availability_zone = input::opt_str(v, "availability_zone")?;
    let volume_type = input::opt_str(v, "volume_type")?;
    let backup_id = input::opt_str(v, "backup_id")?;
    let snapshot = input::opt_str(v, "snapshot_id")?;
    let image = input::opt_str(v, "imageRef")?;
    let source_volume = either(v, "source_volid", "source_replica")?;
    domain::volume::check_single_source(&[
        backup_id.is_some(),
        snapshot.is_some(),
        image.is_some(),
        source_volume.is_some(),
    ])?;
    let source = match (snapshot, image, source_volume) {
        (Some(s), _, _) => Some(SourceRef::Snapshot(source_id(
            s,
            "snapshot_id",
            "invalid snapshot_id!",
        )?)),
        (_, Some(i), _) => Some(SourceRef::Image(source_id(
            i,
            "imageRef",
            "invalid imageRef!",
        )?)),
        (_, _, Some(s)) => Some(SourceRef::Volume(
            input::uuid(&s).ok_or(DomainError::VolumeNotFound(s))?,
        )),
        _ => None,
    };
    let multiattach = match input::opt_bool(v, "multiattach")? {
        Some(m) => m,
        None => input::opt_bool(v, "shareable")
            .map_err(|_| {
                DomainError::invalid(
                    "shareable",
                    FieldReason::WrongType,
                    "invalid shareable parameter!",
                )
            })?
            .unwrap_or(false),
    };
    Ok(CreateVolumeRequest {
        name: either(v, "name", "display_name")?,
        description: either(v, "description", "display_description")?,
        size: input::size(v.get("size"), "size")?,
        availability_zone,
        volume_type,
        metadata: input::metadata(v.get("metadata"))?,
        multiattach,
        source,
        backup_id,
        policy,
    })
}

/// The query string, or 400 in the caller's dialect.
pub fn query(
    ctx: &Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q).map_err(|_| {
        ctx.err(DomainError::invalid(
            "query",
            FieldReason::Invalid,
            "Malformed request url.",
        ))
    })
}

/// The path id as a UUID, or 404 in the caller's dialect.
pub fn path_uuid(ctx: &Ctx, raw_id: &str) -> Result<Uuid, ApiError> {
    input::uuid(raw_id).ok_or_else(|| ctx.err(DomainError::VolumeNotFound(raw_id.to_string())))
}

/// A `marker` that cannot name anything is refused before the query runs.
pub fn check_marker(q: &HashMap<String, String>) -> Result<(), DomainError> {
    match q.get("marker") {
        Some(m) if input::uuid(m).is_none() => Err(DomainError::invalid(
            "marker",
            FieldReason::Invalid,
            "invalid filter marker!",
        )),
        _ => Ok(()),
    }
}

/// The list order: Cinder's `sort=key[:dir][,key[:dir]…]` (what
/// openstacksdk and the CLI send) or the older `sort_key`/`sort_dir`.
/// Every key named is checked; the first orders the page and creation
/// order breaks ties (later keys only matter between rows equal on the
/// first, which for `id` never happens).
pub fn sort(ctx: &Ctx, q: &HashMap<String, String>) -> Result<(SortKey, SortDir), DomainError> {
    let bad_key = || DomainError::invalid("sort_key", FieldReason::Invalid, "invalid sort_key!");
    let bad_dir = || DomainError::invalid("sort_dir", FieldReason::Invalid, "invalid sort_dir!");
    let (mut sort_key, mut sort_dir) = (SortKey::default(), SortDir::default());
    if let Some(sort) = q.get("sort") {
        let mut first = None;
        for part in sort.split(',') {
            let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
            let key = SortKey::parse(k.trim()).ok_or_else(bad_key)?;
            let dir = SortDir::parse(d.trim()).ok_or_else(bad_dir)?;
            first.get_or_insert((key, dir));
        }
        if let Some((k, d)) = first {
            (sort_key, sort_dir) = (k, d);
        }
    }
    if let Some(k) = q.get("sort_key") {
        sort_key = SortKey::parse(k).ok_or_else(bad_key)?;
    }
    if let Some(d) = q.get("sort_dir") {
        sort_dir = SortDir::parse(d).ok_or_else(bad_dir)?;
    }
    // The seed documents id, status, size and created_at (API.md 3.4);
    // `name` is upstream Cinder's, so `/v3` only.
    if sort_key == SortKey::Name && !ctx.is_v3() {
        return Err(bad_key());
    }
    Ok((sort_key, sort_dir))
}

/// A list's page size. `/v2` keeps the seed's 1..=1000 (EVS.1023);
/// `/v3` answers as Cinder does: any non-negative number, capped at the
/// largest page (1000), 0 an empty page.
pub fn limit(ctx: &Ctx, q: &HashMap<String, String>) -> Result<usize, DomainError> {
    let raw = q.get("limit").map(String::as_str);
    if !ctx.is_v3() {
        return input::limit(raw);
    }
    let Some(raw) = raw else {
        return Ok(domain::limits::MAX_PAGE_LIMIT as usize);
    };
    match input::query_int(raw) {
        Some(n) if n >= 0 => Ok(n.min(domain::limits::MAX_PAGE_LIMIT) as usize),
        Some(_) => Err(DomainError::invalid(
            "limit",
            FieldReason::Invalid,
            "limit param must be positive",
        )),
        None => Err(DomainError::invalid(
            "limit",
            FieldReason::WrongType,
            "limit param must be an integer",
        )),
    }
}

/// The `metadata` list filter: a JSON object of strings, or the Python
/// dict literal python-cinderclient and tempest send (`{'k': 'v'}`, which
/// Cinder reads with `ast.literal_eval`).
pub fn metadata_filter(raw: &str) -> Option<std::collections::BTreeMap<String, String>> {
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        return input::metadata(Some(&v)).ok();
    }
    let mut out = std::collections::BTreeMap::new();
    let mut rest = raw.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    // One quoted string (single or double quotes, backslash escapes).
    fn quoted(s: &str) -> Option<(String, &str)> {
        let mut chars = s.char_indices();
        let (_, q) = chars.next()?;
        if q != '\'' && q != '"' {
            return None;
        }
        let mut text = String::new();
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, c) => {
                    text.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, c) if c == q => return Some((text, &s[i + c.len_utf8()..])),
                (false, c) => text.push(c),
            }
        }
        None
    }
    while !rest.is_empty() {
        let (k, after) = quoted(rest)?;
        let after = after.trim_start().strip_prefix(':')?.trim_start();
        let (v, after) = quoted(after)?;
        out.insert(k, v);
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if after.is_empty() => after,
            None => return None,
        };
    }
    Some(out)
}

/// Parses the documented list filters and paging (API.md 3.4).
pub fn list_query(ctx: &Ctx, q: &HashMap<String, String>) -> Result<ListQuery, DomainError> {
    let all_tenants = input::all_tenants(q);
    let (sort_key, sort_dir) = sort(ctx, q)?;
    check_marker(q)?;
    if let Some(s) = q.get("status") {
        if !domain::VolumeStatus::is_documented(s) {
            return Err(DomainError::invalid(
                "status",
                FieldReason::Invalid,
                "Must specify a valid status.",
            ));
        }
    }
    let bad_md =
        || DomainError::invalid("metadata", FieldReason::Invalid, "invalid metadata filter!");
    let metadata = match q.get("metadata") {
        None => Default::default(),
        Some(raw) => metadata_filter(raw).ok_or_else(bad_md)?,
    };
    Ok(ListQuery {
        project_id: if all_tenants && ctx.is_admin {
            // An admin listing every project may narrow to one (Cinder's
            // `project_id` filter, what tempest and `--project` send).
            q.get("project_id").cloned()
        } else {
            Some(ctx.project_id.clone())
        },
        name: q.get("name").cloned(),
        status: q.get("status").cloned(),
        availability_zone: q.get("availability_zone").cloned(),
        metadata,
        marker: q.get("marker").cloned(),
        limit: limit(ctx, q)?,
        offset: input::offset(q.get("offset").map(String::as_str))?,
        sort_key,
        sort_dir,
        // 3.10 (g17): the generic group filter.
        group_id: q
            .get("group_id")
            .filter(|_| ctx.at_least(crate::microversion::GROUP_VOLUME_FILTER))
            .cloned(),
        ..Default::default()
    })
}

/// Cinder's `bootable` volume-list filter (`check_volume_filters`). Before
/// microversion 3.2 only `False`/`false`/`FALSE` mean false and any other
/// value but the empty one means true (Python's `bool(val)`); from 3.2 oslo's
/// strict boolean words, anything else a 400.
pub fn bootable_filter(ctx: &Ctx, v: &str) -> Result<bool, DomainError> {
    if !ctx.at_least(crate::microversion::VOLUME_LIST_BOOTABLE) {
        return Ok(!(matches!(v, "False" | "false" | "FALSE") || v.is_empty()));
    }
    match v.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(DomainError::invalid(
            "bootable",
            FieldReason::Invalid,
            format!("Invalid input received: 'bootable = {v}'"),
        )),
    }
}
