//! Reads for the adapters: each answers what the caller may see, off the
//! async runtime. Another project's object is "not found", exactly like a
//! missing one, so ids do not leak across projects in any dialect. Reads
//! are not events: a refused read is not recorded.

use domain::error::FieldReason;
use domain::DomainError;
use projections::images::ImageRow;
use projections::jobs::JobRow;
use projections::snapshots::{SnapshotQuery, SnapshotRow};
use projections::transfers::TransferRow;
use projections::{ListQuery, VolumeRow};
use uuid::Uuid;

use super::{App, AppError, Caller};

fn refused(e: DomainError) -> AppError {
    AppError::refused(String::new(), e)
}

fn marker_not_found() -> AppError {
    refused(DomainError::invalid(
        "marker",
        FieldReason::NotFound,
        "invalid filter marker! Marker not found.",
    ))
}

pub async fn volume(app: &App, caller: &Caller, raw_id: &str) -> Result<VolumeRow, AppError> {
    let not_found = || refused(DomainError::VolumeNotFound(raw_id.to_string()));
    let id = crate::input::uuid(raw_id).ok_or_else(not_found)?;
    match app
        .read(move |c| projections::volumes::get(c, &id.to_string()))
        .await?
    {
        Some(v) if caller.owns(&v.project_id) => Ok(v),
        _ => Err(not_found()),
    }
}

/// One page and whether more follow.
pub async fn volumes(app: &App, q: ListQuery) -> Result<(Vec<VolumeRow>, bool), AppError> {
    match app
        .read(move |c| Ok(projections::volumes::list(c, &q)))
        .await?
    {
        Ok(page) => Ok(page),
        Err(projections::volumes::ListError::MarkerNotFound(_)) => Err(marker_not_found()),
        Err(projections::volumes::ListError::Sqlite(e)) => Err(e.into()),
    }
}

pub async fn snapshot(app: &App, caller: &Caller, raw: &str) -> Result<SnapshotRow, AppError> {
    let not_found = || refused(DomainError::SnapshotNotFound(raw.to_string()));
    let id = crate::input::uuid(raw).ok_or_else(not_found)?;
    match app
        .read(move |c| projections::snapshots::get(c, &id.to_string()))
        .await?
    {
        Some(s) if caller.owns(&s.project_id) => Ok(s),
        _ => Err(not_found()),
    }
}

pub async fn snapshots(app: &App, q: SnapshotQuery) -> Result<(Vec<SnapshotRow>, bool), AppError> {
    app.read(move |c| projections::snapshots::list(c, &q))
        .await?
        .ok_or_else(marker_not_found)
}

pub async fn transfer(app: &App, caller: &Caller, id: Uuid) -> Result<TransferRow, AppError> {
    match app
        .read(move |c| projections::transfers::get(c, &id.to_string()))
        .await?
    {
        Some(t) if caller.owns(&t.project_id) => Ok(t),
        _ => Err(refused(DomainError::TransferNotFound(id.to_string()))),
    }
}

/// None when the query's marker names no visible transfer.
pub async fn transfers(
    app: &App,
    q: projections::transfers::TransferQuery,
) -> Result<Option<Vec<TransferRow>>, AppError> {
    app.read(move |c| projections::transfers::list(c, &q)).await
}

/// An image the caller may read: its own, or a public one.
pub async fn image(app: &App, caller: &Caller, raw: &str) -> Result<ImageRow, AppError> {
    let not_found = || refused(DomainError::ImageNotFound(raw.to_string()));
    let id = crate::input::uuid(raw).ok_or_else(not_found)?;
    match app
        .read(move |c| projections::images::get(c, &id.to_string()))
        .await?
    {
        Some(i)
            if caller.owns(&i.project_id)
                || i.visibility == projections::images::Visibility::Public =>
        {
            Ok(i)
        }
        _ => Err(not_found()),
    }
}

pub async fn images(
    app: &App,
    q: projections::images::ImageQuery,
) -> Result<(Vec<ImageRow>, bool), AppError> {
    app.read(move |c| projections::images::list(c, &q))
        .await?
        .ok_or_else(marker_not_found)
}

/// A job of a project the caller may see; `None` otherwise.
pub async fn job(app: &App, caller: &Caller, id: String) -> Result<Option<JobRow>, AppError> {
    Ok(app
        .read(move |c| projections::jobs::get(c, &id))
        .await?
        .filter(|j| caller.owns(&j.project_id)))
}

/// A project's limits and usage by quota key.
pub async fn quota(
    app: &App,
    project: String,
) -> Result<
    (
        std::collections::BTreeMap<String, i64>,
        std::collections::BTreeMap<String, i64>,
    ),
    AppError,
> {
    app.read(move |c| {
        Ok((
            projections::quotas::limits(c, &project)?,
            projections::quotas::usage(c, &project)?,
        ))
    })
    .await
}

/// A quota class's own limits (built-in defaults apply to the rest).
pub async fn quota_class(
    app: &App,
    class_name: String,
) -> Result<std::collections::BTreeMap<String, i64>, AppError> {
    app.read(move |c| projections::quotas::class_limits(c, &class_name))
        .await
}

/// Per project, the volumes on one backend and their snapshots.
pub async fn usage_of_backend(
    app: &App,
    backend: String,
) -> Result<Vec<projections::quotas::TypeUsage>, AppError> {
    app.read(move |c| projections::backends::usage_of_backend(c, &backend))
        .await
}

/// The audit trail: events after `after`, of one stream or all, at most
/// `limit`. Admin only.
pub async fn events(
    app: &App,
    caller: &Caller,
    after: u64,
    stream: Option<String>,
    limit: usize,
) -> Result<Vec<eventstore::RecordedEvent>, AppError> {
    if !caller.is_admin {
        return Err(refused(DomainError::NotPermitted(
            "the audit trail is admin only.".into(),
        )));
    }
    Ok(match stream {
        Some(s) => app.store.read_stream_after_async(&s, after, limit).await?,
        None => app.store.read_from_async(after, limit).await?,
    })
}

pub async fn gauges(app: &App) -> Result<projections::metrics::Gauges, AppError> {
    app.read(projections::metrics::gauges).await
}

/// Every volume of the caller's project, oldest first, optionally in one
/// zone (an unknown zone is refused).
pub async fn volumes_in_zone(
    app: &App,
    caller: &Caller,
    zone: Option<String>,
) -> Result<Vec<VolumeRow>, AppError> {
    if let Some(z) = &zone {
        app.catalog.resolve_zone(Some(z)).map_err(refused)?;
    }
    let q = ListQuery {
        project_id: Some(caller.project_id.clone()),
        availability_zone: zone,
        limit: ALL,
        sort_key: projections::SortKey::CreatedAt,
        sort_dir: projections::SortDir::Asc,
        ..ListQuery::default()
    };
    Ok(volumes(app, q).await?.0)
}

/// No page limit: a whole project's list (its size is bounded by quota).
const ALL: usize = (i64::MAX - 1) as usize;

/// Every snapshot of the caller's project in `zone`, oldest first, each
/// with its source volume.
pub async fn snapshots_in_zone(
    app: &App,
    caller: &Caller,
    zone: String,
) -> Result<Vec<(SnapshotRow, Option<VolumeRow>)>, AppError> {
    app.catalog.resolve_zone(Some(&zone)).map_err(refused)?;
    let project = caller.project_id.clone();
    app.read(move |c| {
        let q = SnapshotQuery {
            project_id: Some(project),
            limit: ALL,
            ..SnapshotQuery::default()
        };
        let (mut rows, _) = projections::snapshots::list(c, &q)?.unwrap_or_default();
        rows.retain(|s| s.availability_zone == zone);
        rows.reverse();
        let ids: Vec<&str> = rows.iter().map(|s| s.volume_id.as_str()).collect();
        let vols = projections::volumes::get_many(c, &ids)?;
        Ok(rows
            .into_iter()
            .map(|s| {
                let v = vols.get(&s.volume_id).cloned();
                (s, v)
            })
            .collect())
    })
    .await
}

/// How many volumes match `q`'s filters, whatever the page.
/// How many snapshots match, whatever the page (3.45's `with_count`).
pub async fn count_snapshots(
    app: &App,
    q: projections::snapshots::SnapshotQuery,
) -> Result<i64, AppError> {
    app.read(move |c| projections::snapshots::count(c, &q))
        .await
}

pub async fn count_volumes(app: &App, q: ListQuery) -> Result<i64, AppError> {
    app.read(move |c| projections::volumes::count(c, &q)).await
}

/// One page of snapshots with their chain facts, and the number of matches.
pub async fn snapshot_chains(
    app: &App,
    q: projections::snapshots::ChainQuery,
) -> Result<(Vec<projections::snapshots::SnapshotInChain>, i64), AppError> {
    app.read(move |c| projections::snapshots::list_in_chains(c, &q))
        .await
}

/// Which snapshots `snapshots_in_chains` answers; every filter optional
/// and exact.
#[derive(Debug, Clone, Default)]
pub struct ChainFilter {
    /// Any of these ids (empty: any).
    pub ids: Vec<Uuid>,
    pub volume_id: Option<Uuid>,
    pub name: Option<String>,
}

/// The caller's project's snapshots matching `f`, newest first, each with
/// its place in its volume's chain and its source volume.
pub async fn snapshots_in_chains(
    app: &App,
    caller: &Caller,
    f: ChainFilter,
) -> Result<Vec<(projections::snapshots::SnapshotInChain, Option<VolumeRow>)>, AppError> {
    let project = caller.project_id.clone();
    app.read(move |c| {
        let q = projections::snapshots::ChainQuery {
            project_id: Some(project),
            ids: f.ids.iter().map(Uuid::to_string).collect(),
            volume_id: f.volume_id.map(|v| v.to_string()),
            limit: ALL,
            ..Default::default()
        };
        let (mut rows, _) = projections::snapshots::list_in_chains(c, &q)?;
        if let Some(name) = &f.name {
            rows.retain(|r| r.snapshot.name.as_deref() == Some(name.as_str()));
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.snapshot.volume_id.as_str()).collect();
        let vols = projections::volumes::get_many(c, &ids)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let v = vols.get(&r.snapshot.volume_id).cloned();
                (r, v)
            })
            .collect())
    })
    .await
}

/// One snapshot the caller may see, with its chain facts and its volume.
pub async fn snapshot_in_chain(
    app: &App,
    caller: &Caller,
    id: Uuid,
) -> Result<(projections::snapshots::SnapshotInChain, Option<VolumeRow>), AppError> {
    let not_found = || refused(DomainError::SnapshotNotFound(id.simple().to_string()));
    let row = app
        .read(move |c| {
            let q = projections::snapshots::ChainQuery {
                ids: vec![id.to_string()],
                limit: 1,
                ..Default::default()
            };
            let (rows, _) = projections::snapshots::list_in_chains(c, &q)?;
            match rows.into_iter().next() {
                Some(r) => {
                    let v = projections::volumes::get(c, &r.snapshot.volume_id)?;
                    Ok(Some((r, v)))
                }
                None => Ok(None),
            }
        })
        .await?;
    match row {
        Some((r, v)) if caller.owns(&r.snapshot.project_id) => Ok((r, v)),
        _ => Err(not_found()),
    }
}

/// Cinder's volume summary (3.12/3.36) for the volumes `q` selects.
pub async fn volume_summary(
    app: &App,
    q: ListQuery,
) -> Result<(i64, i64, std::collections::BTreeMap<String, Vec<String>>), AppError> {
    app.read(move |c| projections::volumes::summary(c, &q))
        .await
}
