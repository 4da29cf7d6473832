//! A saga's stage latencies, defined once. Each observer — the timing scenario, the bench, the
//! monitor — notes when it saw each step of one saga ([`Stamps`]) and reads the stages from
//! here, so "reservation" or "payment" means the same span in the suite's report, the bench's
//! table and the monitor's histogram:
//!
//! | stage | from | to |
//! |---|---|---|
//! | created | the order was sent | `order.created`'s timestamp |
//! | reservation | `order.created` | the reservation's outcome (`stock.reserved` or `stock.reservation.failed`) |
//! | confirmation | the reservation's outcome | the saga's end record (`order.confirmed` or `order.cancelled`) |
//! | payment | the end record | the payment step seen done (the `PAYMENT_WAIT` push, or the Payment Service's group past `order.confirmed`) |
//! | saga | the order was sent | the payment step seen done |
//!
//! Record times are the records' own timestamps (the producer's clock); "sent" and "seen done"
//! are the observer's clock. A stage whose two ends were not both seen has no latency: that
//! order is missing from the stage's figures, never counted as fast.

/// When one saga's steps happened, epoch milliseconds, as one observer saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stamps {
    /// The order was sent (the monitor, which sends nothing, starts a saga at its
    /// `order.created`).
    pub sent_ms: Option<f64>,
    pub created_ms: Option<f64>,
    /// The reservation's outcome.
    pub reserved_ms: Option<f64>,
    /// The saga's end record.
    pub ended_ms: Option<f64>,
    /// The payment step seen done.
    pub paid_ms: Option<f64>,
}

impl Stamps {
    pub fn created(&self) -> Option<f64> {
        Some(self.created_ms? - self.sent_ms?)
    }

    pub fn reservation(&self) -> Option<f64> {
        Some(self.reserved_ms? - self.created_ms?)
    }

    pub fn confirmation(&self) -> Option<f64> {
        Some(self.ended_ms? - self.reserved_ms?)
    }

    pub fn payment(&self) -> Option<f64> {
        Some(self.paid_ms? - self.ended_ms?)
    }

    pub fn saga(&self) -> Option<f64> {
        Some(self.paid_ms? - self.sent_ms?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_spans_its_two_steps_and_a_missing_end_gives_no_latency() {
        let all = Stamps {
            sent_ms: Some(1000.5),
            created_ms: Some(1010.0),
            reserved_ms: Some(1030.0),
            ended_ms: Some(1060.0),
            paid_ms: Some(1100.0),
        };
        assert_eq!(all.created(), Some(9.5));
        assert_eq!(all.reservation(), Some(20.0));
        assert_eq!(all.confirmation(), Some(30.0));
        assert_eq!(all.payment(), Some(40.0));
        assert_eq!(all.saga(), Some(99.5));
        let unpaid = Stamps { paid_ms: None, ..all };
        assert_eq!((unpaid.payment(), unpaid.saga()), (None, None), "an order never paid is not fast");
        assert_eq!(unpaid.confirmation(), Some(30.0));
        let unreserved = Stamps { reserved_ms: None, ..all };
        assert_eq!((unreserved.reservation(), unreserved.confirmation()), (None, None));
    }
}
