//! The database pool and the kit's own tables (`outbox`, `processed_events`), which every
//! service has next to its domain tables.

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
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
/// connection when it comes back (and drops one that fails), so the ping on acquire only added
/// a round trip to every transaction's critical path — one of four per order at intake, one
/// per handler batch. A connection that broke while idle (the database restarted) fails its
/// `BEGIN` instead, and `outbox::RelayHandle::begin` takes another; a read outside a
/// transaction may meet it once, and is answered as the database being unavailable.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
}

/// The error says the connection itself is gone, not that the statement failed: an I/O error,
/// a protocol break, or the server's "terminating connection" (SQLSTATE class 08 connection
/// exception, 57 operator intervention — a shutdown or restart).
pub fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::connection_lost;

    #[test]
    fn only_a_gone_connection_counts_as_lost() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        assert!(connection_lost(&sqlx::Error::Io(reset)));
        assert!(connection_lost(&sqlx::Error::Protocol("unexpected end of stream".into())));
        // A statement that failed, or a pool that is merely busy, is not a dead connection:
        // taking another one would only hide the real error.
        assert!(!connection_lost(&sqlx::Error::RowNotFound));
        assert!(!connection_lost(&sqlx::Error::PoolTimedOut));
    }
}
