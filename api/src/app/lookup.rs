//! Resolving a client's reference to a volume or snapshot before a command
//! runs. The small provider names volumes by a number (the log position of
//! the volume's creation, `projections::volumes::get_by_seq`) as well as by
//! UUID; every use case takes the UUID. A reference that names nothing the
//! caller may touch (missing, deleted, another project's, not an id at all)
//! is refused exactly like a missing object, with the client's own words in
//! the message (never another project's UUID), and recorded as
//! `CommandRejected`, as any refused command is.

use domain::{Aggregate, DomainError, SnapshotAggregate, VolumeAggregate};
use projections::snapshots::SnapshotRow;
use projections::VolumeRow;
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

/// How a client names a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeRef {
    /// The numeric id: the log position of the volume's creation event.
    Seq(i64),
    Id(Uuid),
    /// Neither: it cannot name any volume.
    Invalid,
}

impl VolumeRef {
    /// Canonical spellings only (issue 15 item 4): the sequence number as
    /// decimal digits without a leading zero, or the lowercase hyphenated
    /// UUID; padding, signs and other UUID spellings name nothing.
    pub fn parse(raw: &str) -> VolumeRef {
        if !raw.is_empty()
            && raw.len() <= 18
            && !raw.starts_with('0')
            && raw.bytes().all(|b| b.is_ascii_digit())
        {
            return raw
                .parse()
                .map(VolumeRef::Seq)
                .unwrap_or(VolumeRef::Invalid);
        }
        crate::input::uuid(raw)
            .map(VolumeRef::Id)
            .unwrap_or(VolumeRef::Invalid)
    }
}

/// The live volume `r` names, whoever owns it.
async fn find_volume(app: &App, r: VolumeRef) -> Result<Option<VolumeRow>, AppError> {
    match r {
        VolumeRef::Seq(n) => {
            app.read(move |c| projections::volumes::get_by_seq(c, n))
                .await
        }
        VolumeRef::Id(id) => {
            app.read(move |c| projections::volumes::get(c, &id.to_string()))
                .await
        }
        VolumeRef::Invalid => Ok(None),
    }
}

fn shown(raw: &str) -> String {
    raw.chars().take(64).collect()
}

/// The volume `raw` names, if the caller may see it (a read: a refusal is
/// not recorded).
pub async fn volume_row(app: &App, caller: &Caller, raw: &str) -> Result<VolumeRow, AppError> {
    match find_volume(app, VolumeRef::parse(raw)).await? {
        Some(v) if caller.owns(&v.project_id) => Ok(v),
        _ => Err(AppError::refused(
            String::new(),
            DomainError::VolumeNotFound(shown(raw)),
        )),
    }
}

/// The UUID of the volume `raw` names, for a command; a refusal is recorded.
pub async fn volume(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: &str,
) -> Result<Uuid, AppError> {
    let found = find_volume(app, VolumeRef::parse(raw)).await?;
    match found {
        Some(v) if caller.owns(&v.project_id) => Uuid::parse_str(&v.id)
            .map_err(|e| AppError::Store(eventstore::StoreError::Batch(e.to_string()))),
        other => {
            let stream = match other {
                Some(v) => VolumeAggregate::stream_id(&v.id),
                None => VolumeAggregate::stream_id(&shown(raw)),
            };
            Err(app
                .refuse(
                    caller,
                    meta,
                    stream,
                    DomainError::VolumeNotFound(shown(raw)),
                )
                .await)
        }
    }
}

/// The snapshot `raw` names if the caller may see it and, when `zone` is
/// given, it lies in that zone (a read: a refusal is not recorded).
pub async fn snapshot_row(
    app: &App,
    caller: &Caller,
    raw: &str,
    zone: Option<&str>,
) -> Result<SnapshotRow, AppError> {
    if let Some(z) = zone {
        app.catalog
            .resolve_zone(Some(z))
            .map_err(|e| AppError::refused(String::new(), e))?;
    }
    let row = match crate::input::uuid(raw) {
        Some(id) => {
            app.read(move |c| projections::snapshots::get(c, &id.to_string()))
                .await?
        }
        None => None,
    };
    match row {
        Some(s) if caller.owns(&s.project_id) && zone.is_none_or(|z| z == s.availability_zone) => {
            Ok(s)
        }
        _ => Err(AppError::refused(
            String::new(),
            DomainError::SnapshotNotFound(shown(raw)),
        )),
    }
}

/// The UUID of the snapshot `raw` names, for a command; a refusal is
/// recorded.
pub async fn snapshot(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: &str,
    zone: Option<&str>,
) -> Result<Uuid, AppError> {
    match snapshot_row(app, caller, raw, zone).await {
        Ok(s) => Uuid::parse_str(&s.id)
            .map_err(|e| AppError::Store(eventstore::StoreError::Batch(e.to_string()))),
        Err(AppError::Refused(r)) => {
            let stream = SnapshotAggregate::stream_id(&shown(raw));
            Err(app.refuse(caller, meta, stream, r.error).await)
        }
        Err(e) => Err(e),
    }
}
