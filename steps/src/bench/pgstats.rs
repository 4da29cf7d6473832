//! PostgreSQL's server-wide counters — committed transactions and WAL flushes — read before
//! and after a measured window: their rates show whether WAL fsync is the bottleneck
//! (`wal_sync_time` needs `track_wal_io_timing`, which the floor turns on in the bench's
//! throw-away cluster). Only on the reference stack: the bench has no access to an external
//! implementation's database.

use super::stats::r2;
use serde::Serialize;
use sqlx::Connection as _;
use std::time::Instant;

/// The counters at one instant.
#[derive(Debug, Clone, Copy)]
pub(super) struct PgStats {
    at: Instant,
    commits: f64,
    wal_syncs: f64,
    wal_sync_ms: f64,
}

/// Rates over a window, as `postgres` in a step of `bench.json`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PgRates {
    #[serde(serialize_with = "r2")]
    pub commits_per_s: f64,
    #[serde(serialize_with = "r2")]
    pub wal_syncs_per_s: f64,
    #[serde(serialize_with = "r2")]
    pub commits_per_wal_sync: f64,
    #[serde(serialize_with = "r2")]
    pub wal_sync_ms_mean: f64,
    /// Share of the window spent in WAL fsync, %.
    #[serde(serialize_with = "r2")]
    pub wal_sync_busy_pct: f64,
}

impl PgStats {
    /// `None` when the server has no `pg_stat_wal` of this shape (PostgreSQL 14–17 have it).
    pub async fn take(database_url: String) -> Option<PgStats> {
        let mut conn = sqlx::PgConnection::connect(&database_url).await.ok()?;
        let (commits,): (f64,) =
            sqlx::query_as("SELECT sum(xact_commit)::float8 FROM pg_stat_database").fetch_one(&mut conn).await.ok()?;
        let (wal_syncs, wal_sync_ms): (f64, f64) =
            sqlx::query_as("SELECT wal_sync::float8, wal_sync_time::float8 FROM pg_stat_wal")
                .fetch_one(&mut conn)
                .await
                .ok()?;
        let _ = conn.close().await;
        Some(PgStats { at: Instant::now(), commits, wal_syncs, wal_sync_ms })
    }

    /// Rates between two snapshots.
    pub fn until(&self, later: &PgStats) -> PgRates {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let commits = (later.commits - self.commits) / seconds;
        let syncs = (later.wal_syncs - self.wal_syncs) / seconds;
        let sync_ms = (later.wal_sync_ms - self.wal_sync_ms) / seconds;
        PgRates {
            commits_per_s: commits,
            wal_syncs_per_s: syncs,
            commits_per_wal_sync: if syncs > 0.0 { commits / syncs } else { f64::NAN },
            wal_sync_ms_mean: if syncs > 0.0 { sync_ms / syncs } else { f64::NAN },
            // ms of fsync per second of window, as a percentage.
            wal_sync_busy_pct: sync_ms / 10.0,
        }
    }
}
