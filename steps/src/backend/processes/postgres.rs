//! A throw-away PostgreSQL cluster from Debian's `postgresql` package: `initdb` into a temp
//! dir, `postgres` on a free loopback port, one database per service. PostgreSQL refuses to
//! run as root, so as root both run as the `postgres` user (the package creates it).

use super::process::{Proc, free_port};
use anyhow::{Context, bail};
use sqlx::Connection;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

pub struct Postgres {
    pub port: u16,
    pub proc: Proc,
    /// How to start this server again on its data (the database-crash fault).
    pub launch: PgLaunch,
}

/// The server's command line, kept so a killed server can be started again on the same data
/// directory and port (it then runs crash recovery from its WAL).
#[derive(Debug, Clone)]
pub struct PgLaunch {
    bin: PathBuf,
    data: PathBuf,
    sockets: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    log: PathBuf,
}

impl PgLaunch {
    /// Starts the postmaster and waits until it accepts connections (after any recovery).
    pub async fn spawn(&self) -> anyhow::Result<Proc> {
        let mut server = Command::new(self.bin.join("postgres"));
        server
            .arg("-D")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.sockets.display()));
        as_owner(&mut server, self.owner);
        let mut proc =
            Proc::spawn("postgresql", server, &self.log, Some("database system is ready to accept connections"))?;
        proc.wait_ready(Duration::from_secs(60)).await?;
        Ok(proc)
    }
}

/// The databases the stack needs.
pub const DATABASES: [&str; 4] = ["order_db", "product_db", "payment_db", "registry_db"];

impl Postgres {
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The same database for a JDBC client (the registry).
    pub fn jdbc_url(&self, database: &str) -> String {
        format!("jdbc:postgresql://127.0.0.1:{}/{database}", self.port)
    }

    pub async fn start(work: &Path, logs: &Path) -> anyhow::Result<Postgres> {
        let bin = find_bin_dir()?;
        let data = work.join("pgdata");
        let sockets = work.join("pgsock");
        std::fs::create_dir_all(&sockets)?;
        let owner = run_as()?;
        if let Some((uid, gid)) = owner {
            chown(work, Some(uid), Some(gid)).context("handing the temp dir to the postgres user")?;
            chown(&sockets, Some(uid), Some(gid))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
        as_owner(&mut initdb, owner);
        let out = initdb.output().await.with_context(|| format!("running {}/initdb", bin.display()))?;
        if !out.status.success() {
            bail!("initdb failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        let port = free_port()?;
        let launch = PgLaunch { bin, data, sockets, port, owner, log: logs.join("postgresql.log") };
        let proc = launch.spawn().await?;
        let pg = Postgres { port, proc, launch };
        let mut admin =
            sqlx::PgConnection::connect(&pg.url("postgres")).await.context("connecting to the new PostgreSQL")?;
        for db in DATABASES {
            // `db` comes from the DATABASES constant above, never from input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await
                .with_context(|| format!("creating database {db}"))?;
        }
        Ok(pg)
    }
}

/// Waits until the server at `url` accepts a connection and answers a query — readiness
/// after a restart, for a server that is not our child process (a container, or one the
/// `processes` backend relaunched).
pub async fn wait_accepting(url: &str, deadline: Duration) -> anyhow::Result<()> {
    crate::poll::until(deadline, Duration::from_millis(100), async || {
        let mut connection = sqlx::PgConnection::connect(url).await.map_err(|e| e.to_string())?;
        sqlx::query("SELECT 1").execute(&mut connection).await.map_err(|e| e.to_string())?;
        connection.close().await.map_err(|e| e.to_string())
    })
    .await
    .map_err(|last| anyhow::anyhow!("PostgreSQL at {url} does not accept connections after {deadline:?}: {last}"))
}

/// Takes one database of the server at `base_url` (`postgres://…/`, as a superuser) away
/// while the server and its other databases keep serving — new connections to it refused
/// (`ALLOW_CONNECTIONS false`) and its sessions ended, as when its own server goes down —
/// and confirms a connection to it is refused; `allowed` gives it back. For the stacks the kit
/// runs (processes, containers), where each service has its database on one shared server.
pub async fn set_access(base_url: &str, database: &str, allowed: bool) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(&format!("{base_url}postgres"))
        .await
        .with_context(|| format!("connecting to PostgreSQL at {base_url} to change access to {database}"))?;
    anyhow::ensure!(
        database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{database:?} is not a database name of ours"
    );
    // `database` is one of DATABASES (checked above to be a plain identifier).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS {allowed}")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("ALTER DATABASE {database} ALLOW_CONNECTIONS {allowed}"))?;
    if allowed {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .execute(&mut admin)
    .await
    .with_context(|| format!("ending the sessions on {database}"))?;
    match sqlx::PgConnection::connect(&format!("{base_url}{database}")).await {
        Ok(_) => anyhow::bail!("{database} still accepted a connection after ALLOW_CONNECTIONS false"),
        Err(_) => Ok(()),
    }
}

/// Debian's versioned server binaries (`/usr/lib/postgresql/<v>/bin`), newest first.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("postgres").exists()).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates.pop().context("no PostgreSQL server found under /usr/lib/postgresql: install it with `apt-get install postgresql` (./saga setup does this)")
}

/// `(uid, gid)` of the `postgres` user when we are root, `None` otherwise.
fn run_as() -> anyhow::Result<Option<(u32, u32)>> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let me = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(0);
    if me != 0 {
        return Ok(None);
    }
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&"postgres") && fields.len() > 3 {
            return Ok(Some((fields[2].parse()?, fields[3].parse()?)));
        }
    }
    bail!(
        "running as root but there is no `postgres` user to run PostgreSQL as: install the postgresql package (./saga setup does this)"
    )
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
        // HOME of root is not readable for postgres; run from the temp dir's parent.
        command.current_dir("/tmp");
    }
}
