//! `EventStore::open` refuses what it cannot safely serve: a log of a newer
//! format, a file that is not a log, a log whose newest events do not verify.

use eventstore::rusqlite::{params, Connection};
use eventstore::*;
use serde_json::json;
use std::path::Path;
use uuid::Uuid;

fn log_with_events(path: &Path, n: usize) {
    let s = EventStore::open(path, vec![]).unwrap();
    for i in 0..n {
        let e = NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "Thing".into(),
            v: 1,
            data: json!({ "i": i }),
            metadata: json!({}),
        };
        s.write_blocking(move |tx| {
            tx.append(&format!("s-{i}"), ExpectedVersion::NoStream, vec![e])
        })
        .unwrap();
    }
    s.close();
}

#[test]
fn a_new_log_records_its_format_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    log_with_events(&db, 3);
    let v: u32 = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, LOG_FORMAT);
    EventStore::open(&db, vec![]).unwrap().close();
}

#[test]
fn a_log_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    log_with_events(&db, 1);
    Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", LOG_FORMAT + 1)
        .unwrap();
    match EventStore::open(&db, vec![]) {
        Err(StoreError::FutureFormat { found, supported }) => {
            assert_eq!((found, supported), (LOG_FORMAT + 1, LOG_FORMAT))
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer log was opened"),
    }
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    match EventStore::open(&db, vec![]) {
        Err(StoreError::Corrupt(_)) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("garbage was opened as a log"),
    }
}

#[test]
fn a_changed_event_at_the_head_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    log_with_events(&db, 10);
    let c = Connection::open(&db).unwrap();
    c.execute_batch("DROP TRIGGER events_no_update").unwrap();
    c.execute(
        "UPDATE events SET data = ?1 WHERE position = 9",
        params![r#"{"i":99}"#],
    )
    .unwrap();
    drop(c);
    match EventStore::open(&db, vec![]) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("position 9"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a changed head was opened"),
    }
    // verify's open leaves the whole chain to verify_chain.
    let s = EventStore::open_for_audit(&db, vec![]).unwrap();
    assert_eq!(s.verify_chain().unwrap().first_bad.map(|b| b.0), Some(9));
    s.close();
}
