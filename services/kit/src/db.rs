//! The database pool and the kit's own tables (`outbox`, `processed_events`), which every
//! service has next to its domain tables.

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

pub async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to PostgreSQL ({}): {e}; check DATABASE_URL and that the server runs",
                redact(database_url)
            )
        })?;
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
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to PostgreSQL ({}): {e}; check DATABASE_URL and that the server runs",
                redact(database_url)
            )
        })
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
