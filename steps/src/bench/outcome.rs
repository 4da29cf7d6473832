//! One order of a bench step as sent and what became of it ([`Sent`], [`Outcome`]), and the
//! step's plan ([`Plan`]): what the load generator fills in and the summary, the report and
//! `orders.csv` read.

use super::trace::Trace;
use crate::checkers::once::{self, End};
use crate::checkers::stages::Stamps;

#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub rate: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub drain_s: f64,
}

/// One order as sent and answered.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub seq: usize,
    /// Seconds after the start of the measured window (negative during warm-up).
    pub scheduled_s: f64,
    /// How late the request left relative to its scheduled instant.
    pub lag_ms: f64,
    /// When the request left, epoch ms (sub-ms precision).
    pub sent_at_ms: f64,
    pub intake_ms: f64,
    pub status: u16,
    pub order_id: Option<String>,
    pub error: Option<String>,
    pub measured: bool,
}

/// One order's outcome.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub sent: Sent,
    /// When its first `PAYMENT_WAIT` push arrived.
    pub payment_at_ms: Option<i64>,
    /// Its records and (`trace.effects`) its records' and pushes' eventIds.
    pub trace: Trace,
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        self.sent.status == 201 && self.sent.order_id.is_some()
    }
    /// When the tap and the sink saw each step of the order's saga: its stage latencies are
    /// [`Stamps`]'s.
    pub fn stamps(&self) -> Stamps {
        Stamps {
            sent_ms: Some(self.sent.sent_at_ms),
            created_ms: self.trace.created_ts.map(|t| t as f64),
            reserved_ms: self.trace.reserved_ts.map(|t| t as f64),
            ended_ms: self.trace.confirmed_ts.map(|t| t as f64),
            paid_ms: self.payment_at_ms.map(|t| t as f64),
        }
    }
    pub fn e2e(&self) -> Option<f64> {
        self.stamps().saga()
    }
    pub fn created(&self) -> Option<f64> {
        self.stamps().created()
    }
    pub fn reservation(&self) -> Option<f64> {
        self.stamps().reservation()
    }
    pub fn confirmation(&self) -> Option<f64> {
        self.stamps().confirmation()
    }
    pub fn payment(&self) -> Option<f64> {
        self.stamps().payment()
    }
    /// How far it got by the end of the drain, by its pushes.
    pub fn end(&self) -> End {
        End::pushed(&self.trace.effects)
    }
    /// Accepted and neither paid nor cancelled by the end of the drain ([`once::lost`]).
    pub fn lost(&self) -> bool {
        once::lost(self.accepted(), self.end())
    }
    /// Cancelled: not lost, but a bench order has stock to spare and is due its payment.
    pub fn cancelled(&self) -> bool {
        self.accepted() && self.end() == End::Cancelled
    }
    /// A record or a push seen with two distinct eventIds ([`once::duplicated`]).
    pub fn duplicated(&self) -> bool {
        !once::duplicated(self.sent.order_id.as_deref().unwrap_or_default(), &self.trace.effects).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::Push;
    use saga_contract::{PushKind, SagaTopic};

    #[test]
    fn outcome_flags_loss_and_duplicates() {
        let sent = Sent {
            seq: 0,
            scheduled_s: 0.0,
            lag_ms: 0.0,
            sent_at_ms: 1000.0,
            intake_ms: 2.0,
            status: 201,
            order_id: Some("o".into()),
            error: None,
            measured: true,
        };
        let mut o = Outcome { sent, payment_at_ms: None, trace: Trace::default() };
        assert!(o.lost() && !o.duplicated() && !o.cancelled());
        let push = |kind, event_id: &str| Push {
            user_id: "u".into(),
            order_id: "o".into(),
            kind,
            message: String::new(),
            event_id: event_id.into(),
        };
        o.payment_at_ms = Some(1010);
        o.trace.effects.add_push(&push(PushKind::PaymentWait, "p1"));
        o.trace.effects.add_push(&push(PushKind::PaymentWait, "p1")); // resent: not a duplicate
        assert!(!o.lost() && !o.duplicated());
        o.trace.effects.records.insert(SagaTopic::StockReserved, ["a".to_string(), "b".to_string()].into());
        assert!(!o.lost() && o.duplicated());
        assert_eq!(o.e2e(), Some(10.0));
        let mut cancelled = Outcome { payment_at_ms: None, trace: Trace::default(), ..o };
        cancelled.trace.effects.add_push(&push(PushKind::OrderCancelled, "c1"));
        assert!(!cancelled.lost() && cancelled.cancelled());
    }
}
