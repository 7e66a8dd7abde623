//! Event versions and upcasters (issue 14): the log keeps every event as it
//! was written, with the version of its shape (`v`); an event of an older
//! version is read through the upcasters below into the current shape
//! before anything decodes it, so a change of shape never strands old data
//! and the decoders know one shape only.
//!
//! Pure functions of (type, version, data). The event store applies
//! `upcast` where stored rows become events (one place: every replay,
//! fold, projection and executor read goes through it); writers stamp
//! `current_version`. Versions are per event type: a type not named in
//! `CURRENT` is at version 1.
//!
//! To change an event's shape: bump its version in `CURRENT`, add a step
//! from the previous version to `step`, keep the old shape in a sample
//! log (tests/samples/, replayed by tests/upcast.rs) and in a test here.

use serde_json::{Map, Value};

/// Event types whose shape changed, with their current version.
const CURRENT: &[(&str, u32)] = &[
    ("VolumeCreateRequested", 2),
    ("VolumeTransferred", 2),
    ("SnapshotCreateRequested", 2),
    ("TransferAccepted", 2),
    ("TransferCreated", 2),
    ("ImageCreateRequested", 2),
];

/// The version `event_type` is written at now.
pub fn current_version(event_type: &str) -> u32 {
    CURRENT
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(1, |(_, v)| *v)
}

/// The event as the current version has it: each step from `v` up applied
/// in turn. An event already current (or newer: a log written by a newer
/// blockledger is refused at open, so this is only a guard) is returned
/// as it is, without a copy.
pub fn upcast(event_type: &str, mut v: u32, mut data: Value) -> (u32, Value) {
    let current = current_version(event_type);
    while v < current {
        data = step(event_type, v, data);
        v += 1;
    }
    (v, data)
}

/// From version `v` of `event_type` to `v + 1`.
fn step(event_type: &str, v: u32, data: Value) -> Value {
    let Value::Object(mut m) = data else {
        // Not an object: no version of these events was anything else, so
        // there is nothing to carry over; the decoder will say what is wrong.
        return data;
    };
    match (event_type, v) {
        // v1 grew six fields over time (clones, images, batch jobs, linked
        // clones: each added as optional and read as absent when missing);
        // v2 has every field written, so the decoder takes no default and a
        // writer that drops a field is an error rather than a silent null.
        ("VolumeCreateRequested", 1) => {
            for key in [
                "snapshot_id",
                "batch_job_id",
                "image_id",
                "image_metadata",
                "source_volume_id",
            ] {
                m.entry(key).or_insert(Value::Null);
            }
            m.entry("linked_clone").or_insert(Value::Bool(false));
        }
        // v2 records Glance's `protected` (microversion 3.1's
        // upload-to-image): nothing was protected before it existed.
        ("ImageCreateRequested", 1) => {
            m.entry("protected").or_insert(Value::Bool(false));
        }
        // v1 had the snapshot chain's parent and full copies added later.
        ("SnapshotCreateRequested", 1) => {
            m.entry("parent_snapshot_id").or_insert(Value::Null);
            m.entry("full").or_insert(Value::Bool(false));
        }
        // v1 named the parties `from_project`, `to_project`, `to_user`;
        // they hold ids, and every other event calls an id `*_id`
        // (`project_id`, `user_id`): v2 does too, so a reader of the audit
        // trail finds them under the names it knows.
        // t17: v2 records Cinder 3.55's `no_snapshots`; a v1 transfer took
        // Cinder's default (false), and had no snapshots to move: a volume
        // with snapshots was not transferred before 3.55 [5.1 #26].
        ("TransferCreated", 1) => {
            m.entry("no_snapshots").or_insert(Value::Bool(false));
        }
        ("VolumeTransferred", 1) | ("TransferAccepted", 1) => {
            for (old, new) in [
                ("from_project", "from_project_id"),
                ("to_project", "to_project_id"),
                ("to_user", "to_user_id"),
            ] {
                rename(&mut m, old, new);
            }
        }
        _ => {}
    }
    Value::Object(m)
}

fn rename(m: &mut Map<String, Value>, old: &str, new: &str) {
    if let Some(val) = m.remove(old) {
        m.entry(new).or_insert(val);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_type_without_a_change_is_at_version_one_and_passes_unchanged() {
        assert_eq!(current_version("VolumeDeleted"), 1);
        let data = json!({"reason": "x"});
        assert_eq!(upcast("VolumeDeleteFailed", 1, data.clone()), (1, data));
    }

    #[test]
    fn an_image_of_version_one_was_not_protected() {
        let v1 = json!({"image_id": "i", "name": "n"});
        assert_eq!(
            upcast("ImageCreateRequested", 1, v1),
            (2, json!({"image_id": "i", "name": "n", "protected": false}))
        );
        let v2 = json!({"image_id": "i", "protected": true});
        assert_eq!(upcast("ImageCreateRequested", 2, v2.clone()), (2, v2));
    }

    #[test]
    fn a_v1_transfer_takes_its_snapshots_as_cinder_defaults() {
        let v1 = json!({"transfer_id": "t", "volume_id": "v", "project_id": "p", "name": null,
                        "auth_key_sha256": "h"});
        let (v, data) = upcast("TransferCreated", 1, v1);
        assert_eq!((v, &data["no_snapshots"]), (2, &json!(false)));
        let v2 = json!({"transfer_id": "t", "no_snapshots": true});
        assert_eq!(upcast("TransferCreated", 2, v2.clone()), (2, v2));
    }

    #[test]
    fn a_current_event_passes_unchanged() {
        let data = json!({"from_project_id": "a", "to_project_id": "b", "to_user_id": "u",
                          "transfer_id": "t"});
        assert_eq!(upcast("VolumeTransferred", 2, data.clone()), (2, data));
    }

    #[test]
    fn a_v1_transfer_gets_its_ids_under_the_v2_names() {
        let v1 =
            json!({"transfer_id": "t", "from_project": "a", "to_project": "b", "to_user": "u"});
        assert_eq!(
            upcast("VolumeTransferred", 1, v1),
            (
                2,
                json!({"transfer_id": "t", "from_project_id": "a", "to_project_id": "b",
                       "to_user_id": "u"})
            )
        );
        assert_eq!(
            upcast(
                "TransferAccepted",
                1,
                json!({"to_project": "b", "to_user": "u"})
            ),
            (2, json!({"to_project_id": "b", "to_user_id": "u"}))
        );
    }

    #[test]
    fn a_v1_create_without_the_later_fields_gets_them_explicitly() {
        // The first shape of VolumeCreateRequested (before clones).
        let v1 = json!({"volume_id": "v", "project_id": "p", "user_id": "u", "name": null,
            "description": null, "size": 1, "availability_zone": "a", "volume_type": "t",
            "metadata": {}, "multiattach": false, "job_id": null});
        let (v, data) = upcast("VolumeCreateRequested", 1, v1);
        assert_eq!(v, 2);
        assert_eq!(data["linked_clone"], json!(false));
        for key in [
            "snapshot_id",
            "batch_job_id",
            "image_id",
            "image_metadata",
            "source_volume_id",
        ] {
            assert_eq!(data.get(key), Some(&Value::Null), "{key}");
        }
        // A v1 event that had a field keeps its value.
        let (_, data) = upcast(
            "VolumeCreateRequested",
            1,
            json!({"linked_clone": true, "snapshot_id": "s"}),
        );
        assert_eq!(data["linked_clone"], json!(true));
        assert_eq!(data["snapshot_id"], json!("s"));
        let (v, data) = upcast("SnapshotCreateRequested", 1, json!({"snapshot_id": "s"}));
        assert_eq!(
            (v, data),
            (
                2,
                json!({"snapshot_id": "s", "parent_snapshot_id": null, "full": false})
            )
        );
    }
}
