//! Events versioned with upcasters (issue 14): a log as each event version
//! wrote it is kept under tests/samples/ (JSON lines, every stored column,
//! made by tests/samples/make_sample.sh with the blockledger of that
//! version) and replayed here by today's code: the chain still verifies,
//! the views equal a replay, and what the read routes show of them is the
//! expected (insta). A sample older than today's shapes must need the
//! upcaster: its old events do not decode as they are stored.

mod support;

use std::path::Path;
use std::sync::Arc;

use eventstore::rusqlite::params;
use eventstore::{EventStore, StoreError};
use serde_json::{json, Value};
use support::*;

/// Every stored event version that has a sample, oldest first.
const SAMPLES: &[(&str, &str)] = &[
    ("v1", include_str!("samples/log-v1.jsonl")),
    ("v2", include_str!("samples/log-v2.jsonl")),
    ("v3", include_str!("samples/log-v3.jsonl")),
];

fn rows(sample: &str) -> Vec<Value> {
    sample
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a sample line is JSON"))
        .collect()
}

/// A data dir whose log is `sample`, row for row as stored (hashes
/// included), with every view built from it.
fn load(sample: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let store = EventStore::open(&dir.join("blockledger.db"), projections::all()).unwrap();
    let rows = Arc::new(rows(sample));
    store
        .write_blocking(move |tx| -> Result<(), StoreError> {
            let mut insert = tx.conn().prepare(
                "INSERT INTO events (position, stream_id, stream_version, event_id, event_type,
                 v, data, metadata, recorded_at, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for r in rows.iter() {
                let text = |k: &str| r[k].as_str().unwrap().to_string();
                let int = |k: &str| r[k].as_u64().unwrap();
                insert.execute(params![
                    int("position"),
                    text("stream_id"),
                    int("stream_version"),
                    text("event_id"),
                    text("event_type"),
                    int("v"),
                    r["data"].to_string(),
                    r["metadata"].to_string(),
                    text("recorded_at"),
                    text("hash"),
                ])?;
            }
            Ok(())
        })
        .unwrap();
    store.rebuild_projections().unwrap();
    let chain = store.verify_chain().unwrap();
    assert_eq!(chain.first_bad, None, "the sample is a log as stored");
    assert_eq!(chain.events as usize, rows_len(sample));
    assert_eq!(store.verify_projections().unwrap(), None);
    store.close();
}

fn rows_len(sample: &str) -> usize {
    rows(sample).len()
}

/// Decodes stored data as the current shape of its event type.
fn decodes(event_type: &str, data: &Value) -> bool {
    let ev = json!({"type": event_type, "data": data});
    if event_type.starts_with("Snapshot") {
        serde_json::from_value::<domain::SnapshotEvent>(ev).is_ok()
    } else if event_type.starts_with("Transfer") {
        serde_json::from_value::<domain::transfer::TransferEvent>(ev).is_ok()
    } else {
        serde_json::from_value::<domain::VolumeEvent>(ev).is_ok()
    }
}

#[test]
fn an_old_sample_needs_the_upcaster_and_decodes_through_it() {
    for (version, sample) in SAMPLES {
        let (mut old, mut undecodable) = (0, 0);
        for r in rows(sample) {
            let t = r["event_type"].as_str().unwrap();
            let v = r["v"].as_u64().unwrap() as u32;
            let current = domain::upcast::current_version(t);
            assert!(v <= current, "{version}: {t} stored at v{v}");
            if v < current {
                old += 1;
                // A v1 create written after its last optional field came
                // decodes as it is; a v1 transfer never does.
                if !decodes(t, &r["data"]) {
                    undecodable += 1;
                }
                let (to, data) = domain::upcast::upcast(t, v, r["data"].clone());
                assert_eq!(to, current);
                assert!(decodes(t, &data), "{version}: {t} upcast: {data}");
            }
        }
        match *version {
            "v1" => {
                assert!(old >= 6, "{version}: only {old} events older than current");
                // TransferAccepted, VolumeTransferred and TransferCreated.
                assert_eq!(undecodable, 3, "{version}: events that need the upcaster");
            }
            // TransferCreated (v2 since t17's `no_snapshots`).
            "v2" => assert_eq!((old, undecodable), (1, 1), "{version}"),
            _ => assert_eq!(old, 0, "{version} is today's shapes"),
        }
    }
}

/// What the read routes show of a sample: both projects' volumes and
/// snapshots (CINDER-7.1.5, CINDER-7.3.5) and quota usage (the transfer
/// moved a volume's gigabytes from p1 to p2).
async fn views(srv: &Server) -> Value {
    let mut out = serde_json::Map::new();
    for project in ["p1", "p2"] {
        let c = srv.client("someone", project);
        for path in [
            format!("/v3/{project}/volumes/detail"),
            format!("/v3/{project}/snapshots/detail"),
            format!("/v3/{project}/os-quota-sets/{project}?usage=true"),
        ] {
            let r = c.get(&path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            let body = r.body.to_string().replace(&c.base, "http://[host]");
            out.insert(path, serde_json::from_str(&body).unwrap());
        }
    }
    Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sample_replays_into_the_expected_views() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_sort_maps(true);
    for (version, sample) in SAMPLES {
        let dir = tmp.path().join(version);
        load(sample, &dir);
        // Read-only: no executor redoes the sample's disk work, and the
        // log stays the sample.
        let srv = Server::start_args(&dir, "raw", &["--read-only"]);
        let v = views(&srv).await;
        // The sample's volume moved to p2 (a v1 VolumeTransferred names
        // the project `to_project`): its usage is p2's now.
        assert_eq!(
            v["/v3/p2/volumes/detail"]["volumes"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "{version}: {}",
            v["/v3/p2/volumes/detail"]
        );
        settings.bind(|| insta::assert_json_snapshot!(format!("UPCAST-{version}-views"), v));
    }
}
