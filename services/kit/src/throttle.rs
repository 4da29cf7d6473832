//! An optional cap on how many records a service's consumer handles per second, set by
//! `CONSUMER_MAX_RECORDS_PER_SECOND` (unset, the default: no cap). It makes the reference a
//! deliberately slower implementation — intake keeps accepting, the saga behind it runs at most
//! this many orders per second — to try the conformance suite's capacity requirements on a
//! correct but slow implementation (docs/configuration.md, "Correctness and capacity"). Each
//! batch waits for as many slots of `1 / cap` seconds as it has records.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// The environment variable that sets the cap (records per second, 1 or more).
pub const VARIABLE: &str = "CONSUMER_MAX_RECORDS_PER_SECOND";

struct Limiter {
    interval: Duration,
    /// When the next slot starts.
    next: Mutex<Instant>,
}

static LIMITER: OnceLock<Option<Limiter>> = OnceLock::new();

fn from_env() -> Option<Limiter> {
    let cap = std::env::var(VARIABLE).ok()?;
    match cap.trim().parse::<u32>() {
        Ok(per_second) if per_second > 0 => {
            tracing::warn!(per_second, "{VARIABLE} set: this service handles at most this many records per second");
            Some(Limiter { interval: Duration::from_secs(1) / per_second, next: Mutex::new(Instant::now()) })
        }
        _ => {
            tracing::error!(%cap, "{VARIABLE} is not a number of records per second (1 or more); ignored");
            None
        }
    }
}

/// The time a batch of `records` may be handled at, reserving its slots: `records` intervals
/// after the later of now and the end of the slots already reserved.
fn reserve(next: &mut Instant, now: Instant, interval: Duration, records: usize) -> Instant {
    let start = (*next).max(now);
    *next = start + interval * u32::try_from(records).unwrap_or(u32::MAX);
    *next
}

/// Waits until a batch of `records` may be handled (at once without a cap).
pub async fn admit(records: usize) {
    let Some(limiter) = LIMITER.get_or_init(from_env) else { return };
    let at =
        reserve(&mut limiter.next.lock().expect("throttle lock poisoned"), Instant::now(), limiter.interval, records);
    tokio::time::sleep_until(at).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_wait_for_their_slots_so_the_rate_holds() {
        let now = Instant::now();
        let interval = Duration::from_millis(100);
        let mut next = now;
        assert_eq!(reserve(&mut next, now, interval, 1), now + interval);
        assert_eq!(reserve(&mut next, now, interval, 3), now + interval * 4, "a batch queues behind the last");
        let later = now + Duration::from_secs(10);
        assert_eq!(reserve(&mut next, later, interval, 2), later + interval * 2, "idle time is not saved up");
    }
}
