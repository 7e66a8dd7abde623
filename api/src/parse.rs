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
    // 3.4: Cinder pops `glance_metadata` below it (ignored).
    let image_metadata = match q.get("glance_metadata") {
        Some(raw) if ctx.at_least(crate::microversion::VOLUME_LIST_GLANCE_METADATA) => {
            metadata_filter(raw).ok_or_else(|| {
                DomainError::invalid(
                    "glance_metadata",
                    FieldReason::Invalid,
                    "invalid glance_metadata filter!",
                )
            })?
        }
        _ => Default::default(),
    };
    Ok(ListQuery {
        image_metadata,
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

/// The filters each resource's list accepts from a non-admin (from 3.31,
/// `reject_invalid_filters`) and that `GET /resource_filters` reports
/// (3.33): Cinder's default `resource_filters.json`, this service's
/// configuration. A `key~` entry would enable the like filter (3.34) for
/// `key`; the default enables none.
pub const RESOURCE_FILTERS: &[(&str, &[&str])] = &[
    (
        "volume",
        &[
            "name",
            "status",
            "metadata",
            "bootable",
            "migration_status",
            "availability_zone",
            "group_id",
            "size",
            "created_at",
            "updated_at",
            "consumes_quota",
        ],
    ),
    ("backup", &["name", "status", "volume_id"]),
    (
        "snapshot",
        &[
            "name",
            "status",
            "volume_id",
            "metadata",
            "availability_zone",
            "consumes_quota",
        ],
    ),
    ("group", &["name"]),
    ("group_snapshot", &["name", "status", "group_id"]),
    (
        "attachment",
        &["volume_id", "status", "instance_id", "attach_status"],
    ),
    (
        "message",
        &[
            "resource_uuid",
            "resource_type",
            "event_id",
            "request_id",
            "message_level",
        ],
    ),
    ("pool", &["name", "volume_type"]),
    ("volume_type", &["is_public", "extra_specs"]),
];

/// The paging and sorting keys a list reads before its filters.
pub const PAGING_KEYS: [&str; 7] = [
    "marker",
    "limit",
    "offset",
    "sort",
    "sort_key",
    "sort_dir",
    "with_count",
];

/// Cinder's `reject_invalid_filters` (3.31): a non-admin's (for pools,
/// anyone's) filter keys must be configured for `resource`; `all_tenants`
/// is let through (python-cinderclient always sends it). From 3.34 `key`
/// is also valid when `key~` is configured.
pub fn reject_invalid_filters<'a>(
    ctx: &Ctx,
    keys: impl IntoIterator<Item = &'a String>,
    resource: &str,
) -> Result<(), DomainError> {
    use crate::microversion::{LIKE_FILTER, RESOURCE_FILTER};
    if !(ctx.is_v3() && ctx.at_least(RESOURCE_FILTER)) || (ctx.is_admin && resource != "pool") {
        return Ok(());
    }
    let configured = RESOURCE_FILTERS
        .iter()
        .find(|(r, _)| *r == resource)
        .map(|(_, f)| *f)
        .unwrap_or(&[]);
    let like = ctx.at_least(LIKE_FILTER);
    let mut invalid: Vec<&str> = keys
        .into_iter()
        .map(String::as_str)
        .filter(|k| *k != "all_tenants")
        .filter(|k| {
            !(configured.contains(k) || (like && configured.contains(&format!("{k}~").as_str())))
        })
        .collect();
    if invalid.is_empty() {
        return Ok(());
    }
    invalid.sort();
    Err(DomainError::invalid(
        "query",
        FieldReason::Invalid,
        format!(
            "Invalid filters {} are found in query options.",
            invalid.join(",")
        ),
    ))
}

/// A list's filter keys: the query less its paging and sorting.
pub fn filter_keys(q: &HashMap<String, String>) -> impl Iterator<Item = &String> {
    q.keys().filter(|k| !PAGING_KEYS.contains(&k.as_str()))
}

/// Cinder's like filters (3.34): `key~=value` matches `value` anywhere in
/// `key`, for the columns in `columns` (a key this view has not is left
/// to the other filters, which ignore it).
pub fn like_filters(
    ctx: &Ctx,
    q: &HashMap<String, String>,
    columns: &[&'static str],
) -> Vec<(&'static str, String)> {
    if !(ctx.is_v3() && ctx.at_least(crate::microversion::LIKE_FILTER)) {
        return Vec::new();
    }
    let mut out: Vec<(&'static str, String)> = q
        .iter()
        .filter_map(|(k, v)| {
            let base = k.strip_suffix('~')?;
            columns
                .iter()
                .find(|c| **c == base)
                .map(|c| (*c, v.clone()))
        })
        .collect();
    out.sort();
    out
}

/// `GET /messages`' query (Cinder's `MessagesController.index`): before
/// 3.5 nothing is read; from 3.5 paging, sort and any other key a filter
/// on the message's columns (a key that is none lists nothing, as
/// Cinder's `is_valid_model_filters`); from 3.31 a non-admin's filter
/// keys are checked against the configured ones (400); from 3.34 `key~`
/// matches a part of the column. None: the list is empty.
pub fn message_query(
    ctx: &Ctx,
    q: &HashMap<String, String>,
) -> Result<Option<projections::messages::MessageQuery>, DomainError> {
    use crate::microversion::{LIKE_FILTER, MESSAGES_PAGINATION, RESOURCE_FILTER};
    use projections::messages::{Match, MessageQuery, COLUMNS};
    let mut out = MessageQuery::default();
    if !ctx.at_least(MESSAGES_PAGINATION) {
        return Ok(Some(out));
    }
    let bad = |m: String| DomainError::invalid("query", FieldReason::Invalid, m);
    let mut rest = q.clone();
    if let Some(raw) = rest.remove("limit") {
        match input::query_int(&raw) {
            Some(n) if n >= 0 => {
                out.limit = Some(n.min(domain::limits::MAX_PAGE_LIMIT) as usize);
            }
            Some(_) => return Err(bad("limit param must be positive".into())),
            None => return Err(bad("limit param must be an integer".into())),
        }
    }
    out.marker = rest.remove("marker");
    if let Some(raw) = rest.remove("offset") {
        match input::query_int(&raw) {
            Some(n) if n >= 0 => out.offset = n as usize,
            _ => return Err(bad(format!("Invalid input received: offset={raw}"))),
        }
    }
    if rest.contains_key("sort") && (rest.contains_key("sort_key") || rest.contains_key("sort_dir"))
    {
        return Err(bad("The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.".into()));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(sort) = rest.remove("sort") {
        for part in sort.trim().split(',') {
            let (k, d) = part.split_once(':').unwrap_or((part, ""));
            let d = if d.is_empty() { "desc" } else { d };
            pairs.push((k.trim().to_string(), d.trim().to_string()));
        }
    } else {
        let k = rest
            .remove("sort_key")
            .unwrap_or_else(|| "created_at".into());
        let d = rest.remove("sort_dir").unwrap_or_else(|| "desc".into());
        pairs.push((k.trim().to_string(), d.trim().to_string()));
    }
    for (k, d) in pairs {
        let asc = match d.as_str() {
            "asc" => true,
            "desc" => false,
            _ => {
                return Err(bad(
                    "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'."
                        .into(),
                ))
            }
        };
        let col = COLUMNS
            .iter()
            .find(|c| **c == k)
            .ok_or_else(|| bad("Invalid input received: Invalid sort key".into()))?;
        out.sort.push((col, asc));
    }
    if ctx.at_least(RESOURCE_FILTER) {
        reject_invalid_filters(ctx, rest.keys(), "message")?;
        rest.remove("all_tenants");
    }
    let mut keys: Vec<&String> = rest.keys().collect();
    keys.sort();
    for k in keys {
        let v = rest[k].clone();
        let (name, m) = match k.strip_suffix('~') {
            Some(base) if ctx.at_least(LIKE_FILTER) => (base, Match::Like(v)),
            _ => (k.as_str(), Match::Exact(v)),
        };
        match COLUMNS.iter().find(|c| **c == name) {
            Some(col) => out.filters.push((col, m)),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The snapshot list's `metadata` filter: from 3.22 (a17); Cinder pops it
/// below (ignored).
pub fn snapshot_metadata_filter(
    ctx: &Ctx,
    q: &HashMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, DomainError> {
    match q.get("metadata") {
        Some(raw) if ctx.at_least(crate::microversion::SNAPSHOT_LIST_METADATA_FILTER) => {
            metadata_filter(raw).ok_or_else(|| {
                DomainError::invalid("metadata", FieldReason::Invalid, "invalid metadata filter!")
            })
        }
        _ => Ok(Default::default()),
    }
}

/// Cinder's `utils.get_bool_param`: oslo's strict boolean words, else 400.
pub fn bool_param(name: &'static str, v: &str) -> Result<bool, DomainError> {
    match v.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(DomainError::invalid(
            name,
            FieldReason::Invalid,
            format!("Invalid value '{v}' for {name}: expected a boolean."),
        )),
    }
}
