//! Read models. Each view is a fold over the log with its own tables,
//! maintained inline in the append transaction (read-your-writes) and
//! rebuildable from position 0 (`blockledger replay`, `blockledger verify`).

use std::sync::Arc;

use eventstore::rusqlite::{self, types::ValueRef, Connection};
use eventstore::InlineProjection;

pub mod images;
pub mod jobs;
pub mod metrics;
pub mod quotas;
pub mod snapshots;
pub mod time;
pub mod transfers;
pub mod volumes;

pub use jobs::{JobRow, JobsProjection};
pub use snapshots::{SnapshotRow, SnapshotsProjection};
pub use volumes::{ListQuery, SortDir, SortKey, VolumeRow, VolumesProjection};

/// Every inline projection, in the order they are applied.
pub fn all() -> Vec<Arc<dyn InlineProjection>> {
    vec![
        Arc::new(VolumesProjection),
        Arc::new(JobsProjection),
        Arc::new(SnapshotsProjection),
        Arc::new(quotas::QuotasProjection),
        Arc::new(transfers::TransfersProjection),
        Arc::new(images::ImagesProjection),
    ]
}

/// A list query under construction: optional filters become numbered
/// parameters, never text spliced into SQL; the page fetches one row more
/// than asked to tell whether more remain.
pub(crate) struct Filter {
    sql: String,
    args: Vec<rusqlite::types::Value>,
}

impl Filter {
    pub(crate) fn new(select: String) -> Self {
        Filter {
            sql: format!("{select} WHERE 1=1"),
            args: Vec::new(),
        }
    }

    /// Appends `clause`, whose `?` is bound to `v`.
    pub(crate) fn and(&mut self, clause: &str, v: impl Into<rusqlite::types::Value>) {
        self.and_all(clause, [v.into()]);
    }

    /// Appends `clause`; its `?`s are bound to `values`, in order.
    pub(crate) fn and_all(
        &mut self,
        clause: &str,
        values: impl IntoIterator<Item = rusqlite::types::Value>,
    ) {
        let mut values = values.into_iter();
        let mut out = String::from(" AND ");
        for c in clause.chars() {
            if c == '?' {
                if let Some(v) = values.next() {
                    self.args.push(v);
                }
                out.push_str(&format!("?{}", self.args.len()));
            } else {
                out.push(c);
            }
        }
        self.sql.push_str(&out);
    }

    /// `column = value` when a value is given.
    pub(crate) fn eq(&mut self, column: &str, v: Option<&String>) {
        if let Some(v) = v {
            self.and(&format!("{column} = ?"), v.clone());
        }
    }

    /// Runs the query with `order` and returns one page and whether more remain.
    pub(crate) fn page<T>(
        mut self,
        conn: &Connection,
        order: &str,
        limit: usize,
        offset: usize,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<(Vec<T>, bool)> {
        self.sql.push_str(&format!(
            " ORDER BY {order} LIMIT {} OFFSET {offset}",
            limit.saturating_add(1)
        ));
        let mut stmt = conn.prepare(&self.sql)?;
        let mut rows: Vec<T> = stmt
            .query_map(rusqlite::params_from_iter(self.args), map)?
            .collect::<Result<_, _>>()?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }
}

/// Every row of `table` as canonical text, ordered by `order_by`: what
/// `verify` compares between the stored view and a fresh replay.
pub(crate) fn dump_table(
    conn: &Connection,
    table: &str,
    order_by: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order_by}"))?;
    let cols = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(cols);
        for i in 0..cols {
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(f) => f.to_string(),
                ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => format!("blob:{}", b.len()),
            });
        }
        out.push(format!("{table}: {}", cells.join(" | ")));
    }
    Ok(out)
}

/// Decodes a stored event of a snapshot stream, or None for other streams.
pub(crate) fn snapshot_event(ev: &eventstore::RecordedEvent) -> Option<domain::SnapshotEvent> {
    if !ev.stream_id.starts_with("snapshot-") {
        return None;
    }
    serde_json::from_value(serde_json::json!({"type": ev.event_type, "data": ev.data})).ok()
}

/// Decodes a stored event of the volume stream, or None for other streams.
pub(crate) fn volume_event(ev: &eventstore::RecordedEvent) -> Option<domain::VolumeEvent> {
    if !ev.stream_id.starts_with("volume-") {
        return None;
    }
    serde_json::from_value(serde_json::json!({"type": ev.event_type, "data": ev.data})).ok()
}

#[cfg(test)]
mod tests {
    //! Replay equals live: the views built event by event in the append
    //! transactions equal the views rebuilt from position 0.
    use domain::{CreateVolume, VolumeAggregate, VolumeCommand, WorkKind};
    use serde_json::json;

    #[test]
    fn replay_equals_live() {
        let tmp = tempfile::tempdir().unwrap();
        let store = eventstore::EventStore::open(&tmp.path().join("t.db"), super::all()).unwrap();
        let meta = json!({"project_id": "p1"});
        let ids: Vec<String> = (0..5).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        for (i, id) in ids.iter().enumerate() {
            let cmds = vec![
                VolumeCommand::Create(Box::new(CreateVolume {
                    volume_id: id.parse().unwrap(),
                    project_id: "p1".into(),
                    user_id: "u".into(),
                    name: Some(format!("v{i}")),
                    description: None,
                    size: 1 + i as i64,
                    availability_zone: "az-dc-1".into(),
                    volume_type: "SSD".into(),
                    metadata: Default::default(),
                    multiattach: false,
                    job_id: Some(format!("{:032x}", i)),
                    batch_job_id: None,
                    source: None,
                    quota: domain::quota::Headroom::unlimited(),
                })),
                VolumeCommand::StartWork {
                    kind: WorkKind::Create,
                },
                VolumeCommand::CompleteWork {
                    kind: WorkKind::Create,
                },
                VolumeCommand::Extend {
                    new_size: 10,
                    job_id: None,
                    quota: domain::quota::Headroom::unlimited(),
                    policy: domain::volume::ExtendPolicy::OPEN,
                },
                VolumeCommand::FailWork {
                    kind: WorkKind::Extend,
                    reason: "x".into(),
                },
                VolumeCommand::Update {
                    name: Some("renamed".into()),
                    description: None,
                    metadata: None,
                },
                VolumeCommand::Delete {
                    job_id: Some(format!("{:032x}", 100 + i)),
                    dependent_snapshots: 0,
                },
            ];
            let n = if i % 2 == 0 { cmds.len() } else { 4 };
            for cmd in cmds.into_iter().take(n) {
                let (id, meta) = (id.clone(), meta.clone());
                store
                    .write_blocking(move |tx| tx.execute::<VolumeAggregate>(&id, cmd, &meta))
                    .unwrap()
                    .unwrap();
            }
        }
        assert_eq!(store.verify_projections().unwrap(), None);
        let live: Vec<Vec<String>> = super::all()
            .iter()
            .map(|p| store.read(|c| p.dump(c)).unwrap())
            .collect();
        store.rebuild_projections().unwrap();
        let replayed: Vec<Vec<String>> = super::all()
            .iter()
            .map(|p| store.read(|c| p.dump(c)).unwrap())
            .collect();
        assert_eq!(live, replayed);
        assert_eq!(live[0].len(), 5, "five volumes, none deleted yet");
        assert_eq!(live[1].len(), 8, "five create jobs, three delete jobs");
    }
}
