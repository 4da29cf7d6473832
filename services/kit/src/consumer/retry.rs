//! What a worker does when a batch fails: a transient failure (database, registry, broker) is
//! retried with backoff, holding the partition, for as long as it takes; poison splits the
//! batch into halves, in order, until the poisoned record is alone and goes to the dead
//! letters — its neighbours are handled.

use super::handler::{HandleError, Outcome};
use super::worker::{Worker, handle_once};
use crate::db::HeldConnection;
use futures::future::BoxFuture;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use std::time::Duration;

/// The longest pause between two attempts at a record whose handler failed transiently.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

impl Worker {
    /// Handles `batch` in one transaction; when a record poisons it, the halves in turn, in
    /// order, until the poison is alone and goes to the dead letters. One metrics label per
    /// record; `None` when shutdown interrupted it.
    pub(super) fn handle_split<'a>(
        &'a self,
        batch: &'a [OwnedMessage],
        held: &'a mut HeldConnection,
    ) -> BoxFuture<'a, Option<Vec<&'static str>>> {
        Box::pin(async move {
            match handle_with_retries(self, batch, held).await? {
                Ok(outcomes) => Some(
                    outcomes
                        .into_iter()
                        .map(|o| match o {
                            Outcome::Processed => "processed",
                            Outcome::Duplicate => "duplicate",
                        })
                        .collect(),
                ),
                Err(error) if batch.len() == 1 => {
                    let message = &batch[0];
                    let dlt = format!("{}.dlt", message.topic());
                    let sent =
                        self.dead_letters.send(&dlt, self.config.service_name, message, &error, &self.shutdown).await;
                    sent.then(|| vec!["dead_letter"])
                }
                Err(_) => {
                    let (first, second) = batch.split_at(batch.len() / 2);
                    let mut labels = self.handle_split(first, held).await?;
                    labels.extend(self.handle_split(second, held).await?);
                    Some(labels)
                }
            }
        })
    }
}

/// Handles the batch: poison comes back at the first attempt (to be split, and alone
/// dead-lettered), a transient failure is retried with backoff until it succeeds; `None` when
/// shutdown interrupted the retries.
async fn handle_with_retries(
    worker: &Worker,
    batch: &[OwnedMessage],
    held: &mut HeldConnection,
) -> Option<Result<Vec<Outcome>, HandleError>> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let error = match handle_once(worker, batch, held).await {
            Err(HandleError::Transient(error)) => error,
            // Seeded fault: poison retried as if it could heal, stalling its partition.
            Err(HandleError::Poison(reason)) if crate::failpoint::active("kit::poison-retried-forever") => {
                anyhow::anyhow!(reason)
            }
            result => return Some(result),
        };
        if gives_up(attempt) {
            let first = &batch[0];
            tracing::error!(topic = first.topic(), partition = first.partition(), offset = first.offset(), records = batch.len(), attempt, error = %format!("{error:#}"), "giving up on the batch; skipping it");
            return Some(Ok(batch.iter().map(|_| Outcome::Processed).collect()));
        }
        // The connection may be what failed (the database restarted): the next attempt takes
        // a fresh one.
        held.forget();
        let pause = retry_pause(attempt);
        let (first, last) = (&batch[0], &batch[batch.len() - 1]);
        tracing::warn!(topic = first.topic(), partition = first.partition(), offsets = %format!("{}..={}", first.offset(), last.offset()), records = batch.len(), attempt, error = %format!("{error:#}"), retry_in_ms = pause.as_millis(), "batch failed on something it depends on; retrying (the partition waits)");
        let mut stop = worker.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = stop.changed() => return None,
        }
    }
}

/// Never: a batch that failed on something it depends on is retried until it succeeds. Seeded
/// fault (self-test, `kit::skip-after-retries=return(N)`): a retry budget — after N failed
/// attempts the batch counts as handled and its offset is committed past it.
fn gives_up(attempt: u32) -> bool {
    crate::failpoint::seeded("kit::skip-after-retries")
        .is_some_and(|budget| attempt >= budget.trim().parse().unwrap_or(5))
}

/// Retry pacing after `attempt` failures: 50 ms, 100 ms, … capped at [`MAX_RETRY_PAUSE`].
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.saturating_sub(1).min(7)).min(MAX_RETRY_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_pause(1), Duration::from_millis(50));
        assert_eq!(retry_pause(2), Duration::from_millis(100));
        assert_eq!(retry_pause(7), MAX_RETRY_PAUSE.min(Duration::from_millis(3200)));
        assert_eq!(retry_pause(1000), MAX_RETRY_PAUSE);
    }
}
