//! A backend (issue 16): Cinder's `volume_backend_name`, a named place
//! volumes live, as an aggregate in the log (stream `backend-<name>`).
//!
//! Whoever serves a backend (the embedded executor of `serve`, one per
//! `--storage`, or a remote executor) registers it when it starts and
//! reports its capacity at start and periodically. Both are recorded only
//! when they say something new, so a restart or a quiet disk writes
//! nothing: registration when kind, protocol or connection template
//! differ from what the log holds, capacity when it moved enough
//! (`moved_enough`). The scheduler and the admin views read the backends
//! view of these events; the server answers an attach from the registered
//! template (`connection_info`) without the storage object.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::FieldReason;
use crate::{Aggregate, DomainError};

/// The longest backend name (Cinder's host column is 255; ours is shown
/// inside `blockledger@<name>#<zone>`, so a short bound keeps it readable).
pub const MAX_NAME_LEN: usize = 64;

/// A free-space change this large is always worth recording.
pub const REPORT_BYTES: u64 = 1 << 30;
/// Or this fraction of the total (percent): a small disk's 1% matters
/// to the scheduler before 1 GiB does.
pub const REPORT_PERCENT: u64 = 1;

/// A backend name: 1..=64 of `[A-Za-z0-9_.-]`, so it sits in a host
/// string (`blockledger@<name>#<pool>`) and a stream id without quoting.
pub fn validate_name(name: &str) -> Result<(), DomainError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "backend",
            FieldReason::Invalid,
            format!(
                "Invalid backend name '{name}': 1 to {MAX_NAME_LEN} of letters, digits, '_', '.', '-'."
            ),
        ))
    }
}

/// What a backend's storage is (`StorageSpec`'s kind).
pub const KINDS: [&str; 3] = ["qcow2", "raw", "rbd"];
/// How consumers reach its volumes: `file` (a path, os-brick's local
/// connector) or `ceph` (os-brick's RBD connector).
pub const PROTOCOLS: [&str; 2] = ["file", "ceph"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub name: String,
    pub kind: String,
    pub storage_protocol: String,
    /// The storage's connection template (`StorageBackend::
    /// connection_template()`), the input of `connection_info`.
    pub connection: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendCommand {
    /// The server of this backend started: records it when it is new or
    /// changed, nothing otherwise.
    Register(Registration),
    /// The serving executor measured its storage: recorded when it moved
    /// enough since the last report.
    ReportCapacity(Capacity),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum BackendEvent {
    BackendRegistered {
        name: String,
        kind: String,
        storage_protocol: String,
        connection: Value,
    },
    BackendCapacityReported {
        total_bytes: u64,
        free_bytes: u64,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendState {
    pub registration: Option<Registration>,
    pub capacity: Option<Capacity>,
}

pub struct BackendAggregate;

/// Whether capacity `now` is worth recording after `last`: the first
/// report always; then a change of the total (a grown or swapped disk),
/// or free space moved by at least `REPORT_BYTES` or `REPORT_PERCENT` of
/// the total, whichever is smaller. Smaller wobbles (a log file growing)
/// would fill the log with nothing the scheduler acts on.
pub fn moved_enough(last: Option<Capacity>, now: Capacity) -> bool {
    let Some(last) = last else {
        return true;
    };
    if last.total_bytes != now.total_bytes {
        return true;
    }
    let moved = last.free_bytes.abs_diff(now.free_bytes);
    let step = REPORT_BYTES.min(now.total_bytes / 100 * REPORT_PERCENT);
    moved > 0 && moved >= step
}

/// Cinder's `connection_info` (`{driver_volume_type, data}`) for volume
/// `volume_id` of a backend registered with `template`.
///
/// File backends (template `{"driver_volume_type": "local",
/// "volumes_dir": <absolute dir>, "format": "qcow2"|"raw"}`) give
/// os-brick's local connector shape, exactly as the server answered before
/// backends were data: `data = {device_path: <dir>/<id>, format,
/// volume_id}`. RBD backends (template `{"driver_volume_type": "rbd",
/// "pool", "hosts", "ports", "auth_enabled", "auth_username",
/// "cluster_name", …}`) give what os-brick's RBD connector (and QEMU's
/// `rbd:` driver, `rbd map`, `rbd-nbd`) reads: `data.name =
/// "<pool>/volume-<id>"` plus the template's monitors and auth, every
/// other key of the template carried as is (a `secret_uuid`, `keyring`).
/// A template without `driver_volume_type` is read by its keys: a `pool`
/// is RBD, anything else a file backend.
pub fn connection_info(template: &Value, volume_id: Uuid) -> Value {
    let t = template.as_object().cloned().unwrap_or_default();
    let driver = t
        .get("driver_volume_type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if t.contains_key("pool") {
                "rbd".into()
            } else {
                "local".into()
            }
        });
    if driver == "rbd" {
        let pool = t.get("pool").and_then(Value::as_str).unwrap_or("rbd");
        let mut data = Map::new();
        for (k, v) in &t {
            if !matches!(k.as_str(), "driver_volume_type" | "pool" | "conf") {
                data.insert(k.clone(), v.clone());
            }
        }
        data.insert("name".into(), json!(rbd_image(pool, volume_id)));
        data.entry("hosts").or_insert(json!([]));
        data.entry("ports").or_insert(json!([]));
        data.entry("auth_enabled").or_insert(json!(false));
        data.entry("auth_username").or_insert(Value::Null);
        data.entry("cluster_name").or_insert(json!("ceph"));
        data.insert("volume_id".into(), json!(volume_id.to_string()));
        return json!({"driver_volume_type": "rbd", "data": data});
    }
    let dir = t
        .get("volumes_dir")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_end_matches('/');
    let format = t.get("format").and_then(Value::as_str).unwrap_or("raw");
    json!({
        "driver_volume_type": "local",
        "data": {
            "device_path": format!("{dir}/{volume_id}"),
            "format": format,
            "volume_id": volume_id.to_string(),
        }
    })
}

/// The RBD image of volume `id` in `pool` (Cinder's RBD driver names its
/// images `volume-<id>`).
pub fn rbd_image(pool: &str, id: Uuid) -> String {
    format!("{pool}/volume-{id}")
}

/// The storage protocol a `kind` is reached by.
pub fn protocol_of(kind: &str) -> &'static str {
    if kind == "rbd" {
        "ceph"
    } else {
        "file"
    }
}

impl Aggregate for BackendAggregate {
    type State = BackendState;
    type Command = BackendCommand;
    type Event = BackendEvent;

    fn stream_id(id: &str) -> String {
        format!("backend-{id}")
    }

    fn event_type(event: &BackendEvent) -> &'static str {
        match event {
            BackendEvent::BackendRegistered { .. } => "BackendRegistered",
            BackendEvent::BackendCapacityReported { .. } => "BackendCapacityReported",
        }
    }

    fn decide(state: &BackendState, cmd: BackendCommand) -> Result<Vec<BackendEvent>, DomainError> {
        match cmd {
            BackendCommand::Register(r) => {
                validate_name(&r.name)?;
                if !KINDS.contains(&r.kind.as_str()) {
                    return Err(DomainError::invalid(
                        "kind",
                        FieldReason::Invalid,
                        format!("Invalid backend kind '{}': one of qcow2, raw, rbd.", r.kind),
                    ));
                }
                if !PROTOCOLS.contains(&r.storage_protocol.as_str()) {
                    return Err(DomainError::invalid(
                        "storage_protocol",
                        FieldReason::Invalid,
                        format!(
                            "Invalid storage protocol '{}': file or ceph.",
                            r.storage_protocol
                        ),
                    ));
                }
                if let Some(have) = &state.registration {
                    // The name is the stream's: a command for another
                    // name reached the wrong stream.
                    if have.name != r.name {
                        return Err(DomainError::invalid(
                            "name",
                            FieldReason::Conflict,
                            format!(
                                "Backend stream of {} cannot register {}.",
                                have.name, r.name
                            ),
                        ));
                    }
                    if *have == r {
                        return Ok(vec![]);
                    }
                }
                Ok(vec![BackendEvent::BackendRegistered {
                    name: r.name,
                    kind: r.kind,
                    storage_protocol: r.storage_protocol,
                    connection: r.connection,
                }])
            }
            BackendCommand::ReportCapacity(c) => {
                let Some(r) = &state.registration else {
                    return Err(DomainError::invalid(
                        "backend",
                        FieldReason::NotFound,
                        "Capacity of a backend that was never registered.",
                    ));
                };
                if c.free_bytes > c.total_bytes {
                    return Err(DomainError::invalid(
                        "free_bytes",
                        FieldReason::Invalid,
                        format!(
                            "Backend {}: free bytes {} exceed total bytes {}.",
                            r.name, c.free_bytes, c.total_bytes
                        ),
                    ));
                }
                if !moved_enough(state.capacity, c) {
                    return Ok(vec![]);
                }
                Ok(vec![BackendEvent::BackendCapacityReported {
                    total_bytes: c.total_bytes,
                    free_bytes: c.free_bytes,
                }])
            }
        }
    }

    fn evolve(mut state: BackendState, event: &BackendEvent) -> BackendState {
        match event {
            BackendEvent::BackendRegistered {
                name,
                kind,
                storage_protocol,
                connection,
            } => {
                state.registration = Some(Registration {
                    name: name.clone(),
                    kind: kind.clone(),
                    storage_protocol: storage_protocol.clone(),
                    connection: connection.clone(),
                })
            }
            BackendEvent::BackendCapacityReported {
                total_bytes,
                free_bytes,
            } => {
                state.capacity = Some(Capacity {
                    total_bytes: *total_bytes,
                    free_bytes: *free_bytes,
                })
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn reg(name: &str, kind: &str) -> Registration {
        Registration {
            name: name.into(),
            kind: kind.into(),
            storage_protocol: protocol_of(kind).into(),
            connection: json!({"driver_volume_type": "local", "volumes_dir": "/d/volumes", "format": kind}),
        }
    }

    fn given(events: &[BackendEvent]) -> BackendState {
        BackendAggregate::fold(events)
    }

    #[test]
    fn names_are_short_words() {
        assert!(validate_name("SSD").is_ok());
        assert!(validate_name("fast-1.pool_a").is_ok());
        assert!(validate_name(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "a@b", "a#b", "ü", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registration_is_recorded_once_and_again_only_when_it_changes() {
        let first = BackendAggregate::decide(
            &BackendState::default(),
            BackendCommand::Register(reg("fast", "raw")),
        )
        .unwrap();
        assert_eq!(first.len(), 1);
        let st = given(&first);
        // The same registration at the next start: nothing new.
        let again =
            BackendAggregate::decide(&st, BackendCommand::Register(reg("fast", "raw"))).unwrap();
        assert!(again.is_empty());
        // Moved to another directory: recorded.
        let mut moved = reg("fast", "raw");
        moved.connection["volumes_dir"] = json!("/e/volumes");
        let changed = BackendAggregate::decide(&st, BackendCommand::Register(moved.clone()));
        assert_eq!(
            changed.unwrap(),
            vec![BackendEvent::BackendRegistered {
                name: "fast".into(),
                kind: "raw".into(),
                storage_protocol: "file".into(),
                connection: moved.connection,
            }]
        );
        // Another name on this stream, an unknown kind: refused.
        assert!(
            BackendAggregate::decide(&st, BackendCommand::Register(reg("slow", "raw"))).is_err()
        );
        assert!(BackendAggregate::decide(
            &BackendState::default(),
            BackendCommand::Register(reg("x", "nfs"))
        )
        .is_err());
    }

    #[test]
    fn capacity_is_recorded_when_it_moved_enough() {
        let cap = |t, f| Capacity {
            total_bytes: t,
            free_bytes: f,
        };
        // Never registered: refused.
        assert!(BackendAggregate::decide(
            &BackendState::default(),
            BackendCommand::ReportCapacity(cap(100 * GIB, 50 * GIB))
        )
        .is_err());
        let mut st = given(&[BackendEvent::BackendRegistered {
            name: "fast".into(),
            kind: "raw".into(),
            storage_protocol: "file".into(),
            connection: json!({}),
        }]);
        let first = BackendAggregate::decide(
            &st,
            BackendCommand::ReportCapacity(cap(1000 * GIB, 500 * GIB)),
        )
        .unwrap();
        assert_eq!(first.len(), 1);
        st = BackendAggregate::evolve(st, &first[0]);
        assert_eq!(st.capacity, Some(cap(1000 * GIB, 500 * GIB)));
        // 512 MiB on a 1000 GiB disk: below both steps.
        let quiet = cap(1000 * GIB, 500 * GIB - GIB / 2);
        assert!(
            BackendAggregate::decide(&st, BackendCommand::ReportCapacity(quiet))
                .unwrap()
                .is_empty()
        );
        // 1 GiB: recorded.
        let gib_less = cap(1000 * GIB, 499 * GIB);
        assert_eq!(
            BackendAggregate::decide(&st, BackendCommand::ReportCapacity(gib_less))
                .unwrap()
                .len(),
            1
        );
        // The total changed: recorded whatever the free space did.
        assert!(moved_enough(st.capacity, cap(1001 * GIB, 500 * GIB)));
        // A small disk: 1% (100 MiB of 10 GiB) is enough before 1 GiB.
        let small = Some(cap(10 * GIB, 5 * GIB));
        assert!(moved_enough(
            small,
            cap(10 * GIB, 5 * GIB - 110 * (1 << 20))
        ));
        assert!(!moved_enough(
            small,
            cap(10 * GIB, 5 * GIB - 90 * (1 << 20))
        ));
        assert!(!moved_enough(small, cap(10 * GIB, 5 * GIB)));
        // Free beyond total is a broken report.
        assert!(
            BackendAggregate::decide(&st, BackendCommand::ReportCapacity(cap(GIB, 2 * GIB)))
                .is_err()
        );
    }

    #[test]
    fn file_connection_info_is_the_local_connectors() {
        let id = Uuid::from_u128(0x1234);
        let t = json!({"driver_volume_type": "local", "volumes_dir": "/srv/bl/volumes", "format": "qcow2"});
        assert_eq!(
            connection_info(&t, id),
            json!({"driver_volume_type": "local", "data": {
                "device_path": format!("/srv/bl/volumes/{id}"),
                "format": "qcow2",
                "volume_id": id.to_string(),
            }})
        );
    }

    #[test]
    fn rbd_connection_info_is_what_os_brick_reads() {
        let id = Uuid::from_u128(0x99);
        let t = json!({
            "driver_volume_type": "rbd",
            "pool": "volumes",
            "conf": "/etc/ceph/ceph.conf",
            "hosts": ["127.0.0.1"],
            "ports": ["6789"],
            "auth_enabled": true,
            "auth_username": "admin",
            "cluster_name": "ceph",
        });
        let c = connection_info(&t, id);
        assert_eq!(c["driver_volume_type"], "rbd");
        assert_eq!(c["data"]["name"], format!("volumes/volume-{id}"));
        assert_eq!(c["data"]["hosts"], json!(["127.0.0.1"]));
        assert_eq!(c["data"]["ports"], json!(["6789"]));
        assert_eq!(c["data"]["auth_enabled"], true);
        assert_eq!(c["data"]["auth_username"], "admin");
        assert_eq!(c["data"]["cluster_name"], "ceph");
        assert_eq!(c["data"]["volume_id"], id.to_string());
        // The server's ceph.conf path is no client's business.
        assert!(c["data"].get("conf").is_none());
        // Keyed by `pool` alone, still RBD, with os-brick's defaults.
        let bare = connection_info(&json!({"pool": "p"}), id);
        assert_eq!(bare["driver_volume_type"], "rbd");
        assert_eq!(bare["data"]["auth_enabled"], false);
        assert_eq!(bare["data"]["cluster_name"], "ceph");
    }

    #[test]
    fn events_keep_their_stored_names() {
        let e = BackendEvent::BackendCapacityReported {
            total_bytes: 2,
            free_bytes: 1,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], BackendAggregate::event_type(&e));
        assert_eq!(BackendAggregate::stream_id("SSD"), "backend-SSD");
    }
}
