//! The open-loop schedule both load generators pace their orders by — the bench's and the crash
//! scenarios' steady load: order *i* is due at `start + i / rate`, whether or not earlier orders
//! were answered (no coordinated omission), and a sender the machine delayed catches up rather
//! than skipping orders.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct OpenLoop {
    start: Instant,
    rate: f64,
    next: usize,
}

impl OpenLoop {
    /// Order 0 is due at `start`, then `rate` orders a second.
    pub fn new(start: Instant, rate: f64) -> OpenLoop {
        OpenLoop { start, rate, next: 0 }
    }

    /// When order `i` is due.
    pub fn due(&self, i: usize) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// Waits until the next order is due (not at all when it is overdue); its number and when it
    /// was due. Cancel-safe: cancelled while waiting, the same order is due next time.
    pub async fn next(&mut self) -> (usize, Instant) {
        let (i, at) = (self.next, self.due(self.next));
        tokio::time::sleep_until(at).await; // pacing of the open-loop schedule
        self.next += 1;
        (i, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_i_is_due_at_i_over_the_rate() {
        let start = Instant::now();
        let schedule = OpenLoop::new(start, 4.0);
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(6) - start, Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn a_late_sender_catches_up_without_skipping() {
        let mut schedule = OpenLoop::new(Instant::now() - Duration::from_secs(1), 10.0);
        let began = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..10 {
            sent.push(schedule.next().await.0);
        }
        assert_eq!(sent, (0..10).collect::<Vec<_>>());
        assert!(began.elapsed() < Duration::from_millis(500), "overdue orders waited {:?}", began.elapsed());
        let (i, at) = schedule.next().await;
        assert_eq!(i, 10);
        assert!(Instant::now() >= at, "order 10 left before it was due");
    }
}
