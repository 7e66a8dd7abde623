//! `blockledger`: serve the API, or audit and rebuild the log's views.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use eventstore::EventStore;
use tokio::sync::watch;

/// See Cargo.toml: the allocator is chosen for the server's request path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod events_cli;
mod executor_cli;
mod identity_cli;
mod point_in_time;
mod storages;

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
    /// One more backend NAME (a volume type's `volume_backend_name`)
    /// served by an executor of its own in this process, on storage SPEC:
    /// `qcow2`, `raw` (under <data-dir>/storages/NAME) or
    /// `rbd:pool=P,conf=/path/ceph.conf[,id=admin]`. Repeatable.
    #[arg(long = "storage", value_name = "NAME=SPEC", value_parser = storages::parse_storage)]
    storages: Vec<storages::NamedStorage>,
    /// Cinder's max_over_subscription_ratio (e.g. its default, 20):
    /// volumes are thin, so a backend has room for a new volume while its
    /// free space times this holds the volume's size (1: thick). Without
    /// it, only a full backend has no room.
    #[arg(long)]
    max_over_subscription_ratio: Option<f64>,
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
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    auth: AuthArgs,
    /// Serve the data dir's log as it is (a copy made by `replay --as-of`):
    /// every dialect's reads, no executor, every write refused with 403.
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    internal: executor_cli::InternalArgs,
}

/// Who may call (issue 13).
#[derive(clap::Args, Clone)]
struct AuthArgs {
    /// keystone: the built-in identity's tokens (`/identity/v3`, the
    /// default); noauth: `X-Auth-Token: user:project` trusted as said, for
    /// development and tests, and only on a loopback address.
    #[arg(long, default_value = "keystone", value_parser = ["keystone", "noauth"])]
    auth: String,
    /// How long an issued token is valid.
    #[arg(long, default_value_t = 24 * 3600)]
    token_lifetime_secs: u64,
    /// Projects, users and grants to have (TOML; see README), applied at
    /// every start.
    #[arg(long)]
    identity_file: Option<PathBuf>,
}

/// What one client connection may hold (api::server::Limits).
#[derive(clap::Args, Clone)]
struct ConnArgs {
    /// Client connections open at once; at the cap the longest-idle one
    /// is closed to admit a new one. Default: half the open-file limit,
    /// at most 8192 (512 under the common limit of 1024).
    #[arg(long)]
    max_connections: Option<usize>,
    /// A request head must be complete this long after the connection
    /// opened or its previous response; also the keep-alive idle timeout.
    #[arg(long, default_value_t = 5_000)]
    header_timeout_ms: u64,
    /// Longest silence while a request body is read; then 408 and close.
    #[arg(long, default_value_t = 10_000)]
    body_timeout_ms: u64,
    /// Largest buffered request body (413 beyond it); image uploads are
    /// streamed and not limited. Idempotency keys fingerprint bodies of
    /// at most 2 MiB.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    max_body_bytes: usize,
    /// On SIGTERM, how long running requests may go on before their
    /// connections are closed.
    #[arg(long, default_value_t = 5_000)]
    drain_timeout_ms: u64,
}

#[derive(clap::Args, Clone)]
pub(crate) struct DataArgs {
    /// Holds blockledger.db (the log and its views) and volumes/.
    #[arg(long, default_value = "./data")]
    pub(crate) data_dir: PathBuf,
}

#[derive(clap::Args)]
struct VerifyArgs {
    #[command(flatten)]
    data: DataArgs,
    /// HASH@POSITION, as `GET /v3/{project_id}/events/digest` answered:
    /// proves the log extends it (exit 0) or says where it diverges.
    #[arg(long)]
    digest: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the REST API (the default).
    Serve(ServeArgs),
    /// Exit 0 only if the hash chain holds and a replay equals the views
    /// (with --digest: only if the log extends that digest).
    Verify(VerifyArgs),
    /// Print the audit trail: --resource, --since, --until, --follow, --json.
    Events(events_cli::EventsArgs),
    /// Rebuild every view from position 0 (or, with --as-of and --out,
    /// build a copy of the log as of an instant, with its views).
    Replay(ReplayArgs),
    /// Users of the built-in identity: add, passwd, del, list, key add.
    #[command(subcommand)]
    User(identity_cli::UserCmd),
    /// Projects of the built-in identity: add, list.
    #[command(subcommand)]
    Project(identity_cli::ProjectCmd),
    /// Role assignments: grant.
    #[command(subcommand)]
    Role(identity_cli::RoleCmd),
    /// Issue 11's table in one run: starts this binary as a server on a
    /// temporary data dir and measures every row against its target.
    Bench(bench::BenchArgs),
    /// Run an executor as its own process for one backend, talking to the
    /// server's internal API (needs `serve --executor-key-file`).
    Executor(executor_cli::ExecutorArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The instant: a position (the log up to it) or an RFC 3339 time
    /// (every event recorded by then). Needs --out; the data dir is only
    /// read.
    #[arg(long, requires = "out")]
    as_of: Option<eventstore::asof::AsOf>,
    /// Where the copy goes (DIR/blockledger.db, a new database); serve it
    /// with `serve --read-only --data-dir DIR`.
    #[arg(long, requires = "as_of")]
    out: Option<PathBuf>,
}

/// Why blockledger would not start: each has its own exit code, so a
/// supervisor can tell a condition to fix from one to retry (README.md).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("data dir {0} is not writable: {1}")]
    NotWritable(PathBuf, String),
    #[error("no space left in data dir {0}: {1}")]
    DiskFull(PathBuf, String),
    #[error("event log {0} was written by a newer blockledger: {1}")]
    FutureFormat(PathBuf, String),
    #[error("event log {0} is damaged (restore it from a backup): {1}")]
    Corrupt(PathBuf, String),
    #[error("the qcow2 backend needs qemu-img, which cannot be run: {0} (install qemu-utils, or serve --backend raw)")]
    NoQemuImg(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, String),
    #[error("--auth noauth trusts whatever a caller claims to be, so it listens only on a loopback address, not {0} (use --listen 127.0.0.1:PORT, or the default --auth keystone)")]
    NoauthExposed(SocketAddr),
}

impl Refusal {
    fn exit_code(&self) -> u8 {
        match self {
            Refusal::NotWritable(..) => 3,
            Refusal::DiskFull(..) => 4,
            Refusal::FutureFormat(..) => 5,
            Refusal::Corrupt(..) => 6,
            Refusal::NoQemuImg(..) => 7,
            Refusal::Listen(..) => 8,
            Refusal::NoauthExposed(..) => 9,
        }
    }
}

/// The data dir exists and takes a small durable write: a read-only or
/// full disk is named before anything else starts.
fn probe_data_dir(data_dir: &Path) -> Result<(), Refusal> {
    use std::io::Write;
    let refuse = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            Refusal::DiskFull(data_dir.to_path_buf(), e.to_string())
        }
        _ => Refusal::NotWritable(data_dir.to_path_buf(), e.to_string()),
    };
    std::fs::create_dir_all(data_dir).map_err(refuse)?;
    let probe = data_dir.join(".blockledger-probe");
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(refuse)
}

pub(crate) fn open_store(data_dir: &Path) -> Result<EventStore> {
    open_store_with(data_dir, EventStore::open)
}

type Opener = fn(
    &Path,
    Vec<Arc<dyn eventstore::InlineProjection>>,
) -> Result<EventStore, eventstore::StoreError>;

fn open_store_with(data_dir: &Path, open: Opener) -> Result<EventStore> {
    probe_data_dir(data_dir)?;
    let db = data_dir.join("blockledger.db");
    open(&db, projections::all()).map_err(|e| {
        use eventstore::StoreError as E;
        let dir = data_dir.to_path_buf();
        match e {
            E::FutureFormat { .. } => Refusal::FutureFormat(db, e.to_string()).into(),
            E::Corrupt(why) => Refusal::Corrupt(db, why).into(),
            E::DiskFull(why) => Refusal::DiskFull(dir, why).into(),
            E::NotWritable(why) => Refusal::NotWritable(dir, why).into(),
            e => anyhow::Error::new(e).context(format!("cannot open event store {}", db.display())),
        }
    })
}

/// The qcow2 backend runs qemu-img for every volume; without it every
/// create would fail later, one by one.
fn check_qemu_img() -> Result<(), Refusal> {
    match std::process::Command::new("qemu-img")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Refusal::NoQemuImg(format!(
            "qemu-img --version exited with {s}"
        ))),
        Err(e) => Err(Refusal::NoQemuImg(e.to_string())),
    }
}

/// Raises the soft open-file limit to the hard one: every client
/// connection is a descriptor, and the default soft limit (often 1024) is
/// far below what the hard limit allows. Returns the soft limit in force.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    tracing::info!(before, now = lim.rlim_cur, "open-file limit");
    lim.rlim_cur
}

fn main() -> ExitCode {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The filter sits behind a reload handle so Cinder's `set-log`
    // (microversion 3.32, api::log_levels) can change it while serving.
    let initial = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&initial)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    api::log_levels::install(
        &initial,
        Box::new(move |text: &str| {
            let f = tracing_subscriber::EnvFilter::try_new(text).map_err(|e| e.to_string())?;
            handle.reload(f).map_err(|e| e.to_string())
        }),
    );
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the cause chain joined with ": ".
            eprintln!("blockledger: {e:#}");
            let code = e.downcast_ref::<Refusal>().map_or(1, Refusal::exit_code);
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => serve(cli.serve),
        Some(Cmd::Serve(args)) => serve(args),
        Some(Cmd::Verify(args)) => match &args.digest {
            Some(d) => events_cli::verify_digest(&args.data.data_dir, d),
            None => verify(&args.data.data_dir),
        },
        Some(Cmd::Events(args)) => events_cli::events(args),
        Some(Cmd::Bench(args)) => bench::run(args),
        Some(Cmd::Executor(args)) => executor_cli::run(args),
        Some(Cmd::User(cmd)) => identity_cli::user(cmd),
        Some(Cmd::Project(cmd)) => identity_cli::project(cmd),
        Some(Cmd::Role(cmd)) => identity_cli::role(cmd),
        Some(Cmd::Replay(ReplayArgs {
            data,
            as_of: Some(as_of),
            out: Some(out),
        })) => point_in_time::replay_as_of(&data.data_dir, as_of, &out),
        Some(Cmd::Replay(ReplayArgs { data: args, .. })) => {
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
    // The whole chain is checked below; a broken head is reported there,
    // with its position, rather than refused at open.
    let store = open_store_with(data_dir, EventStore::open_for_audit)?;
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

/// The identity mode `serve` runs in; noauth trusts what a caller claims,
/// so it is refused (exit 9) on a listen address that is not loopback.
pub(crate) fn auth_mode(args: &ServeArgs) -> Result<api::identity::AuthMode, Refusal> {
    let mode = match args.auth.auth.as_str() {
        "noauth" => api::identity::AuthMode::Noauth,
        _ => api::identity::AuthMode::Keystone,
    };
    if mode == api::identity::AuthMode::Noauth && !args.listen.ip().is_loopback() {
        return Err(Refusal::NoauthExposed(args.listen));
    }
    Ok(mode)
}

fn serve(args: ServeArgs) -> Result<()> {
    if args.read_only {
        return point_in_time::serve_read_only(args);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served: Result<()> = rt.block_on(async move {
        // Every check that can refuse to start runs before anything
        // starts: a refusal never leaves a half-started server.
        let mode = auth_mode(&args)?;
        let executor_key = args.internal.key()?;
        let nofile = raise_nofile_limit();
        storages::check_distinct(&args.storages)?;
        if args.backend == "qcow2"
            || args
                .storages
                .iter()
                .any(|s| s.spec.kind == executor::backend::StorageKind::Qcow2)
        {
            check_qemu_img()?;
        }
        let store = open_store(&args.data.data_dir)?;
        let identity = Arc::new(api::identity::Identity::new(
            mode,
            Duration::from_secs(args.auth.token_lifetime_secs),
        ));
        // Absolute, so connection info names a path any consumer can open.
        let data_dir = std::fs::canonicalize(&args.data.data_dir)?;
        let backend = executor::open_backend(&args.backend, &data_dir)?;
        let backend: Arc<dyn executor::StorageBackend> = Arc::from(backend);
        // The backends this process serves: the seeds on the data dir's
        // storage, then each `--storage` on its own.
        let mut served = storages::seeds(&args.backend, &backend);
        for s in &args.storages {
            let dir = storages::storage_dir(&data_dir, &s.name);
            std::fs::create_dir_all(&dir)?;
            let storage = executor::backend::open_storage(&s.spec, &dir)
                .map_err(|e| anyhow::anyhow!("--storage {}: {e}", s.name))?;
            served.push(storages::Served {
                name: s.name.clone(),
                kind: s.spec.kind.as_str().to_string(),
                storage,
            });
        }
        let images = Arc::new(executor::images::ImageStore::open(&data_dir)?);
        images.cleanup_temps()?;
        // Bound before the executor starts, so a taken address refuses
        // before any disk work begins.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Refusal::Listen(args.listen, e.to_string()))?;
        // Identities once nothing can refuse the start any more: a refused
        // start creates no admin (and prints only its one line).
        {
            let app = api::app::App {
                store: store.clone(),
                catalog: Arc::new(domain::Catalog::default()),
            };
            api::app::identity::init(&app).await?;
            // Before the first request: the scheduler places volumes only
            // on registered backends, and get_pools shows their capacity.
            storages::register_all(&app, &served).await?;
            storages::report_all(&app, &served).await?;
            if mode == api::identity::AuthMode::Keystone {
                if let Some(f) = &args.auth.identity_file {
                    identity_cli::apply_identity_file(&app, f).await?;
                }
                identity_cli::bootstrap_admin(&app, &args.data.data_dir).await?;
            }
        }
        let mut config = executor::ExecutorConfig::default();
        if let Some(n) = args.workers {
            config.workers = n;
        }
        // The default executor serves the seed backends on the data dir's
        // storage (its checkpoint keeps its old name, so an existing data
        // dir resumes where it was); each `--storage` has an executor of
        // its own, serving that backend only, with its own checkpoint.
        let mut execs = vec![executor::Executor::with_config(
            store.clone(),
            backend.clone(),
            images.clone(),
            executor::ExecutorConfig {
                serves: Some(storages::names(&served[..storages::SEEDS])),
                ..config.clone()
            },
        )];
        for s in &served[storages::SEEDS..] {
            execs.push(executor::Executor::with_config(
                store.clone(),
                s.storage.clone(),
                images.clone(),
                executor::ExecutorConfig {
                    serves: Some(storages::names(std::slice::from_ref(s))),
                    checkpoint: storages::checkpoint(&s.name),
                    // The image store is shared: the default executor
                    // removes deleted images' files, once.
                    deletes_images: false,
                    ..config.clone()
                },
            ));
        }
        let progress: Vec<_> = execs.iter().map(|e| e.progress()).collect();
        let workers = config.workers;
        let (stop_tx, stop_rx) = watch::channel(false);
        // The audit index follows the log in the background (issue 14).
        tokio::spawn(api::app::events::index_in_background(
            api::app::App {
                store: store.clone(),
                catalog: Arc::new(domain::Catalog::default()),
            },
            stop_rx.clone(),
        ));
        tokio::spawn(storages::report_periodically(
            api::app::App {
                store: store.clone(),
                catalog: Arc::new(domain::Catalog::default()),
            },
            served.clone(),
            stop_rx.clone(),
        ));
        let exec_tasks: Vec<_> = execs
            .into_iter()
            .map(|e| tokio::spawn(e.run(stop_rx.clone())))
            .collect();
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

        // A volume's work runs on one executor: the first that knows it.
        let progress: api::Progress = Arc::new(move |id| {
            progress
                .iter()
                .find_map(|p| p.lock().ok().and_then(|m| m.get(&id).copied()))
        });
        let (state, limits) = serving(
            &args,
            ServedBy {
                store: store.clone(),
                catalog: Arc::new(domain::Catalog {
                    max_over_subscription_ratio: args.max_over_subscription_ratio,
                    ..domain::Catalog::default()
                }),
                backend,
                images,
                progress,
                identity,
                nofile,
            },
        );
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find a port-0 listener.
        println!("listening on http://{addr}");
        tracing::info!(%addr, data_dir = %args.data.data_dir.display(), backend = %args.backend, workers, max_connections = limits.max_connections, "serving");
        api::server::serve(
            listener,
            api::router_with(state, executor_key),
            limits,
            shutdown_signal(),
        ).await?;
        tracing::info!("shutting down");
        // (Already sent if a signal ended the serve.) Running steps get the
        // executor's drain time, then are abandoned and their helpers
        // killed; the restart redoes them from the checkpoint.
        let _ = stop_tx.send(true);
        for t in exec_tasks {
            let _ = t.await;
        }
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

/// What one `serve` (live or read-only) is made of.
pub(crate) struct ServedBy {
    pub store: EventStore,
    pub catalog: Arc<domain::Catalog>,
    pub backend: Arc<dyn executor::StorageBackend>,
    pub images: Arc<executor::images::ImageStore>,
    pub progress: api::Progress,
    pub identity: Arc<api::identity::Identity>,
    pub nofile: u64,
}

/// The handlers' state and the connection limits of a `serve`, from its
/// flags: one place for the live server and the read-only one.
pub(crate) fn serving(args: &ServeArgs, by: ServedBy) -> (api::AppState, api::server::Limits) {
    let backend = by.backend;
    let state = api::AppState::from(api::Shared {
        store: by.store,
        catalog: by.catalog,
        connector: Arc::new({
            let backend = backend.clone();
            move |id| api::Connection {
                device_path: backend.active_path(id).to_string_lossy().into_owned(),
                format: backend.format(),
            }
        }),
        images: Arc::new(Images(by.images)),
        progress: by.progress,
        snapshot_file: Arc::new(move |id| backend.snapshot_file(id).to_string_lossy().into_owned()),
        sync_deadline: Duration::from_millis(args.sync_deadline_ms),
        identity: by.identity,
    });
    let limits = api::server::Limits {
        max_connections: args
            .conn
            .max_connections
            .unwrap_or_else(|| api::server::Limits::connections_for(by.nofile))
            .max(1),
        header_timeout: Duration::from_millis(args.conn.header_timeout_ms),
        body_timeout: Duration::from_millis(args.conn.body_timeout_ms),
        max_body_bytes: args.conn.max_body_bytes,
        drain_timeout: Duration::from_millis(args.conn.drain_timeout_ms),
    };
    (state, limits)
}

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
