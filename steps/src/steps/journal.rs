//! The crash load's journal — every request it sent and how it was answered — and the count
//! of its orders still open, which a burst tops itself up by.

use super::SuiteEnv;
use crate::checkers::crash::{Answer, Attempt};
use saga_contract::PushKind;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Every answer so far; `sent` counts the requests sent, answered or not.
pub(super) struct Journal {
    pub(super) attempts: Mutex<Vec<Attempt>>,
    pub(super) sent: watch::Sender<usize>,
}

impl Journal {
    /// Takes the next sequence number (and counts the request as sent).
    pub(super) fn next(&self) -> usize {
        let mut seq = 0;
        self.sent.send_modify(|n| {
            seq = *n;
            *n += 1;
        });
        seq
    }

    pub(super) fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().expect("load journal poisoned").clone()
    }

    pub(super) fn answered(&self) -> usize {
        self.attempts.lock().expect("load journal poisoned").len()
    }
}

/// How long a count of the load's open orders is reused.
const OPEN_REFRESH: Duration = Duration::from_millis(100);

/// The load's orders accepted and not yet at their last stage (no `PAYMENT_WAIT` or
/// `ORDER_CANCELLED` push yet), counted again at most every [`OPEN_REFRESH`]: a burst tops
/// itself up only while fewer than its size are open, so a slow implementation is not sent
/// more than the burst it declared.
pub(super) struct OpenOrders {
    env: Arc<SuiteEnv>,
    journal: Arc<Journal>,
    counted: Option<(Instant, usize)>,
}

impl OpenOrders {
    pub(super) fn new(env: Arc<SuiteEnv>, journal: Arc<Journal>) -> OpenOrders {
        OpenOrders { env, journal, counted: None }
    }

    pub(super) fn now(&mut self) -> usize {
        if let Some((at, open)) = self.counted
            && at.elapsed() < OPEN_REFRESH
        {
            return open;
        }
        let arrivals = self.env.sink.arrivals();
        let finished: BTreeSet<&str> = arrivals
            .iter()
            .filter_map(|a| a.push.as_ref().ok())
            .filter(|p| matches!(p.kind, PushKind::PaymentWait | PushKind::OrderCancelled))
            .map(|p| p.order_id.as_str())
            .collect();
        let open = self
            .journal
            .attempts()
            .iter()
            .filter(|a| matches!(&a.answer, Answer::Accepted(id) if !finished.contains(id.as_str())))
            .count();
        self.counted = Some((Instant::now(), open));
        open
    }
}
