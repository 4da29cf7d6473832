//! Field meanings, checked once over the whole run: every record the tap saw and every push the
//! sink received, so each scenario contributes evidence, including the fault scenarios. The
//! checks are pure functions over those logs (unit-tested below on synthetic logs that each
//! hold one kind of violation); the steps' `check_suite` runs them at the end of a run and the
//! runner reports the result as the requirement `FIELDS-1`.
//!
//! What they prove: every `eventId` is a UUID and names one event only (an effect never reuses
//! its cause's id; a redelivery of the same record is allowed); `eventTimestamp` and every `*At`
//! are epoch milliseconds within the run; every push names the event that caused it (see
//! [`push_cause`]); `order.cancelled` is keyed by orderId and carries the order's lines; and
//! `order.confirmed` carries its order's user and total.

mod outcomes;
mod records;

use crate::checkers::Violation;
use crate::observed::{Arrival, Push, TapRecord};
use outcomes::{cancellations, confirmations};
use records::{event_ids, timestamps};
use saga_contract::{PushKind, SagaTopic};
use std::collections::HashMap;

/// The span of wall-clock time a run's events may carry, widened by the clock skew allowed
/// between the implementation's machines and the kit's (`[fields] clock_skew_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunWindow {
    /// Epoch ms when the run began.
    pub start_ms: i64,
    /// Epoch ms when the check runs (after the last scenario).
    pub end_ms: i64,
    pub tolerance_ms: i64,
}

impl RunWindow {
    fn contains(&self, ms: i64) -> bool {
        (self.start_ms - self.tolerance_ms..=self.end_ms + self.tolerance_ms).contains(&ms)
    }
}

/// The record whose `eventId` a push of `kind` carries, as the reference does it: the Order
/// Service's pushes carry the event it publishes in the same transaction (`ORDER_CONFIRMED` →
/// that `order.confirmed`, `ORDER_CANCELLED` → that `order.cancelled`); the Payment Service's
/// `PAYMENT_WAIT` carries the `order.confirmed` it created the payment from. (A push of a type
/// outside the contract is no push: the sink keeps it as a body that is not one, see
/// [`pushes_of`].)
pub fn push_cause(kind: PushKind) -> SagaTopic {
    match kind {
        PushKind::OrderConfirmed | PushKind::PaymentWait => SagaTopic::OrderConfirmed,
        PushKind::OrderCancelled => SagaTopic::OrderCancelled,
    }
}

/// The poison the suite itself publishes (INPUT-4/5): the one record on a saga topic that is
/// not the contract's on purpose.
pub const SUITE_POISON: &[u8] = b"this is not Avro";

/// Every field check over the run. Dead letters are copies of records already checked; records
/// that did not decode are reported by the contract check alone.
pub fn check_run(records: &[TapRecord], pushes: &[Push], window: RunWindow) -> Vec<Violation> {
    let mut violations = contract(records);
    let saga: Vec<&TapRecord> =
        records.iter().filter(|r| !r.dead_letter && r.saga_topic.is_some() && r.value.is_some()).collect();
    violations.extend(event_ids(&saga));
    violations.extend(timestamps(&saga, window));
    violations.extend(push_causes(&saga, pushes));
    violations.extend(cancellations(&saga));
    violations.extend(confirmations(&saga));
    violations
}

/// The pushes among the sink's arrivals; a body that is not a push is a violation.
pub fn pushes_of(arrivals: &[Arrival]) -> (Vec<Push>, Vec<Violation>) {
    let mut pushes = Vec::new();
    let mut violations = Vec::new();
    for a in arrivals {
        match &a.push {
            Ok(p) => pushes.push(p.clone()),
            Err(body) => violations.push(Violation {
                checker: "push-body",
                order_id: String::new(),
                detail: format!("a push at {} is not {{userId, orderId, type, message, eventId}}: {body}", a.at_ms),
            }),
        }
    }
    (pushes, violations)
}

/// A violation of `checker` shown with the record's coordinates.
fn violation(checker: &'static str, r: &TapRecord, detail: String) -> Violation {
    Violation {
        checker,
        order_id: r.order_id.clone().unwrap_or_default(),
        detail: format!("{} ({}[{}]@{})", detail, r.topic, r.partition, r.offset),
    }
}

/// Every record on a saga topic is its topic's contract record, whichever compatible version
/// of the schema wrote it (the tap resolves the writer's schema by id and reads by name).
fn contract(records: &[TapRecord]) -> Vec<Violation> {
    let broken = records.iter().filter(|r| !r.dead_letter && r.saga_topic.is_some() && r.raw != SUITE_POISON);
    broken.filter_map(|r| r.contract_error.as_ref().map(|e| violation("contract", r, e.clone()))).collect()
}

fn text<'a>(r: &'a TapRecord, field: &str) -> Option<&'a str> {
    r.value.as_ref()?.get(field)?.as_str()
}

/// Each push's eventId is that of the record that caused it ([`push_cause`]), for the same
/// order and user.
pub fn push_causes(records: &[&TapRecord], pushes: &[Push]) -> Vec<Violation> {
    let by_id: HashMap<(SagaTopic, &str), &TapRecord> =
        records.iter().filter_map(|r| Some(((r.saga_topic?, r.event_id.as_deref()?), *r))).collect();
    let mut violations = Vec::new();
    for p in pushes {
        let v = |detail: String| Violation { checker: "push-event-id", order_id: p.order_id.clone(), detail };
        let topic = push_cause(p.kind);
        match by_id.get(&(topic, p.event_id.as_str())) {
            None => violations.push(v(format!("{} push carries eventId {:?}, which is no {} record's: it must be the eventId of the {} that caused it", p.kind, p.event_id, topic.default_name(), topic.default_name()))),
            Some(r) if r.order_id.as_deref() != Some(p.order_id.as_str()) || text(r, "userId") != Some(p.user_id.as_str()) => violations.push(v(format!(
                "{} push for order {} / user {} carries the eventId of {} for order {:?} / user {:?}",
                p.kind,
                p.order_id,
                p.user_id,
                topic.default_name(),
                r.order_id,
                text(r, "userId")
            ))),
            Some(_) => {}
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use serde_json::json;

    const T0: i64 = 1_790_000_000_000;
    const WINDOW: RunWindow = RunWindow { start_ms: T0, end_ms: T0 + 60_000, tolerance_ms: 5_000 };
    const ORDER: &str = "0b7e3d5e-6f41-4a4e-9d38-7b1c1c0f0a01";

    fn id(n: u8) -> String {
        format!("00000000-0000-4000-8000-0000000000{n:02x}")
    }

    fn record(topic: SagaTopic, value: Value) -> TapRecord {
        TapRecord::of(topic, value)
    }

    /// One confirmed and one cancelled order, each with its pushes, all as the contract says.
    fn healthy() -> (Vec<TapRecord>, Vec<Push>) {
        let other = "0b7e3d5e-6f41-4a4e-9d38-7b1c1c0f0a02";
        let items = json!([{"productId": "P1", "quantity": 3, "unitPrice": 33.33}, {"productId": "P2", "quantity": 1, "unitPrice": 0.1}]);
        let records = vec![
            record(
                SagaTopic::OrderCreated,
                json!({"eventId": id(1), "eventTimestamp": T0 + 10, "orderId": ORDER, "userId": "U1", "storeId": "S1", "items": items, "totalAmount": 100.09, "createdAt": T0 + 10}),
            ),
            record(
                SagaTopic::StockReserved,
                json!({"eventId": id(2), "eventTimestamp": T0 + 20, "orderId": ORDER, "reservedItems": [], "reservedAt": T0 + 20}),
            ),
            record(
                SagaTopic::OrderConfirmed,
                json!({"eventId": id(3), "eventTimestamp": T0 + 30, "orderId": ORDER, "userId": "U1", "totalAmount": 100.09, "confirmedAt": T0 + 30}),
            ),
            record(
                SagaTopic::OrderCreated,
                json!({"eventId": id(4), "eventTimestamp": T0 + 40, "orderId": other, "userId": "U2", "storeId": "S1", "items": items, "totalAmount": 100.09, "createdAt": T0 + 40}),
            ),
            record(
                SagaTopic::StockReservationFailed,
                json!({"eventId": id(5), "eventTimestamp": T0 + 50, "orderId": other, "failedItems": [], "failureReason": "INSUFFICIENT_STOCK", "failedAt": T0 + 50}),
            ),
            record(
                SagaTopic::OrderCancelled,
                json!({"eventId": id(6), "eventTimestamp": T0 + 60, "orderId": other, "userId": "U2", "items": [{"productId": "P2", "quantity": 1}, {"productId": "P1", "quantity": 3}], "cancellationReason": "STOCK_UNAVAILABLE", "cancelledAt": T0 + 60}),
            ),
        ];
        let push = |order: &str, user: &str, kind: PushKind, event: u8| Push {
            user_id: user.into(),
            order_id: order.into(),
            kind,
            message: "m".into(),
            event_id: id(event),
        };
        let pushes = vec![
            push(ORDER, "U1", PushKind::OrderConfirmed, 3),
            push(ORDER, "U1", PushKind::PaymentWait, 3),
            push(other, "U2", PushKind::OrderCancelled, 6),
        ];
        (records, pushes)
    }

    fn checkers_of(violations: &[Violation]) -> Vec<&'static str> {
        violations.iter().map(|v| v.checker).collect()
    }

    #[test]
    fn a_record_that_is_not_the_contracts_is_caught_but_not_the_suites_own_poison() {
        let (mut records, pushes) = healthy();
        let mut poison = records[0].clone();
        (poison.raw, poison.value, poison.contract_error) = (SUITE_POISON.to_vec(), None, Some("cannot decode".into()));
        records.push(poison);
        assert!(check_run(&records, &pushes, WINDOW).is_empty(), "the suite's poison is not the implementation's");
        records[1].contract_error = Some("expected StockReserved, got OrderCreated".into());
        assert_eq!(checkers_of(&check_run(&records, &pushes, WINDOW)), ["contract"]);
    }

    #[test]
    fn a_conforming_run_passes() {
        let (records, pushes) = healthy();
        assert_eq!(check_run(&records, &pushes, WINDOW), vec![]);
    }

    #[test]
    fn a_redelivered_record_and_a_dead_letter_copy_are_allowed() {
        let (mut records, pushes) = healthy();
        let mut again = records[0].clone();
        again.offset = 7;
        records.push(again);
        let mut dead = records[1].clone();
        dead.dead_letter = true;
        dead.topic = "stock.reserved.dlt".into();
        records.push(dead);
        assert_eq!(check_run(&records, &pushes, WINDOW), vec![]);
    }

    #[test]
    fn an_effect_reusing_its_causes_event_id_is_caught() {
        let (mut records, pushes) = healthy();
        let mut reserved = records[1].value.clone().unwrap();
        reserved["eventId"] = json!(id(1));
        records[1] = record(SagaTopic::StockReserved, reserved);
        let v = check_run(&records, &pushes, WINDOW);
        assert_eq!(checkers_of(&v), ["event-id"], "{v:?}");
        assert!(v[0].detail.contains("order.created"), "{}", v[0]);
    }

    #[test]
    fn one_event_id_on_two_different_records_of_a_topic_is_caught() {
        let (mut records, pushes) = healthy();
        let mut second = records[0].value.clone().unwrap();
        second["orderId"] = json!("another-order");
        records.push(record(SagaTopic::OrderCreated, second));
        assert_eq!(checkers_of(&check_run(&records, &pushes, WINDOW)), ["event-id"]);
    }

    #[test]
    fn an_event_id_that_is_not_a_uuid_is_caught() {
        let (mut records, pushes) = healthy();
        for bad in ["42", "0000000000004000800000000000001f", ""] {
            let mut value = records[1].value.clone().unwrap();
            value["eventId"] = json!(bad);
            records[1] = record(SagaTopic::StockReserved, value);
            assert_eq!(checkers_of(&check_run(&records, &pushes, WINDOW)), ["event-id"], "{bad:?}");
        }
    }

    #[test]
    fn seconds_microseconds_and_stale_timestamps_are_caught() {
        let (records, pushes) = healthy();
        for (field, value, hint) in [
            ("eventTimestamp", json!(T0 / 1000), "seconds"),
            ("reservedAt", json!((T0 + 20) * 1000), "microseconds"),
            ("reservedAt", json!(T0 - 3_600_000), "outside"),
            ("reservedAt", json!("2026-12-01T20:00:00Z"), "not epoch"),
        ] {
            let mut broken = records.clone();
            let mut value_of = broken[1].value.clone().unwrap();
            value_of[field] = value;
            broken[1] = record(SagaTopic::StockReserved, value_of);
            let v = check_run(&broken, &pushes, WINDOW);
            assert_eq!(checkers_of(&v), ["timestamp"], "{field}: {v:?}");
            assert!(v[0].detail.contains(hint), "{}", v[0]);
        }
    }

    #[test]
    fn the_clock_skew_tolerance_is_honoured() {
        let (mut records, pushes) = healthy();
        let mut value = records[1].value.clone().unwrap();
        value["reservedAt"] = json!(T0 - 4_000);
        records[1] = record(SagaTopic::StockReserved, value);
        assert_eq!(check_run(&records, &pushes, WINDOW), vec![]);
        assert_eq!(
            checkers_of(&check_run(&records, &pushes, RunWindow { tolerance_ms: 1_000, ..WINDOW })),
            ["timestamp"]
        );
    }

    #[test]
    fn a_push_carrying_the_wrong_event_id_is_caught() {
        let (records, pushes) = healthy();
        // PAYMENT_WAIT with the stock.reserved eventId; ORDER_CANCELLED with the failure's; an
        // invented id; ORDER_CANCELLED with the order.confirmed's.
        for (i, event) in [(1, id(2)), (2, id(5)), (0, uuid::Uuid::new_v4().to_string()), (2, id(3))] {
            let mut broken = pushes.clone();
            broken[i].event_id = event.clone();
            let v = check_run(&records, &broken, WINDOW);
            assert_eq!(checkers_of(&v), ["push-event-id"], "push {i} with {event}: {v:?}");
        }
        let mut broken = pushes.clone();
        broken[0].order_id = "0b7e3d5e-6f41-4a4e-9d38-7b1c1c0f0a02".into();
        assert_eq!(
            checkers_of(&check_run(&records, &broken, WINDOW)),
            ["push-event-id"],
            "the right id for another order"
        );
    }

    #[test]
    fn a_push_of_a_type_outside_the_contract_is_a_body_that_is_no_push() {
        let body = br#"{"userId": "U1", "orderId": "o", "type": "CONFIRMED", "message": "m", "eventId": "e"}"#;
        let arrival = Arrival { at_ms: T0, push: crate::observed::read_push(body) };
        let (pushes, v) = pushes_of(&[arrival]);
        assert!(pushes.is_empty());
        assert_eq!(checkers_of(&v), ["push-body"]);
        assert!(
            v[0].detail.contains(r#"push type "CONFIRMED" is none of ORDER_CONFIRMED, PAYMENT_WAIT, ORDER_CANCELLED"#),
            "{v:?}"
        );
    }

    #[test]
    fn a_cancellation_without_the_orders_lines_or_key_is_caught() {
        let (records, pushes) = healthy();
        let mut no_lines = records.clone();
        let mut value = no_lines[5].value.clone().unwrap();
        value["items"] = json!([{"productId": "P1", "quantity": 3}]);
        no_lines[5] = record(SagaTopic::OrderCancelled, value);
        assert_eq!(checkers_of(&check_run(&no_lines, &pushes, WINDOW)), ["cancelled-fields"]);
        let mut wrong_key = records.clone();
        wrong_key[5].key = Some("U2".into());
        assert_eq!(checkers_of(&check_run(&wrong_key, &pushes, WINDOW)), ["cancelled-fields"]);
        let mut wrong_user = records;
        let mut value = wrong_user[5].value.clone().unwrap();
        value["userId"] = json!("U1");
        wrong_user[5] = record(SagaTopic::OrderCancelled, value);
        // The push names user U2, so the push check sees the mismatch too.
        assert_eq!(checkers_of(&check_run(&wrong_user, &pushes, WINDOW)), ["push-event-id", "cancelled-fields"]);
    }

    #[test]
    fn a_confirmation_with_another_total_is_caught_but_not_another_spelling() {
        let (records, pushes) = healthy();
        for (total, caught) in
            [(json!(100.1), true), (json!(3.0 * 33.33 + 0.1), true), (json!("100.09"), false), (json!(100.090), false)]
        {
            let mut broken = records.clone();
            let mut value = broken[2].value.clone().unwrap();
            value["totalAmount"] = total.clone();
            broken[2] = record(SagaTopic::OrderConfirmed, value);
            let v = check_run(&broken, &pushes, WINDOW);
            assert_eq!(checkers_of(&v), if caught { vec!["confirmed-fields"] } else { vec![] }, "{total}: {v:?}");
        }
    }

    #[test]
    fn a_push_body_that_is_not_a_push_is_caught() {
        let arrivals = vec![
            Arrival { at_ms: T0, push: Err("{\"hello\":1}".into()) },
            Arrival { at_ms: T0, push: Ok(healthy().1[0].clone()) },
        ];
        let (pushes, violations) = pushes_of(&arrivals);
        assert_eq!(pushes.len(), 1);
        assert_eq!(checkers_of(&violations), ["push-body"]);
    }
}
