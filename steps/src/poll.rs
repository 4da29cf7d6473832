//! Waiting for state that only an HTTP read can show (an order's status, a product's stock, a
//! payment): read, and read again at a steady pace until the answer is the wanted one or the
//! deadline passes. Kafka records and pushes never need this — the tap and the push sink
//! notify their waiters.

use std::time::Duration;
use tokio::time::Instant;

/// Calls `probe` every `every` until it returns `Ok` or `deadline` has passed; then returns the
/// last `Err`, which should describe what was seen instead (for the failure message).
pub async fn until<T, E>(
    deadline: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    let stop_at = Instant::now() + deadline;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= stop_at => return Err(last),
            // Pacing between reads; the deadline above bounds the wait.
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_success() {
        let mut reads = 0;
        let found = until(Duration::from_secs(5), Duration::from_millis(1), async || {
            reads += 1;
            if reads == 3 { Ok(reads) } else { Err(reads) }
        })
        .await;
        assert_eq!(found, Ok(3));
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_with_the_last_observation() {
        let started = std::time::Instant::now();
        let mut reads = 0;
        let found: Result<(), i32> = until(Duration::from_millis(50), Duration::from_millis(5), async || {
            reads += 1;
            Err(reads)
        })
        .await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(matches!(found, Err(n) if n > 1), "{found:?}");
    }
}
