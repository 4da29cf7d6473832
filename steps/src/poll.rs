//! One way to wait, always with a deadline: [`until`] a condition holds, or that it
//! [`holds_for`] a whole period (something must *not* happen meanwhile). The condition is a
//! probe that returns `Ok` when it holds and otherwise `Err` with what it saw instead, and the
//! waits hand that evidence back when time runs out (or the moment a `holds_for` breaks), so a
//! failure message says what was seen.
//!
//! When to look again is the [`Wake`]: a [`Duration`] paces reads of state only a request can
//! show (an order's status over HTTP, a broker's metadata); a `watch::Receiver` wakes on each
//! change of state the kit itself records (the tap's log, the push sink's journal), so those
//! waits stay notification-driven; [`Capped`] wakes on a change or after a pause, whichever
//! comes first (a process's readiness line, or its exit, which nothing announces).

use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// When a wait looks at its condition again.
pub trait Wake {
    /// Called just before each look: whatever changed until now is seen by it.
    fn seen(&mut self) {}
    /// Returns once the condition may have changed.
    fn changed(&mut self) -> impl Future<Output = ()> + Send;
}

/// Look again after this pause.
impl Wake for Duration {
    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(*self)
    }
}

/// Look again when the value changes.
impl<T: Send + Sync> Wake for watch::Receiver<T> {
    fn seen(&mut self) {
        self.borrow_and_update();
    }

    async fn changed(&mut self) {
        if watch::Receiver::changed(self).await.is_err() {
            // Nothing will ever change again; the deadline ends the wait.
            std::future::pending::<()>().await;
        }
    }
}

/// Look again on a change of `signal`, or after `every` at the latest.
pub struct Capped<W> {
    pub signal: W,
    pub every: Duration,
}

impl<W: Wake + Send> Wake for Capped<W> {
    fn seen(&mut self) {
        self.signal.seen();
    }

    async fn changed(&mut self) {
        let _ = tokio::time::timeout(self.every, self.signal.changed()).await;
    }
}

/// Looks at `probe` now and on every wake-up until it returns `Ok`, or `deadline` has passed;
/// then returns the last `Err` — what was seen instead. A last look is taken at the deadline, so
/// a change that raced it is not missed.
pub async fn until<T, E>(
    deadline: Duration,
    mut wake: impl Wake,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    let stop_at = Instant::now() + deadline;
    loop {
        wake.seen();
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= stop_at => return Err(last),
            Err(_) => {}
        }
        if tokio::time::timeout_at(stop_at, wake.changed()).await.is_err() {
            wake.seen();
            return probe().await;
        }
    }
}

/// Looks at `probe` now, on every wake-up and once more at the end of `period`: `Ok` if it held
/// every time; otherwise, at once, the first `Err` — what broke it.
pub async fn holds_for<E>(
    period: Duration,
    wake: impl Wake,
    mut probe: impl AsyncFnMut() -> Result<(), E>,
) -> Result<(), E> {
    // Waiting until the condition breaks; the period running out is the success.
    let broke = until(period, wake, async || match probe().await {
        Ok(()) => Err(()),
        Err(broken) => Ok(broken),
    })
    .await;
    match broke {
        Ok(broken) => Err(broken),
        Err(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn until_returns_the_first_success() {
        let mut reads = 0;
        let found = until(Duration::from_secs(5), Duration::from_millis(1), async || {
            reads += 1;
            if reads == 3 { Ok(reads) } else { Err(reads) }
        })
        .await;
        assert_eq!(found, Ok(3));
    }

    #[tokio::test]
    async fn until_gives_up_at_the_deadline_with_the_last_observation() {
        let started = std::time::Instant::now();
        let mut reads = 0;
        let found: Result<(), i32> = until(Duration::from_millis(50), Duration::from_millis(5), async || {
            reads += 1;
            Err(reads)
        })
        .await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(matches!(found, Err(n) if n > 1 && n == reads), "{found:?}");
    }

    #[tokio::test]
    async fn until_wakes_on_a_change_not_on_a_timer() {
        let (tx, rx) = watch::channel(0);
        let setter = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send_replace(7);
            tx
        });
        let mut looks = 0;
        let probe_rx = rx.clone();
        let found = until(Duration::from_secs(5), rx, async || {
            looks += 1;
            let value = *probe_rx.borrow();
            if value == 7 { Ok(value) } else { Err(value) }
        })
        .await;
        assert_eq!(found, Ok(7));
        assert_eq!(looks, 2, "one look at the start, one at the change");
        drop(setter.await);
    }

    #[tokio::test]
    async fn until_on_a_silent_signal_ends_at_the_deadline_with_the_evidence() {
        let (_tx, rx) = watch::channel("nothing yet");
        let probe_rx = rx.clone();
        let found: Result<(), String> =
            until(Duration::from_millis(30), rx, async || Err(format!("saw {}", *probe_rx.borrow()))).await;
        assert_eq!(found, Err("saw nothing yet".to_string()));
    }

    #[tokio::test]
    async fn holds_for_the_whole_period() {
        let started = std::time::Instant::now();
        let mut looks = 0;
        let held: Result<(), ()> = holds_for(Duration::from_millis(40), Duration::from_millis(5), async || {
            looks += 1;
            Ok(())
        })
        .await;
        assert_eq!(held, Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert!(looks > 2, "{looks} looks");
    }

    #[tokio::test]
    async fn holds_for_breaks_at_once_with_what_broke_it() {
        let started = std::time::Instant::now();
        let mut pushes = 0;
        let held = holds_for(Duration::from_secs(5), Duration::from_millis(1), async || {
            pushes += 1;
            if pushes < 3 { Ok(()) } else { Err(format!("{pushes} pushes")) }
        })
        .await;
        assert_eq!(held, Err("3 pushes".to_string()));
        assert!(started.elapsed() < Duration::from_secs(1), "it stops at the break, not at the end");
    }

    #[tokio::test]
    async fn capped_looks_again_without_a_change() {
        let (_tx, rx) = watch::channel(());
        let mut looks = 0;
        let found = until(Duration::from_secs(5), Capped { signal: rx, every: Duration::from_millis(5) }, async || {
            looks += 1;
            if looks == 3 { Ok(()) } else { Err(looks) }
        })
        .await;
        assert_eq!(found, Ok(()));
    }
}
