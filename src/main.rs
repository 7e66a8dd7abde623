//! `blockledger`: serve the API, or audit and rebuild the log's views.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use eventstore::EventStore;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "blockledger",
    about = "Block-storage volumes on an append-only event log"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, default_value = "127.0.0.1:8776")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataArgs,
    /// Storage backend: qcow2 (default, needs qemu-img) or raw (sparse files).
    #[arg(long, default_value = "qcow2", value_parser = ["qcow2", "raw"])]
    backend: String,
    /// Executor work items running at once (on different volumes,
    /// snapshots, images; one aggregate's work stays in log order).
    /// Default max(4, 2 × cores): most work waits on qemu-img or fsync.
    #[arg(long)]
    workers: Option<usize>,
    /// How long a synchronous call (ZStack's CreateVolumeSnapshot) waits
    /// for the disk work before answering 503 SYS.1005; the work goes on
    /// in the background either way.
    #[arg(long, default_value_t = 60_000)]
    sync_deadline_ms: u64,
}

#[derive(clap::Args, Clone)]
struct DataArgs {
    /// Holds blockledger.db (the log and its views) and volumes/.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the REST API (the default).
    Serve(ServeArgs),
    /// Exit 0 only if the hash chain holds and a replay equals the views.
    Verify(DataArgs),
    /// Rebuild every view from position 0.
    Replay(DataArgs),
}

fn open_store(data_dir: &Path) -> Result<EventStore> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let db = data_dir.join("blockledger.db");
    EventStore::open(&db, projections::all())
        .with_context(|| format!("cannot open event store {}", db.display()))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(Cmd::Serve(args)) => serve(args),
        Some(Cmd::Verify(args)) => verify(&args.data_dir),
        Some(Cmd::Replay(args)) => {
            let store = open_store(&args.data_dir)?;
            let n = store.rebuild_projections()?;
            store.close();
            println!("replayed {n} events into the views");
            Ok(())
        }
    }
}

fn verify(data_dir: &Path) -> Result<()> {
    if !data_dir.join("blockledger.db").exists() {
        bail!(
            "no event log at {}",
            data_dir.join("blockledger.db").display()
        );
    }
    let store = open_store(data_dir)?;
    let chain = store.verify_chain()?;
    if let Some((pos, why)) = chain.first_bad {
        bail!("hash chain broken at position {pos}: {why}");
    }
    if let Some(diff) = store.verify_projections()? {
        bail!("views differ from a replay of the log: {diff}");
    }
    store.close();
    println!(
        "ok: {} events, hash chain intact, views equal a replay",
        chain.events
    );
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served: Result<()> = rt.block_on(async move {
        let store = open_store(&args.data.data_dir)?;
        // Absolute, so connection info names a path any consumer can open.
        let data_dir = std::fs::canonicalize(&args.data.data_dir)?;
        let backend = executor::open_backend(&args.backend, &data_dir)?;
        let backend: Arc<dyn executor::StorageBackend> = Arc::from(backend);
        let images = Arc::new(executor::images::ImageStore::open(&data_dir)?);
        images.cleanup_temps()?;
        let mut config = executor::ExecutorConfig::default();
        if let Some(n) = args.workers {
            config.workers = n;
        }
        let exec = executor::Executor::with_config(
            store.clone(),
            backend.clone(),
            images.clone(),
            config,
        );
        let progress = exec.progress();
        let workers = exec.config().workers;
        let (stop_tx, stop_rx) = watch::channel(false);
        let exec_task = tokio::spawn(exec.run(stop_rx));
        // At SIGTERM or Ctrl-C the executor stops taking work at once, in
        // parallel with the HTTP drain below (which stops accepting), and a
        // backstop bounds the whole stop (issue 15).
        let stop_tx = Arc::new(stop_tx);
        tokio::spawn({
            let stop_tx = stop_tx.clone();
            async move {
                shutdown_signal().await;
                tracing::info!("stop requested: no new requests or work");
                let _ = stop_tx.send(true);
                backstop();
            }
        });

        let state = api::AppState {
            store: store.clone(),
            catalog: Arc::new(domain::Catalog::default()),
            connector: Arc::new({
                let backend = backend.clone();
                move |id| api::Connection {
                    device_path: backend.active_path(id).to_string_lossy().into_owned(),
                    format: backend.format(),
                }
            }),
            images: Arc::new(Images(images)),
            progress: Arc::new(move |id| progress.lock().ok().and_then(|m| m.get(&id).copied())),
            snapshot_file: Arc::new(move |id| {
                backend.snapshot_file(id).to_string_lossy().into_owned()
            }),
            sync_deadline: std::time::Duration::from_millis(args.sync_deadline_ms),
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find a port-0 listener.
        println!("listening on http://{addr}");
        tracing::info!(%addr, data_dir = %args.data.data_dir.display(), backend = %args.backend, workers, "serving");
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        tracing::info!("shutting down");
        // (Already sent if a signal ended the serve.) Running steps get the
        // executor's drain time, then are abandoned and their helpers
        // killed; the restart redoes them from the checkpoint.
        let _ = stop_tx.send(true);
        let _ = exec_task.await;
        store.close();
        Ok(())
    });
    // An abandoned step that runs no helper (a raw backend's copy) may still
    // hold a blocking thread: do not wait for it; its work is redone after
    // the restart, under a fresh temporary name.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    served
}

/// The longest a graceful stop may take, from the signal to the exit.
const STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(9);

/// Ends the process `STOP_BOUND` after a stop was requested, whatever is
/// still running: an HTTP request that outlives its drain (a slow upload, a
/// synchronous call waiting on disk work) or a step stuck outside a helper.
/// Exit 0, as for any requested stop: everything acknowledged is in the log
/// already, and the executor redoes unfinished work after the restart
/// (helpers die with the process, `executor::tool`).
fn backstop() {
    std::thread::spawn(|| {
        std::thread::sleep(STOP_BOUND);
        tracing::warn!(bound = ?STOP_BOUND, "graceful stop out of time; exiting now");
        std::process::exit(0);
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The executor's image store as the API's view of image bytes.
struct Images(Arc<executor::images::ImageStore>);

impl api::ImageFiles for Images {
    fn import(
        &self,
        id: uuid::Uuid,
        declared: &str,
        data: &mut dyn std::io::Read,
    ) -> Result<(u64, u64, String), String> {
        let fmt = executor::images::DiskFormat::parse(declared)
            .ok_or_else(|| format!("unsupported disk format {declared}"))?;
        self.0
            .import(id, fmt, data)
            .map(|i| (i.size, i.virtual_size, i.checksum_sha256))
            .map_err(|e| e.to_string())
    }

    fn path(&self, id: uuid::Uuid) -> std::path::PathBuf {
        self.0.path(id)
    }
}
