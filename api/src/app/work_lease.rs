//! Remote executors' writes (issue 16), one write transaction each: claim
//! or renew the lease on a work item, and append an outcome. The rules are
//! the domain's (`domain::lease`) and the executor's outcome rule
//! (`executor::worklog::apply_outcome`), the same function the embedded
//! executor runs, so an outcome means the same whichever executor sends it:
//! its commands in one transaction, the checkpoint moved forward only,
//! nothing at all recorded once the lease is another executor's.
//!
//! Time enters here, from the writer's clock: the lease rule compares the
//! claim's `now` with the recorded expiry, both the server's.

use std::time::Duration;

use executor::worklog::{self, Applied, Claim, Outcome};

use super::{App, AppError};

/// Who asks, in the metadata of the lease events (the audit trail names
/// the executor).
fn meta(holder: &str) -> serde_json::Value {
    serde_json::json!({ "actor": "executor", "executor": holder })
}

/// Claims (or renews its own) lease on work item `item` for `ttl`.
pub async fn claim(app: &App, item: u64, holder: String, ttl: Duration) -> Result<Claim, AppError> {
    Ok(app
        .store
        .write(move |tx| {
            worklog::claim_lease(tx, item, &holder, ttl, worklog::now_ms(), &meta(&holder))
        })
        .await?)
}

/// Renews `holder`'s lease; false if it is not the holder's any more.
pub async fn renew(app: &App, item: u64, holder: String, ttl: Duration) -> Result<bool, AppError> {
    Ok(app
        .store
        .write(move |tx| {
            worklog::renew_lease(tx, item, &holder, ttl, worklog::now_ms(), &meta(&holder))
        })
        .await?)
}

/// Appends an outcome: the lease check, its commands and the checkpoint
/// move to `mark` (the remote executor's low-water mark, computed before
/// it sent the outcome: never past an item it has not handled), in one
/// transaction.
pub async fn append_outcome(
    app: &App,
    outcome: Outcome,
    mark: Option<u64>,
) -> Result<Applied, AppError> {
    Ok(app
        .store
        .write(move |tx| worklog::apply_outcome(tx, &outcome, mark, worklog::now_ms()))
        .await?)
}

/// Moves checkpoint `name` forward to `position` (an idle executor that
/// read past events needing no work).
pub async fn advance_checkpoint(app: &App, name: String, position: u64) -> Result<(), AppError> {
    Ok(app
        .store
        .write(move |tx| tx.advance_checkpoint(&name, position))
        .await?)
}
