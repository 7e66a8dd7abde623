//! Extend a volume (CINDER-7.2.1, EVS-6.1.7), against its owner's quota
//! read in the same transaction (an admin's extend counts against the
//! owner, not the admin). The dialect's `ExtendPolicy` says whether an
//! attached volume may grow (the domain checks it).

use domain::volume::ExtendPolicy;
use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

pub async fn extend(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    new_size: i64,
    job_id: String,
    policy: ExtendPolicy,
) -> Result<(), AppError> {
    extend_many(app, caller, meta, vec![id], new_size, job_id, policy).await
}

/// Extends several volumes to one size, all or nothing (the Chinese cloud's
/// `resize`): every volume is decided against its owner's quota as the
/// earlier ones in the batch left it, and nothing is appended unless all
/// are accepted. One job (`job_id`), a sub-job per volume when several.
pub async fn extend_many(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    ids: Vec<Uuid>,
    new_size: i64,
    job_id: String,
    policy: ExtendPolicy,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id.clone()), move |tx| {
        for id in ids {
            let v = tx.volume(id)?;
            let quota = tx.headroom(&v.project_id)?;
            let cmd = VolumeCommand::Extend {
                new_size,
                job_id: Some(job_id.clone()),
                quota,
                policy,
            };
            tx.execute::<VolumeAggregate>(&id.to_string(), cmd)?;
        }
        Ok(())
    })
    .await
}
