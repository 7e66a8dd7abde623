//! The backends a `serve` process serves itself (issue 16): the seed
//! backends SSD, SAS and SATA on the data dir's own storage (`--backend`),
//! and one backend per `--storage NAME=SPEC`, each with an embedded
//! executor of its own. Every one is registered in the log at start
//! (recorded only when new or changed) and reports its capacity at start
//! and periodically (recorded only when it moved enough): the scheduler,
//! get_pools and an attach read them from the backends view.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use domain::backend::{Capacity, Registration};
use executor::backend::StorageSpec;
use executor::StorageBackend;
use tokio::sync::watch;

/// How often served backends measure their storage (a report is recorded
/// only when it moved enough, so a short period costs no log growth).
/// `BLOCKLEDGER_CAPACITY_SECS` overrides it.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// One `--storage NAME=SPEC`.
#[derive(Debug, Clone)]
pub(crate) struct NamedStorage {
    pub name: String,
    pub spec: StorageSpec,
}

/// Parses `NAME=SPEC` (clap's value parser): a backend name and a storage
/// spec, both checked as the flag is read.
pub(crate) fn parse_storage(s: &str) -> Result<NamedStorage, String> {
    let (name, spec) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=SPEC (e.g. fast=raw)"))?;
    domain::backend::validate_name(name).map_err(|e| e.to_string())?;
    if domain::catalog::SEED_TYPES.iter().any(|(n, _)| *n == name) {
        return Err(format!(
            "{name} is a seed backend, served on the data dir's storage (--backend)"
        ));
    }
    let spec: StorageSpec = spec.parse().map_err(|e| format!("{e}"))?;
    Ok(NamedStorage {
        name: name.to_string(),
        spec,
    })
}

/// Refuses two `--storage` of one name.
pub(crate) fn check_distinct(storages: &[NamedStorage]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for s in storages {
        if !seen.insert(s.name.as_str()) {
            bail!("--storage {} is given twice", s.name);
        }
    }
    Ok(())
}

/// Where the storage of `--storage NAME=…` keeps its files (a file
/// storage's `volumes/` and `snapshots/`): its own directory under the
/// data dir, so two storages never share a volume file name.
pub(crate) fn storage_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("storages").join(name)
}

/// A backend this process serves and the storage under it.
#[derive(Clone)]
pub(crate) struct Served {
    pub name: String,
    pub kind: String,
    pub storage: Arc<dyn StorageBackend>,
}

impl Served {
    fn registration(&self) -> Registration {
        Registration {
            name: self.name.clone(),
            kind: self.kind.clone(),
            storage_protocol: self.storage.storage_protocol().to_string(),
            connection: self.storage.connection_template(),
        }
    }
}

/// How many of `served` are the seed backends (they come first).
pub(crate) const SEEDS: usize = domain::catalog::SEED_TYPES.len();

/// The names of `served`, as an executor's `serves`.
pub(crate) fn names(served: &[Served]) -> std::collections::BTreeSet<String> {
    served.iter().map(|s| s.name.clone()).collect()
}

/// The checkpoint of the embedded executor of `--storage NAME=…`.
pub(crate) fn checkpoint(name: &str) -> String {
    format!("executor-storage-{name}")
}

/// The seed backends on the data dir's storage (`--backend KIND`).
pub(crate) fn seeds(kind: &str, storage: &Arc<dyn StorageBackend>) -> Vec<Served> {
    domain::catalog::SEED_TYPES
        .iter()
        .map(|(name, _)| Served {
            name: name.to_string(),
            kind: kind.to_string(),
            storage: storage.clone(),
        })
        .collect()
}

/// Registers every served backend (appended only when new or changed).
pub(crate) async fn register_all(app: &api::app::App, served: &[Served]) -> Result<()> {
    for s in served {
        let caller = api::app::backends::service_caller(&s.name);
        let meta = api::app::backends::service_meta("serve: register backend");
        let appended = api::app::backends::register(app, &caller, &meta, s.registration())
            .await
            .with_context(|| format!("registering backend {}", s.name))?;
        if appended {
            tracing::info!(backend = %s.name, kind = %s.kind, "backend registered");
        }
    }
    Ok(())
}

/// Measures every served backend's storage and reports it. A storage
/// that cannot be measured is logged and skipped: the scheduler keeps its
/// last report.
pub(crate) async fn report_all(app: &api::app::App, served: &[Served]) -> Result<()> {
    for s in served {
        let storage = s.storage.clone();
        // statvfs, or an `rbd` CLI call for Ceph: off the async threads.
        let measured = tokio::task::spawn_blocking(move || storage.capacity()).await?;
        let (total_bytes, free_bytes) = match measured {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(backend = %s.name, error = %e, "capacity not measured");
                continue;
            }
        };
        let caller = api::app::backends::service_caller(&s.name);
        let meta = api::app::backends::service_meta("serve: report capacity");
        api::app::backends::report_capacity(
            app,
            &caller,
            &meta,
            s.name.clone(),
            Capacity {
                total_bytes,
                free_bytes: free_bytes.min(total_bytes),
            },
        )
        .await
        .with_context(|| format!("reporting the capacity of backend {}", s.name))?;
    }
    Ok(())
}

/// Reports capacity every `REPORT_EVERY` until `stop` is set.
pub(crate) async fn report_periodically(
    app: api::app::App,
    served: Vec<Served>,
    mut stop: watch::Receiver<bool>,
) {
    let every = std::env::var("BLOCKLEDGER_CAPACITY_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(REPORT_EVERY);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = report_all(&app, &served).await {
            tracing::warn!(error = %e, "capacity report failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_flags_are_checked_as_they_are_read() {
        let s = parse_storage("fast=raw").unwrap();
        assert_eq!(s.name, "fast");
        assert_eq!(s.spec.to_string(), "raw");
        assert!(parse_storage("fast").is_err());
        assert!(parse_storage("a b=raw").is_err());
        assert!(parse_storage("SSD=raw").is_err());
        assert!(parse_storage("x=nfs").is_err());
        let twice = [
            parse_storage("x=raw").unwrap(),
            parse_storage("x=qcow2").unwrap(),
        ];
        assert!(check_distinct(&twice).is_err());
        assert!(check_distinct(&twice[..1]).is_ok());
    }
}
