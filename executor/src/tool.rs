//! Helper processes (`qemu-img`) that never outlive the server and never
//! run forever (issue 15).
//!
//! Every child the executor starts goes through [`Tool`]:
//!
//! - **It dies with the server.** In the forked child, before `exec`,
//!   `prctl(PR_SET_PDEATHSIG, SIGKILL)` asks the kernel to SIGKILL it when
//!   its parent goes away, so a SIGKILLed server leaves no `qemu-img`
//!   writing into the data dir while the restarted executor redoes the same
//!   work. The kernel's "parent" here is the *thread* that forked, not the
//!   process: the signal fires when that thread exits. Every function here
//!   spawns the child and then blocks the same thread until the child is
//!   reaped (the executor calls them in `spawn_blocking`), so the spawning
//!   thread outlives the child by construction; a blocking-pool thread that
//!   is retired after it went idle has no child any more. (Spawning from a
//!   dedicated long-lived thread would also work, but would add a hop and a
//!   channel per call for no gain.) If the server died between `fork` and
//!   `prctl`, the child sees a new parent (`getppid` changed) and refuses to
//!   start.
//! - **It runs in its own process group** (`setpgid(0, 0)`): a Ctrl-C at a
//!   terminal goes to the server, which decides what to stop, and the
//!   deadline kill takes the whole group.
//! - **It has a deadline**, after which its group is SIGKILLed and the call
//!   fails with [`ToolError::TimedOut`]: the step ends with that reason
//!   instead of holding a worker forever. Two classes: `Short` for header
//!   work (`create`, `info`, `resize`, `check`), `Long` for data copies
//!   (`convert`). Defaults below; `BLOCKLEDGER_TOOL_DEADLINE_SHORT_SECS` and
//!   `BLOCKLEDGER_TOOL_DEADLINE_LONG_SECS` override them at startup, and
//!   [`set_deadlines`] at run time (tests).
//! - **It can be killed at shutdown.** Running children are registered, and
//!   [`kill_all`] ends them all (the executor abandons its steps when a
//!   graceful stop runs out of time; see `Executor::run`).
//!
//! A pid is signalled only while its process is known not to be reaped
//! (`waitid(WNOWAIT)` first, then the registry entry goes, then the reap),
//! so a recycled pid is never hit.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Default deadline of header work: seconds on an idle machine are
/// milliseconds of work; a minute means the tool is stuck (a hung NFS
/// mount, a lock), not slow.
pub const DEFAULT_SHORT: Duration = Duration::from_secs(60);
/// Default deadline of a data copy: a 10 TiB full clone at 500 MB/s takes
/// about 6 h. Generous on purpose: killing a copy that was making progress
/// only makes it start over.
pub const DEFAULT_LONG: Duration = Duration::from_secs(12 * 3600);

/// Which deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Header work: create, info, resize, check.
    Short,
    /// Data copies: convert.
    Long,
}

impl Class {
    /// `qemu-img`'s subcommand decides: only `convert` copies data.
    pub fn of_qemu_img(args: &[impl AsRef<OsStr>]) -> Class {
        match args.first().map(|a| a.as_ref()) {
            Some(a) if a == "convert" => Class::Long,
            _ => Class::Short,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} exited with {status}: {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{program} killed after its deadline of {}s", deadline.as_secs_f64())]
    TimedOut { program: String, deadline: Duration },
    #[error("{program} killed: the server is shutting down")]
    Abandoned { program: String },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
}

static SHORT_MS: AtomicU64 = AtomicU64::new(0);
static LONG_MS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn env_secs(name: &str) -> Option<Duration> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        _ => {
            tracing::warn!(%name, value = %v, "ignored: not a positive number of seconds");
            None
        }
    }
}

/// The deadlines in force: set by [`set_deadlines`], else the environment,
/// else the defaults.
pub fn deadlines() -> (Duration, Duration) {
    static FROM_ENV: OnceLock<(Duration, Duration)> = OnceLock::new();
    let env = *FROM_ENV.get_or_init(|| {
        (
            env_secs("BLOCKLEDGER_TOOL_DEADLINE_SHORT_SECS").unwrap_or(DEFAULT_SHORT),
            env_secs("BLOCKLEDGER_TOOL_DEADLINE_LONG_SECS").unwrap_or(DEFAULT_LONG),
        )
    });
    let get = |a: &AtomicU64, d: Duration| match a.load(Ordering::Relaxed) {
        0 => d,
        ms => Duration::from_millis(ms),
    };
    (get(&SHORT_MS, env.0), get(&LONG_MS, env.1))
}

/// Overrides both deadlines for every later call in this process.
pub fn set_deadlines(short: Duration, long: Duration) {
    SHORT_MS.store((short.as_millis() as u64).max(1), Ordering::Relaxed);
    LONG_MS.store((long.as_millis() as u64).max(1), Ordering::Relaxed);
}

fn deadline_of(class: Class) -> Duration {
    let (short, long) = deadlines();
    match class {
        Class::Short => short,
        Class::Long => long,
    }
}

/// Why a running child was (or is about to be) killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    No,
    Deadline,
    Shutdown,
}

/// One running child as the registry sees it: signalled only while
/// `reaped` is false, under its lock.
struct Running {
    pid: i32,
    state: Mutex<(bool, Killed)>,
}

impl Running {
    /// SIGKILLs the child's process group unless it is reaped already.
    fn kill(&self, why: Killed) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 {
            return;
        }
        if s.1 == Killed::No {
            s.1 = why;
        }
        // SAFETY: plain syscalls; the negative pid names the group the
        // child made with setpgid(0, 0), and it is not reaped (checked
        // under the lock the reaper takes), so the id is still ours.
        unsafe {
            libc::kill(-self.pid, libc::SIGKILL);
            // In case the child died before its setpgid took effect.
            libc::kill(self.pid, libc::SIGKILL);
        }
    }
}

fn registry() -> &'static Mutex<HashMap<i32, Arc<Running>>> {
    static R: OnceLock<Mutex<HashMap<i32, Arc<Running>>>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// Kills every helper running now (graceful stop out of time). Their calls
/// fail with [`ToolError::Abandoned`].
pub fn kill_all() -> usize {
    let all: Vec<Arc<Running>> = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for r in &all {
        r.kill(Killed::Shutdown);
    }
    all.len()
}

/// Helpers running now.
pub fn running() -> usize {
    registry().lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// A helper command: program, arguments, deadline class, plus whatever
/// extra setup the caller adds to [`Tool::command`] (resource limits).
pub struct Tool {
    cmd: Command,
    program: String,
    class: Class,
    deadline: Option<Duration>,
}

impl Tool {
    pub fn new<S: AsRef<OsStr>>(program: &str, args: &[S], class: Class) -> Tool {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Tool {
            cmd,
            program: program.to_string(),
            class,
            deadline: None,
        }
    }

    /// This call's deadline instead of its class's.
    pub fn with_deadline(mut self, deadline: Duration) -> Tool {
        self.deadline = Some(deadline);
        self
    }

    /// `qemu-img <args>`, its class from its subcommand.
    pub fn qemu_img<S: AsRef<OsStr>>(args: &[S]) -> Tool {
        Tool::new("qemu-img", args, Class::of_qemu_img(args))
    }

    /// For extra pre-exec setup (e.g. rlimits); runs after ours.
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Runs to completion; its stdout, or why it failed.
    pub fn output(self) -> Result<Vec<u8>, ToolError> {
        let mut out = Vec::new();
        self.run(&mut |chunk| out.extend_from_slice(chunk))?;
        Ok(out)
    }

    /// Runs to completion, handing stdout to `on_stdout` as it arrives
    /// (progress lines); stderr is kept for the error.
    pub fn run(mut self, on_stdout: &mut dyn FnMut(&[u8])) -> Result<(), ToolError> {
        let deadline = self.deadline.unwrap_or_else(|| deadline_of(self.class));
        let program = self.program.clone();
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the hook runs in the forked child before exec and only
        // makes async-signal-safe syscalls (setpgid, prctl, getppid); it
        // allocates nothing.
        unsafe {
            self.cmd.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The server died between fork and prctl: nobody would kill us.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ToolError::Spawn {
                program: program.clone(),
                source,
            })?;
        let running = Arc::new(Running {
            pid: child.id() as i32,
            state: Mutex::new((false, Killed::No)),
        });
        registry()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(running.pid, running.clone());
        // Reaps (and unregisters) the child however this function ends,
        // a panic in `on_stdout` included, so nothing is left running.
        let mut guard = Reaper {
            child: Some(&mut child),
            running: running.clone(),
        };
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let watchdog = {
            let running = running.clone();
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(deadline) {
                    running.kill(Killed::Deadline);
                }
            })
        };
        let mut stderr = guard.child().stderr.take();
        let errs = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(e) = stderr.as_mut() {
                // At most 64 KiB: a tool that floods stderr cannot eat
                // memory; the rest is drained so it never blocks.
                let _ = e.by_ref().take(64 << 10).read_to_end(&mut s);
                let _ = io::copy(e, &mut io::sink());
            }
            s
        });
        if let Some(mut stdout) = guard.child().stdout.take() {
            let mut buf = [0u8; 8192];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => on_stdout(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        let status = guard.wait();
        let _ = done_tx.send(());
        let _ = watchdog.join();
        let stderr = errs.join().unwrap_or_default();
        let (status, killed) = status.map_err(|source| ToolError::Wait {
            program: program.clone(),
            source,
        })?;
        match killed {
            Killed::Deadline => return Err(ToolError::TimedOut { program, deadline }),
            Killed::Shutdown => return Err(ToolError::Abandoned { program }),
            Killed::No => {}
        }
        if !status.success() {
            return Err(ToolError::Failed {
                program,
                status: status.to_string(),
                stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

/// Waits for the child without reaping it, marks it reaped under its lock
/// (so no kill can hit a recycled pid), unregisters it, then reaps it.
struct Reaper<'a> {
    child: Option<&'a mut Child>,
    running: Arc<Running>,
}

impl Reaper<'_> {
    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child until waited")
    }

    fn wait(&mut self) -> io::Result<(ExitStatus, Killed)> {
        let child = self.child.take().expect("waited once");
        let started = Instant::now();
        loop {
            // SAFETY: waitid on our own child's pid with a zeroed siginfo.
            let r = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    self.running.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::debug!(error = %e, waited = ?started.elapsed(), "waitid");
                break;
            }
        }
        let killed = {
            let mut s = self.running.state.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = true;
            s.1
        };
        registry()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.running.pid);
        child.wait().map(|s| (s, killed))
    }
}

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Unwinding before the wait: end the child, then reap it.
            self.running.kill(Killed::Shutdown);
            let _ = self.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_exit_status() {
        let out = Tool::new("sh", &["-c", "echo hi"], Class::Short)
            .output()
            .unwrap();
        assert_eq!(out, b"hi\n");
        let e = Tool::new("sh", &["-c", "echo bad >&2; exit 3"], Class::Short)
            .output()
            .unwrap_err();
        match e {
            ToolError::Failed { stderr, status, .. } => {
                assert_eq!(stderr, "bad");
                assert!(status.contains('3'), "{status}");
            }
            e => panic!("{e}"),
        }
        assert!(matches!(
            Tool::new("/nonexistent/tool", &["x"], Class::Short).output(),
            Err(ToolError::Spawn { .. })
        ));
    }

    #[test]
    fn the_child_has_its_own_process_group() {
        let out = Tool::new(
            "sh",
            &["-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"],
            Class::Short,
        )
        .output()
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut it = text.split_whitespace();
        let (pid, pgid) = (it.next().unwrap(), it.next().unwrap());
        assert_eq!(pid, pgid, "{text}");
    }

    #[test]
    fn a_helper_past_its_deadline_is_killed_with_its_group() {
        let started = Instant::now();
        // The background sleep holds stdout open: if only `sh` were killed,
        // reading stdout would wait the full 30 s.
        let e = Tool::new("sh", &["-c", "sleep 30 & sleep 30"], Class::Short)
            .with_deadline(Duration::from_millis(200))
            .output()
            .unwrap_err();
        assert!(matches!(e, ToolError::TimedOut { .. }), "{e}");
        assert!(e.to_string().contains("deadline"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn qemu_img_classes() {
        assert_eq!(Class::of_qemu_img(&["convert", "a"]), Class::Long);
        assert_eq!(Class::of_qemu_img(&["info", "a"]), Class::Short);
        assert_eq!(Class::of_qemu_img(&[] as &[&str]), Class::Short);
    }
}
