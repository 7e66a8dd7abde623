//! The write path without HTTP: durable metadata updates through the
//! application layer (`volume_actions::command`, one use case, one write
//! transaction each) on a store of 400 volumes, with 1 and 64 concurrent
//! callers. For a profile of the writer thread where a loaded machine
//! makes `perf` useless:
//!
//!     cargo build --release --bench write_path
//!     BENCH_N=2000 valgrind --tool=callgrind target/release/deps/write_path-*
//!
//! Prints updates/s and the writer's group commits (jobs per commit).

use std::sync::Arc;
use std::time::Instant;

use api::app::{volume_actions, App, Caller, RequestMeta};
use domain::metadata::MetadataEdit;
use domain::{CreateVolume, VolumeAggregate, VolumeCommand, WorkKind};
use eventstore::EventStore;
use serde_json::json;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = EventStore::open(&tmp.path().join("t.db"), projections::all()).expect("open");
    let meta = json!({"project_id": "bench"});
    let mut ids = Vec::new();
    for _ in 0..400 {
        let id = uuid::Uuid::new_v4();
        let create = VolumeCommand::Create(Box::new(CreateVolume {
            volume_id: id,
            project_id: "bench".into(),
            user_id: "u".into(),
            name: Some("v".into()),
            description: None,
            size: 1,
            availability_zone: "az-dc-1".into(),
            volume_type: "SSD".into(),
            metadata: Default::default(),
            multiattach: false,
            job_id: None,
            batch_job_id: None,
            source: None,
            backend: None,
            quota: domain::quota::Headroom::unlimited(),
        }));
        let done = VolumeCommand::CompleteWork {
            kind: WorkKind::Create,
        };
        for cmd in [create, done] {
            let m = meta.clone();
            store
                .write(move |tx| tx.execute::<VolumeAggregate>(&id.to_string(), cmd, &m))
                .await
                .expect("store")
                .expect("decided");
        }
        ids.push(id);
    }
    let app = App {
        store: store.clone(),
        catalog: Arc::new(domain::Catalog::default()),
    };
    let caller = Caller {
        user_id: "u".into(),
        project_id: "bench".into(),
        is_admin: false,
        role: domain::identity::Role::Member,
    };
    let ids = Arc::new(ids);
    for clients in [1usize, 64] {
        let per = (n / clients).max(1);
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let (app, caller, ids) = (app.clone(), caller.clone(), ids.clone());
            tasks.spawn(async move {
                for i in 0..per {
                    let k = c * per + i;
                    let mut md = std::collections::BTreeMap::new();
                    md.insert("bench".to_string(), k.to_string());
                    let meta = RequestMeta {
                        request_id: format!("req-{k}"),
                        dialect: "cinder",
                        route: "POST /v3/bench/volumes/x/metadata".into(),
                        idempotency_key: None,
                        remote_addr: None,
                    };
                    let cmd = VolumeCommand::EditMetadata(MetadataEdit::Merge(md));
                    volume_actions::command(&app, &caller, &meta, ids[k % ids.len()], cmd)
                        .await
                        .expect("update");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
        let took = t.elapsed();
        println!(
            "{clients} callers: {} updates in {:.2} s = {:.0}/s",
            per * clients,
            took.as_secs_f64(),
            (per * clients) as f64 / took.as_secs_f64()
        );
    }
    assert_eq!(store.verify_projections().expect("verify"), None);
    store.close();
}
