//! The relay's fallback scan: every [`FALLBACK_POLL`] it sends, under row locks, the rows no
//! one is sending — left by a crash between commit and publish, by a failed publish, or by
//! another instance — and deletes them in the same transaction.

use super::Row;
use super::relay::{Relay, Sink};
use std::time::Duration;

/// Most rows taken per fallback round.
const BATCH: i64 = 256;
/// How often the fallback scan looks for rows the hot path did not send: left by a crash, by
/// a failed publish (retried from here) or by another instance.
pub(super) const FALLBACK_POLL: Duration = Duration::from_millis(500);
/// Rows younger than this belong to the hot path (committed, on their way to the relay), so
/// the fallback leaves them alone; only its very first round, at start-up, takes every row.
pub(super) const FALLBACK_MIN_AGE_MS: i64 = 2000;

impl<S: Sink> Relay<S> {
    /// Sends, under row locks (SKIP LOCKED lets several instances share the table), rows no
    /// one is sending: at least `min_age_ms` old and not in flight here.
    pub(super) async fn fallback_round(&self, min_age_ms: i64) -> sqlx::Result<()> {
        loop {
            let mut tx = self.pool.begin().await?;
            let in_flight: Vec<i64> = self.in_flight.lock().expect("in-flight set").iter().copied().collect();
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, topic, msg_key, payload FROM outbox WHERE kind = $1 AND created_at <= now() - make_interval(secs => $3::float8 / 1000) \
                 AND NOT (id = ANY($4)) ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(self.kind.as_str())
            .bind(BATCH)
            .bind(min_age_ms as f64)
            .bind(&in_flight)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let sent = self.sink.start(&rows).await;
            if !sent.is_empty() {
                sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&sent).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            if sent.len() == rows.len() {
                tracing::info!(
                    kind = self.kind.as_str(),
                    rows = rows.len(),
                    "outbox fallback sent rows the hot path had not"
                );
            } else {
                tracing::warn!(
                    kind = self.kind.as_str(),
                    taken = rows.len(),
                    sent = sent.len(),
                    "outbox fallback could not send every row; retrying next round"
                );
            }
            if sent.len() < rows.len() || (rows.len() as i64) < BATCH {
                return Ok(()); // failures wait for the next round; a short batch means no more
            }
        }
    }
}
