//! The one policy table (issue 13): what each role may do. Every write use
//! case goes through `App::run`, which asks `check(caller, Access::Change)`
//! before it decides anything, so no adapter carries its own role checks;
//! cross-project reach (`all_tenants`, another project's URL, another
//! project's volume by id) is `Access::AllProjects`, which `Caller::is_admin`
//! is computed from.

use domain::identity::Role;
use domain::DomainError;

use super::Caller;

/// The stream a policy refusal names in the audit trail.
pub const STREAM: &str = "policy";

/// What a request wants to do, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See the caller's own project's resources.
    Read,
    /// Change state in the caller's own project.
    Change,
    /// Reach other projects when asking for it (`all_tenants=1`, another
    /// project's URL), and the operator's views (`/metrics`, the audit
    /// trail).
    AllProjects,
}

/// The table: role × access → allowed.
const POLICY: &[(Role, &[Access])] = &[
    (
        Role::Admin,
        &[Access::Read, Access::Change, Access::AllProjects],
    ),
    (Role::Member, &[Access::Read, Access::Change]),
    (Role::Reader, &[Access::Read]),
];

pub fn permits(role: Role, access: Access) -> bool {
    POLICY
        .iter()
        .any(|(r, allowed)| *r == role && allowed.contains(&access))
}

/// Ok, or the refusal (403 in every dialect) recorded for the audit trail.
pub fn check(caller: &Caller, access: Access) -> Result<(), DomainError> {
    if permits(caller.role, access) {
        Ok(())
    } else {
        Err(DomainError::NotPermitted(format!(
            "the {} role may not do this.",
            caller.role.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        assert!(permits(Role::Admin, Access::AllProjects));
        assert!(!permits(Role::Member, Access::AllProjects));
        assert!(permits(Role::Member, Access::Change));
        assert!(!permits(Role::Reader, Access::Change));
        assert!(permits(Role::Reader, Access::Read));
    }
}
