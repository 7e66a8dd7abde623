//! Decider tests: given events, when a command, then events (or the
//! refusal), as Cinder's `cinder/group/api.py` rules them.

use super::*;
use GroupCommand as C;
use GroupEvent as E;

fn vt() -> Uuid {
    Uuid::from_u128(100)
}

fn gid() -> Uuid {
    Uuid::from_u128(1)
}

fn create(source: Source, in_use: i64, limit: i64) -> C {
    C::Create {
        id: gid(),
        project_id: "p".into(),
        user_id: "u".into(),
        name: Some("g".into()),
        description: None,
        group_type_id: Uuid::from_u128(2),
        volume_type_ids: vec![vt()],
        availability_zone: "nova".into(),
        source,
        groups_in_use: in_use,
        groups_limit: limit,
    }
}

fn created() -> Vec<E> {
    given(&[], create(Source::None, 0, 10)).unwrap()
}

/// Given `events`, when `cmd`: the events decided, or the refusal.
fn given(events: &[E], cmd: C) -> Result<Vec<E>, DomainError> {
    GroupAggregate::decide(&GroupAggregate::fold(events), cmd)
}

fn and(mut events: Vec<E>, cmd: C) -> Vec<E> {
    let more = given(&events, cmd).unwrap();
    events.extend(more);
    events
}

fn candidate(id: u128, status: &str, project: &str, group: Option<Uuid>) -> Candidate {
    Candidate {
        id: Uuid::from_u128(id).to_string(),
        volume: Some(CandidateVolume {
            id: Uuid::from_u128(id),
            project_id: project.into(),
            status: status.into(),
            volume_type_id: Some(vt()),
            group_id: group,
        }),
    }
}

fn update(add: Vec<Candidate>, remove: Vec<u128>, members: &[(u128, &str)]) -> C {
    C::Update {
        name: None,
        description: None,
        add,
        remove: remove
            .into_iter()
            .map(|r| Uuid::from_u128(r).to_string())
            .collect(),
        member_statuses: members
            .iter()
            .map(|(i, s)| (Uuid::from_u128(*i), s.to_string()))
            .collect(),
    }
}

#[test]
fn a_plain_group_is_available_and_counts_against_the_groups_quota() {
    let ev = created();
    assert!(matches!(
        &ev[..],
        [E::GroupCreated {
            status: GroupStatus::Available,
            ..
        }]
    ));
    assert_eq!(
        given(&[], create(Source::None, 10, 10))
            .unwrap_err()
            .reason(),
        "group_count_quota"
    );
    // -1: unlimited.
    assert!(given(&[], create(Source::None, 1000, -1)).is_ok());
}

#[test]
fn a_group_from_a_source_is_creating_until_its_members_are_made() {
    let members = vec![Uuid::from_u128(50), Uuid::from_u128(51)];
    let src = |status: &str, members: Vec<Uuid>| Source::GroupSnapshot {
        id: Uuid::from_u128(9),
        status: status.into(),
        members,
    };
    assert_eq!(
        given(&[], create(src("available", vec![]), 0, 10))
            .unwrap_err()
            .reason(),
        "group_refused"
    );
    assert!(given(&[], create(src("creating", members.clone()), 0, 10)).is_err());
    let ev = given(&[], create(src("available", members.clone()), 0, 10)).unwrap();
    let g = GroupAggregate::fold(&ev).group.unwrap();
    assert_eq!(g.status, GroupStatus::Creating);
    assert_eq!(g.volumes.len(), 2);
    assert_eq!(
        shown_status(&g, &["creating", "available"]),
        GroupStatus::Creating
    );
    assert_eq!(
        shown_status(&g, &["available", "available"]),
        GroupStatus::Available
    );
    assert_eq!(
        shown_status(&g, &["error", "available"]),
        GroupStatus::Error
    );
    // An admin's reset replaces the members' progress (3.20).
    let ev = and(ev, C::ResetStatus(GroupStatus::Creating));
    let g = GroupAggregate::fold(&ev).group.unwrap();
    assert_eq!(
        shown_status(&g, &["available", "available"]),
        GroupStatus::Creating
    );
    let from_group = Source::Group {
        id: Uuid::from_u128(8),
        status: GroupStatus::Available,
        members: vec![],
    };
    assert!(given(&[], create(from_group, 0, 10)).is_err());
}

#[test]
fn update_adds_and_removes_members_as_cinder_validates_them() {
    let ev = created();
    // Not found, another group, another project, a bad status.
    let missing = Candidate {
        id: "nope".into(),
        volume: None,
    };
    for c in [
        missing,
        candidate(5, "available", "p", Some(Uuid::from_u128(77))),
        candidate(5, "available", "q", None),
        candidate(5, "creating", "p", None),
    ] {
        assert_eq!(
            given(&ev, update(vec![c], vec![], &[]))
                .unwrap_err()
                .reason(),
            "invalid_field"
        );
    }
    let ev = and(
        ev,
        update(vec![candidate(5, "available", "p", None)], vec![], &[]),
    );
    assert_eq!(
        GroupAggregate::fold(&ev).group.unwrap().volumes,
        BTreeSet::from([Uuid::from_u128(5)])
    );
    // Both lists name it; not a member; nothing to do.
    assert!(given(
        &ev,
        update(
            vec![candidate(5, "available", "p", None)],
            vec![5],
            &[(5, "available")]
        )
    )
    .is_err());
    assert!(given(&ev, update(vec![], vec![6], &[(5, "available")])).is_err());
    assert_eq!(
        given(&ev, update(vec![], vec![], &[]))
            .unwrap_err()
            .reason(),
        "group_refused"
    );
    assert!(given(&ev, update(vec![], vec![5], &[(5, "creating")])).is_err());
    let ev = and(ev, update(vec![], vec![5], &[(5, "available")]));
    assert!(GroupAggregate::fold(&ev).group.unwrap().volumes.is_empty());
}

#[test]
fn a_new_volume_joins_only_with_one_of_the_groups_types() {
    let ev = created();
    let add = |t: Option<Uuid>| C::AddCreated {
        volume_id: Uuid::from_u128(5),
        volume_type_id: t,
    };
    assert!(given(&ev, add(None)).is_err());
    assert!(given(&ev, add(Some(Uuid::from_u128(101)))).is_err());
    assert!(matches!(
        &given(&ev, add(Some(vt()))).unwrap()[..],
        [E::GroupVolumesAdded { .. }]
    ));
}

#[test]
fn delete_follows_cinders_conditions() {
    let ev = and(
        created(),
        update(vec![candidate(5, "available", "p", None)], vec![], &[]),
    );
    let member = |attached, has_snapshots| MemberFacts {
        id: Uuid::from_u128(5),
        status: "available".into(),
        attached,
        has_snapshots,
    };
    let del = |delete_volumes, status, snaps, members: Vec<MemberFacts>| C::Delete {
        delete_volumes,
        status,
        has_group_snapshots: snaps,
        members,
        source_of_creation: false,
    };
    let reason = |c| given(&ev, c).unwrap_err().reason();
    assert_eq!(
        reason(del(
            false,
            GroupStatus::Available,
            false,
            vec![member(false, false)]
        )),
        "group_refused"
    );
    assert_eq!(
        reason(del(true, GroupStatus::Available, true, vec![])),
        "group_refused"
    );
    assert_eq!(
        reason(del(
            true,
            GroupStatus::Available,
            false,
            vec![member(true, false)]
        )),
        "group_refused"
    );
    assert_eq!(
        reason(del(
            true,
            GroupStatus::Available,
            false,
            vec![member(false, true)]
        )),
        "group_refused"
    );
    assert_eq!(
        reason(del(false, GroupStatus::Creating, false, vec![])),
        "group_refused"
    );
    // delete-volumes deletes whatever the status.
    let out = given(
        &ev,
        del(
            true,
            GroupStatus::Creating,
            false,
            vec![member(false, false)],
        ),
    )
    .unwrap();
    assert!(
        matches!(&out[..], [E::GroupDeleted { volume_ids }] if volume_ids == &vec![Uuid::from_u128(5)])
    );
    let ev = and(
        ev,
        del(
            true,
            GroupStatus::Available,
            false,
            vec![member(false, false)],
        ),
    );
    assert_eq!(
        given(&ev, C::ResetStatus(GroupStatus::Error))
            .unwrap_err()
            .reason(),
        "group_not_found"
    );
}

#[test]
fn replication_is_refused_for_a_type_that_is_not_replicated() {
    let ev = created();
    let err = given(
        &ev,
        C::Replication {
            group_type_replicated: false,
        },
    )
    .unwrap_err();
    assert_eq!(err.reason(), "group_type_refused");
    assert!(err.to_string().contains("is not a replication group type"));
    assert!(given(
        &ev,
        C::Replication {
            group_type_replicated: true
        }
    )
    .is_err());
}

#[test]
fn a_member_is_deleted_only_with_its_group_or_set() {
    assert!(refuse_member_delete(None).is_ok());
    assert_eq!(
        refuse_member_delete(Some("g")).unwrap_err().reason(),
        "invalid_field"
    );
    assert!(refuse_set_member_delete(None).is_ok());
    assert!(refuse_set_member_delete(Some("gs")).is_err());
    assert!(refuse_member_retype(None).is_ok());
    assert_eq!(
        refuse_member_retype(Some("g")).unwrap_err().reason(),
        "retype_refused"
    );
}
