//! Waiting for an asynchronous operation's end, for dialects documented as
//! synchronous (ZStack). The request is acknowledged in the log at once and
//! the executor does the disk work; a synchronous answer waits for the job
//! (the events sharing the request's correlation id) to end. No polling
//! loop: the wait wakes on every commit (`EventStore::subscribe`, a watch
//! of the log head) and reads the job view (`projections::jobs`) then.
//!
//! A deadline bounds the wait. Missing it changes nothing in the log: the
//! operation goes on and ends (or fails) in the background like any other,
//! and the caller gets a typed `TimedOut` to answer in its own words.

use projections::jobs::{JobRow, JobStatus};
use tokio::time::Instant;

use super::{App, AppError};

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded(JobRow),
    /// The executor's reason.
    Failed(JobRow),
    /// The deadline passed first; the job still runs.
    TimedOut,
}

/// Waits until job `job_id` ends or `deadline` passes.
pub async fn await_outcome(
    app: &App,
    job_id: &str,
    deadline: Instant,
) -> Result<Outcome, AppError> {
    let mut head = app.store.subscribe();
    loop {
        // Marked seen before the read: a commit after it wakes the wait.
        head.borrow_and_update();
        let id = job_id.to_string();
        let job = app.read(move |c| projections::jobs::get(c, &id)).await?;
        match job {
            Some(j) if j.status == JobStatus::Success => return Ok(Outcome::Succeeded(j)),
            Some(j) if j.status == JobStatus::Fail => return Ok(Outcome::Failed(j)),
            _ => {}
        }
        match tokio::time::timeout_at(deadline, head.changed()).await {
            Ok(Ok(())) => continue,
            // The deadline passed, or the store is closing: no end seen.
            Ok(Err(_)) | Err(_) => return Ok(Outcome::TimedOut),
        }
    }
}
