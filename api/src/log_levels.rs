//! The process's log levels, changeable while it runs (Cinder 3.32's
//! `os-services/set-log` and `get-log`). The binary installs a hook that
//! applies a filter (a tracing `EnvFilter` behind a reload handle); this
//! module keeps the directives as (target prefix → level) and rebuilds
//! the filter text from them on each change. Without a hook (tests of the
//! library, `serve` embedded elsewhere) a change is refused, not faked.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Applies a filter such as `info,executor=debug`.
pub type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct Levels {
    apply: Apply,
    /// "" is the default level; other keys are target prefixes.
    directives: BTreeMap<String, String>,
}

static LEVELS: OnceLock<Mutex<Levels>> = OnceLock::new();

/// Installs the hook, with the filter the process started with.
pub fn install(initial: &str, apply: Apply) {
    let mut directives = BTreeMap::new();
    for part in initial.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((t, l)) => directives.insert(t.to_string(), l.to_lowercase()),
            None => directives.insert(String::new(), part.to_lowercase()),
        };
    }
    directives
        .entry(String::new())
        .or_insert_with(|| "info".into());
    let _ = LEVELS.set(Mutex::new(Levels { apply, directives }));
}

/// Cinder's level names (`WARNING`) from tracing's (`warn`).
fn cinder_name(level: &str) -> String {
    match level {
        "warn" => "WARNING".into(),
        "trace" => "DEBUG".into(),
        other => other.to_uppercase(),
    }
}

/// Cinder's logger names use dots; tracing's targets `::`.
fn target(prefix: &str) -> String {
    prefix.replace('.', "::")
}

/// Sets `level` (Cinder's `INFO`, `WARNING`, `ERROR`, `DEBUG`) for the
/// targets under `prefix` ("" every target).
pub fn set(prefix: &str, level: &str) -> Result<(), String> {
    let level = match level.to_uppercase().as_str() {
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARNING" => "warn",
        "ERROR" => "error",
        _ => return Err(format!("Invalid log level {level}")),
    };
    let cell = LEVELS
        .get()
        .ok_or_else(|| "Log levels cannot be changed in this process.".to_string())?;
    let mut l = cell
        .lock()
        .map_err(|_| "log levels unavailable".to_string())?;
    let prefix = target(prefix);
    if prefix.is_empty() {
        // Cinder sets the root logger and every logger under it.
        l.directives.clear();
    } else {
        l.directives.retain(|t, _| !t.starts_with(&prefix));
    }
    l.directives.insert(prefix, level.to_string());
    let text = l
        .directives
        .iter()
        .map(|(t, v)| {
            if t.is_empty() {
                v.clone()
            } else {
                format!("{t}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    (l.apply)(&text)
}

/// The levels of the targets under `prefix`, Cinder's names; None when
/// no hook is installed.
pub fn get(prefix: &str) -> Option<BTreeMap<String, String>> {
    let l = LEVELS.get()?.lock().ok()?;
    let prefix = target(prefix);
    Some(
        l.directives
            .iter()
            .filter(|(t, _)| t.starts_with(&prefix))
            .map(|(t, v)| {
                let name = if t.is_empty() {
                    "root".to_string()
                } else {
                    t.replace("::", ".")
                };
                (name, cinder_name(v))
            })
            .collect(),
    )
}
