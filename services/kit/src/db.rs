//! The database pool, the services' compiled-in migrations, and the kit's own tables (`outbox`,
//! `processed_events`), which every service has next to its domain tables.

use sqlx::migrate::{MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, SqlSafeStr};
use std::str::FromStr;
use std::time::Duration;

pub async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    let pool = pool_options(16).connect_with(session(database_url)?).await.map_err(|e| unreachable(database_url, e))?;
    prepare_kit_tables(&pool).await?;
    Ok(pool)
}

/// The outbox relays' own small pool: they never wait behind handlers for a connection, and
/// their deletes skip the WAL flush wait (a delete lost in a crash only means a resend, which
/// consumers drop by `eventId`).
pub async fn connect_relay_pool(database_url: &str) -> anyhow::Result<PgPool> {
    let options = session(database_url)?.options([("synchronous_commit", "off")]);
    pool_options(2).connect_with(options).await.map_err(|e| unreachable(database_url, e))
}

/// Both pools' session settings. `plan_cache_mode`: the services' statements take arrays
/// (`unnest($1::text[])`, `= ANY($1)`, one element per record of a batch). With the default
/// `auto`, PostgreSQL compares the generic plan with custom ones that see the real array
/// length, finds the custom ones cheaper every time, and so plans every execution again — CPU
/// on every statement of every transaction. Each of these statements is an index lookup or an
/// insert whatever the array holds, so the generic plan, made once per connection and made
/// again when the tables' statistics change, is as good.
fn session(database_url: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(database_url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL ({}) is not a PostgreSQL URL: {e}", redact(database_url)))?
        .options([("plan_cache_mode", "force_generic_plan")]))
}

fn unreachable(database_url: &str, error: sqlx::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot connect to PostgreSQL ({}): {error}; check DATABASE_URL and that the server runs",
        redact(database_url)
    )
}

/// Both pools' settings. The pool pings a connection before handing it out (sqlx's default),
/// so a read never meets one that died while idle (the database restarted); the hot paths do
/// not pay that round trip per transaction, because they keep their connection
/// ([`HeldConnection`]).
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10))
}

/// A connection a long-lived task (a partition worker, an intake writer) keeps for every
/// transaction it runs, instead of taking one from the pool each time: the pool pings a
/// connection when it hands it out and when it comes back, two round trips per transaction
/// that a kept one does not pay. After a failure the task [`forget`](Self::forget)s it (back
/// to the pool, which drops it if it is dead), and the next transaction starts on a fresh one.
pub struct HeldConnection {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl HeldConnection {
    pub fn new(pool: PgPool) -> HeldConnection {
        HeldConnection { pool, conn: None }
    }

    /// The kept connection, or one from the pool (checked live by its ping) when there is none.
    pub async fn connection(&mut self) -> sqlx::Result<&mut PgConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.pool.acquire().await?);
        }
        Ok(self.conn.as_deref_mut().expect("a connection was just taken"))
    }

    /// Gives the connection back after a failure (an open transaction is rolled back first).
    pub fn forget(&mut self) {
        self.conn = None;
    }
}

/// A service's schema migration, compiled in from `migrations/<version>_<description>.sql`.
///
/// Turned into a [`Migrator`] at start ([`migrator`]) instead of by `sqlx::migrate!`: that macro
/// is sqlx's `macros` feature, which builds a second copy of sqlx and tokio for the compiler —
/// about 50 s of CPU in a cold build, for three one-file migrations.
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

/// The migrator `sqlx::migrate!` would have made of the same files: same versions,
/// descriptions and checksums, each migration in its own transaction.
pub fn migrator(migrations: &[Migration]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|m| {
                sqlx::migrate::Migration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    m.sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Creates the outbox and the dedupe table. Idempotent, and kept outside the services'
/// numbered migrations so the kit's tables evolve in one place.
async fn prepare_kit_tables(pool: &PgPool) -> anyhow::Result<()> {
    // Serialise concurrent first starts of several instances.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7061)").execute(&mut *tx).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS outbox (
             id         BIGSERIAL PRIMARY KEY,
             kind       TEXT NOT NULL CHECK (kind IN ('kafka', 'push')),
             topic      TEXT NOT NULL,
             msg_key    TEXT NOT NULL,
             payload    BYTEA NOT NULL,
             created_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );
         CREATE INDEX IF NOT EXISTS outbox_kind_id ON outbox (kind, id);
         CREATE TABLE IF NOT EXISTS processed_events (
             event_id     TEXT PRIMARY KEY,
             topic        TEXT NOT NULL,
             processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The URL without its password, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}
