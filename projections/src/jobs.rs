//! The job view (DESIGN.md, Jobs): a job is the events that share a
//! correlation id. The request event opens it (INIT), the executor's start
//! makes it RUNNING, the outcome ends it (SUCCESS, or FAIL with the reason).
//!
//! Every asynchronous operation has a job: volume create, extend, delete and
//! rollback, snapshot create and delete, export to an image, and a batch of
//! creates (whose sub-jobs are its volumes' create jobs). The correlation id
//! is `metadata.correlation_id` (the executor copies it onto the events it
//! appends); a request made without one is correlated by its own event id,
//! which the executor's events carry as `caused_by`. A request event that
//! names its own job id (a batch's member) keys its job by that id.
//!
//! The view is dialect-neutral: kinds and statuses are typed, failure is the
//! outcome's reason, times are raw; each dialect renders them its own way.

use chrono::{DateTime, Utc};
use domain::image::{ImageEvent, ImageSource};
use domain::{SnapshotEvent, SnapshotState, VolumeEvent};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension};
use eventstore::{InlineProjection, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    dump_table, enum_at, load_state, opt_time_at, snapshot_event, stamp, time_at, volume_event,
};

pub struct JobsProjection;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    CreateVolume,
    /// Several creates requested together; its sub-jobs are their jobs.
    BatchCreateVolume,
    ExtendVolume,
    DeleteVolume,
    RollbackVolume,
    CreateSnapshot,
    DeleteSnapshot,
    /// A volume or snapshot exported into the image catalog.
    ExportImage,
    /// Attach and detach are immediate (no disk work): their jobs open and
    /// end with the one event, for dialects that answer every call with a
    /// job (the Chinese cloud).
    AttachVolume,
    DetachVolume,
}

impl JobKind {
    /// As the view stores it (serde's name).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::CreateVolume => "create_volume",
            JobKind::BatchCreateVolume => "batch_create_volume",
            JobKind::ExtendVolume => "extend_volume",
            JobKind::DeleteVolume => "delete_volume",
            JobKind::RollbackVolume => "rollback_volume",
            JobKind::CreateSnapshot => "create_snapshot",
            JobKind::DeleteSnapshot => "delete_snapshot",
            JobKind::ExportImage => "export_image",
            JobKind::AttachVolume => "attach_volume",
            JobKind::DetachVolume => "detach_volume",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    Init,
    Running,
    Success,
    Fail,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Init => "INIT",
            JobStatus::Running => "RUNNING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Fail => "FAIL",
        }
    }

    pub fn ended(self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::Fail)
    }
}

/// The resource a job works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEntity {
    Volume(String),
    Snapshot(String),
    Image(String),
    /// A batch: its sub-jobs carry the volumes.
    Batch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub job_id: String,
    /// The project of the resource (not of the caller): an admin's extend
    /// of alice's volume is alice's job.
    pub project_id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    pub entity: JobEntity,
    pub begin_time: DateTime<Utc>,
    /// None while the job runs.
    pub end_time: Option<DateTime<Utc>>,
    /// The outcome's reason when the job failed.
    pub failure: Option<String>,
    /// The request that opened the job.
    pub request_id: Option<String>,
    pub sub_jobs: Vec<JobRow>,
}

/// How an event moves a job.
enum Step {
    /// A request: opens job `kind` for the resource of the event's stream.
    Open {
        kind: JobKind,
        /// The job id the event names itself (EVS job ids).
        own_id: Option<String>,
        /// The batch this request is a member of.
        batch: Option<String>,
        /// The resource's project, when the event states it.
        project: Option<String>,
    },
    Start,
    End(Option<String>),
    /// Requested and done in one event.
    Done(JobKind),
}

fn volume_step(e: &VolumeEvent) -> Option<Step> {
    use VolumeEvent as E;
    let open = |kind, own_id| Step::Open {
        kind,
        own_id,
        batch: None,
        project: None,
    };
    Some(match e {
        E::VolumeCreateRequested {
            job_id,
            batch_job_id,
            project_id,
            ..
        } => Step::Open {
            kind: JobKind::CreateVolume,
            own_id: job_id.clone(),
            batch: batch_job_id.clone(),
            project: Some(project_id.clone()),
        },
        E::VolumeExtendRequested { job_id, .. } => open(JobKind::ExtendVolume, job_id.clone()),
        E::VolumeDeleteRequested { job_id } => open(JobKind::DeleteVolume, job_id.clone()),
        E::VolumeRollbackRequested { .. } => open(JobKind::RollbackVolume, None),
        E::VolumeAttached { .. } => Step::Done(JobKind::AttachVolume),
        E::VolumeDetached { .. } => Step::Done(JobKind::DetachVolume),
        E::VolumeWorkStarted { .. } => Step::Start,
        E::VolumeAllocated { .. }
        | E::VolumeExtended { .. }
        | E::VolumeDeleted {}
        | E::VolumeRolledBack { .. } => Step::End(None),
        E::VolumeCreateFailed { reason }
        | E::VolumeExtendFailed { reason }
        | E::VolumeDeleteFailed { reason }
        | E::VolumeRollbackFailed { reason } => Step::End(Some(reason.clone())),
        _ => return None,
    })
}

fn snapshot_step(e: &SnapshotEvent) -> Option<Step> {
    use SnapshotEvent as E;
    let open = |kind, project| Step::Open {
        kind,
        own_id: None,
        batch: None,
        project,
    };
    Some(match e {
        E::SnapshotCreateRequested { project_id, .. } => {
            open(JobKind::CreateSnapshot, Some(project_id.clone()))
        }
        E::SnapshotDeleteRequested {} => open(JobKind::DeleteSnapshot, None),
        E::SnapshotWorkStarted { .. } => Step::Start,
        E::SnapshotCreated {} | E::SnapshotDeleted {} => Step::End(None),
        E::SnapshotCreateFailed { reason } | E::SnapshotDeleteFailed { reason } => {
            Step::End(Some(reason.clone()))
        }
        _ => return None,
    })
}

fn image_step(e: ImageEvent) -> Option<Step> {
    Some(match e {
        ImageEvent::ImageCreateRequested {
            project_id,
            source: ImageSource::Volume { .. } | ImageSource::Snapshot { .. },
            ..
        } => Step::Open {
            kind: JobKind::ExportImage,
            own_id: None,
            batch: None,
            project: Some(project_id),
        },
        ImageEvent::ImageSaving {} => Step::Start,
        ImageEvent::ImageActive { .. } => Step::End(None),
        ImageEvent::ImageKilled { reason } => Step::End(Some(reason)),
        _ => return None,
    })
}

fn step(ev: &RecordedEvent) -> Option<(Step, JobEntity)> {
    let (prefix, rest) = ev.stream_id.split_once('-')?;
    let id = rest.to_string();
    match prefix {
        "volume" => Some((volume_step(&*volume_event(ev)?)?, JobEntity::Volume(id))),
        "snapshot" => Some((
            snapshot_step(&*snapshot_event(ev)?)?,
            JobEntity::Snapshot(id),
        )),
        "image" => {
            let e = ev.decode::<ImageEvent>().ok()?;
            Some((image_step(e)?, JobEntity::Image(id)))
        }
        _ => None,
    }
}

/// The metadata keys this view reads, decoded from the stored text
/// without a `Value` of all ~12 keys (issue 11: that parse was a fifth of
/// this view's replay instructions). A key absent, null or not a string
/// is None, as `Value::as_str` has it.
#[derive(Default, Deserialize)]
struct JobMeta {
    #[serde(default, deserialize_with = "string_or_none")]
    correlation_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    request_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    caused_by: Option<String>,
}

impl JobMeta {
    fn of(m: &eventstore::StoredJson) -> JobMeta {
        match m.parsed() {
            Some(v) => JobMeta::deserialize(v).unwrap_or_default(),
            None => serde_json::from_str(m.as_raw()).unwrap_or_default(),
        }
    }
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// The project that owns the resource a request is about.
fn owner(conn: &Connection, entity: &JobEntity) -> rusqlite::Result<String> {
    Ok(match entity {
        JobEntity::Volume(id) => crate::volumes::project_of(conn, id)?,
        JobEntity::Snapshot(id) => load_state::<SnapshotState>(conn, "snapshot_states", id)?
            .snapshot
            .map(|s| s.project_id),
        JobEntity::Image(_) | JobEntity::Batch => None,
    }
    .unwrap_or_default())
}

impl InlineProjection for JobsProjection {
    fn name(&self) -> &'static str {
        "jobs"
    }

    /// 2: keyed by correlation, typed kind and failure, raw times.
    /// 3: the opening request's id.
    fn schema_version(&self) -> u32 {
        // 4: the key is an index (jobs_by_id), not a constraint.
        // 5: jobs_by_parent holds sub-jobs only (a partial index).
        5
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DROP TABLE IF EXISTS jobs;")
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                job_id TEXT NOT NULL,
                correlation TEXT NOT NULL,
                stream_id TEXT NOT NULL,
                parent_id TEXT,
                project_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                begin_time TEXT NOT NULL,
                end_time TEXT,
                failure TEXT,
                request_id TEXT
            );
            -- The key, as an index rather than a PRIMARY KEY constraint: a
            -- replay's bulk write builds it by one sort (bulk_fill). The
            -- rows go in their order of arrival (rowid order is the order
            -- of sub-jobs and of a correlation's requests), so their random
            -- ids took the constraint's index to a random leaf each.
            CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_id ON jobs(job_id);
            -- Only sub-jobs have a parent: most rows (every job of a single
            -- request) would be NULL entries, sorted and written for nothing
            -- in a replay and at every live insert.
            CREATE INDEX IF NOT EXISTS jobs_by_parent ON jobs(parent_id)
                WHERE parent_id IS NOT NULL;
            CREATE INDEX IF NOT EXISTS jobs_by_correlation ON jobs(correlation, stream_id);",
        )
    }

    fn begin_replay(&self) {
        replay::KEPT.begin();
    }

    fn end_replay(&self, conn: &Connection, finished: bool) -> rusqlite::Result<()> {
        replay::end(conn, finished)
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        let Some((step, entity)) = step(ev) else {
            return Ok(());
        };
        // The project is read from the other views before the jobs are
        // borrowed (a replay keeps both in memory on this thread).
        let project = match &step {
            Step::Open {
                project: Some(p), ..
            } => p.clone(),
            Step::Open { .. } | Step::Done(_) => owner(conn, &entity)?,
            Step::Start | Step::End(_) => String::new(),
        };
        replay::run(conn, |jobs| apply_step(jobs, ev, step, project))
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM jobs")?
            .execute([])
            .map(|_| ())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "jobs", "job_id")
    }
}

/// A row of the view.
#[derive(Clone)]
struct StoredJob {
    job_id: String,
    correlation: String,
    stream_id: String,
    parent_id: Option<String>,
    project_id: String,
    kind: JobKind,
    status: JobStatus,
    begin_time: String,
    end_time: Option<String>,
    failure: Option<String>,
    request_id: Option<String>,
}

/// Where the view's rows are: the table (live), or memory during a replay
/// (issue 11: the table's three statements per job were a fifth of a
/// replay). `apply_step` decides; these only store, each with the exact
/// effect of the SQL statement `Sql` runs for it.
trait JobStore {
    /// The stream of job `job_id`, if there is one.
    fn stream_of(&mut self, job_id: &str) -> rusqlite::Result<Option<String>>;
    /// INSERT (`or_ignore`: INSERT OR IGNORE) of a new row.
    fn insert(&mut self, job: StoredJob, or_ignore: bool) -> rusqlite::Result<()>;
    /// Copies job `key` as `sub`, a sub-job of it, and makes `key` a
    /// parent: no stream, INIT, no end, no failure.
    fn split(&mut self, key: &str, sub: &str) -> rusqlite::Result<()>;
    /// The request that opened the first job of correlation `key` on
    /// `stream` (the messages view's request id for an outcome).
    fn request_of(&mut self, key: &str, stream: &str) -> rusqlite::Result<Option<String>>;
    /// The jobs of correlation `key` on `stream`: INIT ones become RUNNING.
    fn start(&mut self, key: &str, stream: &str) -> rusqlite::Result<()>;
    /// The jobs of correlation `key` on `stream` that have not ended end
    /// now, failed with `failure` or succeeded.
    fn end(
        &mut self,
        key: &str,
        stream: &str,
        now: &str,
        failure: Option<String>,
    ) -> rusqlite::Result<()>;
}

fn apply_step(
    jobs: &mut dyn JobStore,
    ev: &RecordedEvent,
    step: Step,
    project: String,
) -> rusqlite::Result<()> {
    let now = stamp(&ev.recorded_at);
    let JobMeta {
        correlation_id: correlation,
        request_id,
        caused_by,
    } = JobMeta::of(&ev.metadata);
    match step {
        Step::Open {
            kind,
            own_id,
            batch,
            ..
        } => {
            let key = correlation.unwrap_or_else(|| ev.event_id.to_string());
            let job_id = match &batch {
                Some(_) => own_id.unwrap_or_else(|| ev.event_id.simple().to_string()),
                None => key.clone(),
            };
            if let Some(batch) = &batch {
                jobs.insert(
                    StoredJob {
                        job_id: batch.clone(),
                        correlation: key.clone(),
                        stream_id: String::new(),
                        parent_id: None,
                        project_id: project.clone(),
                        kind: JobKind::BatchCreateVolume,
                        status: JobStatus::Init,
                        begin_time: now.clone(),
                        end_time: None,
                        failure: None,
                        request_id: request_id.clone(),
                    },
                    true,
                )?;
            }
            // A correlation that opens a second resource (one request
            // acting on several volumes or snapshots) becomes a parent
            // job: its first resource moves to a sub-job, like the next.
            let parent = if batch.is_none() {
                split_into_parent(jobs, &key, &ev.stream_id)?
            } else {
                None
            };
            let (job_id, batch) = match parent {
                Some(p) => (ev.event_id.simple().to_string(), Some(p)),
                None => (job_id, batch),
            };
            jobs.insert(
                StoredJob {
                    job_id,
                    correlation: key,
                    stream_id: ev.stream_id.clone(),
                    parent_id: batch,
                    project_id: project,
                    kind,
                    status: JobStatus::Init,
                    begin_time: now,
                    end_time: None,
                    failure: None,
                    request_id,
                },
                true,
            )
        }
        Step::Done(kind) => {
            let Some(key) = correlation else {
                return Ok(());
            };
            let parent = split_into_parent(jobs, &key, &ev.stream_id)?;
            let job_id = match &parent {
                Some(_) => ev.event_id.simple().to_string(),
                None => key.clone(),
            };
            jobs.insert(
                StoredJob {
                    job_id,
                    correlation: key,
                    stream_id: ev.stream_id.clone(),
                    parent_id: parent,
                    project_id: project,
                    kind,
                    status: JobStatus::Success,
                    begin_time: now.clone(),
                    end_time: Some(now),
                    failure: None,
                    request_id,
                },
                true,
            )
        }
        Step::Start => match correlation.or(caused_by) {
            Some(key) => jobs.start(&key, &ev.stream_id),
            None => Ok(()),
        },
        Step::End(failure) => match correlation.or(caused_by) {
            Some(key) => jobs.end(&key, &ev.stream_id, &now, failure),
            None => Ok(()),
        },
    }
}

/// If correlation `key` already has a job on another stream, makes job
/// `key` a parent (no stream of its own) and moves its first resource to a
/// sub-job; returns the parent's id when the new request is one more
/// member.
fn split_into_parent(
    jobs: &mut dyn JobStore,
    key: &str,
    stream_id: &str,
) -> rusqlite::Result<Option<String>> {
    match jobs.stream_of(key)? {
        None => Ok(None),
        // Already a parent (a batch, or split before).
        Some(s) if s.is_empty() => Ok(Some(key.to_string())),
        Some(s) if s == stream_id => Ok(None),
        Some(_) => {
            jobs.split(key, &format!("{key}-1"))?;
            Ok(Some(key.to_string()))
        }
    }
}

/// The jobs table.
struct Sql<'c>(&'c Connection);

impl JobStore for Sql<'_> {
    fn stream_of(&mut self, job_id: &str) -> rusqlite::Result<Option<String>> {
        self.0
            .prepare_cached("SELECT stream_id FROM jobs WHERE job_id = ?1")?
            .query_row([job_id], |r| r.get(0))
            .optional()
    }

    fn insert(&mut self, j: StoredJob, or_ignore: bool) -> rusqlite::Result<()> {
        let sql = if or_ignore {
            "INSERT OR IGNORE INTO jobs (job_id, correlation, stream_id, parent_id, project_id,
                kind, status, begin_time, end_time, failure, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        } else {
            "INSERT INTO jobs (job_id, correlation, stream_id, parent_id, project_id,
                kind, status, begin_time, end_time, failure, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        };
        self.0.prepare_cached(sql)?.execute(params![
            j.job_id,
            j.correlation,
            j.stream_id,
            j.parent_id,
            j.project_id,
            j.kind.as_str(),
            j.status.as_str(),
            j.begin_time,
            j.end_time,
            j.failure,
            j.request_id
        ])?;
        Ok(())
    }

    fn split(&mut self, key: &str, sub: &str) -> rusqlite::Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO jobs (job_id, correlation, stream_id, parent_id, project_id, kind,
                    status, begin_time, end_time, failure, request_id)
                 SELECT ?2, correlation, stream_id, ?1, project_id, kind, status, begin_time,
                    end_time, failure, request_id FROM jobs WHERE job_id = ?1",
            )?
            .execute(params![key, sub])?;
        self.0
            .prepare_cached(
                "UPDATE jobs SET stream_id = '', status = 'INIT', end_time = NULL,
                    failure = NULL WHERE job_id = ?1",
            )?
            .execute([key])?;
        Ok(())
    }

    fn request_of(&mut self, key: &str, stream: &str) -> rusqlite::Result<Option<String>> {
        // Equal keys of the index are in rowid order: the first is the
        // first inserted.
        Ok(self
            .0
            .prepare_cached(
                "SELECT request_id FROM jobs WHERE correlation = ?1 AND stream_id = ?2",
            )?
            .query_row(params![key, stream], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn start(&mut self, key: &str, stream: &str) -> rusqlite::Result<()> {
        self.0
            .prepare_cached(
                "UPDATE jobs SET status = 'RUNNING'
                 WHERE correlation = ?1 AND stream_id = ?2 AND status = 'INIT'",
            )?
            .execute(params![key, stream])?;
        Ok(())
    }

    fn end(
        &mut self,
        key: &str,
        stream: &str,
        now: &str,
        failure: Option<String>,
    ) -> rusqlite::Result<()> {
        self.0
            .prepare_cached(
                "UPDATE jobs SET status = ?3, end_time = ?4, failure = ?5
                 WHERE correlation = ?1 AND stream_id = ?2 AND status IN ('INIT', 'RUNNING')",
            )?
            .execute(params![
                key,
                stream,
                if failure.is_some() { "FAIL" } else { "SUCCESS" },
                now,
                failure
            ])?;
        Ok(())
    }
}

/// The view kept in memory while a replay runs on this thread, written to
/// the table in one pass at its end, in the order the live path would have
/// inserted the rows (sub-jobs are listed in rowid order).
mod replay {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use eventstore::rusqlite::{self, ffi, Connection};

    use super::{JobStatus, JobStore, Sql, StoredJob};
    use crate::ReplayKept;

    #[derive(Default)]
    pub(super) struct Kept {
        rows: Vec<StoredJob>,
        by_id: HashMap<String, usize>,
        /// Correlation → its rows (a handful; a batch's members).
        by_correlation: HashMap<String, Vec<usize>>,
    }

    thread_local! {
        static JOBS: RefCell<Option<Kept>> = const { RefCell::new(None) };
    }
    pub(super) static KEPT: ReplayKept<Kept> = ReplayKept(&JOBS);

    /// `f` on the kept view when a replay is under way on this thread,
    /// else on the table.
    pub(super) fn run<T>(conn: &Connection, f: impl FnOnce(&mut dyn JobStore) -> T) -> T {
        KEPT.or_live::<dyn JobStore, _>(&mut Sql(conn), |kept| kept, |s| f(s))
    }

    pub(super) fn end(conn: &Connection, finished: bool) -> rusqlite::Result<()> {
        let Some(kept) = KEPT.end(finished) else {
            return Ok(());
        };
        super::super::bulk_fill(conn, "jobs", || {
            let mut table = Sql(conn);
            for job in kept.rows {
                table.insert(job, false)?;
            }
            Ok(())
        })
    }

    impl Kept {
        fn push(&mut self, job: StoredJob) {
            let i = self.rows.len();
            self.by_id.insert(job.job_id.clone(), i);
            self.by_correlation
                .entry(job.correlation.clone())
                .or_default()
                .push(i);
            self.rows.push(job);
        }

        /// Each row of correlation `key` on `stream`, through `f`.
        fn each(&mut self, key: &str, stream: &str, mut f: impl FnMut(&mut StoredJob)) {
            let Some(at) = self.by_correlation.get(key) else {
                return;
            };
            for &i in at {
                let r = &mut self.rows[i];
                if r.stream_id == stream {
                    f(r);
                }
            }
        }
    }

    impl JobStore for Kept {
        fn stream_of(&mut self, job_id: &str) -> rusqlite::Result<Option<String>> {
            Ok(self
                .by_id
                .get(job_id)
                .map(|&i| self.rows[i].stream_id.clone()))
        }

        fn insert(&mut self, job: StoredJob, or_ignore: bool) -> rusqlite::Result<()> {
            if self.by_id.contains_key(&job.job_id) {
                return if or_ignore {
                    Ok(())
                } else {
                    Err(duplicate(&job.job_id))
                };
            }
            self.push(job);
            Ok(())
        }

        fn split(&mut self, key: &str, sub: &str) -> rusqlite::Result<()> {
            let Some(&i) = self.by_id.get(key) else {
                return Ok(());
            };
            if self.by_id.contains_key(sub) {
                return Err(duplicate(sub));
            }
            let copy = StoredJob {
                job_id: sub.to_owned(),
                parent_id: Some(key.to_owned()),
                ..self.rows[i].clone()
            };
            self.push(copy);
            let parent = &mut self.rows[i];
            parent.stream_id.clear();
            parent.status = JobStatus::Init;
            parent.end_time = None;
            parent.failure = None;
            Ok(())
        }

        fn request_of(&mut self, key: &str, stream: &str) -> rusqlite::Result<Option<String>> {
            let mut first = None;
            self.each(key, stream, |r| {
                if first.is_none() {
                    first = Some(r.request_id.clone());
                }
            });
            Ok(first.flatten())
        }

        fn start(&mut self, key: &str, stream: &str) -> rusqlite::Result<()> {
            self.each(key, stream, |r| {
                if r.status == JobStatus::Init {
                    r.status = JobStatus::Running;
                }
            });
            Ok(())
        }

        fn end(
            &mut self,
            key: &str,
            stream: &str,
            now: &str,
            failure: Option<String>,
        ) -> rusqlite::Result<()> {
            self.each(key, stream, |r| {
                if matches!(r.status, JobStatus::Init | JobStatus::Running) {
                    r.status = if failure.is_some() {
                        JobStatus::Fail
                    } else {
                        JobStatus::Success
                    };
                    r.end_time = Some(now.to_owned());
                    r.failure = failure.clone();
                }
            });
            Ok(())
        }
    }

    /// The error the table's primary key gives a second row of one id.
    fn duplicate(job_id: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_CONSTRAINT_PRIMARYKEY),
            Some(format!("UNIQUE constraint failed: jobs.job_id ({job_id})")),
        )
    }
}

/// The request that opened job `correlation` on `stream`, from the view
/// as it stands (in memory while a replay runs on this thread).
pub(crate) fn request_of(
    conn: &Connection,
    correlation: &str,
    stream: &str,
) -> rusqlite::Result<Option<String>> {
    replay::run(conn, |jobs| jobs.request_of(correlation, stream))
}

/// A job; a batch job carries its sub-jobs and a status derived from them:
/// FAIL or SUCCESS once every sub-job has ended (FAIL if any failed),
/// RUNNING while any has started, INIT before.
pub fn get(conn: &Connection, job_id: &str) -> rusqlite::Result<Option<JobRow>> {
    let Some(mut job) = get_one(conn, job_id)? else {
        return Ok(None);
    };
    if job.entity == JobEntity::Batch {
        let mut stmt =
            conn.prepare("SELECT job_id FROM jobs WHERE parent_id = ?1 ORDER BY rowid")?;
        let ids: Vec<String> = stmt
            .query_map([job_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut subs = Vec::new();
        for id in ids {
            if let Some(s) = get_one(conn, &id)? {
                subs.push(s);
            }
        }
        let ended = subs.iter().all(|s| s.status.ended());
        let failed = subs.iter().find(|s| s.status == JobStatus::Fail);
        job.status = if subs.is_empty() {
            JobStatus::Init
        } else if ended && failed.is_some() {
            JobStatus::Fail
        } else if ended {
            JobStatus::Success
        } else if subs.iter().any(|s| s.status != JobStatus::Init) {
            JobStatus::Running
        } else {
            JobStatus::Init
        };
        if ended {
            job.end_time = subs.iter().filter_map(|s| s.end_time).max();
            job.failure = failed.and_then(|f| f.failure.clone());
        }
        job.sub_jobs = subs;
    }
    Ok(Some(job))
}

fn get_one(conn: &Connection, job_id: &str) -> rusqlite::Result<Option<JobRow>> {
    conn.prepare_cached(
        "SELECT job_id, project_id, kind, status, stream_id, begin_time, end_time, failure,
            request_id
         FROM jobs WHERE job_id = ?1",
    )?
    .query_row([job_id], |r| {
        let stream: String = r.get(4)?;
        let entity = match stream.split_once('-') {
            Some(("volume", id)) => JobEntity::Volume(id.into()),
            Some(("snapshot", id)) => JobEntity::Snapshot(id.into()),
            Some(("image", id)) => JobEntity::Image(id.into()),
            _ => JobEntity::Batch,
        };
        Ok(JobRow {
            job_id: r.get(0)?,
            project_id: r.get(1)?,
            kind: enum_at(r, 2)?,
            status: enum_at(r, 3)?,
            entity,
            begin_time: time_at(r, 5)?,
            end_time: opt_time_at(r, 6)?,
            failure: r.get(7)?,
            request_id: r.get(8)?,
            sub_jobs: Vec::new(),
        })
    })
    .optional()
}

#[cfg(test)]
mod tests {
    /// A batch's sub-jobs are read through the partial index on
    /// `parent_id` (rows without a parent are not in it), not by a scan
    /// of every job.
    #[test]
    fn sub_jobs_are_read_through_the_partial_parent_index() {
        let (_dir, conn) = crate::views_db();
        let plan = crate::query_plan(
            &conn,
            "SELECT job_id FROM jobs WHERE parent_id = ?1 ORDER BY rowid",
            ["b1"],
        );
        assert!(plan.contains("USING INDEX jobs_by_parent"), "{plan}");
    }
}
