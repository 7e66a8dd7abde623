//! Quotas (API.md 3.8; DECISIONS.md, Quotas [5.1 #13, #24]). Usage is never
//! a counter: the quota view folds it from volume and snapshot events, the
//! caller reads it in the same transaction as the command, and the decider
//! refuses a command that would pass a limit. Limits are events too
//! (`quota-<project>` stream).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Aggregate, DomainError};

pub const UNLIMITED: i64 = -1;

/// Cinder's defaults for the keys every project has.
/// `groups` (volume groups) is Cinder's too; the Huawei seed's quota body
/// does not list it, so `/v2` leaves it out ([`in_seed`]).
pub const DEFAULTS: [(&str, i64); 7] = [
    ("volumes", 10),
    ("snapshots", 10),
    ("gigabytes", 1000),
    ("backups", 10),
    ("backup_gigabytes", 1000),
    ("per_volume_gigabytes", UNLIMITED),
    ("groups", 10),
];

/// Whether a key is one the Huawei seed's quota body (CINDER-7.1.9) prints.
pub fn in_seed(key: &str) -> bool {
    key != "groups"
}

/// Every quota key for the given volume types, in a stable order.
pub fn keys(types: &[String]) -> Vec<String> {
    let mut k: Vec<String> = DEFAULTS.iter().map(|(k, _)| k.to_string()).collect();
    for t in types {
        for base in ["volumes", "gigabytes", "snapshots"] {
            k.push(format!("{base}_{t}"));
        }
    }
    k
}

/// The limit of `key` given explicit overrides (per-type keys default to -1).
pub fn limit_of(overrides: &BTreeMap<String, i64>, key: &str) -> i64 {
    overrides
        .get(key)
        .copied()
        .or_else(|| DEFAULTS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
        .unwrap_or(UNLIMITED)
}

/// What a command would add to a project's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub volume_type: String,
    pub volumes: i64,
    pub snapshots: i64,
    pub gigabytes: i64,
    /// Size of one new volume, for `per_volume_gigabytes`.
    pub new_volume_size: Option<i64>,
}

impl Delta {
    pub fn volume(volume_type: &str, size: i64) -> Self {
        Delta {
            volume_type: volume_type.into(),
            volumes: 1,
            gigabytes: size,
            new_volume_size: Some(size),
            ..Default::default()
        }
    }
    pub fn grow(volume_type: &str, by: i64, new_size: i64) -> Self {
        Delta {
            volume_type: volume_type.into(),
            gigabytes: by,
            new_volume_size: Some(new_size),
            ..Default::default()
        }
    }
    pub fn snapshot(volume_type: &str, size: i64) -> Self {
        Delta {
            volume_type: volume_type.into(),
            snapshots: 1,
            gigabytes: size,
            ..Default::default()
        }
    }
}

/// A project's limits and current usage, read in the command's transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headroom {
    pub limits: BTreeMap<String, i64>,
    pub usage: BTreeMap<String, i64>,
    /// Unlimited headroom (no check): for commands issued by the service
    /// itself and for tests that are not about quotas.
    pub unchecked: bool,
}

impl Headroom {
    pub fn unlimited() -> Self {
        Headroom {
            unchecked: true,
            ..Default::default()
        }
    }

    fn check(
        &self,
        key: &str,
        requested: i64,
        err: impl Fn(String, i64, i64, i64) -> DomainError,
    ) -> Result<(), DomainError> {
        if requested <= 0 {
            return Ok(());
        }
        let limit = limit_of(&self.limits, key);
        let in_use = self.usage.get(key).copied().unwrap_or(0);
        if limit != UNLIMITED && in_use.saturating_add(requested) > limit {
            return Err(err(key.to_string(), limit, in_use, requested));
        }
        Ok(())
    }

    /// A volume of `size` GB moving to `volume_type` (a retype): only the
    /// new type's keys grow; the project's totals stay as they are.
    pub fn admit_type_change(&self, volume_type: &str, size: i64) -> Result<(), DomainError> {
        if self.unchecked {
            return Ok(());
        }
        self.check(
            &format!("volumes_{volume_type}"),
            1,
            |resource, limit, in_use, requested| DomainError::VolumeCountQuota {
                resource,
                limit,
                in_use,
                requested,
            },
        )?;
        self.check(
            &format!("gigabytes_{volume_type}"),
            size,
            |resource, limit, in_use, requested| DomainError::GigabytesQuota {
                resource,
                limit,
                in_use,
                requested,
            },
        )
    }

    /// Refuses `d` if it would pass any limit (EVS.1034 / EVS.1042).
    pub fn admit(&self, d: &Delta) -> Result<(), DomainError> {
        if self.unchecked {
            return Ok(());
        }
        let vol = |resource, limit, in_use, requested| DomainError::VolumeCountQuota {
            resource,
            limit,
            in_use,
            requested,
        };
        let gb = |resource, limit, in_use, requested| DomainError::GigabytesQuota {
            resource,
            limit,
            in_use,
            requested,
        };
        let snap = |resource, limit, in_use, requested| DomainError::SnapshotCountQuota {
            resource,
            limit,
            in_use,
            requested,
        };
        if let Some(size) = d.new_volume_size {
            let per = limit_of(&self.limits, "per_volume_gigabytes");
            if per != UNLIMITED && size > per {
                return Err(gb("per_volume_gigabytes".into(), per, 0, size));
            }
        }
        let t = &d.volume_type;
        self.check("volumes", d.volumes, vol)?;
        self.check(&format!("volumes_{t}"), d.volumes, vol)?;
        self.check("snapshots", d.snapshots, snap)?;
        self.check(&format!("snapshots_{t}"), d.snapshots, snap)?;
        self.check("gigabytes", d.gigabytes, gb)?;
        self.check(&format!("gigabytes_{t}"), d.gigabytes, gb)?;
        Ok(())
    }
}

/// Limits of one project: `quota-<project>`.
pub struct QuotaAggregate;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaState {
    pub limits: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaCommand {
    /// Admin `PUT /os-quota-sets/{project_id}`; `known` are the valid keys.
    SetLimits {
        changes: BTreeMap<String, i64>,
        known: Vec<String>,
    },
    /// Admin `DELETE /os-quota-sets/{project_id}`: the project's own
    /// limits go; the defaults (the `default` quota class) apply again.
    Reset,
    /// A volume type was renamed: its per-type limits follow the name,
    /// as Cinder's `update_quota_resource` renames them.
    FollowTypeRename { from: String, to: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum QuotaEvent {
    QuotaLimitsSet {
        project_id: String,
        changes: BTreeMap<String, i64>,
    },
    QuotaLimitsReset {
        project_id: String,
    },
    /// The per-type limits of type `from` are now those of type `to`.
    QuotaTypeRenamed {
        project_id: String,
        from: String,
        to: String,
    },
}

/// The per-type quota keys of a type (Cinder's `volumes_<type>`,
/// `gigabytes_<type>`, `snapshots_<type>`).
pub fn type_keys(volume_type: &str) -> [String; 3] {
    [
        format!("volumes_{volume_type}"),
        format!("gigabytes_{volume_type}"),
        format!("snapshots_{volume_type}"),
    ]
}

/// `limits` with type `from`'s per-type keys moved to type `to`'s; an
/// entry `to` already had is replaced (the renamed type's limit wins, as
/// the name now means that type).
pub fn rename_type_keys(
    limits: &BTreeMap<String, i64>,
    from: &str,
    to: &str,
) -> BTreeMap<String, i64> {
    let mut out = limits.clone();
    for (old, new) in type_keys(from).into_iter().zip(type_keys(to)) {
        if let Some(v) = out.remove(&old) {
            out.insert(new, v);
        }
    }
    out
}

/// Whether `limits` holds any of type `t`'s per-type keys.
pub fn has_type_keys(limits: &BTreeMap<String, i64>, t: &str) -> bool {
    type_keys(t).iter().any(|k| limits.contains_key(k))
}

/// Checks a set of limit changes: at least one, known keys, each -1 or more.
fn check_changes(changes: &BTreeMap<String, i64>, known: &[String]) -> Result<(), DomainError> {
    if changes.is_empty() {
        return Err(DomainError::invalid(
            "quota_set",
            crate::error::FieldReason::Missing,
            "quota_set must name at least one quota.",
        ));
    }
    for (k, v) in changes {
        if !known.iter().any(|x| x == k) {
            return Err(DomainError::invalid(
                "quota_set",
                crate::error::FieldReason::Invalid,
                format!("Bad key(s) in quota set: {k}"),
            ));
        }
        if *v < UNLIMITED {
            return Err(DomainError::invalid(
                "quota_set",
                crate::error::FieldReason::OutOfRange,
                format!("Quota limit {v} for {k} must be -1 or greater."),
            ));
        }
    }
    Ok(())
}

/// The class whose limits are every project's defaults (Cinder's
/// `default` quota class); other classes are stored but bind no project.
pub const DEFAULT_CLASS: &str = "default";

/// Limits of one quota class: `quota_class-<name>` (`/os-quota-class-sets`).
pub struct QuotaClassAggregate;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaClassState {
    pub limits: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum QuotaClassEvent {
    QuotaClassLimitsSet {
        class_name: String,
        changes: BTreeMap<String, i64>,
    },
    /// A volume type was renamed: the class's per-type limits follow.
    QuotaClassTypeRenamed {
        class_name: String,
        from: String,
        to: String,
    },
}

/// What an administrator or a type rename asks of a quota class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaClassCommand {
    /// `PUT /os-quota-class-sets/{class}`: (changes, known keys).
    SetLimits {
        class_name: String,
        changes: BTreeMap<String, i64>,
        known: Vec<String>,
    },
    /// A volume type was renamed: the class's per-type limits follow.
    FollowTypeRename {
        class_name: String,
        from: String,
        to: String,
    },
}

impl Aggregate for QuotaClassAggregate {
    type State = QuotaClassState;
    type Command = QuotaClassCommand;
    type Event = QuotaClassEvent;

    fn stream_id(id: &str) -> String {
        format!("quota_class-{id}")
    }

    fn event_type(e: &QuotaClassEvent) -> &'static str {
        match e {
            QuotaClassEvent::QuotaClassLimitsSet { .. } => "QuotaClassLimitsSet",
            QuotaClassEvent::QuotaClassTypeRenamed { .. } => "QuotaClassTypeRenamed",
        }
    }

    fn decide(
        state: &QuotaClassState,
        cmd: QuotaClassCommand,
    ) -> Result<Vec<QuotaClassEvent>, DomainError> {
        match cmd {
            QuotaClassCommand::SetLimits {
                class_name,
                changes,
                known,
            } => {
                if class_name.is_empty() || class_name.len() > 255 {
                    return Err(DomainError::invalid(
                        "quota_class_set",
                        crate::error::FieldReason::Invalid,
                        "A quota class name is 1 to 255 characters.",
                    ));
                }
                check_changes(&changes, &known)?;
                Ok(vec![QuotaClassEvent::QuotaClassLimitsSet {
                    class_name,
                    changes,
                }])
            }
            QuotaClassCommand::FollowTypeRename {
                class_name,
                from,
                to,
            } => Ok(if from != to && has_type_keys(&state.limits, &from) {
                vec![QuotaClassEvent::QuotaClassTypeRenamed {
                    class_name,
                    from,
                    to,
                }]
            } else {
                vec![]
            }),
        }
    }

    fn evolve(mut state: QuotaClassState, event: &QuotaClassEvent) -> QuotaClassState {
        match event {
            QuotaClassEvent::QuotaClassLimitsSet { changes, .. } => state
                .limits
                .extend(changes.iter().map(|(k, v)| (k.clone(), *v))),
            QuotaClassEvent::QuotaClassTypeRenamed { from, to, .. } => {
                state.limits = rename_type_keys(&state.limits, from, to)
            }
        }
        state
    }
}

impl Aggregate for QuotaAggregate {
    type State = QuotaState;
    type Command = (String, QuotaCommand);
    type Event = QuotaEvent;

    fn stream_id(id: &str) -> String {
        format!("quota-{id}")
    }

    fn event_type(e: &QuotaEvent) -> &'static str {
        match e {
            QuotaEvent::QuotaLimitsSet { .. } => "QuotaLimitsSet",
            QuotaEvent::QuotaLimitsReset { .. } => "QuotaLimitsReset",
            QuotaEvent::QuotaTypeRenamed { .. } => "QuotaTypeRenamed",
        }
    }

    fn decide(
        state: &QuotaState,
        (project_id, cmd): (String, QuotaCommand),
    ) -> Result<Vec<QuotaEvent>, DomainError> {
        match cmd {
            QuotaCommand::SetLimits { changes, known } => {
                check_changes(&changes, &known)?;
                Ok(vec![QuotaEvent::QuotaLimitsSet {
                    project_id,
                    changes,
                }])
            }
            QuotaCommand::Reset => Ok(vec![QuotaEvent::QuotaLimitsReset { project_id }]),
            QuotaCommand::FollowTypeRename { from, to } => {
                Ok(if from != to && has_type_keys(&state.limits, &from) {
                    vec![QuotaEvent::QuotaTypeRenamed {
                        project_id,
                        from,
                        to,
                    }]
                } else {
                    vec![]
                })
            }
        }
    }

    fn evolve(mut state: QuotaState, event: &QuotaEvent) -> QuotaState {
        match event {
            QuotaEvent::QuotaLimitsSet { changes, .. } => state
                .limits
                .extend(changes.iter().map(|(k, v)| (k.clone(), *v))),
            QuotaEvent::QuotaLimitsReset { .. } => state.limits.clear(),
            QuotaEvent::QuotaTypeRenamed { from, to, .. } => {
                state.limits = rename_type_keys(&state.limits, from, to)
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(limits: &[(&str, i64)], usage: &[(&str, i64)]) -> Headroom {
        Headroom {
            limits: limits.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            usage: usage.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            unchecked: false,
        }
    }

    #[test]
    fn a_type_rename_moves_the_per_type_limits_of_a_project_and_a_class() {
        let set = QuotaEvent::QuotaLimitsSet {
            project_id: "p".into(),
            changes: BTreeMap::from([
                ("volumes_SSD".into(), 3),
                ("gigabytes_SSD".into(), 30),
                ("volumes_SAS".into(), 1),
                ("volumes".into(), 9),
            ]),
        };
        let follow = |from: &str, to: &str| {
            (
                "p".to_string(),
                QuotaCommand::FollowTypeRename {
                    from: from.into(),
                    to: to.into(),
                },
            )
        };
        let state = QuotaAggregate::fold(std::slice::from_ref(&set));
        let ev = QuotaAggregate::decide(&state, follow("SSD", "fast")).unwrap();
        assert_eq!(ev.len(), 1);
        let after = QuotaAggregate::fold([&set, &ev[0]]);
        assert_eq!(
            after.limits,
            BTreeMap::from([
                ("volumes_fast".into(), 3),
                ("gigabytes_fast".into(), 30),
                ("volumes_SAS".into(), 1),
                ("volumes".into(), 9),
            ])
        );
        // Twice is once; a type without limits of its own changes nothing.
        assert!(QuotaAggregate::decide(&after, follow("SSD", "fast"))
            .unwrap()
            .is_empty());
        assert!(QuotaAggregate::decide(&state, follow("SATA", "slow"))
            .unwrap()
            .is_empty());
        // A quota class follows the same way.
        let class = QuotaClassAggregate::fold(&[QuotaClassEvent::QuotaClassLimitsSet {
            class_name: "default".into(),
            changes: BTreeMap::from([("snapshots_SSD".into(), 5)]),
        }]);
        let cmd = QuotaClassCommand::FollowTypeRename {
            class_name: "default".into(),
            from: "SSD".into(),
            to: "fast".into(),
        };
        let ev = QuotaClassAggregate::decide(&class, cmd.clone()).unwrap();
        let after = ev.iter().fold(class, QuotaClassAggregate::evolve);
        assert_eq!(after.limits, BTreeMap::from([("snapshots_fast".into(), 5)]));
        assert!(QuotaClassAggregate::decide(&after, cmd).unwrap().is_empty());
    }

    #[test]
    fn defaults_apply_and_limits_refuse_with_the_documented_codes() {
        let r = room(&[], &[("volumes", 9), ("gigabytes", 990)]);
        assert!(r.admit(&Delta::volume("SSD", 10)).is_ok());
        assert_eq!(
            r.admit(&Delta::volume("SSD", 11)).unwrap_err().reason(),
            "gigabytes_quota"
        );
        let r = room(&[], &[("volumes", 10)]);
        assert_eq!(
            r.admit(&Delta::volume("SSD", 1)).unwrap_err().reason(),
            "volume_count_quota"
        );
        let r = room(&[("volumes_SSD", 1)], &[("volumes_SSD", 1)]);
        assert!(r.admit(&Delta::volume("SAS", 1)).is_ok());
        assert!(r.admit(&Delta::volume("SSD", 1)).is_err());
        let r = room(&[("per_volume_gigabytes", 5)], &[]);
        assert!(r.admit(&Delta::volume("SSD", 6)).is_err());
        let r = room(&[("snapshots", 0)], &[]);
        assert_eq!(
            r.admit(&Delta::snapshot("SSD", 1)).unwrap_err().reason(),
            "snapshot_count_quota"
        );
        let r = room(
            &[("gigabytes", UNLIMITED), ("volumes", UNLIMITED)],
            &[("gigabytes", 1 << 40)],
        );
        assert!(r.admit(&Delta::volume("SSD", 100)).is_ok());
    }

    #[test]
    fn limits_are_validated() {
        let known = keys(&["SSD".into()]);
        let set = |k: &str, v: i64| QuotaCommand::SetLimits {
            changes: [(k.to_string(), v)].into(),
            known: known.clone(),
        };
        let s = QuotaState::default();
        assert!(QuotaAggregate::decide(&s, ("p".into(), set("volumes_SSD", 3))).is_ok());
        assert!(QuotaAggregate::decide(&s, ("p".into(), set("volumes_GOLD", 3))).is_err());
        assert!(QuotaAggregate::decide(&s, ("p".into(), set("volumes", -2))).is_err());
    }

    #[test]
    fn reset_drops_the_projects_own_limits() {
        let known = keys(&[]);
        let mut st = QuotaState::default();
        let cmd = QuotaCommand::SetLimits {
            changes: [("volumes".to_string(), 3)].into(),
            known: known.clone(),
        };
        for e in QuotaAggregate::decide(&st, ("p".into(), cmd)).unwrap() {
            st = QuotaAggregate::evolve(st, &e);
        }
        assert_eq!(st.limits.get("volumes"), Some(&3));
        let events = QuotaAggregate::decide(&st, ("p".into(), QuotaCommand::Reset)).unwrap();
        assert_eq!(
            events,
            vec![QuotaEvent::QuotaLimitsReset {
                project_id: "p".into()
            }]
        );
        for e in events {
            st = QuotaAggregate::evolve(st, &e);
        }
        assert!(st.limits.is_empty());
    }

    #[test]
    fn class_limits_are_checked_like_project_limits() {
        let known = keys(&[]);
        let st = QuotaClassState::default();
        let bad = QuotaClassAggregate::decide(
            &st,
            QuotaClassCommand::SetLimits {
                class_name: "default".into(),
                changes: [("nope".to_string(), 1)].into(),
                known: known.clone(),
            },
        );
        assert!(bad.is_err());
        let low = QuotaClassAggregate::decide(
            &st,
            QuotaClassCommand::SetLimits {
                class_name: "default".into(),
                changes: [("volumes".to_string(), -2)].into(),
                known: known.clone(),
            },
        );
        assert!(low.is_err());
        let ok = QuotaClassAggregate::decide(
            &st,
            QuotaClassCommand::SetLimits {
                class_name: "default".into(),
                changes: [("volumes".to_string(), 20)].into(),
                known,
            },
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
    }
}
