//! `blockledger events` (the audit trail on the command line, issue 14) and
//! `blockledger verify --digest HASH@POSITION`.
//!
//! Both read the database file read-only, beside a running server or
//! without one: the operator on the machine sees every project's events
//! (no role applies), filtered in memory with the API's own filter
//! (`eventstore::query::Filter`), in the API's JSON shape
//! (`api::app::events::event_json`).

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use eventstore::query::{self, Filter};
use eventstore::rusqlite::{Connection, OpenFlags};
use eventstore::RecordedEvent;
use std::io::Write;

use crate::DataArgs;

/// How often `--follow` looks for new events: short enough to feel live,
/// long enough that an idle follower costs nothing (one indexed read).
const POLL: Duration = Duration::from_millis(200);

/// Events read per query.
const BATCH: usize = 1000;

#[derive(clap::Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Only the events of this resource (its id; a refusal that named it
    /// counts).
    #[arg(long)]
    resource: Option<String>,
    /// Only events recorded at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only events recorded at or before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// After the existing events, print new ones as they are appended,
    /// until SIGINT or SIGTERM.
    #[arg(long)]
    follow: bool,
    /// One JSON object a line (the API's event shape).
    #[arg(long)]
    json: bool,
}

fn open(data_dir: &Path) -> Result<Connection> {
    let db = data_dir.join("blockledger.db");
    if !db.exists() {
        bail!("no event log at {}", db.display());
    }
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", db.display()))?;
    // A running server may hold the write lock for a moment.
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn time(raw: &Option<String>, flag: &str) -> Result<Option<i64>> {
    raw.as_deref()
        .map(|r| {
            api::app::events::instant_us(r).ok_or_else(|| {
                anyhow!("--{flag} must be an RFC 3339 time, e.g. 2026-11-30T00:00:00Z")
            })
        })
        .transpose()
}

/// One line a person reads: position, time, outcome, what, about what, by
/// whom, how.
fn human(ev: &RecordedEvent) -> String {
    let j = api::app::events::event_json(ev);
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let who = match j["who"]["system"].as_str() {
        Some(system) => system.to_string(),
        None => s(&j["who"]["user_id"]),
    };
    let about = match j["resource_id"].as_str() {
        Some(id) => format!("{}/{id}", s(&j["resource_type"])),
        None => s(&j["resource_type"]),
    };
    let mut line = format!(
        "{:>6} {} {:<8} {} {} by {} ({})",
        ev.position,
        s(&j["recorded_at"]),
        s(&j["outcome"]),
        ev.event_type,
        about,
        who,
        s(&j["who"]["project_id"]),
    );
    // The executor's events came from no request.
    if let Some(dialect) = j["how"]["dialect"].as_str() {
        line.push_str(&format!(
            " via {dialect} {} {}",
            s(&j["how"]["method"]),
            s(&j["how"]["route"])
        ));
    }
    if let Some(m) = ev.data.get("message").and_then(|m| m.as_str()) {
        line.push_str(&format!(": {m}"));
    }
    line
}

pub(crate) fn events(args: EventsArgs) -> Result<()> {
    let conn = open(&args.data.data_dir)?;
    let filter = Filter {
        resource_id: args.resource.clone(),
        since_us: time(&args.since, "since")?,
        until_us: time(&args.until, "until")?,
        ..Filter::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stop = shutdown_signal();
        tokio::pin!(stop);
        let mut out = std::io::stdout().lock();
        let mut after = 0u64;
        loop {
            let batch = query::after(&conn, after, BATCH)?;
            for ev in &batch {
                after = ev.position;
                if !filter.matches(ev, &[]) {
                    continue;
                }
                let line = if args.json {
                    api::app::events::event_json(ev).to_string()
                } else {
                    human(ev)
                };
                if writeln!(out, "{line}").is_err() {
                    // The reader went away (a closed pipe): nothing to do.
                    return Ok(());
                }
            }
            if out.flush().is_err() {
                return Ok(());
            }
            if batch.len() == BATCH {
                continue;
            }
            if !args.follow {
                return Ok(());
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    })
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
}

/// `verify --digest HASH@POSITION`: exit 0 if the log extends the digest,
/// else an error saying where it diverges.
pub(crate) fn verify_digest(data_dir: &Path, digest: &str) -> Result<()> {
    let (hash, position) = digest
        .rsplit_once('@')
        .and_then(|(h, p)| Some((h, p.parse::<u64>().ok()?)))
        .ok_or_else(|| anyhow!("--digest must be HASH@POSITION (from GET …/events/digest)"))?;
    let conn = open(data_dir)?;
    match query::check_digest(&conn, position, hash)? {
        Ok(events) => {
            println!(
                "ok: the log ({events} events) extends the digest {hash}@{position}; its hash chain holds"
            );
            Ok(())
        }
        Err(why) => bail!("{why}"),
    }
}
