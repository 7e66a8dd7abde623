//! Read models. Each view is a fold over the log with its own tables,
//! maintained inline in the append transaction (read-your-writes) and
//! rebuildable from position 0 (`blockledger replay`, `blockledger verify`).

use std::sync::Arc;

use eventstore::rusqlite::{self, types::ValueRef, Connection};
use eventstore::InlineProjection;

pub mod jobs;
pub mod time;
pub mod volumes;

pub use jobs::{JobRow, JobsProjection};
pub use volumes::{ListQuery, SortDir, SortKey, VolumeRow, VolumesProjection};

/// Every inline projection, in the order they are applied.
pub fn all() -> Vec<Arc<dyn InlineProjection>> {
    vec![Arc::new(VolumesProjection), Arc::new(JobsProjection)]
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

/// Decodes a stored event of the volume stream, or None for other streams.
pub(crate) fn volume_event(ev: &eventstore::RecordedEvent) -> Option<domain::VolumeEvent> {
    if !ev.stream_id.starts_with("volume-") {
        return None;
    }
    serde_json::from_value(serde_json::json!({"type": ev.event_type, "data": ev.data})).ok()
}
