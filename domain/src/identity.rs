//! Identity (issue 13): users, projects, role assignments and API keys, as
//! one aggregate on one stream (`identity`), so that every change to who may
//! do what is a fact in the log with the request metadata of whoever made it.
//!
//! No secret is ever part of an event: passwords (argon2 hashes), API key
//! secrets and tokens (SHA-256 of high-entropy random strings) live beside
//! the log in tables the API owns, which can be changed and forgotten; the
//! log only says *that* a password was set or a key was issued.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Aggregate, DomainError, FieldReason};

/// The one stream all identity facts go to.
pub const STREAM: &str = "identity";

/// The only domain: Keystone's `default`, as devstack names it.
pub const DEFAULT_DOMAIN_ID: &str = "default";
pub const DEFAULT_DOMAIN_NAME: &str = "Default";

/// A role on a project. Ordered by power: a caller holding several acts
/// with the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Member,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Member, Role::Reader];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Reader => "reader",
        }
    }

    /// Keystone's role names; `_member_` is the old spelling of `member`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "member" | "_member_" => Some(Role::Member),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }

    /// A stable id per role (Keystone answers roles with ids): role ids
    /// are not secrets and never change, so they are fixed here rather
    /// than generated per installation.
    pub fn id(self) -> &'static str {
        match self {
            Role::Admin => "7d1b9f3c5a6e4e0e9b1a2c3d4e5f6a01",
            Role::Member => "7d1b9f3c5a6e4e0e9b1a2c3d4e5f6a02",
            Role::Reader => "7d1b9f3c5a6e4e0e9b1a2c3d4e5f6a03",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub domain_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    pub domain_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub user_id: String,
    pub project_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityState {
    pub users: BTreeMap<String, User>,
    pub projects: BTreeMap<String, Project>,
    /// (user id, project id, role).
    pub grants: BTreeSet<(String, String, Role)>,
    pub keys: BTreeMap<String, ApiKey>,
}

impl IdentityState {
    pub fn user_named(&self, name: &str) -> Option<(&String, &User)> {
        self.users.iter().find(|(_, u)| u.name == name)
    }

    pub fn project_named(&self, name: &str) -> Option<(&String, &Project)> {
        self.projects.iter().find(|(_, p)| p.name == name)
    }

    /// The user's roles on the project, strongest first.
    pub fn roles(&self, user_id: &str, project_id: &str) -> Vec<Role> {
        let mut r: Vec<Role> = self
            .grants
            .iter()
            .filter(|(u, p, _)| u == user_id && p == project_id)
            .map(|(_, _, r)| *r)
            .collect();
        r.sort_by(|a, b| b.cmp(a));
        r
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityCommand {
    AddUser {
        user_id: String,
        name: String,
    },
    /// The new hash is stored beside the log by the same transaction.
    SetPassword {
        user_id: String,
    },
    DeleteUser {
        user_id: String,
    },
    AddProject {
        project_id: String,
        name: String,
    },
    Grant {
        user_id: String,
        project_id: String,
        role: Role,
    },
    AddApiKey {
        api_id: String,
        user_id: String,
        project_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum IdentityEvent {
    UserAdded {
        user_id: String,
        name: String,
        domain_id: String,
    },
    UserPasswordSet {
        user_id: String,
    },
    UserDeleted {
        user_id: String,
    },
    ProjectAdded {
        project_id: String,
        name: String,
        domain_id: String,
    },
    RoleGranted {
        user_id: String,
        project_id: String,
        role: Role,
    },
    ApiKeyAdded {
        api_id: String,
        user_id: String,
        project_id: String,
    },
}

/// Names and ids: 1–255 bytes of printable characters, no `:` (the noauth
/// token's separator) and no surrounding white space, so a name shown in a
/// list is the name a client types.
pub fn validate_name(field: &'static str, s: &str) -> Result<(), DomainError> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.trim() == s
        && !s.contains(':')
        && !s.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            FieldReason::Invalid,
            format!("{field} must be 1-255 bytes of printable characters without ':'"),
        ))
    }
}

fn not_found(field: &'static str, what: &str) -> DomainError {
    DomainError::invalid(field, FieldReason::NotFound, format!("no {field} {what}"))
}

fn taken(field: &'static str, what: &str) -> DomainError {
    DomainError::invalid(
        field,
        FieldReason::Conflict,
        format!("{field} {what} already exists"),
    )
}

pub struct IdentityAggregate;

impl Aggregate for IdentityAggregate {
    type State = IdentityState;
    type Command = IdentityCommand;
    type Event = IdentityEvent;

    fn stream_id(_id: &str) -> String {
        STREAM.to_string()
    }

    fn event_type(e: &IdentityEvent) -> &'static str {
        match e {
            IdentityEvent::UserAdded { .. } => "UserAdded",
            IdentityEvent::UserPasswordSet { .. } => "UserPasswordSet",
            IdentityEvent::UserDeleted { .. } => "UserDeleted",
            IdentityEvent::ProjectAdded { .. } => "ProjectAdded",
            IdentityEvent::RoleGranted { .. } => "RoleGranted",
            IdentityEvent::ApiKeyAdded { .. } => "ApiKeyAdded",
        }
    }

    fn decide(s: &IdentityState, cmd: IdentityCommand) -> Result<Vec<IdentityEvent>, DomainError> {
        let user = |id: &str| {
            s.users
                .contains_key(id)
                .then_some(())
                .ok_or_else(|| not_found("user", id))
        };
        let project = |id: &str| {
            s.projects
                .contains_key(id)
                .then_some(())
                .ok_or_else(|| not_found("project", id))
        };
        match cmd {
            IdentityCommand::AddUser { user_id, name } => {
                validate_name("user", &name)?;
                validate_name("user_id", &user_id)?;
                if s.user_named(&name).is_some() {
                    return Err(taken("user", &name));
                }
                if s.users.contains_key(&user_id) {
                    return Err(taken("user_id", &user_id));
                }
                Ok(vec![IdentityEvent::UserAdded {
                    user_id,
                    name,
                    domain_id: DEFAULT_DOMAIN_ID.into(),
                }])
            }
            IdentityCommand::SetPassword { user_id } => {
                user(&user_id)?;
                Ok(vec![IdentityEvent::UserPasswordSet { user_id }])
            }
            IdentityCommand::DeleteUser { user_id } => {
                user(&user_id)?;
                Ok(vec![IdentityEvent::UserDeleted { user_id }])
            }
            IdentityCommand::AddProject { project_id, name } => {
                validate_name("project", &name)?;
                validate_name("project_id", &project_id)?;
                if s.project_named(&name).is_some() {
                    return Err(taken("project", &name));
                }
                if s.projects.contains_key(&project_id) {
                    return Err(taken("project_id", &project_id));
                }
                Ok(vec![IdentityEvent::ProjectAdded {
                    project_id,
                    name,
                    domain_id: DEFAULT_DOMAIN_ID.into(),
                }])
            }
            IdentityCommand::Grant {
                user_id,
                project_id,
                role,
            } => {
                user(&user_id)?;
                project(&project_id)?;
                // Granting what is held already changes nothing: no event.
                if s.grants
                    .contains(&(user_id.clone(), project_id.clone(), role))
                {
                    return Ok(vec![]);
                }
                Ok(vec![IdentityEvent::RoleGranted {
                    user_id,
                    project_id,
                    role,
                }])
            }
            IdentityCommand::AddApiKey {
                api_id,
                user_id,
                project_id,
            } => {
                user(&user_id)?;
                project(&project_id)?;
                if s.roles(&user_id, &project_id).is_empty() {
                    return Err(DomainError::invalid(
                        "project",
                        FieldReason::Conflict,
                        "the user holds no role on that project",
                    ));
                }
                if s.keys.contains_key(&api_id) {
                    return Err(taken("api_id", &api_id));
                }
                Ok(vec![IdentityEvent::ApiKeyAdded {
                    api_id,
                    user_id,
                    project_id,
                }])
            }
        }
    }

    fn evolve(mut s: IdentityState, e: &IdentityEvent) -> IdentityState {
        match e {
            IdentityEvent::UserAdded {
                user_id,
                name,
                domain_id,
            } => {
                s.users.insert(
                    user_id.clone(),
                    User {
                        name: name.clone(),
                        domain_id: domain_id.clone(),
                    },
                );
            }
            IdentityEvent::UserPasswordSet { .. } => {}
            IdentityEvent::UserDeleted { user_id } => {
                s.users.remove(user_id);
                s.grants.retain(|(u, _, _)| u != user_id);
                s.keys.retain(|_, k| &k.user_id != user_id);
            }
            IdentityEvent::ProjectAdded {
                project_id,
                name,
                domain_id,
            } => {
                s.projects.insert(
                    project_id.clone(),
                    Project {
                        name: name.clone(),
                        domain_id: domain_id.clone(),
                    },
                );
            }
            IdentityEvent::RoleGranted {
                user_id,
                project_id,
                role,
            } => {
                s.grants
                    .insert((user_id.clone(), project_id.clone(), *role));
            }
            IdentityEvent::ApiKeyAdded {
                api_id,
                user_id,
                project_id,
            } => {
                s.keys.insert(
                    api_id.clone(),
                    ApiKey {
                        user_id: user_id.clone(),
                        project_id: project_id.clone(),
                    },
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: IdentityState, cmd: IdentityCommand) -> Result<IdentityState, DomainError> {
        let evs = IdentityAggregate::decide(&s, cmd)?;
        Ok(evs.iter().fold(s, IdentityAggregate::evolve))
    }

    fn base() -> IdentityState {
        let s = IdentityState::default();
        let s = run(
            s,
            IdentityCommand::AddUser {
                user_id: "u1".into(),
                name: "alice".into(),
            },
        )
        .unwrap();
        run(
            s,
            IdentityCommand::AddProject {
                project_id: "p1".into(),
                name: "alpha".into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn names_are_unique_and_grants_need_both_sides() {
        let s = base();
        let dup = IdentityAggregate::decide(
            &s,
            IdentityCommand::AddUser {
                user_id: "u2".into(),
                name: "alice".into(),
            },
        );
        assert!(dup.is_err());
        let bad = IdentityAggregate::decide(
            &s,
            IdentityCommand::Grant {
                user_id: "u1".into(),
                project_id: "nope".into(),
                role: Role::Member,
            },
        );
        assert!(bad.is_err());
        let s = run(
            s,
            IdentityCommand::Grant {
                user_id: "u1".into(),
                project_id: "p1".into(),
                role: Role::Reader,
            },
        )
        .unwrap();
        let s = run(
            s,
            IdentityCommand::Grant {
                user_id: "u1".into(),
                project_id: "p1".into(),
                role: Role::Admin,
            },
        )
        .unwrap();
        assert_eq!(s.roles("u1", "p1"), vec![Role::Admin, Role::Reader]);
        // A second identical grant is no new fact.
        let again = IdentityAggregate::decide(
            &s,
            IdentityCommand::Grant {
                user_id: "u1".into(),
                project_id: "p1".into(),
                role: Role::Admin,
            },
        )
        .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn deleting_a_user_drops_its_grants_and_keys() {
        let s = base();
        let s = run(
            s,
            IdentityCommand::Grant {
                user_id: "u1".into(),
                project_id: "p1".into(),
                role: Role::Member,
            },
        )
        .unwrap();
        let s = run(
            s,
            IdentityCommand::AddApiKey {
                api_id: "k1".into(),
                user_id: "u1".into(),
                project_id: "p1".into(),
            },
        )
        .unwrap();
        let s = run(
            s,
            IdentityCommand::DeleteUser {
                user_id: "u1".into(),
            },
        )
        .unwrap();
        assert!(s.grants.is_empty() && s.keys.is_empty() && s.users.is_empty());
    }

    #[test]
    fn names_with_the_noauth_separator_are_refused() {
        assert!(validate_name("user", "a:b").is_err());
        assert!(validate_name("user", " a").is_err());
        assert!(validate_name("user", "").is_err());
        assert!(validate_name("user", "alice").is_ok());
    }
}
