use eventstore::rusqlite::{self, params, Connection};
use eventstore::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// Counts events per stream in its own table.
struct Counts;

impl InlineProjection for Counts {
    fn name(&self) -> &'static str {
        "counts"
    }
    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS test_counts (stream_id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    }
    fn apply(&self, conn: &Connection, e: &RecordedEvent) -> rusqlite::Result<()> {
        conn.execute(
            "INSERT INTO test_counts (stream_id, n) VALUES (?1, 1) ON CONFLICT(stream_id) DO UPDATE SET n = n + 1",
            [&e.stream_id],
        )
        .map(drop)
    }
    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DELETE FROM test_counts")
    }
    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut s = conn.prepare("SELECT stream_id, n FROM test_counts ORDER BY stream_id")?;
        let rows = s.query_map([], |r| {
            Ok(format!(
                "{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?
            ))
        })?;
        rows.collect()
    }
}

fn open(path: &Path) -> EventStore {
    EventStore::open(path, vec![Arc::new(Counts)]).unwrap()
}

fn ev(t: &str, data: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: t.into(),
        v: 1,
        data,
        metadata: json!({"request_id": "r1"}),
    }
}

fn append(
    s: &EventStore,
    stream: &str,
    exp: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let stream = stream.to_owned();
    s.write_blocking(move |tx| tx.append(&stream, exp, events))
}

fn count(s: &EventStore, stream: &str) -> Option<i64> {
    s.read(|c| {
        use rusqlite::OptionalExtension;
        c.query_row(
            "SELECT n FROM test_counts WHERE stream_id = ?1",
            [stream],
            |r| r.get(0),
        )
        .optional()
    })
    .unwrap()
}

#[test]
fn append_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    assert_eq!(s.head().unwrap(), 0);
    let a = append(
        &s,
        "volume-a",
        ExpectedVersion::NoStream,
        vec![
            ev("Created", json!({"size": 1.1})),
            ev("Grown", json!({"size": 2})),
        ],
    )
    .unwrap();
    let b = append(
        &s,
        "volume-b",
        ExpectedVersion::Any,
        vec![ev("Created", json!({"z": 1, "a": [1, {"y": null}]}))],
    )
    .unwrap();
    assert_eq!((a[0].position, a[1].position, b[0].position), (1, 2, 3));
    assert_eq!(
        (
            a[0].stream_version,
            a[1].stream_version,
            b[0].stream_version
        ),
        (1, 2, 1)
    );
    // What append returned is exactly what is read back (incl. recorded_at to the microsecond).
    assert_eq!(s.read_stream("volume-a").unwrap(), a);
    assert_eq!(s.read_stream("nope").unwrap(), vec![]);
    let all = s.read_from(0, 100).unwrap();
    assert_eq!(all, [a.clone(), b.clone()].concat());
    assert_eq!(s.read_from(1, 1).unwrap(), vec![a[1].clone()]);
    assert_eq!(s.head().unwrap(), 3);
    assert_eq!(a[0].recorded_at.timestamp_subsec_nanos() % 1000, 0);
    let raw: String = s
        .read(|c| {
            c.query_row(
                "SELECT recorded_at FROM events WHERE position = 1",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(
        raw,
        a[0].recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    assert_eq!(raw.len(), "2024-01-01T00:00:00.000000Z".len());
    let mode: String = s
        .read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(mode, "wal");
    // Empty append writes nothing.
    assert_eq!(
        append(&s, "volume-a", ExpectedVersion::Exact(99), vec![]).unwrap(),
        vec![]
    );
}

#[test]
fn version_conflict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    append(&s, "s", ExpectedVersion::NoStream, vec![ev("A", json!({}))]).unwrap();
    for exp in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        match append(&s, "s", exp, vec![ev("B", json!({})), ev("C", json!({}))]) {
            Err(StoreError::VersionConflict {
                stream_id,
                expected,
                actual,
            }) => {
                assert_eq!((stream_id.as_str(), expected, actual), ("s", exp, 1))
            }
            other => panic!("expected conflict, got {other:?}"),
        }
    }
    assert_eq!(s.head().unwrap(), 1);
    assert_eq!(count(&s, "s"), Some(1));
    let r = append(&s, "s", ExpectedVersion::Exact(1), vec![ev("B", json!({}))]).unwrap();
    assert_eq!(r[0].stream_version, 2);
}

#[test]
fn idempotent_append_by_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    let (e1, e2) = (ev("A", json!({"k": 1})), ev("B", json!({"k": 2})));
    let ids = [e1.event_id, e2.event_id];
    let first = append(&s, "s", ExpectedVersion::NoStream, vec![e1, e2]).unwrap();
    let again = |exp| {
        let evs = ids
            .iter()
            .map(|id| NewEvent {
                event_id: *id,
                ..ev("X", json!({"other": true}))
            })
            .collect();
        append(&s, "s", exp, evs).unwrap()
    };
    // Retried with a now-stale expected version: same answer, no conflict, no write.
    assert_eq!(again(ExpectedVersion::NoStream), first);
    assert_eq!(again(ExpectedVersion::Any), first);
    assert_eq!(s.head().unwrap(), 2);
    assert_eq!(count(&s, "s"), Some(2));
}

#[test]
fn raw_update_and_delete_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("es.db");
    let s = open(&path);
    append(&s, "s", ExpectedVersion::Any, vec![ev("A", json!({}))]).unwrap();
    let raw = Connection::open(&path).unwrap();
    let e = raw
        .execute("UPDATE events SET data = '{}'", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = raw.execute("DELETE FROM events", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert_eq!(s.read_from(0, 10).unwrap().len(), 1);
}

/// Drops the update trigger and runs `sql` against the raw file.
fn tamper(path: &Path, sql: &str) {
    let raw = Connection::open(path).unwrap();
    raw.execute_batch("DROP TRIGGER events_no_update").unwrap();
    raw.execute_batch(sql).unwrap();
}

#[test]
fn verify_chain_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("es.db");
    let s = open(&path);
    for i in 0..5 {
        append(
            &s,
            &format!("s{}", i % 2),
            ExpectedVersion::Any,
            vec![ev("A", json!({"i": i, "f": 0.1 + i as f64}))],
        )
        .unwrap();
    }
    assert_eq!(
        s.verify_chain().unwrap(),
        ChainReport {
            events: 5,
            first_bad: None
        }
    );
    // Semantically equal JSON with different formatting still verifies (re-parsed Values).
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch("DROP TRIGGER events_no_update").unwrap();
    raw.execute(
        "UPDATE events SET metadata = ' { \"request_id\" : \"r1\" } ' WHERE position = 2",
        [],
    )
    .unwrap();
    assert_eq!(s.verify_chain().unwrap().first_bad, None);
    raw.execute(
        "UPDATE events SET data = '{\"i\":2,\"f\":2.2,\"x\":1}' WHERE position = 3",
        [],
    )
    .unwrap();
    let r = s.verify_chain().unwrap();
    assert_eq!(r.events, 5);
    assert_eq!(r.first_bad.as_ref().map(|b| b.0), Some(3), "{r:?}");
    // A type change further down is not reported before the first bad row.
    raw.execute("UPDATE events SET event_type = 'B' WHERE position = 4", [])
        .unwrap();
    assert_eq!(s.verify_chain().unwrap().first_bad.unwrap().0, 3);
}

#[test]
fn verify_chain_detects_type_change_and_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("es.db");
    let s = open(&path);
    for _ in 0..3 {
        append(&s, "s", ExpectedVersion::Any, vec![ev("A", json!({}))]).unwrap();
    }
    tamper(
        &path,
        "UPDATE events SET event_type = 'a' WHERE position = 2",
    );
    assert_eq!(s.verify_chain().unwrap().first_bad.unwrap().0, 2);
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch("UPDATE events SET data = '{oops' WHERE position = 1")
        .unwrap();
    let (pos, reason) = s.verify_chain().unwrap().first_bad.unwrap();
    assert_eq!(pos, 1);
    assert!(reason.contains("JSON"), "{reason}");
}

#[test]
fn reopen_continues_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("es.db");
    let old = {
        let s = open(&path);
        append(
            &s,
            "s",
            ExpectedVersion::Any,
            vec![ev("A", json!({"a": 1})), ev("B", json!({}))],
        )
        .unwrap()
        // dropped here: the writer thread stops
    };
    let s = open(&path);
    assert_eq!(s.head().unwrap(), 2);
    let new = append(
        &s,
        "s",
        ExpectedVersion::Exact(2),
        vec![ev("C", json!({"b": [1, 2]}))],
    )
    .unwrap();
    let e = &new[0];
    assert_eq!((e.position, e.stream_version), (3, 3));
    // Recompute independently from the documented formula.
    let canon = serde_json::to_vec(&json!({
        "position": e.position, "stream_id": e.stream_id, "stream_version": e.stream_version,
        "event_id": e.event_id.to_string(), "type": e.event_type, "v": e.v, "data": e.data,
        "metadata": e.metadata,
        "recorded_at": e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    }))
    .unwrap();
    let mut h = Sha256::new();
    h.update(old[1].hash.as_bytes());
    h.update(&canon);
    assert_eq!(e.hash, hex::encode(h.finalize()));
    assert_eq!(
        s.verify_chain().unwrap(),
        ChainReport {
            events: 3,
            first_bad: None
        }
    );
}

#[derive(Debug)]
enum AppErr {
    Store(StoreError),
    Rejected(usize),
}
impl From<StoreError> for AppErr {
    fn from(e: StoreError) -> Self {
        AppErr::Store(e)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_jobs_in_a_batch_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    // Hold the writer briefly so the following jobs queue up into one batch.
    let blocker = s.write(|_tx| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        Ok::<_, StoreError>(())
    });
    let mut tasks = vec![];
    for i in 0..60usize {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.write(move |tx| {
                // All on one shared stream too: each job sees its predecessors' writes.
                tx.append(
                    "shared",
                    ExpectedVersion::Any,
                    vec![ev("S", json!({"i": i}))],
                )?;
                tx.append(
                    &format!("job-{i}"),
                    ExpectedVersion::NoStream,
                    vec![ev("J", json!({}))],
                )?;
                match i % 3 {
                    0 => Err(AppErr::Rejected(i)),
                    1 if i % 2 == 1 && i < 10 => panic!("job {i} blew up"),
                    _ => Ok(i),
                }
            })
            .await
        }));
    }
    blocker.await.unwrap();
    let mut ok = vec![];
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(v) => ok.push(v),
            Err(AppErr::Rejected(j)) => assert_eq!(i, j),
            Err(AppErr::Store(StoreError::Panicked(m))) => assert!(m.contains("blew up"), "{m}"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let expected_ok: Vec<usize> = (0..60)
        .filter(|i| i % 3 != 0 && !(i % 3 == 1 && i % 2 == 1 && *i < 10))
        .collect();
    assert_eq!(ok, expected_ok);
    for i in 0..60 {
        let n = s.read_stream(&format!("job-{i}")).unwrap().len();
        assert_eq!(n, usize::from(expected_ok.contains(&i)), "job {i}");
    }
    let shared = s.read_stream("shared").unwrap();
    assert_eq!(shared.len(), expected_ok.len());
    assert!(shared
        .iter()
        .enumerate()
        .all(|(k, e)| e.stream_version == k as u64 + 1));
    assert_eq!(s.head().unwrap(), 2 * expected_ok.len() as u64);
    assert_eq!(
        s.verify_chain().unwrap(),
        ChainReport {
            events: 2 * expected_ok.len() as u64,
            first_bad: None
        }
    );
    assert_eq!(count(&s, "shared"), Some(expected_ok.len() as i64));
    assert_eq!(s.verify_projections().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_nostream_only_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    let mut tasks = vec![];
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.write(|tx| {
                tx.append(
                    "volume-x",
                    ExpectedVersion::NoStream,
                    vec![ev("Created", json!({}))],
                )
            })
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::VersionConflict { actual: 1, .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn subscribe_sees_head_advance() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    let mut rx = s.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    s.write(|tx| {
        tx.append(
            "s",
            ExpectedVersion::Any,
            vec![ev("A", json!({})), ev("B", json!({}))],
        )
    })
    .await
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*rx.borrow_and_update(), 2);
    // Read-your-writes: the read connection already sees the commit.
    assert_eq!(s.read_stream("s").unwrap().len(), 2);
    assert_eq!(count(&s, "s"), Some(2));
}

#[test]
fn checkpoints_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("es.db");
    {
        let s = open(&path);
        assert_eq!(s.checkpoint("executor").unwrap(), 0);
        s.save_checkpoint("executor", 7).unwrap();
        s.save_checkpoint("executor", 9).unwrap();
        s.save_checkpoint("other", 1).unwrap();
        assert_eq!(s.checkpoint("executor").unwrap(), 9);
        s.close();
        assert!(matches!(s.save_checkpoint("x", 1), Err(StoreError::Closed)));
    }
    let s = open(&path);
    assert_eq!(
        (
            s.checkpoint("executor").unwrap(),
            s.checkpoint("other").unwrap()
        ),
        (9, 1)
    );
}

#[test]
fn projection_inline_rebuild_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("es.db");
    let s = open(&path);
    for i in 0..7 {
        append(
            &s,
            &format!("s{}", i % 3),
            ExpectedVersion::Any,
            vec![ev("A", json!({}))],
        )
        .unwrap();
    }
    // A job that appends then fails leaves the projection untouched too.
    let r: Result<(), AppErr> = s.write_blocking(|tx| {
        tx.append("s0", ExpectedVersion::Any, vec![ev("A", json!({}))])?;
        Err(AppErr::Rejected(0))
    });
    assert!(matches!(r, Err(AppErr::Rejected(0))));
    assert_eq!(
        (count(&s, "s0"), count(&s, "s1"), count(&s, "s2")),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(s.verify_projections().unwrap(), None);
    assert_eq!(s.rebuild_projections().unwrap(), 7);
    assert_eq!(s.verify_projections().unwrap(), None);

    let raw = Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE test_counts SET n = 99 WHERE stream_id = 's1'",
        params![],
    )
    .unwrap();
    let msg = s
        .verify_projections()
        .unwrap()
        .expect("tampering must be reported");
    assert!(
        msg.contains("counts") && msg.contains("s1|99") && msg.contains("s1|2"),
        "{msg}"
    );
    raw.execute("DELETE FROM test_counts WHERE stream_id = 's2'", params![])
        .unwrap();
    raw.execute(
        "UPDATE test_counts SET n = 2 WHERE stream_id = 's1'",
        params![],
    )
    .unwrap();
    let msg = s
        .verify_projections()
        .unwrap()
        .expect("missing row must be reported");
    assert!(msg.contains("<no row>"), "{msg}");

    assert_eq!(s.rebuild_projections().unwrap(), 7);
    assert_eq!(s.verify_projections().unwrap(), None);
    assert_eq!(count(&s, "s1"), Some(2));
}

#[test]
fn writer_survives_panic_and_drains_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    let r: Result<(), StoreError> = s.write_blocking(|_| panic!("boom"));
    assert!(matches!(r, Err(StoreError::Panicked(ref m)) if m == "boom"));
    append(&s, "s", ExpectedVersion::Any, vec![ev("A", json!({}))]).unwrap();
    // Keep the writer busy, queue jobs behind it, then close: queued jobs still commit.
    let blocker = {
        let s = s.clone();
        std::thread::spawn(move || {
            s.write_blocking(|_| {
                std::thread::sleep(std::time::Duration::from_millis(150));
                Ok::<_, StoreError>(())
            })
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                append(&s, "t", ExpectedVersion::Any, vec![ev("A", json!({}))])
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(30));
    s.close();
    blocker.join().unwrap().unwrap();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(s.read_stream("t").unwrap().len(), 8);
    assert!(matches!(
        append(&s, "s", ExpectedVersion::Any, vec![ev("A", json!({}))]),
        Err(StoreError::Closed)
    ));
}

/// Many async reads at once all finish (the pool hands connections back and
/// wakes waiters), and a slow read holds only its own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_reads_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("es.db"));
    append(&s, "a", ExpectedVersion::Any, vec![ev("X", json!({}))]).unwrap();

    // Far more queries than pooled connections: none may deadlock.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.query(|c| c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0)))
                .await
        }));
    }
    let all = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().unwrap());
        }
        out
    })
    .await
    .expect("concurrent queries deadlocked");
    assert!(all.iter().all(|&n| n == 1));

    // A slow query holds one connection; others, async and sync, go on.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let slow = {
        let s = s.clone();
        tokio::spawn(async move {
            s.query(move |c| {
                let _ = started_tx.send(());
                std::thread::sleep(std::time::Duration::from_secs(3));
                c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
            })
            .await
        })
    };
    started_rx.await.unwrap();
    let t0 = std::time::Instant::now();
    let fast = tokio::time::timeout(std::time::Duration::from_secs(2), s.read_stream_async("a"))
        .await
        .expect("a slow query blocked another one")
        .unwrap();
    assert_eq!(fast.len(), 1);
    assert_eq!(s.read_from_async(0, 10).await.unwrap().len(), 1);
    assert_eq!(s.checkpoint_async("executor").await.unwrap(), 0);
    let s2 = s.clone();
    let sync_head = tokio::task::spawn_blocking(move || s2.head().unwrap())
        .await
        .unwrap();
    assert_eq!(sync_head, 1);
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    assert!(
        !slow.is_finished(),
        "the slow query should still be running"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 1);

    // A panicking query is an error, and its connection goes back.
    let r = s
        .query(|_| -> rusqlite::Result<()> { panic!("boom") })
        .await;
    assert!(matches!(r, Err(StoreError::Panicked(_))));
    for _ in 0..8 {
        assert_eq!(s.head().unwrap(), 1);
    }
}

/// A rebuild runs as a transaction of its own (no job savepoint): appends
/// queued around it on other threads still land whole, each in its own
/// batch or beside others, and the views then equal a replay.
#[test]
fn a_rebuild_among_concurrent_appends_loses_none_and_mixes_none() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir.path().join("es.db")));
    for i in 0..30 {
        append(
            &s,
            &format!("s{}", i % 3),
            ExpectedVersion::Any,
            vec![ev("A", json!({}))],
        )
        .unwrap();
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    append(
                        &s,
                        &format!("w{w}"),
                        ExpectedVersion::Any,
                        vec![ev("A", json!({}))],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    let mut rebuilt = Vec::new();
    for _ in 0..5 {
        rebuilt.push(s.rebuild_projections().unwrap());
    }
    for w in writers {
        w.join().unwrap();
    }
    // Each rebuild saw a whole prefix of the log, never less than before.
    assert!(rebuilt.windows(2).all(|p| p[0] <= p[1]), "{rebuilt:?}");
    assert!(rebuilt[0] >= 30);
    assert_eq!(s.head().unwrap(), 230);
    for w in 0..4 {
        assert_eq!(count(&s, &format!("w{w}")), Some(50));
    }
    assert_eq!(s.verify_projections().unwrap(), None);
    assert_eq!(s.rebuild_projections().unwrap(), 230);
}

/// Fails to apply an event of stream "poison" while armed.
struct Poisoned(std::sync::atomic::AtomicBool);

impl InlineProjection for Poisoned {
    fn name(&self) -> &'static str {
        "poisoned"
    }
    fn init_schema(&self, _: &Connection) -> rusqlite::Result<()> {
        Ok(())
    }
    fn apply(&self, _: &Connection, e: &RecordedEvent) -> rusqlite::Result<()> {
        if e.stream_id == "poison" && self.0.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(rusqlite::Error::InvalidQuery);
        }
        Ok(())
    }
    fn clear(&self, _: &Connection) -> rusqlite::Result<()> {
        Ok(())
    }
    fn dump(&self, _: &Connection) -> rusqlite::Result<Vec<String>> {
        Ok(vec![])
    }
}

/// A view that fails early in a rebuild, with thousands of events still
/// to read, fails the rebuild, leaves the views as they were (the rows
/// it cleared are back) and the store writable; the next rebuild reads
/// it all.
#[test]
fn a_rebuild_that_fails_early_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = Arc::new(Poisoned(false.into()));
    let s = EventStore::open(
        &dir.path().join("t.db"),
        vec![Arc::new(Counts), poisoned.clone()],
    )
    .unwrap();
    append(&s, "poison", ExpectedVersion::Any, vec![ev("A", json!({}))]).unwrap();
    for chunk in 0..20 {
        let events = (0..500).map(|_| ev("A", json!({}))).collect();
        append(&s, &format!("s{chunk}"), ExpectedVersion::Any, events).unwrap();
    }
    poisoned.0.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(s.rebuild_projections().is_err());
    assert_eq!(count(&s, "s19"), Some(500));
    append(&s, "s0", ExpectedVersion::Any, vec![ev("A", json!({}))]).unwrap();
    assert_eq!(count(&s, "s0"), Some(501));
    poisoned.0.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(s.rebuild_projections().unwrap(), 10_002);
    assert_eq!(s.verify_projections().unwrap(), None);
    assert_eq!(count(&s, "poison"), Some(1));
}

/// The writer's COMMIT no longer waits for the disk: a batch is fsynced
/// after it (by the syncer while the writer runs the next batch, issue
/// 11). A write is still answered only once its events are durable, shown
/// by the published head covering them at the answer; and no reader of
/// the log (`read_from`, `read_types_from`: the executor, remote
/// executors, the events API) is handed a position past that head, though
/// its connection already sees the later commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_log_reads_wait_for_the_durable_head() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("log.db"));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = [false, true]
        .into_iter()
        .map(|typed| {
            let (s, done) = (s.clone(), done.clone());
            tokio::spawn(async move {
                let head = s.subscribe();
                let (mut after, mut reads) = (0, 0u64);
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let events = if typed {
                        s.read_types_from_async(after, 10_000, &["Counted"])
                            .await
                            .unwrap()
                            .0
                    } else {
                        s.read_from_async(after, 10_000).await.unwrap()
                    };
                    let durable = *head.borrow();
                    for e in &events {
                        assert!(
                            e.position <= durable,
                            "read position {} past the durable head {durable}",
                            e.position
                        );
                    }
                    after = events.last().map_or(after, |e| e.position);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let head = s.subscribe();
                for _ in 0..40 {
                    let stream = format!("w{i}");
                    let written = s
                        .write(move |tx| {
                            tx.append(
                                &stream,
                                ExpectedVersion::Any,
                                vec![ev("Counted", json!({}))],
                            )
                        })
                        .await
                        .unwrap();
                    let durable = *head.borrow();
                    assert!(
                        written[0].position <= durable,
                        "answered position {} before the durable head {durable} covered it",
                        written[0].position
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    assert_eq!(s.head().unwrap(), 64 * 40);
    assert_eq!(*s.subscribe().borrow(), 64 * 40);
}

/// A counter: each `Add` appends `Added`; the state counts them.
struct Counter;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data")]
enum CounterEvent {
    Added {},
}

impl domain::Aggregate for Counter {
    type State = u64;
    type Command = ();
    type Event = CounterEvent;

    fn stream_id(id: &str) -> String {
        format!("counter-{id}")
    }
    fn decide(_: &u64, _: ()) -> Result<Vec<CounterEvent>, domain::DomainError> {
        Ok(vec![CounterEvent::Added {}])
    }
    fn evolve(n: u64, _: &CounterEvent) -> u64 {
        n + 1
    }
    fn event_type(_: &CounterEvent) -> &'static str {
        "Added"
    }
}

/// The writer trusts the states it folded from one batch to the next only
/// while no other connection committed (`data_version`): an event another
/// process appended between two commands (a second store on the same file,
/// as the `identity` CLI beside a running server) is folded by the next
/// one, which appends after it. A stale state would have it append at the
/// old version (a conflict), and debug builds assert every tip the writer
/// trusts.
#[test]
fn a_command_after_another_process_appended_folds_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = open(&path);
    let add = |s: &EventStore| {
        s.write_blocking(|tx| tx.execute::<Counter>("c", (), &json!({})))
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.stream_version)
            .collect::<Vec<_>>()
    };
    assert_eq!(add(&s), [1]);
    assert_eq!(add(&s), [2], "the writer's own state, across batches");
    {
        let other = open(&path);
        assert_eq!(add(&other), [3]);
        other.close();
    }
    assert_eq!(add(&s), [4], "the other process's event is folded");
    assert_eq!(add(&s), [5]);
}
