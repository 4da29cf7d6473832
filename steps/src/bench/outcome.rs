//! One order of a bench step as sent and what became of it ([`Sent`], [`Outcome`]), and the
//! step's plan ([`Plan`]): what the load generator fills in and the summary, the report and
//! `orders.csv` read.

use super::trace::Trace;
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
    pub payment_at_ms: Option<i64>,
    pub payment_pushes: usize,
    pub confirmed_pushes: usize,
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
    pub fn lost(&self) -> bool {
        self.accepted() && self.payment_at_ms.is_none()
    }
    pub fn duplicated(&self) -> bool {
        self.payment_pushes > 1 || self.confirmed_pushes > 1 || self.trace.reserved_event_ids.len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut o =
            Outcome { sent, payment_at_ms: None, payment_pushes: 0, confirmed_pushes: 0, trace: Trace::default() };
        assert!(o.lost() && !o.duplicated());
        o.payment_at_ms = Some(1010);
        o.payment_pushes = 1;
        o.trace.reserved_event_ids = ["a".to_string(), "b".to_string()].into();
        assert!(!o.lost() && o.duplicated());
        assert_eq!(o.e2e(), Some(10.0));
    }
}
