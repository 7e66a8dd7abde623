//! Property (issue 3): random sequences of create, extend, snapshot,
//! transfer, delete and quota changes never push usage above a limit, and
//! the quota view always equals what a replay of the log computes.
//!
//! In-process for speed: the real router, store and executor (raw backend)
//! on a random port; the executor is driven to quiescence after each step
//! so the sequence is deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
enum Op {
    Create {
        project: usize,
        size: i64,
    },
    Extend {
        pick: usize,
        by: i64,
    },
    Snapshot {
        pick: usize,
    },
    DeleteSnapshot {
        pick: usize,
    },
    Transfer {
        pick: usize,
    },
    Delete {
        pick: usize,
    },
    SetLimit {
        project: usize,
        key: usize,
        limit: i64,
    },
}

const PROJECTS: [&str; 2] = ["pa", "pb"];
const KEYS: [&str; 4] = ["volumes", "gigabytes", "snapshots", "volumes_SATA"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 1..6i64).prop_map(|(project, size)| Op::Create { project, size }),
        2 => (0..8usize, 1..4i64).prop_map(|(pick, by)| Op::Extend { pick, by }),
        2 => (0..8usize).prop_map(|pick| Op::Snapshot { pick }),
        1 => (0..8usize).prop_map(|pick| Op::DeleteSnapshot { pick }),
        1 => (0..8usize).prop_map(|pick| Op::Transfer { pick }),
        1 => (0..8usize).prop_map(|pick| Op::Delete { pick }),
        1 => (0..2usize, 0..4usize, -1..12i64).prop_map(|(project, key, limit)| Op::SetLimit { project, key, limit }),
    ]
}

struct World {
    base: String,
    http: reqwest::Client,
    store: eventstore::EventStore,
    exec: executor::Executor,
    _tmp: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let store =
            eventstore::EventStore::open(&tmp.path().join("b.db"), projections::all()).unwrap();
        let backend: Arc<dyn executor::StorageBackend> =
            Arc::from(executor::open_backend("raw", tmp.path()).unwrap());
        let images = Arc::new(executor::images::ImageStore::open(tmp.path()).unwrap());
        let exec = executor::Executor::new(store.clone(), backend.clone(), images.clone());
        let state = api::AppState::from(api::Shared {
            store: store.clone(),
            catalog: Arc::new(domain::Catalog::default()),
            connector: Arc::new({
                let backend = backend.clone();
                move |id| api::Connection {
                    device_path: backend.volume_path(id).to_string_lossy().into_owned(),
                    format: backend.format(),
                }
            }),
            images: Arc::new(NoUploads(images)),
            progress: Arc::new(|_| None),
            snapshot_file: Arc::new(move |id| {
                backend.snapshot_file(id).to_string_lossy().into_owned()
            }),
            sync_deadline: std::time::Duration::from_secs(60),
            identity: Arc::new(api::identity::Identity::noauth()),
        });
        // The seed backends, as `serve` registers them (issue 16): the
        // scheduler places volumes only on registered backends.
        for (name, _) in domain::catalog::SEED_TYPES {
            let r = domain::backend::Registration {
                name: name.into(),
                kind: "raw".into(),
                storage_protocol: "file".into(),
                connection: serde_json::json!({"driver_volume_type": "local",
                    "volumes_dir": tmp.path().join("volumes"), "format": "raw"}),
            };
            let (caller, meta) = (
                api::app::backends::service_caller(name),
                api::app::backends::service_meta("register"),
            );
            api::app::backends::register(&state.app(), &caller, &meta, r)
                .await
                .unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
        World {
            base,
            http: reqwest::Client::new(),
            store,
            exec,
            _tmp: tmp,
        }
    }

    async fn call(
        &self,
        user: &str,
        project: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("X-Auth-Token", format!("{user}:{project}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn settle(&self) {
        while self.exec.catch_up().await.unwrap() {}
        // One more pass: outcomes appended by the last pass need no work,
        // but a pass over them moves the checkpoint.
        self.exec.catch_up().await.unwrap();
    }

    async fn volumes(&self, p: &str) -> Vec<Value> {
        let (_, b) = self
            .call(
                "u",
                p,
                reqwest::Method::GET,
                &format!("/v2/{p}/volumes/detail"),
                None,
            )
            .await;
        b["volumes"].as_array().cloned().unwrap_or_default()
    }

    async fn snapshots(&self, p: &str) -> Vec<Value> {
        let (_, b) = self
            .call(
                "u",
                p,
                reqwest::Method::GET,
                &format!("/v2/{p}/snapshots/detail"),
                None,
            )
            .await;
        b["snapshots"].as_array().cloned().unwrap_or_default()
    }

    async fn quota(&self, p: &str) -> BTreeMap<String, (i64, i64)> {
        let (_, b) = self
            .call(
                "u",
                p,
                reqwest::Method::GET,
                &format!("/v2/{p}/os-quota-sets/{p}?usage=True"),
                None,
            )
            .await;
        b["quota_set"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "id")
            .map(|(k, v)| {
                (
                    k.clone(),
                    (v["in_use"].as_i64().unwrap(), v["limit"].as_i64().unwrap()),
                )
            })
            .collect()
    }

    async fn apply(&self, op: &Op) {
        use reqwest::Method as M;
        let all: Vec<(String, Value)> = {
            let mut v = Vec::new();
            for p in PROJECTS {
                for vol in self.volumes(p).await {
                    v.push((p.to_string(), vol));
                }
            }
            v
        };
        let pick = |i: usize| all.get(i % all.len().max(1)).cloned();
        match op {
            Op::Create { project, size } => {
                let p = PROJECTS[*project];
                self.call(
                    "u",
                    p,
                    M::POST,
                    &format!("/v2/{p}/volumes"),
                    Some(json!({"volume": {"size": size}})),
                )
                .await;
            }
            Op::Extend { pick: i, by } => {
                if let Some((p, v)) = pick(*i) {
                    let new = v["size"].as_i64().unwrap() + by;
                    let path = format!("/v2/{p}/volumes/{}/action", v["id"].as_str().unwrap());
                    self.call(
                        "u",
                        &p,
                        M::POST,
                        &path,
                        Some(json!({"os-extend": {"new_size": new}})),
                    )
                    .await;
                }
            }
            Op::Snapshot { pick: i } => {
                if let Some((p, v)) = pick(*i) {
                    self.call(
                        "u",
                        &p,
                        M::POST,
                        &format!("/v2/{p}/snapshots"),
                        Some(json!({"snapshot": {"volume_id": v["id"]}})),
                    )
                    .await;
                }
            }
            Op::DeleteSnapshot { pick: i } => {
                let mut snaps = Vec::new();
                for p in PROJECTS {
                    for s in self.snapshots(p).await {
                        snaps.push((p, s));
                    }
                }
                if let Some((p, s)) = snaps.get(i % snaps.len().max(1)) {
                    let path = format!("/v2/{p}/snapshots/{}", s["id"].as_str().unwrap());
                    self.call("u", p, M::DELETE, &path, None).await;
                }
            }
            Op::Transfer { pick: i } => {
                if let Some((p, v)) = pick(*i) {
                    let to = if p == PROJECTS[0] {
                        PROJECTS[1]
                    } else {
                        PROJECTS[0]
                    };
                    let (st, t) = self
                        .call(
                            "u",
                            &p,
                            M::POST,
                            &format!("/v2/{p}/os-volume-transfer"),
                            Some(json!({"transfer": {"volume_id": v["id"]}})),
                        )
                        .await;
                    if st == 202 {
                        let tid = t["transfer"]["id"].as_str().unwrap();
                        let key = t["transfer"]["auth_key"].clone();
                        let (st, _) = self
                            .call(
                                "u",
                                to,
                                M::POST,
                                &format!("/v2/{to}/os-volume-transfer/{tid}/accept"),
                                Some(json!({"accept": {"auth_key": key}})),
                            )
                            .await;
                        if st != 202 {
                            // Refused (the receiver's quota): take it back.
                            self.call(
                                "u",
                                &p,
                                M::DELETE,
                                &format!("/v2/{p}/os-volume-transfer/{tid}"),
                                None,
                            )
                            .await;
                        }
                    }
                }
            }
            Op::Delete { pick: i } => {
                if let Some((p, v)) = pick(*i) {
                    let path =
                        format!("/v2/{p}/volumes/{}?cascade=true", v["id"].as_str().unwrap());
                    self.call("u", &p, M::DELETE, &path, None).await;
                }
            }
            Op::SetLimit {
                project,
                key,
                limit,
            } => {
                let p = PROJECTS[*project];
                let body = json!({"quota_set": {KEYS[*key]: limit}});
                let (st, _) = self
                    .call(
                        "admin",
                        p,
                        M::PUT,
                        &format!("/v2/{p}/os-quota-sets/{p}"),
                        Some(body),
                    )
                    .await;
                assert_eq!(st, 200);
            }
        }
        self.settle().await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn quota_usage_never_passes_a_limit_and_equals_a_replay(ops in proptest::collection::vec(op(), 1..28)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let w = World::new().await;
            for op in &ops {
                let before: Vec<_> = { let mut v = Vec::new(); for p in PROJECTS { v.push(w.quota(p).await); } v };
                w.apply(op).await;
                for (i, p) in PROJECTS.iter().enumerate() {
                    let after = w.quota(p).await;
                    for (k, (in_use, limit)) in &after {
                        let was = before[i].get(k).map(|x| x.0).unwrap_or(0);
                        // An admin may lower a limit below usage; no command
                        // may then raise usage further past it.
                        if *limit >= 0 && *in_use > *limit {
                            prop_assert!(*in_use <= was, "{p} {k}: {was} -> {in_use} past limit {limit} after {op:?}");
                        }
                    }
                    // The quota view equals a count over the volume and
                    // snapshot views, computed independently here.
                    let vols = w.volumes(p).await;
                    let snaps = w.snapshots(p).await;
                    let gb: i64 = vols.iter().map(|v| v["size"].as_i64().unwrap()).sum::<i64>()
                        + snaps.iter().map(|s| s["size"].as_i64().unwrap()).sum::<i64>();
                    prop_assert_eq!(after["volumes"].0, vols.len() as i64, "{} volumes", p);
                    prop_assert_eq!(after["snapshots"].0, snaps.len() as i64, "{} snapshots", p);
                    prop_assert_eq!(after["gigabytes"].0, gb, "{} gigabytes", p);
                }
            }
            prop_assert_eq!(w.store.verify_projections().unwrap(), None);
            Ok(())
        })?;
    }
}

/// This test uploads no image bytes; exports go through the executor.
struct NoUploads(Arc<executor::images::ImageStore>);

impl api::ImageFiles for NoUploads {
    fn import(
        &self,
        _: uuid::Uuid,
        _: &str,
        _: &mut dyn std::io::Read,
    ) -> Result<(u64, u64, String), String> {
        Err("uploads are not part of this test".into())
    }

    fn path(&self, id: uuid::Uuid) -> std::path::PathBuf {
        self.0.path(id)
    }
}
