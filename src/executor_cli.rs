//! `blockledger executor`: the executor as its own process (issue 16), on
//! the same host as the server or another, doing the disk work of one
//! backend and reading and writing the server's log through its internal
//! API (`api::internal`, `executor::remote`). Several may serve one
//! backend: each claims its work items with a lease in the log, so when
//! one dies mid-work another takes the item over once the lease expires.
//!
//! And `serve --executor-key-file`: the server side of the shared secret.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use executor::backend::StorageSpec;
use executor::remote::RemoteLog;
use executor::{Executor, ExecutorConfig, LeaseConfig, WorkLog};
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct ExecutorArgs {
    /// The server's URL (`http://host:port`), whose internal API
    /// (`/internal/v1/`) the executor reads and writes the log through.
    #[arg(long)]
    server: String,
    /// The backend this executor serves (Cinder's volume_backend_name):
    /// the work on volumes and snapshots recorded on it.
    #[arg(long)]
    backend: String,
    /// The storage: qcow2, raw (files under --data-dir) or
    /// rbd:pool=P,conf=/path/ceph.conf[,id=NAME].
    #[arg(long)]
    storage: StorageSpec,
    /// Where this executor's storage keeps its files (qcow2/raw).
    #[arg(long)]
    data_dir: PathBuf,
    /// A file holding the shared secret the server was started with
    /// (`serve --executor-key-file`).
    #[arg(long)]
    key_file: PathBuf,
    /// This executor's name in the log (lease holder; checkpoint
    /// `executor-<name>`): stable across restarts, different for each
    /// executor. Default `<backend>@<host name>`.
    #[arg(long)]
    name: Option<String>,
    /// How long a claim on a work item lasts unless renewed (renewed every
    /// third of it): how soon another executor takes over after this one
    /// dies.
    #[arg(long, default_value_t = 30)]
    lease_secs: u64,
    /// The server's image store, `<server data dir>/images`, for volumes
    /// created from images and exports: image bytes are the server's, so
    /// this must be the same directory (same host, or a shared file
    /// system). Default `<data-dir>/images`, which the server does not
    /// fill: without this flag, volumes from images fail on this backend.
    #[arg(long)]
    images_dir: Option<PathBuf>,
    /// Work items running at once. Default max(4, 2 × cores).
    #[arg(long)]
    workers: Option<usize>,
}

/// `serve --executor-key-file`: flattened into the serve flags.
#[derive(clap::Args, Clone)]
pub struct InternalArgs {
    /// Let remote executors in (`blockledger executor`): a file holding
    /// their shared secret (16 bytes at least). The server keeps only its
    /// SHA-256. Without it the internal API does not exist (404).
    #[arg(long)]
    executor_key_file: Option<PathBuf>,
}

impl InternalArgs {
    /// The key's hash, read once at start (a refusal before anything runs).
    pub fn key(&self) -> Result<Option<api::internal::ExecutorKey>> {
        self.executor_key_file
            .as_deref()
            .map(api::internal::ExecutorKey::from_file)
            .transpose()
            .map_err(Into::into)
    }
}

/// A backend's or executor's name: 1..64 of `[A-Za-z0-9_.-]` (and `@` in
/// an executor's name, for `backend@host`).
fn check_name(what: &str, name: &str, extra: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c) || extra.contains(c));
    if !ok {
        bail!("{what} {name:?}: expected 1 to 64 of A-Z a-z 0-9 _ . -");
    }
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
        .collect()
}

/// The image store at `dir`, which must be an image store's directory
/// (`<data dir>/images`: `ImageStore` keeps that layout).
fn image_store(dir: &Path) -> Result<executor::images::ImageStore> {
    if dir.file_name().and_then(|n| n.to_str()) != Some("images") {
        bail!(
            "--images-dir {}: expected the server's <data-dir>/images",
            dir.display()
        );
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    Ok(executor::images::ImageStore::open(parent)?)
}

pub fn run(args: ExecutorArgs) -> Result<()> {
    check_name("--backend", &args.backend, "")?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}@{}", args.backend, host_name()));
    check_name("--name", &name, "@")?;
    if args.lease_secs == 0 || args.lease_secs > 3600 {
        bail!("--lease-secs must be 1..=3600");
    }
    let key = std::fs::read_to_string(&args.key_file)
        .with_context(|| format!("cannot read --key-file {}", args.key_file.display()))?;
    if key.trim().len() < 16 {
        bail!("--key-file {}: 16 bytes at least", args.key_file.display());
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let storage = executor::backend::open_storage(&args.storage, &data_dir)
        .map_err(|e| anyhow!("--storage: {e}"))?;
    let images = match &args.images_dir {
        Some(d) => image_store(d)?,
        None => executor::images::ImageStore::open(&data_dir)?,
    };
    let log = RemoteLog::new(&args.server, &key)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let checkpoint = format!("executor-{name}");
        // Reach the server once before anything: a wrong URL or key is a
        // refusal to start, not an executor retrying forever.
        let from = log.checkpoint(&checkpoint).await.map_err(|e| {
            anyhow!(
                "the server at {} refused or is unreachable: {e}",
                args.server
            )
        })?;
        let mut config = ExecutorConfig {
            serves: Some(BTreeSet::from([args.backend.clone()])),
            checkpoint,
            lease: Some(LeaseConfig {
                holder: name.clone(),
                ttl: Duration::from_secs(args.lease_secs),
            }),
            // The image store is the server's: deleting files is its job.
            deletes_images: false,
            ..ExecutorConfig::default()
        };
        if let Some(n) = args.workers {
            config.workers = n;
        }
        tracing::info!(
            server = %args.server,
            backend = %args.backend,
            %name,
            from,
            "executor serving"
        );
        let exec = Executor::with_log(Arc::new(log), storage, Arc::new(images), config);
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            stop_signal().await;
            tracing::info!("stop requested: no new work");
            let _ = stop_tx.send(true);
        });
        exec.run(stop_rx).await;
        Ok(())
    })
}

async fn stop_signal() {
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
