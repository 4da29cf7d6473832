//! The checkers: Jepsen-style judgements over what the kit observed ([`crate::observed`]: the
//! tap's log, the pushes) and the plain facts the steps, the bench and the monitor hand them.
//! Each returns the violations it found (empty = holds), worded so a failed scenario says what
//! went wrong and where. They are pure functions — no checker imports a step, a client or a
//! backend — each tested below its code on synthetic inputs built to contain exactly one kind
//! of violation.
//!
//! - here: [`Violation`] and the checks over the tap's log — keys, causal order, duplicated
//!   effects, lost events, contract matches, second effects, both outcomes;
//! - [`once`]: what **lost** and **duplicated** mean, defined once for the checkers here, the
//!   crash load's and the bench's counts;
//! - [`crash`]: what a steady load's orders ended as after a crash (intake, unsettled orders,
//!   payments, pushes, stock);
//! - [`fields`]: field meanings over the whole run (eventIds, timestamps, push causes, lines);
//! - [`stages`]: a saga's stage latencies, defined once for the steps, the bench and the monitor;
//! - [`capacity`]: the declared capacity sustained, and recovery within its budget.

pub mod capacity;
pub mod crash;
pub mod fields;
pub mod once;
pub mod stages;

use crate::observed::{Push, TapRecord};
use saga_contract::{PushKind, SagaTopic};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub order_id: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] order {}: {}", self.checker, self.order_id, self.detail)
    }
}

fn saga_records<'a>(log: &'a [TapRecord], orders: &'a BTreeSet<String>) -> impl Iterator<Item = &'a TapRecord> + 'a {
    log.iter().filter(move |r| {
        !r.dead_letter && r.saga_topic.is_some() && r.order_id.as_ref().is_some_and(|o| orders.contains(o))
    })
}

/// Every saga record of `orders` is keyed by its orderId (the seed's partition key).
pub fn keyed_by_order_id(log: &[TapRecord], orders: &BTreeSet<String>) -> Vec<Violation> {
    saga_records(log, orders)
        .filter(|r| r.key.as_deref() != r.order_id.as_deref())
        .map(|r| Violation {
            checker: "key",
            order_id: r.order_id.clone().unwrap_or_default(),
            detail: format!("{}[{}]@{} has key {:?}, expected the orderId", r.topic, r.partition, r.offset, r.key),
        })
        .collect()
}

/// For each order, the first record of each topic in `chain` appears no earlier than the first
/// record of the topic before it (by record timestamp, which the producer sets when it sends),
/// and a later topic is never present without the earlier one.
pub fn causal_order(log: &[TapRecord], orders: &BTreeSet<String>, chain: &[(SagaTopic, &str)]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for order_id in orders {
        let first = |topic: &str| {
            log.iter()
                .filter(|r| !r.dead_letter && r.topic == topic && r.order_id.as_deref() == Some(order_id))
                .map(|r| r.timestamp_ms)
                .min()
        };
        for pair in chain.windows(2) {
            let (before, after) = (pair[0].1, pair[1].1);
            match (first(before), first(after)) {
                (Some(b), Some(a)) if a < b => violations.push(Violation {
                    checker: "causal-order",
                    order_id: order_id.clone(),
                    detail: format!("{after} at {a} precedes its cause {before} at {b}"),
                }),
                (None, Some(_)) => violations.push(Violation {
                    checker: "causal-order",
                    order_id: order_id.clone(),
                    detail: format!("{after} was published without any {before}"),
                }),
                _ => {}
            }
        }
    }
    violations
}

/// At most one effect per order and topic: records with distinct eventIds on one topic for
/// one order are duplicated effects ([`once::duplicated`]; a redelivery keeps its eventId and
/// is not counted).
pub fn duplicate_effects(log: &[TapRecord], orders: &BTreeSet<String>) -> Vec<Violation> {
    let mut effects: BTreeMap<&str, once::Effects> = BTreeMap::new();
    for r in saga_records(log, orders) {
        effects.entry(r.order_id.as_deref().unwrap_or_default()).or_default().add_record(r);
    }
    effects.iter().flat_map(|(order_id, effects)| once::duplicated(order_id, effects)).collect()
}

/// Each order has a record on every topic of `expected`.
pub fn lost_events(log: &[TapRecord], orders: &BTreeSet<String>, expected: &[&str]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for order_id in orders {
        for topic in expected {
            if !log.iter().any(|r| !r.dead_letter && r.topic == *topic && r.order_id.as_deref() == Some(order_id)) {
                violations.push(Violation {
                    checker: "lost",
                    order_id: order_id.clone(),
                    detail: format!("no {topic} event"),
                });
            }
        }
    }
    violations
}

/// Every saga record of `orders` decoded and matched the contract.
pub fn contract_violations(log: &[TapRecord], orders: &BTreeSet<String>) -> Vec<Violation> {
    saga_records(log, orders)
        .filter_map(|r| {
            r.contract_error.as_ref().map(|e| Violation {
                checker: "contract",
                order_id: r.order_id.clone().unwrap_or_default(),
                detail: format!("{}[{}]@{}: {e}", r.topic, r.partition, r.offset),
            })
        })
        .collect()
}

/// A record the suite published itself (late and stray events): (topic, partition, offset).
pub type Injected = BTreeSet<(String, i32, i64)>;

/// Nothing answered twice or both ways, anywhere: for each of `orders`, at most one event per
/// saga topic (by eventId), never both `stock.reserved` and `stock.reservation.failed` nor
/// both `order.confirmed` and `order.cancelled`, at most one push of each kind (by eventId),
/// and no `ORDER_CANCELLED` push beside an `ORDER_CONFIRMED` or `PAYMENT_WAIT` one. Records
/// the suite `injected` are its own, not effects. A redelivery or a late event that answers on
/// another topic than the one a scenario names is caught here.
pub fn second_effects(
    log: &[TapRecord],
    pushes: &[Push],
    orders: &BTreeSet<String>,
    injected: &Injected,
) -> Vec<Violation> {
    let effects: Vec<TapRecord> =
        log.iter().filter(|r| !injected.contains(&(r.topic.clone(), r.partition, r.offset))).cloned().collect();
    let mut violations = duplicate_effects(&effects, orders);
    violations.extend(conflicting_outcomes(&effects, orders));
    let mut pushed: BTreeMap<&str, once::Effects> = BTreeMap::new();
    for p in pushes.iter().filter(|p| orders.contains(&p.order_id)) {
        pushed.entry(&p.order_id).or_default().add_push(p);
    }
    for (order_id, effects) in pushed {
        violations.extend(once::duplicated(order_id, &effects));
        let kinds = &effects.pushes;
        let cancelled = kinds.contains_key(&PushKind::OrderCancelled);
        if cancelled && (kinds.contains_key(&PushKind::OrderConfirmed) || kinds.contains_key(&PushKind::PaymentWait)) {
            violations.push(Violation {
                checker: "conflicting pushes",
                order_id: order_id.to_string(),
                detail: format!("pushed both cancelled and confirmed/paid: {:?}", kinds.keys().collect::<Vec<_>>()),
            });
        }
    }
    violations
}

/// No order has both outcomes on Kafka: `stock.reserved` and `stock.reservation.failed`, or
/// `order.confirmed` and `order.cancelled` (e.g. a reservation handled twice after a crash).
pub fn conflicting_outcomes(log: &[TapRecord], orders: &BTreeSet<String>) -> Vec<Violation> {
    let mut topics: BTreeMap<&str, BTreeSet<SagaTopic>> = BTreeMap::new();
    for r in log.iter().filter(|r| !r.dead_letter) {
        if let (Some(order), Some(topic)) = (r.order_id.as_deref(), r.saga_topic)
            && orders.contains(order)
        {
            topics.entry(order).or_default().insert(topic);
        }
    }
    let pairs = [
        (SagaTopic::StockReserved, SagaTopic::StockReservationFailed),
        (SagaTopic::OrderConfirmed, SagaTopic::OrderCancelled),
    ];
    let mut violations = Vec::new();
    for (order, seen) in topics {
        for (a, b) in pairs {
            if seen.contains(&a) && seen.contains(&b) {
                violations.push(Violation {
                    checker: "conflict",
                    order_id: order.to_string(),
                    detail: format!("both {} and {} were published", a.default_name(), b.default_name()),
                });
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str = "order.created";
    const RESERVED: &str = "stock.reserved";
    const CONFIRMED: &str = "order.confirmed";

    fn record(topic: &str, order: &str, key: &str, partition: i32, ts: i64, event: &str) -> TapRecord {
        TapRecord {
            seq: 0,
            topic: topic.into(),
            saga_topic: saga_contract::Topics::default().topic_of(topic),
            dead_letter: false,
            partition,
            offset: ts,
            key: Some(key.into()),
            timestamp_ms: ts,
            seen_at_ms: ts,
            headers: vec![],
            schema_id: Some(1),
            record_name: None,
            value: None,
            event_id: Some(event.into()),
            order_id: Some(order.into()),
            contract_error: None,
            raw: vec![],
        }
    }

    fn healthy() -> Vec<TapRecord> {
        vec![
            record(CREATED, "o1", "o1", 0, 10, "e1"),
            record(RESERVED, "o1", "o1", 2, 20, "e2"),
            record(CONFIRMED, "o1", "o1", 1, 30, "e3"),
        ]
    }

    fn orders() -> BTreeSet<String> {
        ["o1".to_string()].into()
    }

    fn chain() -> Vec<(SagaTopic, &'static str)> {
        vec![
            (SagaTopic::OrderCreated, CREATED),
            (SagaTopic::StockReserved, RESERVED),
            (SagaTopic::OrderConfirmed, CONFIRMED),
        ]
    }

    #[test]
    fn a_healthy_log_passes_every_checker() {
        let log = healthy();
        assert!(keyed_by_order_id(&log, &orders()).is_empty());
        assert!(causal_order(&log, &orders(), &chain()).is_empty());
        assert!(duplicate_effects(&log, &orders()).is_empty());
        assert!(lost_events(&log, &orders(), &[CREATED, RESERVED, CONFIRMED]).is_empty());
        assert!(contract_violations(&log, &orders()).is_empty());
    }

    #[test]
    fn wrong_key_is_caught() {
        let mut log = healthy();
        log[1].key = Some("someone-else".into());
        let v = keyed_by_order_id(&log, &orders());
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains(RESERVED));
    }

    #[test]
    fn out_of_order_and_causeless_events_are_caught() {
        let mut log = healthy();
        log[2].timestamp_ms = 15; // confirmed before reserved
        assert_eq!(causal_order(&log, &orders(), &chain()).len(), 1);
        let causeless = vec![record(RESERVED, "o1", "o1", 0, 20, "e2")];
        let v = causal_order(&causeless, &orders(), &chain());
        assert!(v.iter().any(|v| v.detail.contains("without any order.created")), "{v:?}");
    }

    #[test]
    fn duplicate_effect_is_caught_but_a_redelivery_is_not() {
        let mut log = healthy();
        log.push(record(RESERVED, "o1", "o1", 2, 25, "e2")); // redelivery: same eventId
        assert!(duplicate_effects(&log, &orders()).is_empty());
        log.push(record(RESERVED, "o1", "o1", 2, 26, "e9")); // a second effect
        let v = duplicate_effects(&log, &orders());
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("2 distinct stock.reserved"));
    }

    #[test]
    fn missing_event_is_caught() {
        let log: Vec<_> = healthy().into_iter().filter(|r| r.topic != CONFIRMED).collect();
        let v = lost_events(&log, &orders(), &[CREATED, RESERVED, CONFIRMED]);
        assert_eq!(
            v,
            vec![Violation { checker: "lost", order_id: "o1".into(), detail: "no order.confirmed event".into() }]
        );
    }

    fn push(kind: PushKind, event: &str) -> Push {
        Push { user_id: "u".into(), order_id: "o1".into(), kind, message: String::new(), event_id: event.into() }
    }

    #[test]
    fn an_effect_on_any_topic_or_at_the_gateway_is_a_second_effect() {
        let pushes = vec![push(PushKind::OrderConfirmed, "e3"), push(PushKind::OrderConfirmed, "e3")];
        let none = Injected::new();
        assert!(second_effects(&healthy(), &pushes, &orders(), &none).is_empty(), "a resent push is not a second one");
        // A late stock.reservation.failed the suite injected is not an effect; the order.cancelled
        // the implementation answered it with is, though no step named that topic.
        let mut log = healthy();
        let mut late = record("stock.reservation.failed", "o1", "o1", 0, 40, "e4");
        late.offset = 7;
        log.push(late);
        let injected: Injected = [("stock.reservation.failed".to_string(), 0, 7)].into();
        assert!(second_effects(&log, &pushes, &orders(), &injected).is_empty());
        assert_eq!(second_effects(&log, &pushes, &orders(), &none).len(), 1, "uninjected, it conflicts");
        log.push(record("order.cancelled", "o1", "o1", 0, 50, "e5"));
        let v = second_effects(&log, &pushes, &orders(), &injected);
        assert!(v.len() == 1 && v[0].detail.contains("order.confirmed and order.cancelled"), "{v:?}");
        let mut twice = pushes.clone();
        twice.push(push(PushKind::OrderConfirmed, "e9"));
        twice.push(push(PushKind::OrderCancelled, "e5"));
        let v = second_effects(&healthy(), &twice, &orders(), &none);
        assert_eq!(v.iter().map(|v| v.checker).collect::<Vec<_>>(), ["second push", "conflicting pushes"], "{v:?}");
    }

    #[test]
    fn contract_errors_are_reported() {
        let mut log = healthy();
        log[0].contract_error = Some("expected OrderCreated".into());
        assert_eq!(contract_violations(&log, &orders()).len(), 1);
    }

    #[test]
    fn both_outcomes_on_kafka_are_caught() {
        let record =
            |topic: SagaTopic, order: &str| TapRecord::of(topic, serde_json::json!({"orderId": order, "eventId": "e"}));
        let orders: BTreeSet<String> = ["o1".to_string(), "o2".to_string()].into();
        let mut log = vec![
            record(SagaTopic::OrderCreated, "o1"),
            record(SagaTopic::StockReserved, "o1"),
            record(SagaTopic::StockReservationFailed, "o2"),
            record(SagaTopic::OrderCancelled, "o2"),
        ];
        assert!(conflicting_outcomes(&log, &orders).is_empty());
        log.push(record(SagaTopic::StockReservationFailed, "o1"));
        let v = conflicting_outcomes(&log, &orders);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].order_id, "o1");
    }
}
