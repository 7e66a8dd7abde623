//! The job view (Huawei JOB-8.1.1): a job is the set of events that carry
//! its id. INIT when requested, RUNNING when the executor starts the work,
//! SUCCESS or FAIL (with `error_code` and `fail_reason`) when it ends.

use domain::VolumeEvent;
use eventstore::rusqlite::{self, params, Connection, OptionalExtension};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, time, volume_event};

pub struct JobsProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub job_id: String,
    pub project_id: String,
    pub job_type: String,
    pub status: String,
    pub entities: serde_json::Value,
    pub begin_time: String,
    pub end_time: String,
    pub error_code: Option<String>,
    pub fail_reason: Option<String>,
    pub sub_jobs: Vec<JobRow>,
}

impl InlineProjection for JobsProjection {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                job_id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                job_type TEXT NOT NULL,
                status TEXT NOT NULL,
                entities TEXT NOT NULL,
                begin_time TEXT NOT NULL,
                end_time TEXT NOT NULL,
                error_code TEXT,
                fail_reason TEXT,
                volume_id TEXT NOT NULL,
                parent_id TEXT
            );
            CREATE INDEX IF NOT EXISTS jobs_by_parent ON jobs(parent_id);
            CREATE INDEX IF NOT EXISTS jobs_by_volume ON jobs(volume_id, status);",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        let Some(event) = volume_event(ev) else {
            return Ok(());
        };
        let volume_id = ev.stream_id.trim_start_matches("volume-");
        let now = time::job(&ev.recorded_at);
        let project = ev.metadata["project_id"].as_str().unwrap_or_default();
        let open = |job_id: &Option<String>,
                    job_type: &str,
                    project: &str,
                    parent: Option<&str>| {
            let Some(job_id) = job_id else {
                return Ok(());
            };
            if let Some(parent) = parent {
                // The batch's own row: its status is derived from its
                // sub-jobs when read.
                conn.execute(
                    "INSERT OR IGNORE INTO jobs (job_id, project_id, job_type, status, entities,
                        begin_time, end_time, error_code, fail_reason, volume_id, parent_id)
                     VALUES (?1, ?2, 'batchCreateVolume', 'INIT', '{}', ?3, '', NULL, NULL, '', NULL)",
                    params![parent, project, now],
                )?;
            }
            conn.execute(
                "INSERT INTO jobs (job_id, project_id, job_type, status, entities, begin_time,
                    end_time, error_code, fail_reason, volume_id, parent_id)
                 VALUES (?1, ?2, ?3, 'INIT', ?4, ?5, '', NULL, NULL, ?6, ?7)",
                params![
                    job_id,
                    project,
                    job_type,
                    serde_json::json!({ "volume_id": volume_id }).to_string(),
                    now,
                    volume_id,
                    parent
                ],
            )
            .map(|_| ())
        };
        // The job of this volume that is still open, if any.
        let finish = |status: &str, error: Option<(&str, &str)>| {
            conn.execute(
                "UPDATE jobs SET status = ?2, end_time = ?3, error_code = ?4, fail_reason = ?5
                 WHERE volume_id = ?1 AND status IN ('INIT', 'RUNNING')",
                params![
                    volume_id,
                    status,
                    now,
                    error.map(|e| e.0),
                    error.map(|e| e.1)
                ],
            )
            .map(|_| ())
        };
        match &event {
            VolumeEvent::VolumeCreateRequested {
                job_id,
                project_id,
                batch_job_id,
                ..
            } => open(job_id, "createVolume", project_id, batch_job_id.as_deref())?,
            VolumeEvent::VolumeExtendRequested { job_id, .. } => {
                open(job_id, "extendVolume", project, None)?
            }
            VolumeEvent::VolumeDeleteRequested { job_id } => {
                open(job_id, "deleteVolume", project, None)?
            }
            VolumeEvent::VolumeWorkStarted { .. } => {
                conn.execute(
                    "UPDATE jobs SET status = 'RUNNING' WHERE volume_id = ?1 AND status = 'INIT'",
                    params![volume_id],
                )?;
            }
            VolumeEvent::VolumeAllocated { .. }
            | VolumeEvent::VolumeExtended { .. }
            | VolumeEvent::VolumeDeleted {} => finish("SUCCESS", None)?,
            VolumeEvent::VolumeCreateFailed { reason } => {
                finish("FAIL", Some(("EVS.2024", reason)))?
            }
            VolumeEvent::VolumeExtendFailed { reason } => {
                finish("FAIL", Some(("EVS.2026", reason)))?
            }
            VolumeEvent::VolumeDeleteFailed { reason } => {
                finish("FAIL", Some(("EVS.2020", reason)))?
            }
            VolumeEvent::VolumeUpdated { .. }
            | VolumeEvent::VolumeMetadataSet { .. }
            | VolumeEvent::VolumeRollbackRequested { .. }
            | VolumeEvent::VolumeRolledBack { .. }
            | VolumeEvent::VolumeRollbackFailed { .. }
            | VolumeEvent::VolumeAttached { .. }
            | VolumeEvent::VolumeDetached { .. }
            | VolumeEvent::VolumeReserved {}
            | VolumeEvent::VolumeUnreserved {}
            | VolumeEvent::VolumeBootableSet { .. }
            | VolumeEvent::VolumeReadonlySet { .. }
            | VolumeEvent::VolumeTransferStarted { .. }
            | VolumeEvent::VolumeTransferCancelled { .. }
            | VolumeEvent::VolumeTransferred { .. }
            | VolumeEvent::VolumeUploadStarted { .. }
            | VolumeEvent::VolumeUploadEnded { .. } => {}
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute("DELETE FROM jobs", []).map(|_| ())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "jobs", "job_id")
    }
}

/// A job; a batch job carries its sub-jobs and a status derived from them:
/// FAIL or SUCCESS once every sub-job has ended (FAIL if any failed),
/// RUNNING while any has started, INIT before.
pub fn get(conn: &Connection, job_id: &str) -> rusqlite::Result<Option<JobRow>> {
    let Some(mut job) = get_one(conn, job_id)? else {
        return Ok(None);
    };
    if job.job_type == "batchCreateVolume" {
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
        let ended = subs
            .iter()
            .all(|s| s.status == "SUCCESS" || s.status == "FAIL");
        job.status = if subs.is_empty() {
            "INIT".into()
        } else if ended && subs.iter().any(|s| s.status == "FAIL") {
            "FAIL".into()
        } else if ended {
            "SUCCESS".into()
        } else if subs.iter().any(|s| s.status != "INIT") {
            "RUNNING".into()
        } else {
            "INIT".into()
        };
        if ended {
            job.end_time = subs
                .iter()
                .map(|s| s.end_time.clone())
                .max()
                .unwrap_or_default();
            if let Some(f) = subs.iter().find(|s| s.status == "FAIL") {
                job.error_code = f.error_code.clone();
                job.fail_reason = f.fail_reason.clone();
            }
        }
        job.sub_jobs = subs;
    }
    Ok(Some(job))
}

fn get_one(conn: &Connection, job_id: &str) -> rusqlite::Result<Option<JobRow>> {
    conn.query_row(
        "SELECT job_id, project_id, job_type, status, entities, begin_time, end_time,
            error_code, fail_reason FROM jobs WHERE job_id = ?1",
        [job_id],
        |r| {
            let entities: String = r.get(4)?;
            Ok(JobRow {
                job_id: r.get(0)?,
                project_id: r.get(1)?,
                job_type: r.get(2)?,
                status: r.get(3)?,
                entities: serde_json::from_str(&entities).unwrap_or_default(),
                begin_time: r.get(5)?,
                end_time: r.get(6)?,
                error_code: r.get(7)?,
                fail_reason: r.get(8)?,
                sub_jobs: Vec::new(),
            })
        },
    )
    .optional()
}
