//! What `/metrics` shows from the database: the log's head, every
//! subscriber's durable checkpoint and the views' sizes by status.

use rusqlite::Connection;

pub struct Gauges {
    pub head: i64,
    pub executor_checkpoint: i64,
    /// (subscriber, durable checkpoint) of every subscriber that saved
    /// one, by name.
    pub checkpoints: Vec<(String, i64)>,
    /// (view, status, count), ordered.
    pub by_status: Vec<(&'static str, String, i64)>,
}

pub fn gauges(c: &Connection) -> rusqlite::Result<Gauges> {
    let head: i64 = c
        .prepare_cached("SELECT COALESCE(MAX(position), 0) FROM events")?
        .query_row([], |r| r.get(0))?;
    let executor_checkpoint: i64 = c
        .prepare_cached(
            "SELECT COALESCE(MAX(position), 0) FROM checkpoints WHERE name = 'executor'",
        )?
        .query_row([], |r| r.get(0))?;
    let checkpoints = {
        let mut stmt = c.prepare("SELECT name, position FROM checkpoints ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut by_status = Vec::new();
    for table in ["volumes", "snapshots", "images"] {
        let mut stmt = c.prepare(&format!(
            "SELECT status, COUNT(*) FROM {table} GROUP BY status ORDER BY status"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, n) = row?;
            by_status.push((table, status, n));
        }
    }
    Ok(Gauges {
        head,
        executor_checkpoint,
        checkpoints,
        by_status,
    })
}
