//! Exactly once, defined once: when an order counts as **lost** and when as **duplicated**. The
//! suite's checkers (ORDER-1's duplicated events, IDEMP's second effects, the crash load's
//! unsettled orders and pushes), the monitor and the bench's `lost` and `duplicated` counts all
//! judge by these two definitions:
//!
//! - **lost** ([`lost`]): the implementation accepted the order (answered 201, or announced it on
//!   `order.created`) and it has not ended by the deadline — ended meaning confirmed with its
//!   payment (its last stage, the `PAYMENT_WAIT` push) or cancelled (`ORDER_CANCELLED`). How the
//!   end is seen depends on who looks: read back over HTTP ([`End::read_back`], the crash load),
//!   or from the order's pushes ([`End::pushed`], the bench). Each caller sets its deadline.
//! - **duplicated** ([`duplicated`]): one of the order's effects happened more than once — more
//!   than one distinct eventId among its records on one saga topic, or among its pushes of one
//!   kind. A redelivered record or a resent push keeps its eventId: that is at-least-once
//!   delivery, not a duplicate.
//!
//! A record missing on one topic ([`super::lost_events`]) is a finer judgement than a lost order:
//! ORDER-1 and the monitor name the stage that never came.

use super::Violation;
use crate::observed::{Push, TapRecord};
use saga_contract::{OrderStatus, PushKind, SagaTopic};
use std::collections::{BTreeMap, BTreeSet};

/// The distinct eventIds of each effect one order had: its saga records per topic, its pushes
/// per kind (a record without an eventId counts under the empty one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub records: BTreeMap<SagaTopic, BTreeSet<String>>,
    pub pushes: BTreeMap<PushKind, BTreeSet<String>>,
}

impl Effects {
    /// Adds a saga record (dead letters and records of no saga topic are not effects).
    pub fn add_record(&mut self, r: &TapRecord) {
        if let (false, Some(topic)) = (r.dead_letter, r.saga_topic) {
            self.records.entry(topic).or_default().insert(r.event_id.clone().unwrap_or_default());
        }
    }

    pub fn add_push(&mut self, p: &Push) {
        self.pushes.entry(p.kind).or_default().insert(p.event_id.clone());
    }

    /// The order's pushes of `kind`, counted by distinct eventId.
    pub fn pushes_of(&self, kind: PushKind) -> usize {
        self.pushes.get(&kind).map_or(0, BTreeSet::len)
    }

    /// The order's records on `topic`, counted by distinct eventId.
    pub fn records_of(&self, topic: SagaTopic) -> usize {
        self.records.get(&topic).map_or(0, BTreeSet::len)
    }
}

/// **Duplicated** (see the module): one violation per effect of `order_id` seen with more than
/// one distinct eventId — `duplicate` for a saga topic's records, `second push` for a push kind.
pub fn duplicated(order_id: &str, effects: &Effects) -> Vec<Violation> {
    let violation = |checker, detail| Violation { checker, order_id: order_id.to_string(), detail };
    let records = effects.records.iter().filter(|(_, ids)| ids.len() > 1).map(|(topic, ids)| {
        violation("duplicate", format!("{} distinct {} events: {ids:?}", ids.len(), topic.default_name()))
    });
    let pushes = effects.pushes.iter().filter(|(_, ids)| ids.len() > 1).map(|(kind, ids)| {
        violation("second push", format!("{} {kind} pushes by distinct eventId: {ids:?}", ids.len()))
    });
    records.chain(pushes).collect()
}

/// How far an order got by the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Confirmed, with its payment.
    Paid,
    Cancelled,
    /// Neither (yet).
    Open,
}

impl End {
    /// As read back over HTTP: the order's status (`None`: 404) and how many payments it has.
    pub fn read_back(status: Option<OrderStatus>, payments: usize) -> End {
        match status {
            Some(OrderStatus::Cancelled) => End::Cancelled,
            Some(OrderStatus::Confirmed) if payments > 0 => End::Paid,
            _ => End::Open,
        }
    }

    /// As the order's pushes show it: `PAYMENT_WAIT` (confirmed and paid), else
    /// `ORDER_CANCELLED`. An order pushed both ways is a conflict, judged elsewhere.
    pub fn pushed(effects: &Effects) -> End {
        if effects.pushes_of(PushKind::PaymentWait) > 0 {
            End::Paid
        } else if effects.pushes_of(PushKind::OrderCancelled) > 0 {
            End::Cancelled
        } else {
            End::Open
        }
    }
}

/// **Lost** (see the module): `accepted` (answered 201, or announced on `order.created`) and
/// not ended when the caller's deadline passed.
pub fn lost(accepted: bool, end: End) -> bool {
    accepted && end == End::Open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(kind: PushKind, event: &str) -> Push {
        Push { user_id: "u".into(), order_id: "o1".into(), kind, message: String::new(), event_id: event.into() }
    }

    fn record(topic: SagaTopic, event: &str) -> TapRecord {
        TapRecord::of(topic, serde_json::json!({"orderId": "o1", "eventId": event}))
    }

    /// A healthy confirmed order: one record on each topic of its path, and its two pushes.
    fn healthy() -> Effects {
        let mut e = Effects::default();
        for (topic, id) in
            [(SagaTopic::OrderCreated, "e1"), (SagaTopic::StockReserved, "e2"), (SagaTopic::OrderConfirmed, "e3")]
        {
            e.add_record(&record(topic, id));
        }
        e.add_push(&push(PushKind::OrderConfirmed, "e3"));
        e.add_push(&push(PushKind::PaymentWait, "e4"));
        e
    }

    #[test]
    fn a_doubled_record_or_push_is_duplicated_but_a_redelivery_is_not() {
        let mut e = healthy();
        e.add_record(&record(SagaTopic::StockReserved, "e2")); // redelivered: same eventId
        e.add_push(&push(PushKind::PaymentWait, "e4")); // resent: same eventId
        assert!(duplicated("o1", &e).is_empty(), "{:?}", duplicated("o1", &e));
        e.add_record(&record(SagaTopic::StockReserved, "e9"));
        let v = duplicated("o1", &e);
        assert!(v.len() == 1 && v[0].checker == "duplicate" && v[0].detail.contains("2 distinct stock.reserved"));
        let mut e = healthy();
        e.add_push(&push(PushKind::PaymentWait, "e8"));
        let v = duplicated("o1", &e);
        assert!(v.len() == 1 && v[0].checker == "second push" && v[0].detail.contains("2 PAYMENT_WAIT"), "{v:?}");
    }

    #[test]
    fn an_accepted_order_that_did_not_end_is_lost() {
        let paid = healthy();
        assert_eq!(End::pushed(&paid), End::Paid);
        assert!(!lost(true, End::pushed(&paid)));
        let mut cancelled = Effects::default();
        cancelled.add_push(&push(PushKind::OrderCancelled, "e5"));
        assert!(!lost(true, End::pushed(&cancelled)), "a cancelled order ended");
        let mut open = healthy();
        open.pushes.remove(&PushKind::PaymentWait); // confirmed, but never paid
        assert!(lost(true, End::pushed(&open)));
        assert!(!lost(false, End::Open), "a refused order cannot be lost");
        assert!(lost(true, End::read_back(Some(OrderStatus::Confirmed), 0)), "confirmed without a payment");
        assert!(lost(true, End::read_back(None, 0)), "404");
        assert!(!lost(true, End::read_back(Some(OrderStatus::Confirmed), 1)));
        assert!(!lost(true, End::read_back(Some(OrderStatus::Cancelled), 0)));
    }
}
