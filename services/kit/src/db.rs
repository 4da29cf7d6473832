//! The database pool and the kit's own tables (`outbox`, `processed_events`), which every
//! service has next to its domain tables.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

pub async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    let pool = pool_options(16).connect(database_url).await.map_err(|e| unreachable(database_url, e))?;
    prepare_kit_tables(&pool).await?;
    Ok(pool)
}

/// The outbox relays' own small pool: they never wait behind handlers for a connection, and
/// their deletes skip the WAL flush wait (a delete lost in a crash only means a resend, which
/// consumers drop by `eventId`).
pub async fn connect_relay_pool(database_url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(database_url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL ({}) is not a PostgreSQL URL: {e}", redact(database_url)))?
        .options([("synchronous_commit", "off")]);
    pool_options(2).connect_with(options).await.map_err(|e| unreachable(database_url, e))
}

fn unreachable(database_url: &str, error: sqlx::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot connect to PostgreSQL ({}): {error}; check DATABASE_URL and that the server runs",
        redact(database_url)
    )
}

/// Both pools' settings. No ping before handing out a connection: sqlx already pings each
/// connection when it comes back (and drops one that fails), and the hot paths keep their
/// connection ([`HeldConnection`], which pings the rare new one itself), so a ping on every
/// acquire was only a round trip more. A read outside those paths may meet a connection that
/// died while idle once, and is answered as the database being unavailable.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
}

/// A connection a long-lived task (a partition worker, an intake writer) keeps for every
/// transaction it runs, instead of taking one from the pool each time: sqlx pings a connection
/// whenever it goes back to the pool, a round trip per transaction that a kept one does not
/// pay. After a failure the task [`forget`](Self::forget)s it (back to the pool, which drops it
/// if it is dead), and the next transaction starts on a fresh one.
pub struct HeldConnection {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl HeldConnection {
    pub fn new(pool: PgPool) -> HeldConnection {
        HeldConnection { pool, conn: None }
    }

    /// The kept connection, or a live one from the pool when there is none. Taking one is rare
    /// (start-up, after a failure), so it is worth the ping that skips a connection which died
    /// while idle in the pool — the database restarted — at most once per connection it holds.
    pub async fn connection(&mut self) -> sqlx::Result<&mut PgConnection> {
        if self.conn.is_none() {
            let mut spare = self.pool.size();
            loop {
                let mut conn = self.pool.acquire().await?;
                match conn.ping().await {
                    Ok(()) => break self.conn = Some(conn),
                    Err(error) if spare > 0 => {
                        tracing::info!(%error, "a pooled database connection was gone; taking another");
                        conn.close_on_drop();
                        spare -= 1;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(self.conn.as_deref_mut().expect("a connection was just taken"))
    }

    /// Gives the connection back after a failure (an open transaction is rolled back first).
    pub fn forget(&mut self) {
        self.conn = None;
    }
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
