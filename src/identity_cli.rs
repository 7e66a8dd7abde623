//! `blockledger user|project|role …` (issue 13): identity changes from the
//! command line, as events in the log (by `cli:<login>`), secrets hashed
//! beside it; and the first start's admin, and `serve --identity-file`.
//!
//! The commands open the data dir's log like the server does, so they work
//! with the server stopped or running (SQLite serializes the writers; the
//! server reads identities from the database on every request).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use api::app::identity as uc;
use api::app::{App, AppError, Caller, RequestMeta};
use clap::Subcommand;
use domain::identity::Role;

use crate::DataArgs;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user; its password is read from stdin (`--password-stdin`)
    /// or generated and printed once.
    Add {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        /// Also grant ROLE on this project (name or id).
        #[arg(long)]
        project: Option<String>,
        #[arg(long, default_value = "member", requires = "project")]
        role: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set a user's password (stdin, or generated and printed once).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete a user: its grants and keys go, its tokens stop working.
    Del {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Users and their roles.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// API keys for the small provider's `api_id` + `api_key`.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// A new key for USER on PROJECT; the secret is printed once.
    Add {
        user: String,
        #[arg(long)]
        project: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum ProjectCmd {
    Add {
        name: String,
        /// Keep a given id (default: 32 new hex digits).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum RoleCmd {
    /// Grant ROLE (admin, member, reader) on PROJECT to USER.
    Grant {
        #[arg(long)]
        user: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Who made a change from the command line, for the events' metadata.
fn cli_caller() -> Caller {
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Caller {
        user_id: format!("cli:{login}"),
        project_id: String::new(),
        is_admin: true,
        role: Role::Admin,
    }
}

fn meta(route: &str) -> RequestMeta {
    RequestMeta {
        request_id: format!("req-{}", uuid::Uuid::new_v4()),
        dialect: "cli",
        route: route.to_string(),
        idempotency_key: None,
        remote_addr: None,
    }
}

fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow!("unknown role {s:?} (admin, member or reader)"))
}

fn refusal(e: AppError) -> anyhow::Error {
    match e {
        AppError::Refused(r) => anyhow!("refused: {}", r.error),
        e => anyhow!(e),
    }
}

/// A password from stdin (one line), or a generated one the user is shown.
fn password(from_stdin: bool) -> Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        if pw.is_empty() {
            bail!("empty password on stdin");
        }
        Ok((pw, false))
    } else {
        Ok((api::identity::random_secret()[..24].to_string(), true))
    }
}

fn hash(pw: &str) -> Result<String> {
    api::identity::hash_password(pw).map_err(|e| anyhow!("hashing the password: {e}"))
}

/// Runs `f` against the data dir's log.
fn with_app<T>(data: &DataArgs, f: impl AsyncFnOnce(&App) -> Result<T>) -> Result<T> {
    let store = crate::open_store(&data.data_dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let app = App {
        store: store.clone(),
        catalog: std::sync::Arc::new(domain::Catalog::default()),
    };
    let out = rt.block_on(async {
        uc::init(&app).await.map_err(refusal)?;
        f(&app).await
    });
    store.close();
    out
}

pub fn user(cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Add {
            name,
            password_stdin,
            project,
            role,
            data,
        } => {
            let role = parse_role(&role)?;
            let (pw, generated) = password(password_stdin)?;
            let h = hash(&pw)?;
            with_app(&data, async |app| {
                let c = cli_caller();
                let id = uc::add_user(app, &c, &meta("user add"), name.clone(), h)
                    .await
                    .map_err(refusal)?;
                if let Some(p) = project {
                    uc::grant(app, &c, &meta("role grant"), id.clone(), p, role)
                        .await
                        .map_err(refusal)?;
                }
                println!("user {name} added (id {id})");
                if generated {
                    println!("password: {pw}");
                }
                Ok(())
            })
        }
        UserCmd::Passwd {
            name,
            password_stdin,
            data,
        } => {
            let (pw, generated) = password(password_stdin)?;
            let h = hash(&pw)?;
            with_app(&data, async |app| {
                uc::set_password(app, &cli_caller(), &meta("user passwd"), name.clone(), h)
                    .await
                    .map_err(refusal)?;
                println!("password of {name} set");
                if generated {
                    println!("password: {pw}");
                }
                Ok(())
            })
        }
        UserCmd::Del { name, data } => with_app(&data, async |app| {
            uc::delete_user(app, &cli_caller(), &meta("user del"), name.clone())
                .await
                .map_err(refusal)?;
            println!("user {name} deleted");
            Ok(())
        }),
        UserCmd::List { data } => with_app(&data, async |app| {
            let (users, _, grants) = uc::listing(app).await.map_err(refusal)?;
            for u in users {
                let roles: Vec<String> = grants
                    .iter()
                    .filter(|(n, _, _)| *n == u.name)
                    .map(|(_, p, r)| format!("{r}@{p}"))
                    .collect();
                println!("{}\t{}\t{}", u.name, u.id, roles.join(","));
            }
            Ok(())
        }),
        UserCmd::Key {
            cmd:
                KeyCmd::Add {
                    user,
                    project,
                    data,
                },
        } => {
            let secret = api::identity::random_secret();
            let h = api::identity::sha256_hex(&secret);
            with_app(&data, async |app| {
                let id = uc::add_key(
                    app,
                    &cli_caller(),
                    &meta("user key add"),
                    user.clone(),
                    project,
                    h,
                )
                .await
                .map_err(refusal)?;
                println!("api_id: {id}");
                println!("api_key: {secret}");
                Ok(())
            })
        }
    }
}

pub fn project(cmd: ProjectCmd) -> Result<()> {
    match cmd {
        ProjectCmd::Add { name, id, data } => with_app(&data, async |app| {
            let id = uc::add_project(app, &cli_caller(), &meta("project add"), name.clone(), id)
                .await
                .map_err(refusal)?;
            println!("project {name} added (id {id})");
            Ok(())
        }),
        ProjectCmd::List { data } => with_app(&data, async |app| {
            let (_, projects, _) = uc::listing(app).await.map_err(refusal)?;
            for p in projects {
                println!("{}\t{}", p.name, p.id);
            }
            Ok(())
        }),
    }
}

pub fn role(cmd: RoleCmd) -> Result<()> {
    match cmd {
        RoleCmd::Grant {
            user,
            project,
            role,
            data,
        } => {
            let r = parse_role(&role)?;
            with_app(&data, async |app| {
                uc::grant(
                    app,
                    &cli_caller(),
                    &meta("role grant"),
                    user.clone(),
                    project.clone(),
                    r,
                )
                .await
                .map_err(refusal)?;
                println!("{} granted on {project} to {user}", r.as_str());
                Ok(())
            })
        }
    }
}

/// The file the first start writes the admin's password to.
pub fn admin_password_file(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-password")
}

/// First start in keystone mode: an `admin` project and user with the
/// admin role and a generated password, written once to a file only the
/// owner may read (never to the log or the console). Nothing if a user
/// `admin` exists.
pub async fn bootstrap_admin(app: &App, data_dir: &Path) -> Result<()> {
    let (users, projects, _) = uc::listing(app).await.map_err(refusal)?;
    if users.iter().any(|u| u.name == "admin") {
        return Ok(());
    }
    let pw = api::identity::random_secret()[..24].to_string();
    let h = hash(&pw)?;
    let file = admin_password_file(data_dir);
    // Written (and synced) before the user exists: a crash in between
    // leaves a file that the next start rewrites, never an admin whose
    // password nobody has.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("writing {}", file.display()))?;
        writeln!(f, "{pw}")?;
        f.sync_all()?;
    }
    let c = cli_caller();
    let c = Caller {
        user_id: "bootstrap".into(),
        ..c
    };
    if !projects.iter().any(|p| p.name == "admin") {
        uc::add_project(app, &c, &meta("bootstrap"), "admin".into(), None)
            .await
            .map_err(refusal)?;
    }
    uc::add_user(app, &c, &meta("bootstrap"), "admin".into(), h)
        .await
        .map_err(refusal)?;
    uc::grant(
        app,
        &c,
        &meta("bootstrap"),
        "admin".into(),
        "admin".into(),
        Role::Admin,
    )
    .await
    .map_err(refusal)?;
    eprintln!(
        "blockledger: first start: user admin (project admin) created; its password is in {} (readable by its owner only)",
        file.display()
    );
    Ok(())
}

/// `serve --identity-file`: projects, users and grants to have, applied
/// at every start (only what is missing is added; a password is set only
/// for a user it creates).
///
/// ```toml
/// [[projects]]
/// name = "alpha"            # id = "…" optional
///
/// [[users]]
/// name = "alice"
/// password_file = "/etc/blockledger/alice.pw"   # or password = "…"
/// roles = [{ project = "alpha", role = "member" }]
/// ```
#[derive(serde::Deserialize)]
struct IdentityFile {
    #[serde(default)]
    projects: Vec<ProjectEntry>,
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(serde::Deserialize)]
struct ProjectEntry {
    name: String,
    id: Option<String>,
}

#[derive(serde::Deserialize)]
struct UserEntry {
    name: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    roles: Vec<GrantEntry>,
}

#[derive(serde::Deserialize)]
struct GrantEntry {
    project: String,
    role: String,
}

pub async fn apply_identity_file(app: &App, path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: IdentityFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let c = Caller {
        user_id: format!("file:{}", path.display()),
        ..cli_caller()
    };
    let m = || meta("identity file");
    let (users, projects, _) = uc::listing(app).await.map_err(refusal)?;
    for p in file.projects {
        if !projects.iter().any(|q| q.name == p.name) {
            uc::add_project(app, &c, &m(), p.name, p.id)
                .await
                .map_err(refusal)?;
        }
    }
    for u in file.users {
        if !users.iter().any(|v| v.name == u.name) {
            let pw = match (u.password, u.password_file) {
                (Some(p), _) => p,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
                (None, None) => bail!("user {} has neither password nor password_file", u.name),
            };
            uc::add_user(app, &c, &m(), u.name.clone(), hash(&pw)?)
                .await
                .map_err(refusal)?;
        }
        for g in u.roles {
            uc::grant(
                app,
                &c,
                &m(),
                u.name.clone(),
                g.project,
                parse_role(&g.role)?,
            )
            .await
            .map_err(refusal)?;
        }
    }
    Ok(())
}
