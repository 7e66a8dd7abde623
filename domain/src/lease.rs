//! Leases on work items (issue 16): when several executors serve one
//! backend, the one that does an item's disk work holds a lease on it in
//! the log (stream `lease-<position of the event asking for the work>`).
//!
//! - A claim succeeds when there is no lease, when it was released, when
//!   it expired, or when it is the claimer's own (a renewal); otherwise it
//!   is refused while the other holder's lease is live.
//! - The holder renews it during long work.
//! - An outcome is recorded only while the lease is the claimer's (`Hold`):
//!   once another executor has claimed it, the late outcome is refused and
//!   nothing is recorded, so an item's outcome is never recorded twice.
//!   A holder whose lease expired but was not taken by anyone may still
//!   record: the log's single writer orders the outcome before any later
//!   claim, and a later claimer reads the work as done.
//!
//! Time is a command field (`now_ms`, Unix milliseconds from the caller's
//! clock: the server's writer for remote executors); nothing here reads a
//! clock.

use serde::{Deserialize, Serialize};

use crate::error::FieldReason;
use crate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    /// The current holder; None when never claimed or released.
    pub holder: Option<String>,
    /// When the holder's lease ends unless renewed.
    pub expires_ms: u64,
}

impl LeaseState {
    /// True if `holder` may not take the lease at `now_ms`: someone else
    /// holds it and it has not expired.
    fn taken_by_other(&self, holder: &str, now_ms: u64) -> bool {
        self.holder.as_deref().is_some_and(|h| h != holder) && now_ms < self.expires_ms
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCommand {
    /// Take the lease (or renew one's own) until `now_ms + ttl_ms`.
    Claim {
        holder: String,
        now_ms: u64,
        ttl_ms: u64,
    },
    /// Extend one's own lease; refused if it is not the holder's any more.
    Renew {
        holder: String,
        now_ms: u64,
        ttl_ms: u64,
    },
    /// Check only (decides no event): the lease is still `holder`'s.
    Hold { holder: String, now_ms: u64 },
    /// Give the lease up (with the item's outcome).
    Release { holder: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum LeaseEvent {
    LeaseClaimed { holder: String, expires_ms: u64 },
    LeaseRenewed { holder: String, expires_ms: u64 },
    LeaseReleased { holder: String },
}

pub struct LeaseAggregate;

fn refused(state: &LeaseState, holder: &str) -> DomainError {
    let message = match &state.holder {
        Some(h) => format!(
            "work item is leased by {h} until {} (asked by {holder})",
            state.expires_ms
        ),
        None => format!("work item is not leased by {holder}"),
    };
    DomainError::invalid("lease", FieldReason::Conflict, message)
}

impl Aggregate for LeaseAggregate {
    type State = LeaseState;
    type Command = LeaseCommand;
    type Event = LeaseEvent;

    fn stream_id(id: &str) -> String {
        format!("lease-{id}")
    }

    fn decide(state: &LeaseState, cmd: LeaseCommand) -> Result<Vec<LeaseEvent>, DomainError> {
        match cmd {
            LeaseCommand::Claim {
                holder,
                now_ms,
                ttl_ms,
            } => {
                if state.taken_by_other(&holder, now_ms) {
                    return Err(refused(state, &holder));
                }
                Ok(vec![LeaseEvent::LeaseClaimed {
                    holder,
                    expires_ms: now_ms.saturating_add(ttl_ms),
                }])
            }
            LeaseCommand::Renew {
                holder,
                now_ms,
                ttl_ms,
            } => {
                if state.holder.as_deref() != Some(holder.as_str()) {
                    return Err(refused(state, &holder));
                }
                Ok(vec![LeaseEvent::LeaseRenewed {
                    holder,
                    expires_ms: now_ms.saturating_add(ttl_ms),
                }])
            }
            LeaseCommand::Hold { holder, now_ms: _ } => {
                // Expiry alone does not end a holding (see the module
                // comment): only another claim or a release does.
                if state.holder.as_deref() != Some(holder.as_str()) {
                    return Err(refused(state, &holder));
                }
                Ok(vec![])
            }
            LeaseCommand::Release { holder } => {
                if state.holder.as_deref() != Some(holder.as_str()) {
                    return Err(refused(state, &holder));
                }
                Ok(vec![LeaseEvent::LeaseReleased { holder }])
            }
        }
    }

    fn evolve(mut state: LeaseState, event: &LeaseEvent) -> LeaseState {
        match event {
            LeaseEvent::LeaseClaimed { holder, expires_ms }
            | LeaseEvent::LeaseRenewed { holder, expires_ms } => {
                state.holder = Some(holder.clone());
                state.expires_ms = *expires_ms;
            }
            LeaseEvent::LeaseReleased { .. } => {
                state.holder = None;
                state.expires_ms = 0;
            }
        }
        state
    }

    fn event_type(event: &LeaseEvent) -> &'static str {
        match event {
            LeaseEvent::LeaseClaimed { .. } => "LeaseClaimed",
            LeaseEvent::LeaseRenewed { .. } => "LeaseRenewed",
            LeaseEvent::LeaseReleased { .. } => "LeaseReleased",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: LeaseState, cmd: LeaseCommand) -> Result<LeaseState, DomainError> {
        let events = LeaseAggregate::decide(&state, cmd)?;
        Ok(events.iter().fold(state, LeaseAggregate::evolve))
    }

    fn claim(holder: &str, now_ms: u64) -> LeaseCommand {
        LeaseCommand::Claim {
            holder: holder.into(),
            now_ms,
            ttl_ms: 1000,
        }
    }

    #[test]
    fn a_claim_is_refused_while_another_holders_lease_is_live() {
        let a = run(LeaseState::default(), claim("a", 0)).unwrap();
        assert_eq!(a.holder.as_deref(), Some("a"));
        assert_eq!(a.expires_ms, 1000);
        let e = run(a.clone(), claim("b", 999)).unwrap_err();
        assert_eq!(e.reason(), "invalid_field");
        assert!(e.to_string().contains("leased by a"), "{e}");
        // Expired: b takes it over.
        let b = run(a.clone(), claim("b", 1000)).unwrap();
        assert_eq!(b.holder.as_deref(), Some("b"));
        // One's own live lease: a renewal.
        let a2 = run(a, claim("a", 500)).unwrap();
        assert_eq!(a2.expires_ms, 1500);
    }

    #[test]
    fn only_the_holder_renews_holds_and_releases() {
        let a = run(LeaseState::default(), claim("a", 0)).unwrap();
        let renewed = run(
            a.clone(),
            LeaseCommand::Renew {
                holder: "a".into(),
                now_ms: 900,
                ttl_ms: 1000,
            },
        )
        .unwrap();
        assert_eq!(renewed.expires_ms, 1900);
        assert!(run(
            a.clone(),
            LeaseCommand::Renew {
                holder: "b".into(),
                now_ms: 900,
                ttl_ms: 1000
            }
        )
        .is_err());
        let hold = |s: &LeaseState, h: &str| {
            LeaseAggregate::decide(
                s,
                LeaseCommand::Hold {
                    holder: h.into(),
                    now_ms: 5000,
                },
            )
        };
        // Expired but not taken: still a's to record with; decides nothing.
        assert_eq!(hold(&a, "a").unwrap(), vec![]);
        assert!(hold(&a, "b").is_err());
        // Taken over: a's late outcome is refused.
        let b = run(a.clone(), claim("b", 5000)).unwrap();
        assert!(hold(&b, "a").is_err());
        assert!(run(b.clone(), LeaseCommand::Release { holder: "a".into() }).is_err());
        let free = run(b, LeaseCommand::Release { holder: "b".into() }).unwrap();
        assert_eq!(free.holder, None);
        assert!(hold(&free, "b").is_err(), "released: no outcome under it");
        // Released: anyone claims at once.
        assert!(run(free, claim("a", 5001)).is_ok());
    }
}
