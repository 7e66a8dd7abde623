//! Point in time (issue 14): `replay --as-of T --out DIR` makes a copy of
//! the log as of an instant with its views; `serve --read-only` serves
//! such a copy through every dialect's read routes, no executor running,
//! every write refused (`api::read_only`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use eventstore::asof::{self, AsOf, AsOfError};

use crate::{open_store, raise_nofile_limit, shutdown_signal, Refusal, ServeArgs};

/// Tables kept beside the log that no event rebuilds and a copy needs:
/// the password hashes and API key secrets of the built-in identity
/// (`api::app::identity`), so the users of the instant can log in to the
/// copy. Taken as they are now (a password changed since works with its
/// new value); tokens are not copied: a copy issues its own.
const BESIDE: &[&str] = &["identity_passwords", "identity_key_secrets"];

pub(crate) fn replay_as_of(data_dir: &Path, as_of: AsOf, out: &Path) -> Result<()> {
    let src = data_dir.join("blockledger.db");
    if !src.exists() {
        bail!("no event log at {}", src.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if std::fs::canonicalize(data_dir)? == std::fs::canonicalize(out)? {
        bail!("--out must be another directory than the data dir (the copy is a new database)");
    }
    let out_db = out.join("blockledger.db");
    match asof::copy_as_of(&src, as_of, &out_db, projections::all(), BESIDE) {
        Ok(c) => {
            println!(
                "as of position {} (recorded at {}): {} of the log's {} events copied to {}, views built",
                c.position,
                c.recorded_at.as_deref().unwrap_or("-, before the first event"),
                c.position,
                c.source_head,
                out_db.display()
            );
            Ok(())
        }
        Err(e) => {
            // A copy that failed halfway is no copy: remove what it made
            // (never an existing database, which it refused to touch).
            if !matches!(e, AsOfError::Exists(_) | AsOfError::PastTheEnd { .. }) {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = out_db.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
            }
            Err(e.into())
        }
    }
}

/// `serve --read-only`: like `serve` without the executor, the identity
/// bootstrap or `--identity-file` (each would write), its log frozen.
pub(crate) fn serve_read_only(args: ServeArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served: Result<()> = rt.block_on(async move {
        let mode = crate::auth_mode(&args)?;
        let db = args.data.data_dir.join("blockledger.db");
        if !db.exists() {
            bail!(
                "no event log at {} to serve read-only (make one with blockledger replay --as-of T --out DIR)",
                db.display()
            );
        }
        let nofile = raise_nofile_limit();
        let store = open_store(&args.data.data_dir)?;
        let app = api::app::App {
            store: store.clone(),
            catalog: Arc::new(domain::Catalog::default()),
        };
        // The identity's own tables (tokens issued here live there).
        api::app::identity::init(&app).await?;
        let position = asof::freeze(&store).await?;
        let identity = Arc::new(api::identity::Identity::new(
            mode,
            Duration::from_secs(args.auth.token_lifetime_secs),
        ));
        let data_dir = std::fs::canonicalize(&args.data.data_dir)?;
        // Only to name paths in the views that report them; no disk work.
        let backend: Arc<dyn executor::StorageBackend> =
            Arc::from(executor::open_backend(&args.backend, &data_dir)?);
        let images = Arc::new(executor::images::ImageStore::open(&data_dir)?);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Refusal::Listen(args.listen, e.to_string()))?;
        let (state, limits) = crate::serving(
            &args,
            crate::ServedBy {
                store: store.clone(),
                catalog: app.catalog.clone(),
                backend,
                images,
                // No executor: nothing is in progress.
                progress: Arc::new(|_| None),
                identity,
                nofile,
            },
        );
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find a port-0 listener.
        println!("listening on http://{addr}");
        tracing::info!(%addr, data_dir = %args.data.data_dir.display(), position, "serving read-only");
        let router = api::read_only::ReadOnly { position }.apply(api::router(state));
        api::server::serve(listener, router, limits, shutdown_signal()).await?;
        store.close();
        Ok(())
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    served
}
