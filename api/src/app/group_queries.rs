//! Reads of generic groups and group snapshots (Cinder 3.13/3.14): the
//! groups view, as the caller may see it (its project's; admin every
//! project's with `all_tenants`). Another project's group is not found,
//! exactly like a missing one. Also the lookups the group use cases share.

use domain::group::GroupAggregate;
use domain::group_snapshot::GroupSnapshotAggregate;
use domain::{Aggregate, DomainError};
use eventstore::rusqlite::Connection;
use projections::groups::{self as view, GroupRow, GroupSnapshotRow};

use super::group_types::{paged, Paging, SortValue};
use super::{App, AppError, Caller, Tx};

pub(crate) fn group_not_found(raw: &str) -> AppError {
    AppError::refused(
        GroupAggregate::stream_id(raw),
        DomainError::GroupNotFound(raw.to_string()),
    )
}

pub(crate) fn group_snapshot_not_found(raw: &str) -> AppError {
    AppError::refused(
        GroupSnapshotAggregate::stream_id(raw),
        DomainError::GroupSnapshotNotFound(raw.to_string()),
    )
}

/// The live group `raw` names, if `caller` may see it.
pub(crate) fn group_in(
    conn: &Connection,
    caller: &Caller,
    raw: &str,
) -> Result<GroupRow, AppError> {
    view::group(conn, raw)?
        .filter(|g| caller.owns(&g.project_id))
        .ok_or_else(|| group_not_found(raw))
}

/// The live group snapshot `raw` names, if `caller` may see it.
pub(crate) fn group_snapshot_in(
    conn: &Connection,
    caller: &Caller,
    raw: &str,
) -> Result<GroupSnapshotRow, AppError> {
    view::group_snapshot(conn, raw)?
        .filter(|g| caller.owns(&g.project_id))
        .ok_or_else(|| group_snapshot_not_found(raw))
}

/// The live group for a change in `tx`.
pub(crate) fn group(tx: &Tx<'_, '_>, raw: &str) -> Result<GroupRow, AppError> {
    group_in(tx.conn(), tx.caller, raw)
}

/// `GET /groups/{id}`.
pub async fn show(app: &App, caller: &Caller, raw: String) -> Result<GroupRow, AppError> {
    let caller = caller.clone();
    app.store
        .query(move |c| Ok(group_in(c, &caller, &raw)))
        .await
        .map_err(AppError::Store)?
}

/// `GET /group_snapshots/{id}`.
pub async fn show_snapshot(
    app: &App,
    caller: &Caller,
    raw: String,
) -> Result<GroupSnapshotRow, AppError> {
    let caller = caller.clone();
    app.store
        .query(move |c| Ok(group_snapshot_in(c, &caller, &raw)))
        .await
        .map_err(AppError::Store)?
}

/// Which project's rows a list shows: the caller's, or (admin with
/// `all_tenants`) every project's, optionally narrowed to one.
#[derive(Debug, Clone, Default)]
pub struct ListScope {
    pub all_tenants: bool,
    pub project_id: Option<String>,
}

fn scope_of(caller: &Caller, s: &ListScope) -> Option<String> {
    if caller.is_admin && s.all_tenants {
        s.project_id.clone()
    } else {
        Some(caller.project_id.clone())
    }
}

fn text(v: &Option<String>) -> SortValue {
    v.clone()
}

const GROUP_KEYS: [&str; 8] = [
    "id",
    "name",
    "description",
    "status",
    "availability_zone",
    "group_type_id",
    "project_id",
    "created_at",
];

const GS_KEYS: [&str; 8] = [
    "id",
    "name",
    "description",
    "status",
    "group_id",
    "group_type_id",
    "project_id",
    "created_at",
];

fn group_value(g: &GroupRow, key: &str) -> Option<SortValue> {
    Some(match key {
        "id" => Some(g.id.clone()),
        "name" => text(&g.name),
        "description" => text(&g.description),
        "status" => Some(g.status.as_str().to_string()),
        "availability_zone" => Some(g.availability_zone.clone()),
        "group_type_id" => Some(g.group_type_id.clone()),
        "project_id" => Some(g.project_id.clone()),
        "created_at" => Some(format!("{:020}", g.seq)),
        _ => return None,
    })
}

fn gs_value(g: &GroupSnapshotRow, key: &str) -> Option<SortValue> {
    Some(match key {
        "id" => Some(g.id.clone()),
        "name" => text(&g.name),
        "description" => text(&g.description),
        "status" => Some(g.status.as_str().to_string()),
        "group_id" => Some(g.group_id.clone()),
        "group_type_id" => Some(g.group_type_id.clone()),
        "project_id" => Some(g.project_id.clone()),
        "created_at" => Some(format!("{:020}", g.seq)),
        _ => return None,
    })
}

/// `GET /groups[/detail]`: filtered on exact field values (Cinder's
/// `name`, `status`, …), sorted and paged.
pub async fn list(
    app: &App,
    caller: &Caller,
    scope: ListScope,
    filters: Vec<(String, String)>,
    p: Paging,
) -> Result<Vec<GroupRow>, AppError> {
    let project = scope_of(caller, &scope);
    let rows = app
        .read(move |c| view::groups(c, project.as_deref()))
        .await?;
    let rows: Vec<GroupRow> = rows
        .into_iter()
        .filter(|g| {
            filters
                .iter()
                .all(|(k, v)| group_value(g, k).is_some_and(|x| x.as_deref() == Some(v)))
        })
        .collect();
    paged(rows, &p, &GROUP_KEYS, group_value, |g| &g.id, |g| g.seq)
        .map_err(|e| AppError::refused(GroupAggregate::stream_id(""), e))
}

/// `GET /group_snapshots[/detail]`: from 3.29 filtered, sorted and paged
/// (the dialect passes no filters or paging below it).
pub async fn list_snapshots(
    app: &App,
    caller: &Caller,
    scope: ListScope,
    filters: Vec<(String, String)>,
    p: Paging,
) -> Result<Vec<GroupSnapshotRow>, AppError> {
    let project = scope_of(caller, &scope);
    let rows = app
        .read(move |c| view::group_snapshots(c, project.as_deref()))
        .await?;
    let rows: Vec<GroupSnapshotRow> = rows
        .into_iter()
        .filter(|g| {
            filters
                .iter()
                .all(|(k, v)| gs_value(g, k).is_some_and(|x| x.as_deref() == Some(v)))
        })
        .collect();
    paged(rows, &p, &GS_KEYS, gs_value, |g| &g.id, |g| g.seq)
        .map_err(|e| AppError::refused(GroupSnapshotAggregate::stream_id(""), e))
}

/// Whether a filter key is one a group list takes.
pub fn is_group_filter(key: &str) -> bool {
    matches!(
        key,
        "id" | "name" | "description" | "status" | "availability_zone" | "group_type_id"
    )
}

/// Whether a filter key is one a group snapshot list takes (3.29).
pub fn is_group_snapshot_filter(key: &str) -> bool {
    matches!(
        key,
        "id" | "name" | "description" | "status" | "group_id" | "group_type_id"
    )
}
