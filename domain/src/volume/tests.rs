//! Decider tests in given / when / then form: given past events, when a
//! command, then the events it decides or the error it refuses with.

use super::*;

fn vid() -> Uuid {
    Uuid::parse_str("8dd7c486-8e9f-49fe-bceb-26aa7e312b66").unwrap()
}

fn create_cmd(size: i64) -> CreateVolume {
    CreateVolume {
        volume_id: vid(),
        project_id: "p1".into(),
        user_id: "u1".into(),
        name: Some("vol".into()),
        description: None,
        size,
        availability_zone: "az-dc-1".into(),
        volume_type: "SATA".into(),
        metadata: BTreeMap::new(),
        multiattach: false,
        job_id: None,
        batch_job_id: None,
        source: None,
        backend: None,
        quota: crate::quota::Headroom::unlimited(),
    }
}

fn requested(size: i64) -> VolumeEvent {
    VolumeAggregate::decide(
        &VolumeState::default(),
        VolumeCommand::Create(create_cmd(size).into()),
    )
    .unwrap()
    .remove(0)
}

fn given(events: &[VolumeEvent]) -> VolumeState {
    VolumeAggregate::fold(events)
}

fn when(state: &VolumeState, cmd: VolumeCommand) -> Result<Vec<VolumeEvent>, DomainError> {
    VolumeAggregate::decide(state, cmd)
}

fn available(size: i64) -> Vec<VolumeEvent> {
    vec![requested(size), VolumeEvent::VolumeAllocated { size }]
}

#[test]
fn create_on_empty_stream_requests_a_volume() {
    let events = when(&given(&[]), VolumeCommand::Create(create_cmd(10).into())).unwrap();
    assert!(matches!(
        &events[..],
        [VolumeEvent::VolumeCreateRequested { size: 10, .. }]
    ));
    assert_eq!(
        given(&events).volume.unwrap().status,
        VolumeStatus::Creating
    );
}

#[test]
fn create_refuses_sizes_out_of_range_with_evs_1010() {
    for size in [0, -1, 32_769, i64::MAX, i64::MIN] {
        let err = when(&given(&[]), VolumeCommand::Create(create_cmd(size).into())).unwrap_err();
        assert_eq!(err.reason(), "invalid_size", "size {size}");
    }
    assert!(when(
        &given(&[]),
        VolumeCommand::Create(create_cmd(32_768).into())
    )
    .is_ok());
}

#[test]
fn create_twice_is_refused() {
    let err = when(
        &given(&[requested(1)]),
        VolumeCommand::Create(create_cmd(1).into()),
    )
    .unwrap_err();
    assert!(matches!(err, DomainError::VolumeAlreadyExists(_)));
}

#[test]
fn create_refuses_long_names_and_bad_metadata() {
    let mut c = create_cmd(1);
    c.name = Some("é".repeat(128)); // 256 bytes, 128 chars
    assert_eq!(
        when(&given(&[]), VolumeCommand::Create(c.into()))
            .unwrap_err()
            .reason(),
        "invalid_name"
    );
    let mut c = create_cmd(1);
    c.metadata.insert("k".repeat(256), "v".into());
    assert!(matches!(
        when(&given(&[]), VolumeCommand::Create(c.into())).unwrap_err(),
        DomainError::InvalidMetadata(_)
    ));
}

#[test]
fn executor_outcomes_drive_creating_to_available() {
    let s = given(&[requested(5)]);
    let started = when(
        &s,
        VolumeCommand::StartWork {
            kind: WorkKind::Create,
        },
    )
    .unwrap();
    assert_eq!(
        started,
        vec![VolumeEvent::VolumeWorkStarted {
            kind: WorkKind::Create
        }]
    );
    let s = given(&[requested(5), started[0].clone()]);
    // A repeated start is a no-op (at-least-once delivery).
    assert!(when(
        &s,
        VolumeCommand::StartWork {
            kind: WorkKind::Create
        }
    )
    .unwrap()
    .is_empty());
    let done = when(
        &s,
        VolumeCommand::CompleteWork {
            kind: WorkKind::Create,
        },
    )
    .unwrap();
    assert_eq!(done, vec![VolumeEvent::VolumeAllocated { size: 5 }]);
    let s = given(&[requested(5), started[0].clone(), done[0].clone()]);
    assert_eq!(s.volume.as_ref().unwrap().status, VolumeStatus::Available);
    // A repeated completion decides nothing.
    assert!(when(
        &s,
        VolumeCommand::CompleteWork {
            kind: WorkKind::Create
        }
    )
    .unwrap()
    .is_empty());
}

#[test]
fn failed_create_ends_in_error_and_may_be_deleted() {
    let ev = vec![
        requested(5),
        VolumeEvent::VolumeCreateFailed {
            reason: "disk full".into(),
        },
    ];
    assert_eq!(given(&ev).volume.unwrap().status, VolumeStatus::Error);
    assert!(when(
        &given(&ev),
        VolumeCommand::Delete {
            job_id: None,
            dependent_snapshots: 0
        }
    )
    .is_ok());
}

#[test]
fn extend_requires_a_strictly_greater_size() {
    let s = given(&available(10));
    for new in [10, 9, 0, -5] {
        let err = when(
            &s,
            VolumeCommand::Extend {
                new_size: new,
                job_id: None,
                quota: crate::quota::Headroom::unlimited(),
                policy: crate::volume::ExtendPolicy::OPEN,
            },
        )
        .unwrap_err();
        assert_eq!(err.reason(), "new_size_not_greater", "new size {new}");
    }
    let err = when(
        &s,
        VolumeCommand::Extend {
            new_size: 40_000,
            job_id: None,
            quota: crate::quota::Headroom::unlimited(),
            policy: crate::volume::ExtendPolicy::OPEN,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "invalid_size");
}

#[test]
fn extend_goes_through_extending_and_back() {
    let mut ev = available(10);
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::Extend {
                new_size: 20,
                job_id: None,
                quota: crate::quota::Headroom::unlimited(),
                policy: crate::volume::ExtendPolicy::OPEN,
            },
        )
        .unwrap(),
    );
    assert_eq!(given(&ev).volume.unwrap().status, VolumeStatus::Extending);
    // Not while extending.
    let err = when(
        &given(&ev),
        VolumeCommand::Extend {
            new_size: 30,
            job_id: None,
            quota: crate::quota::Headroom::unlimited(),
            policy: crate::volume::ExtendPolicy::OPEN,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "extend_wrong_status");
    let err = when(
        &given(&ev),
        VolumeCommand::Delete {
            job_id: None,
            dependent_snapshots: 0,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "delete_wrong_status");
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::CompleteWork {
                kind: WorkKind::Extend,
            },
        )
        .unwrap(),
    );
    let v = given(&ev).volume.unwrap();
    assert_eq!((v.status, v.size), (VolumeStatus::Available, 20));
}

#[test]
fn failed_extend_keeps_the_size_and_refuses_another_extend_with_evs_2026() {
    let mut ev = available(10);
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::Extend {
                new_size: 20,
                job_id: None,
                quota: crate::quota::Headroom::unlimited(),
                policy: crate::volume::ExtendPolicy::OPEN,
            },
        )
        .unwrap(),
    );
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::FailWork {
                kind: WorkKind::Extend,
                reason: "x".into(),
            },
        )
        .unwrap(),
    );
    let v = given(&ev).volume.unwrap();
    assert_eq!((v.status, v.size), (VolumeStatus::ErrorExtending, 10));
    let err = when(
        &given(&ev),
        VolumeCommand::Extend {
            new_size: 30,
            job_id: None,
            quota: crate::quota::Headroom::unlimited(),
            policy: crate::volume::ExtendPolicy::OPEN,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "extend_error_extending");
}

#[test]
fn extend_refused_while_creating() {
    let err = when(
        &given(&[requested(1)]),
        VolumeCommand::Extend {
            new_size: 2,
            job_id: None,
            quota: crate::quota::Headroom::unlimited(),
            policy: crate::volume::ExtendPolicy::OPEN,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "extend_wrong_status");
}

#[test]
fn delete_refused_while_creating_with_evs_1046() {
    let err = when(
        &given(&[requested(1)]),
        VolumeCommand::Delete {
            job_id: None,
            dependent_snapshots: 0,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "delete_wrong_status");
}

#[test]
fn delete_then_deleted_makes_the_volume_gone() {
    let mut ev = available(1);
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::Delete {
                job_id: None,
                dependent_snapshots: 0,
            },
        )
        .unwrap(),
    );
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::CompleteWork {
                kind: WorkKind::Delete,
            },
        )
        .unwrap(),
    );
    let s = given(&ev);
    assert!(s.deleted);
    let err = when(
        &s,
        VolumeCommand::Update {
            name: Some("x".into()),
            description: None,
            metadata: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, DomainError::VolumeNotFound(_)));
    // Outcomes after deletion are stale deliveries: no events, no error.
    assert!(when(
        &s,
        VolumeCommand::CompleteWork {
            kind: WorkKind::Delete
        }
    )
    .unwrap()
    .is_empty());
}

#[test]
fn update_needs_a_name_or_a_description() {
    let s = given(&available(1));
    let err = when(
        &s,
        VolumeCommand::Update {
            name: None,
            description: None,
            metadata: None,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "name_and_description_empty");
    let ev = when(
        &s,
        VolumeCommand::Update {
            name: Some("n".into()),
            description: None,
            metadata: None,
        },
    )
    .unwrap();
    assert_eq!(ev.len(), 1);
}

#[test]
fn commands_on_a_missing_volume_are_not_found() {
    for cmd in [
        VolumeCommand::Delete {
            job_id: None,
            dependent_snapshots: 0,
        },
        VolumeCommand::Extend {
            new_size: 2,
            job_id: None,
            quota: crate::quota::Headroom::unlimited(),
            policy: crate::volume::ExtendPolicy::OPEN,
        },
        VolumeCommand::StartWork {
            kind: WorkKind::Create,
        },
    ] {
        assert!(matches!(
            when(&given(&[]), cmd).unwrap_err(),
            DomainError::VolumeNotFound(_)
        ));
    }
}

#[test]
fn events_round_trip_through_json_with_a_type_tag() {
    let e = requested(3);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["type"], "VolumeCreateRequested");
    assert_eq!(json["data"]["size"], 3);
    assert_eq!(serde_json::from_value::<VolumeEvent>(json).unwrap(), e);
}

#[test]
fn delete_with_snapshots_is_refused() {
    let err = when(
        &given(&available(1)),
        VolumeCommand::Delete {
            job_id: None,
            dependent_snapshots: 2,
        },
    )
    .unwrap_err();
    assert!(matches!(err, DomainError::VolumeHasSnapshots(2)));
}

fn snap_source(size: i64) -> SnapshotSource {
    SnapshotSource {
        snapshot_id: Uuid::from_u128(5),
        status: crate::SnapshotStatus::Available,
        size,
        volume_type: "SATA".into(),
        availability_zone: "az-dc-1".into(),
        linked: true,
        backend: "SATA".into(),
    }
}

#[test]
fn create_from_snapshot_checks_size_type_zone_and_status() {
    let mut c = create_cmd(4);
    c.source = Some(CreateSource::Snapshot(snap_source(4)));
    let ev = when(&given(&[]), VolumeCommand::Create(c.clone().into())).unwrap();
    assert!(matches!(
        &ev[0],
        VolumeEvent::VolumeCreateRequested {
            snapshot_id: Some(_),
            linked_clone: true,
            ..
        }
    ));
    c.size = 3;
    assert_eq!(
        when(&given(&[]), VolumeCommand::Create(c.clone().into()))
            .unwrap_err()
            .reason(),
        "smaller_than_snapshot"
    );
    c.size = 8;
    c.volume_type = "SSD".into();
    assert_eq!(
        when(&given(&[]), VolumeCommand::Create(c.clone().into()))
            .unwrap_err()
            .reason(),
        "snapshot_type_mismatch"
    );
    c.volume_type = "SATA".into();
    c.availability_zone = "toronto".into();
    assert_eq!(
        when(&given(&[]), VolumeCommand::Create(c.clone().into()))
            .unwrap_err()
            .reason(),
        "snapshot_zone_mismatch"
    );
    let mut s = snap_source(4);
    s.status = crate::SnapshotStatus::Creating;
    let mut c = create_cmd(4);
    c.source = Some(CreateSource::Snapshot(s));
    assert_eq!(
        when(&given(&[]), VolumeCommand::Create(c.into()))
            .unwrap_err()
            .reason(),
        "snapshot_not_available"
    );
}

#[test]
fn rollback_goes_through_rollingback_and_renames() {
    let snap = Uuid::from_u128(5);
    let mut ev = available(1);
    let bad = VolumeCommand::Rollback {
        snapshot_id: snap,
        snapshot_volume_id: Uuid::from_u128(1),
        name: None,
    };
    assert!(matches!(
        when(&given(&ev), bad).unwrap_err(),
        DomainError::RollbackWrongVolume(_)
    ));
    let ok = VolumeCommand::Rollback {
        snapshot_id: snap,
        snapshot_volume_id: vid(),
        name: Some("back".into()),
    };
    ev.extend(when(&given(&ev), ok.clone()).unwrap());
    assert_eq!(given(&ev).volume.unwrap().status, VolumeStatus::Rollingback);
    assert!(when(&given(&ev), ok.clone()).is_err(), "not twice at once");
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::CompleteWork {
                kind: WorkKind::Rollback,
            },
        )
        .unwrap(),
    );
    assert_eq!(
        ev.last().unwrap(),
        &VolumeEvent::VolumeRolledBack {
            snapshot_id: snap,
            name: Some("back".into())
        }
    );
    assert_eq!(given(&ev).volume.unwrap().status, VolumeStatus::Available);
}

#[test]
fn failed_rollback_may_be_retried() {
    let snap = Uuid::from_u128(5);
    let mut ev = available(1);
    let cmd = VolumeCommand::Rollback {
        snapshot_id: snap,
        snapshot_volume_id: vid(),
        name: None,
    };
    ev.extend(when(&given(&ev), cmd.clone()).unwrap());
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::FailWork {
                kind: WorkKind::Rollback,
                reason: "io".into(),
            },
        )
        .unwrap(),
    );
    assert_eq!(
        given(&ev).volume.unwrap().status,
        VolumeStatus::ErrorRollbacking
    );
    assert!(when(&given(&ev), cmd).is_ok());
}

#[test]
fn creation_metadata_rules() {
    let md =
        |k: &str, v: &str| -> BTreeMap<String, String> { [(k.to_string(), v.to_string())].into() };
    assert_eq!(creation_metadata(&md("full_clone", "0"), true), Ok(true));
    assert_eq!(creation_metadata(&BTreeMap::new(), true), Ok(false));
    assert_eq!(
        creation_metadata(&md("full_clone", "x"), true)
            .unwrap_err()
            .field(),
        Some("metadata.full_clone")
    );
    assert_eq!(
        creation_metadata(&md("hw:passthrough", "yes"), false)
            .unwrap_err()
            .field(),
        Some("metadata.hw:passthrough")
    );
    assert_eq!(
        creation_metadata(&md("hw:passthrough", "true"), true)
            .unwrap_err()
            .field(),
        Some("metadata.hw:passthrough")
    );
    assert_eq!(
        creation_metadata(&md("hw:passthrough", "true"), false),
        Ok(false)
    );
}

#[test]
fn next_free_device_skips_the_root_disk_and_taken_ones() {
    use crate::volume::next_free_device;
    assert_eq!(next_free_device(&[]), "/dev/vdb");
    assert_eq!(
        next_free_device(&["/dev/vdb".into(), "/dev/vdc".into()]),
        "/dev/vdd"
    );
    let all: Vec<String> = (b'b'..=b'z')
        .map(|c| format!("/dev/vd{}", c as char))
        .collect();
    assert_eq!(next_free_device(&all), "/dev/vdaa");
}

#[test]
fn unattached_only_policy_refuses_an_attached_volume() {
    let mut ev = available(10);
    ev.extend(
        when(
            &given(&ev),
            VolumeCommand::Attach {
                attachment_id: Uuid::from_u128(7),
                server_id: "srv".into(),
                host_name: None,
                device: "/dev/vdb".into(),
                mode: AttachMode::Rw,
            },
        )
        .unwrap(),
    );
    let extend = |policy| VolumeCommand::Extend {
        new_size: 20,
        job_id: None,
        quota: crate::quota::Headroom::unlimited(),
        policy,
    };
    let err = when(&given(&ev), extend(ExtendPolicy::UNATTACHED_ONLY)).unwrap_err();
    assert_eq!(err.reason(), "extend_attached");
    assert!(when(&given(&ev), extend(ExtendPolicy::OPEN)).is_ok());
    assert!(when(
        &given(&available(10)),
        extend(ExtendPolicy::UNATTACHED_ONLY)
    )
    .is_ok());
}

fn vol_source(status: VolumeStatus, size: i64) -> VolumeSourceFacts {
    VolumeSourceFacts {
        volume_id: Uuid::parse_str("0b0c0d0e-0000-4000-8000-000000000001").unwrap(),
        status,
        size,
        volume_type: "SSD".into(),
        availability_zone: "az-dc-1".into(),
        backend: "SSD".into(),
    }
}

#[test]
fn create_from_a_volume_checks_status_size_zone_and_quota() {
    let create = |size: i64, src: VolumeSourceFacts| {
        let mut c = create_cmd(size);
        c.source = Some(CreateSource::Volume(src));
        when(&given(&[]), VolumeCommand::Create(c.into()))
    };
    for ok in [VolumeStatus::Available, VolumeStatus::InUse] {
        let events = create(10, vol_source(ok, 10)).unwrap();
        let VolumeEvent::VolumeCreateRequested {
            source_volume_id,
            snapshot_id,
            ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(*source_volume_id, Some(vol_source(ok, 10).volume_id));
        assert_eq!(*snapshot_id, None);
    }
    for bad in [
        VolumeStatus::Creating,
        VolumeStatus::Error,
        VolumeStatus::Deleting,
        VolumeStatus::Extending,
    ] {
        assert!(matches!(
            create(10, vol_source(bad, 10)),
            Err(DomainError::SourceVolumeNotAvailable(_))
        ));
    }
    let e = create(5, vol_source(VolumeStatus::Available, 10)).unwrap_err();
    assert_eq!(e.reason(), "smaller_than_source_volume");
    let mut other_zone = vol_source(VolumeStatus::Available, 10);
    other_zone.availability_zone = "az-dc-2".into();
    assert!(matches!(
        create(10, other_zone),
        Err(DomainError::SourceVolumeZoneMismatch(_))
    ));
    // Counted against the quota like any new volume.
    let mut c = create_cmd(10);
    c.source = Some(CreateSource::Volume(vol_source(
        VolumeStatus::Available,
        10,
    )));
    c.quota = crate::quota::Headroom {
        limits: [("gigabytes".to_string(), 15)].into(),
        usage: [("gigabytes".to_string(), 10)].into(),
        unchecked: false,
    };
    assert_eq!(
        when(&given(&[]), VolumeCommand::Create(c.into()))
            .unwrap_err()
            .reason(),
        "gigabytes_quota"
    );
}

#[test]
fn a_clone_event_without_the_source_field_still_decodes() {
    // An old (v1) event without the field decodes once upcast; the current
    // shape requires it.
    let old = serde_json::json!({
        "volume_id": vid(), "project_id": "p", "user_id": "u", "name": null,
        "description": null, "size": 1, "availability_zone": "a", "volume_type": "t",
        "metadata": {}, "multiattach": false, "job_id": null});
    let as_is = serde_json::json!({"type": "VolumeCreateRequested", "data": old.clone()});
    assert!(serde_json::from_value::<VolumeEvent>(as_is).is_err());
    let (v, data) = crate::upcast::upcast("VolumeCreateRequested", 1, old);
    assert_eq!(v, 2);
    let ev: VolumeEvent =
        serde_json::from_value(serde_json::json!({"type": "VolumeCreateRequested", "data": data}))
            .unwrap();
    assert!(matches!(
        ev,
        VolumeEvent::VolumeCreateRequested {
            source_volume_id: None,
            backend: None,
            ..
        }
    ));
}

/// Retype without migration (Cinder `os-retype`, issue 12).
#[test]
fn retype_changes_the_type_of_an_available_volume_on_its_backend() {
    let retype = |to: &str, migration_needed: Option<&str>| VolumeCommand::Retype {
        new_type: to.into(),
        migration_needed: migration_needed.map(String::from),
        quota: crate::quota::Headroom::unlimited(),
    };
    let mut events = available(1);
    let from = match &events[0] {
        VolumeEvent::VolumeCreateRequested { volume_type, .. } => volume_type.clone(),
        _ => unreachable!(),
    };
    assert_eq!(
        when(&given(&events), retype(&from, None))
            .unwrap_err()
            .reason(),
        "retype_refused"
    );
    assert_eq!(
        when(&given(&events), retype("gold", Some("another backend")))
            .unwrap_err()
            .reason(),
        "retype_refused"
    );
    let ev = when(&given(&events), retype("gold", None)).unwrap();
    assert_eq!(
        ev,
        vec![VolumeEvent::VolumeRetyped {
            from,
            to: "gold".into()
        }]
    );
    events.extend(ev);
    assert_eq!(given(&events).volume.unwrap().volume_type, "gold");
    // Refused while creating.
    assert!(when(&given(&[requested(1)]), retype("gold", None)).is_err());
}

#[test]
fn retype_admits_the_new_types_quota_only() {
    let mut quota = crate::quota::Headroom::default();
    quota.limits.insert("volumes_gold".into(), 0);
    quota.limits.insert("volumes".into(), 1);
    quota.usage.insert("volumes".into(), 1);
    let cmd = |quota| VolumeCommand::Retype {
        new_type: "gold".into(),
        migration_needed: None,
        quota,
    };
    let s = given(&available(1));
    assert_eq!(
        when(&s, cmd(quota.clone())).unwrap_err().reason(),
        "volume_count_quota"
    );
    quota.limits.insert("volumes_gold".into(), 1);
    // The project is at its total, yet a retype adds no volume.
    assert!(when(&s, cmd(quota)).is_ok());
}

#[test]
fn a_type_rename_renames_a_live_volume_of_that_type_only() {
    let rename = |from: &str, to: &str| VolumeCommand::FollowTypeRename {
        from: from.into(),
        to: to.into(),
    };
    // Given a live SATA volume, in any status: the rename follows.
    let mut events = vec![requested(1)];
    let ev = when(&given(&events), rename("SATA", "slow")).unwrap();
    assert_eq!(
        ev,
        vec![VolumeEvent::VolumeTypeRenamed {
            from: "SATA".into(),
            to: "slow".into()
        }]
    );
    events.extend(ev);
    let v = given(&events).volume.unwrap();
    assert_eq!(
        (v.volume_type.as_str(), v.status),
        ("slow", VolumeStatus::Creating)
    );
    // Run twice: the second finds nothing to do (idempotent).
    assert_eq!(
        when(&given(&events), rename("SATA", "slow")).unwrap(),
        vec![]
    );
    // Another type's rename, and a rename to the same name, change nothing.
    assert_eq!(
        when(&given(&events), rename("SSD", "fast")).unwrap(),
        vec![]
    );
    assert_eq!(
        when(&given(&events), rename("slow", "slow")).unwrap(),
        vec![]
    );
    // A deleted volume, or none, is left alone.
    assert_eq!(when(&given(&[]), rename("SATA", "slow")).unwrap(), vec![]);
}

/// Issue 16: placement is recorded in the create event and resolved into
/// the state.
#[test]
fn placement_is_recorded_and_a_clone_stays_on_its_sources_backend() {
    let backend_of = |c: CreateVolume| {
        let ev = when(&given(&[]), VolumeCommand::Create(c.into())).unwrap();
        let VolumeEvent::VolumeCreateRequested { backend, .. } = &ev[0] else {
            panic!("{ev:?}")
        };
        (backend.clone(), given(&ev).volume.unwrap().backend)
    };
    // No placement given: the type's old rule.
    let mut c = create_cmd(1);
    assert_eq!(backend_of(c.clone()), (Some("SATA".into()), "SATA".into()));
    c.volume_type = "gold".into();
    assert_eq!(backend_of(c.clone()).1, "SATA");
    // The scheduler's choice.
    c.backend = Some("fast".into());
    assert_eq!(backend_of(c.clone()), (Some("fast".into()), "fast".into()));
    // A clone of a volume: the source's backend, whatever was chosen.
    let mut src = vol_source(VolumeStatus::Available, 1);
    src.backend = "ceph".into();
    let mut clone = c.clone();
    clone.source = Some(CreateSource::Volume(src));
    assert_eq!(backend_of(clone).1, "ceph");
    // A clone of a snapshot: the snapshot's backend.
    let mut from_snap = create_cmd(4);
    from_snap.backend = Some("fast".into());
    let mut s = snap_source(4);
    s.backend = "slow".into();
    from_snap.source = Some(CreateSource::Snapshot(s));
    assert_eq!(backend_of(from_snap).1, "slow");
}

#[test]
fn an_event_from_before_placement_folds_to_the_old_rule() {
    let mut ev = serde_json::to_value(requested(1)).unwrap();
    ev["data"].as_object_mut().unwrap().remove("backend");
    ev["data"]["volume_type"] = serde_json::json!("SSD");
    let old: VolumeEvent = serde_json::from_value(ev).unwrap();
    assert!(matches!(
        old,
        VolumeEvent::VolumeCreateRequested { backend: None, .. }
    ));
    assert_eq!(given(&[old]).volume.unwrap().backend, "SSD");
}
