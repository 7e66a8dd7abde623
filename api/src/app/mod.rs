//! The application layer: one use case per operation, each a function that
//! takes a dialect-neutral request and the caller, runs one write
//! transaction, and returns a typed outcome (the shape of eventually-rs's
//! `application.rs` and omicron's `nexus/src/app`). Dialect adapters parse,
//! call one of these and render; they never open a transaction, run SQL or
//! decide a rule. Rules are the domain's; what a use case adds is the
//! orchestration across aggregates (read the facts a decider needs in the
//! same transaction, decide every side before any appends) and the record
//! of every refusal.

pub mod attachment_complete;
pub mod attachment_create;
pub mod attachment_delete;
pub mod attachment_read;
pub mod attachment_update;
pub mod backends;
pub mod events;
pub mod group_actions;
pub mod group_create;
pub mod group_delete;
pub mod group_queries;
pub mod group_snapshot_actions;
pub mod group_snapshot_create;
pub mod group_snapshot_delete;
pub mod group_types;
pub mod group_update;
pub mod group_volume_create;
pub mod idempotency;
pub mod identity;
pub mod image_catalog;
pub mod image_upload;
pub mod lookup;
pub mod messages;
pub mod outcome;
pub mod policy;
pub mod qos_specs;
pub mod queries;
pub mod quota_set;
pub mod snapshot_actions;
pub mod snapshot_create;
pub mod snapshot_export;
pub mod snapshot_rollback;
pub mod transfers;
pub mod volume_actions;
pub mod volume_create;
pub mod volume_delete;
pub mod volume_extend;
pub mod volume_extend_completion;
pub mod volume_reimage;
pub mod volume_retype;
pub mod volume_revert;
pub mod volume_types;
pub mod work_lease;

pub use outcome::{await_outcome, Outcome};

use std::sync::Arc;

use tracing::Instrument;

use domain::{Aggregate, Catalog, DomainError, SnapshotAggregate, VolumeAggregate};
use eventstore::aggregate::Decided;
use eventstore::{rusqlite, EventStore, RecordedEvent, StoreError, WriteTx};
use serde_json::{json, Value};
use uuid::Uuid;

/// The log and the configured catalog: all a use case needs.
#[derive(Clone)]
pub struct App {
    pub store: EventStore,
    pub catalog: Arc<Catalog>,
}

/// Who is asking, as established by the dialect's authentication.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
    pub project_id: String,
    pub is_admin: bool,
    /// The strongest role the credential carries on `project_id`; what it
    /// allows is `policy`'s table (`is_admin` is its `AllProjects`).
    pub role: domain::identity::Role,
}

impl Caller {
    /// Whether the caller may touch a resource owned by `project`.
    pub fn owns(&self, project: &str) -> bool {
        self.is_admin || project == self.project_id
    }
}

/// What goes into every event's metadata besides the caller.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub request_id: String,
    pub dialect: &'static str,
    /// `METHOD /path`, as received.
    pub route: String,
    pub idempotency_key: Option<String>,
    /// The client's `ip:port` (issue 14: from where), if it came over TCP.
    pub remote_addr: Option<String>,
}

impl RequestMeta {
    /// `route`'s method and path apart (issue 14: how), so the audit API
    /// can filter and show them without parsing; `route` keeps both, as
    /// every event before issue 14 has it.
    pub fn method_and_path(&self) -> (Option<&str>, Option<&str>) {
        match self.route.split_once(' ') {
            // An HTTP method is upper case (the CLI's routes are words).
            Some((m, p)) if m.bytes().all(|b| b.is_ascii_uppercase()) => (Some(m), Some(p)),
            _ => (None, Some(self.route.as_str()).filter(|r| !r.is_empty())),
        }
    }
}

/// A refusal, with the stream it concerns (recorded as `CommandRejected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub stream_id: String,
    pub error: DomainError,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("refused: {}", .0.error)]
    Refused(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Store(e.into())
    }
}

impl AppError {
    pub fn refused(stream_id: impl Into<String>, error: DomainError) -> Self {
        AppError::Refused(Refusal {
            stream_id: stream_id.into(),
            error,
        })
    }
}

/// A new job id: 32 lowercase hex characters [5.1 #18]. Every asynchronous
/// use case has one, whatever the dialect: it is the correlation id that
/// ties the request to the executor's outcome.
pub fn new_job_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// One use case's view of the write transaction: decisions are made
/// against the log as of this instant, with the caller's metadata.
pub struct Tx<'a, 'b> {
    pub w: &'a mut WriteTx<'b>,
    pub caller: &'a Caller,
    meta: &'a Value,
}

impl Tx<'_, '_> {
    pub fn conn(&self) -> &rusqlite::Connection {
        self.w.conn()
    }

    /// Decides `cmd` against aggregate `id` without appending (so several
    /// aggregates can be decided before any of them is written).
    pub fn decide<A: Aggregate>(&self, id: &str, cmd: A::Command) -> Result<Decided, AppError>
    where
        A::State: Clone + Send + 'static,
    {
        self.w
            .decide::<A>(id, cmd, self.meta)?
            .map_err(|e| AppError::refused(A::stream_id(id), e))
    }

    pub fn commit(&mut self, decided: Vec<Decided>) -> Result<Vec<RecordedEvent>, AppError> {
        Ok(self.w.commit(decided)?)
    }

    /// Decides and appends.
    pub fn execute<A: Aggregate>(
        &mut self,
        id: &str,
        cmd: A::Command,
    ) -> Result<Vec<RecordedEvent>, AppError>
    where
        A::State: Clone + Send + 'static,
    {
        let d = self.decide::<A>(id, cmd)?;
        self.commit(vec![d])
    }

    /// The live volume `id` if the caller may touch it; another project's
    /// volume is not found, exactly like a missing one, so ids do not leak.
    pub fn volume(&self, id: Uuid) -> Result<domain::volume::Volume, AppError> {
        let (st, _) = self.w.load::<VolumeAggregate>(&id.to_string())?;
        match st.volume {
            Some(v) if !st.deleted && self.caller.owns(&v.project_id) => Ok(v),
            _ => Err(AppError::refused(
                VolumeAggregate::stream_id(&id.to_string()),
                DomainError::VolumeNotFound(id.to_string()),
            )),
        }
    }

    /// The live snapshot `id` if the caller may touch it.
    pub fn snapshot(&self, id: Uuid) -> Result<domain::snapshot::Snapshot, AppError> {
        let (st, _) = self.w.load::<SnapshotAggregate>(&id.to_string())?;
        match st.snapshot {
            Some(s) if !st.deleted && self.caller.owns(&s.project_id) => Ok(s),
            _ => Err(AppError::refused(
                SnapshotAggregate::stream_id(&id.to_string()),
                DomainError::SnapshotNotFound(id.to_string()),
            )),
        }
    }

    /// A project's limits and usage, as of this transaction.
    pub fn headroom(&self, project: &str) -> Result<domain::quota::Headroom, AppError> {
        Ok(projections::quotas::headroom(self.conn(), project)?)
    }

    /// The volume's head snapshot (the parent of its next one), as of this
    /// transaction.
    pub fn head_snapshot(&self, volume: Uuid) -> Result<Option<Uuid>, AppError> {
        Ok(
            projections::snapshots::head_of(self.conn(), &volume.to_string())?
                .and_then(|h| h.parse().ok()),
        )
    }
}

impl App {
    /// Runs one use case in one write transaction. Whatever `f` appended is
    /// undone if it refuses; the refusal itself is then recorded (the audit
    /// trail shows who tried what) and committed.
    pub async fn run<T, F>(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        correlation_id: Option<&str>,
        f: F,
    ) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: for<'a, 'b> FnOnce(&mut Tx<'a, 'b>) -> Result<T, AppError> + Send + 'static,
    {
        let metadata = json!({
            "request_id": meta.request_id,
            "project_id": caller.project_id,
            "user_id": caller.user_id,
            "dialect": meta.dialect,
            "route": meta.route,
            "idempotency_key": meta.idempotency_key,
            "correlation_id": correlation_id,
            // Issue 14: who (roles), from where, how (method apart from
            // the path). Events recorded before have none of these keys.
            "roles": [caller.role.as_str()],
            "remote_addr": meta.remote_addr,
            "method": meta.method_and_path().0,
            "path": meta.method_and_path().1,
        });
        let caller = caller.clone();
        // The policy table decides before the use case does (a reader
        // changes nothing); the refusal is recorded like any other.
        let denied = policy::check(&caller, policy::Access::Change).err();
        // Where a request's time goes: the wait for the writer, the
        // decision and the commit, under the request's span.
        let span = tracing::debug_span!("use_case", correlation_id = ?correlation_id);
        let outcome = self
            .store
            .write(
                move |w: &mut WriteTx<'_>| -> Result<Result<T, AppError>, StoreError> {
                    let result = match denied {
                        Some(e) => Err(AppError::refused(policy::STREAM, e)),
                        None => w.atomically(|w| {
                            let mut tx = Tx {
                                w,
                                caller: &caller,
                                meta: &metadata,
                            };
                            f(&mut tx)
                        }),
                    };
                    match result {
                        Ok(v) => Ok(Ok(v)),
                        Err(AppError::Refused(r)) => {
                            w.reject(&r.stream_id, &r.error, &metadata)?;
                            Ok(Err(AppError::Refused(r)))
                        }
                        Err(AppError::Store(e)) => Err(e),
                    }
                },
            )
            .instrument(span)
            .await?;
        outcome
    }

    /// Records a refusal decided outside a use case's transaction (a
    /// dialect that scopes objects by zone found the named one missing, or
    /// a request failed a check before any transaction), and returns it.
    pub async fn refuse(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        stream_id: String,
        error: DomainError,
    ) -> AppError {
        let refusal = AppError::refused(stream_id.clone(), error.clone());
        match self
            .run(caller, meta, None, move |_| -> Result<(), AppError> {
                Err(AppError::refused(stream_id, error))
            })
            .await
        {
            Err(AppError::Store(s)) => AppError::Store(s),
            _ => refusal,
        }
    }

    /// Runs a read off the async runtime, on the store's pool of read
    /// connections: SQLite calls block, and a slow read must never park a
    /// tokio worker (mini-redis's `db.rs` rule).
    pub async fn read<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        Ok(self.store.query(f).await?)
    }
}
