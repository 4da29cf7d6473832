//! Reassembly: each order's saga from its records as they arrive (any topic first — the
//! partitions are fetched independently), when it is complete, when it is past its deadline,
//! and what [`super::rules`] finds in it. Pure state over the monitor's clock (epoch ms, passed
//! in), so the tests below drive it without Kafka.
//!
//! A saga is watched from its `order.created`: records of an order whose start the monitor
//! never saw (it began before the monitor's start position) are kept for one deadline in case
//! the `order.created` is merely late, then dropped unjudged. A watched saga is judged when it
//! is complete — its chain's three records, and on the happy path the Payment Service's group
//! past its `order.confirmed` (when that group is known) — and again on every later record;
//! one that is not complete a deadline after its start is past its deadline, and judged with its
//! missing records counted as lost. Each checker counts at most once per saga: a saga's
//! violation is the first finding, later ones of the same checker add nothing.

use super::rules;
use crate::checkers::Violation;
use crate::checkers::fields::RunWindow;
use crate::checkers::stages::Stamps;
use crate::observed::TapRecord;
use saga_contract::{SagaTopic, Topics};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How many deadlines a saga past its deadline stays watched (and in the gauge) before it is
/// forgotten: long enough to see a stopped service come back, bounded so memory is.
const OVERDUE_KEPT: i64 = 10;

#[derive(Debug, Clone)]
pub struct Settings {
    pub topics: Topics,
    pub deadline_ms: i64,
    /// The earliest time an event of a watched saga may carry (the start position).
    pub window_start_ms: i64,
    pub clock_skew_ms: i64,
    /// Whether the Payment Service's group is known: then the happy path ends when it has
    /// consumed the `order.confirmed`, otherwise at the `order.confirmed` itself.
    pub payment_tracked: bool,
}

/// One record's coordinates, the evidence a violation is shown with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub event_id: Option<String>,
    pub timestamp_ms: i64,
}

/// A checker's first finding in one saga.
#[derive(Debug, Clone)]
pub struct Found {
    pub at_ms: i64,
    pub requirement: &'static str,
    pub checker: &'static str,
    pub order_id: String,
    pub detail: String,
    pub evidence: Vec<Evidence>,
}

/// What a call changed, for the metrics and the page.
#[derive(Debug, Default)]
pub struct Changes {
    pub found: Vec<Found>,
    /// Stage latencies of sagas that just completed: (stage, seconds).
    pub stages: Vec<(&'static str, f64)>,
}

#[derive(Debug)]
struct Saga {
    records: Vec<TapRecord>,
    first_seen_ms: i64,
    /// When its `order.created` arrived: the saga is watched from then.
    started_ms: Option<i64>,
    /// When the Payment Service's group was first seen past its `order.confirmed`.
    consumed_ms: Option<i64>,
    completed_ms: Option<i64>,
    overdue: bool,
    counted: BTreeSet<&'static str>,
}

pub struct Sagas {
    settings: Settings,
    sagas: HashMap<String, Saga>,
    /// `order.confirmed` records waiting for the Payment Service's group: partition → offset → order.
    unconsumed: BTreeMap<i32, BTreeMap<i64, String>>,
}

impl Sagas {
    pub fn new(settings: Settings) -> Sagas {
        Sagas { settings, sagas: HashMap::new(), unconsumed: BTreeMap::new() }
    }

    /// A record read from a saga topic. Dead letters are copies of records already seen, and a
    /// record without an orderId belongs to no saga; both are left out.
    pub fn record(&mut self, mut record: TapRecord, now_ms: i64) -> Changes {
        let (false, Some(order)) = (record.dead_letter, record.order_id.clone()) else { return Changes::default() };
        record.raw = Vec::new(); // decoded already; the bytes are not evidence anyone reads
        let saga = self.sagas.entry(order.clone()).or_insert_with(|| Saga {
            records: Vec::new(),
            first_seen_ms: now_ms,
            started_ms: None,
            consumed_ms: None,
            completed_ms: None,
            overdue: false,
            counted: BTreeSet::new(),
        });
        match record.saga_topic {
            Some(SagaTopic::OrderCreated) => {
                saga.started_ms.get_or_insert(now_ms);
            }
            Some(SagaTopic::OrderConfirmed) if self.settings.payment_tracked && saga.consumed_ms.is_none() => {
                self.unconsumed.entry(record.partition).or_default().insert(record.offset, order.clone());
            }
            _ => {}
        }
        saga.records.push(record);
        self.update(&order, now_ms)
    }

    /// The Payment Service's group has committed `committed` on `order.confirmed[partition]`:
    /// every record before it was consumed.
    pub fn consumed(&mut self, partition: i32, committed: i64, now_ms: i64) -> Changes {
        let Some(waiting) = self.unconsumed.get_mut(&partition) else { return Changes::default() };
        let still = waiting.split_off(&committed);
        let done = std::mem::replace(waiting, still);
        let mut changes = Changes::default();
        for order in done.into_values() {
            if let Some(saga) = self.sagas.get_mut(&order) {
                saga.consumed_ms.get_or_insert(now_ms);
                changes.extend(self.update(&order, now_ms));
            }
        }
        changes
    }

    /// Deadlines and forgetting: sagas that just went past their deadline are judged with their
    /// missing records; finished ones are forgotten a deadline after they completed.
    pub fn tick(&mut self, now_ms: i64) -> Changes {
        let deadline = self.settings.deadline_ms;
        let due: Vec<String> = self
            .sagas
            .iter()
            .filter(|(_, s)| {
                s.completed_ms.is_none() && !s.overdue && s.started_ms.is_some_and(|t| t + deadline <= now_ms)
            })
            .map(|(o, _)| o.clone())
            .collect();
        let mut changes = Changes::default();
        for order in due {
            self.sagas.get_mut(&order).expect("due saga").overdue = true;
            changes.extend(self.update(&order, now_ms));
        }
        let before = self.sagas.len();
        self.sagas.retain(|_, s| match (s.started_ms, s.completed_ms) {
            (_, Some(done)) => done + deadline > now_ms,
            (Some(started), None) => started + OVERDUE_KEPT * deadline > now_ms,
            (None, None) => s.first_seen_ms + deadline > now_ms,
        });
        if self.sagas.len() < before {
            let sagas = &self.sagas;
            for waiting in self.unconsumed.values_mut() {
                waiting.retain(|_, order| sagas.contains_key(order));
            }
        }
        changes
    }

    /// (watched sagas not complete, of which past their deadline).
    pub fn in_flight(&self) -> (usize, usize) {
        let open = self.sagas.values().filter(|s| s.started_ms.is_some() && s.completed_ms.is_none());
        open.fold((0, 0), |(all, late), s| (all + 1, late + usize::from(s.overdue)))
    }

    fn names(&self, chain: [SagaTopic; 3]) -> Vec<(SagaTopic, &str)> {
        chain.into_iter().map(|t| (t, self.settings.topics.name(t))).collect()
    }

    /// Completes and judges `order`'s saga as far as its records allow.
    fn update(&mut self, order: &str, now_ms: i64) -> Changes {
        let mut changes = Changes::default();
        let Some(saga) = self.sagas.get(order).filter(|s| s.started_ms.is_some()) else { return changes };
        let chain = rules::chain(&saga.records);
        let names = self.names(chain);
        let first = |topic: SagaTopic| {
            saga.records.iter().filter(|r| r.saga_topic == Some(topic)).map(|r| r.timestamp_ms).min()
        };
        let [created, outcome, end] = chain.map(first);
        let paid =
            chain[2] != SagaTopic::OrderConfirmed || !self.settings.payment_tracked || saga.consumed_ms.is_some();
        let complete = created.is_some() && outcome.is_some() && end.is_some() && paid;
        if !complete && !saga.overdue {
            return changes;
        }
        let window = RunWindow {
            start_ms: self.settings.window_start_ms,
            end_ms: now_ms,
            tolerance_ms: self.settings.clock_skew_ms,
        };
        let violations = rules::check(&saga.records, order, &names, window, saga.overdue && !complete);
        let evidence: Vec<Evidence> = saga.records.iter().map(evidence).collect();
        let saga = self.sagas.get_mut(order).expect("saga just read");
        for (checker, details) in by_checker(violations) {
            if saga.counted.insert(checker) {
                changes.found.push(Found {
                    at_ms: now_ms,
                    requirement: rules::requirement(checker),
                    checker,
                    order_id: order.to_string(),
                    detail: details.join("; "),
                    evidence: evidence.clone(),
                });
            }
        }
        if complete && saga.completed_ms.is_none() {
            saga.completed_ms = Some(now_ms);
            if let (Some(created), Some(outcome), Some(end)) = (created, outcome, end) {
                // Consumption is seen on the monitor's clock when the group's commit is read: an
                // upper bound (commit interval plus poll interval), compared with the
                // order.confirmed's own timestamp. Without it the saga ends at its end record.
                let consumed = saga.consumed_ms.filter(|_| chain[2] == SagaTopic::OrderConfirmed);
                let stamps = Stamps {
                    sent_ms: Some(created as f64),
                    created_ms: Some(created as f64),
                    reserved_ms: Some(outcome as f64),
                    ended_ms: Some(end as f64),
                    paid_ms: consumed.map(|c| c as f64),
                };
                let ended = Stamps { paid_ms: Some(consumed.unwrap_or(end) as f64), ..stamps };
                let stages = [
                    ("reservation", stamps.reservation()),
                    ("confirmation", stamps.confirmation()),
                    ("payment", stamps.payment()),
                    ("saga", ended.saga()),
                ];
                for (stage, ms) in stages {
                    if let Some(ms) = ms {
                        changes.stages.push((stage, ms.max(0.0) / 1000.0));
                    }
                }
            }
        }
        changes
    }
}

impl Changes {
    fn extend(&mut self, other: Changes) {
        self.found.extend(other.found);
        self.stages.extend(other.stages);
    }
}

fn evidence(r: &TapRecord) -> Evidence {
    Evidence {
        topic: r.topic.clone(),
        partition: r.partition,
        offset: r.offset,
        key: r.key.clone(),
        event_id: r.event_id.clone(),
        timestamp_ms: r.timestamp_ms,
    }
}

/// The violations' details per checker, in the checkers' order.
fn by_checker(violations: Vec<Violation>) -> Vec<(&'static str, Vec<String>)> {
    let mut grouped: Vec<(&'static str, Vec<String>)> = Vec::new();
    for v in violations {
        match grouped.iter_mut().find(|(c, _)| *c == v.checker) {
            Some((_, details)) => details.push(v.detail),
            None => grouped.push((v.checker, vec![v.detail])),
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const T0: i64 = 1_790_000_000_000;
    const DEADLINE: i64 = 5_000;
    const ORDER: &str = "0b7e3d5e-6f41-4a4e-9d38-7b1c1c0f0a01";

    fn sagas(payment_tracked: bool) -> Sagas {
        Sagas::new(Settings {
            topics: Topics::default(),
            deadline_ms: DEADLINE,
            window_start_ms: T0,
            clock_skew_ms: 1_000,
            payment_tracked,
        })
    }

    fn id(n: u8) -> String {
        format!("00000000-0000-4000-8000-0000000000{n:02x}")
    }

    fn record(topic: SagaTopic, offset: i64, value: Value) -> TapRecord {
        TapRecord { partition: 1, offset, ..TapRecord::of(topic, value) }
    }

    fn created() -> TapRecord {
        let items = json!([{"productId": "P1", "quantity": 3, "unitPrice": 33.33}]);
        record(
            SagaTopic::OrderCreated,
            10,
            json!({"eventId": id(1), "eventTimestamp": T0 + 10, "orderId": ORDER, "userId": "U1", "storeId": "S1", "items": items, "totalAmount": 99.99, "createdAt": T0 + 10}),
        )
    }

    fn reserved(event: u8, at: i64) -> TapRecord {
        record(
            SagaTopic::StockReserved,
            20 + i64::from(event),
            json!({"eventId": id(event), "eventTimestamp": at, "orderId": ORDER, "reservedItems": [], "reservedAt": at}),
        )
    }

    fn confirmed() -> TapRecord {
        record(
            SagaTopic::OrderConfirmed,
            30,
            json!({"eventId": id(3), "eventTimestamp": T0 + 30, "orderId": ORDER, "userId": "U1", "totalAmount": 99.99, "confirmedAt": T0 + 30}),
        )
    }

    fn failed() -> TapRecord {
        record(
            SagaTopic::StockReservationFailed,
            40,
            json!({"eventId": id(4), "eventTimestamp": T0 + 20, "orderId": ORDER, "failedItems": [], "failureReason": "INSUFFICIENT_STOCK", "failedAt": T0 + 20}),
        )
    }

    fn cancelled() -> TapRecord {
        record(
            SagaTopic::OrderCancelled,
            50,
            json!({"eventId": id(5), "eventTimestamp": T0 + 30, "orderId": ORDER, "userId": "U1", "items": [{"productId": "P1", "quantity": 3}], "cancellationReason": "STOCK_UNAVAILABLE", "cancelledAt": T0 + 30}),
        )
    }

    /// Feeds `records` at T0 + 100 and returns what was found.
    fn feed(sagas: &mut Sagas, records: Vec<TapRecord>) -> Changes {
        let mut changes = Changes::default();
        for r in records {
            changes.extend(sagas.record(r, T0 + 100));
        }
        changes
    }

    fn checkers(changes: &Changes) -> Vec<(&str, &str)> {
        changes.found.iter().map(|f| (f.requirement, f.checker)).collect()
    }

    #[test]
    fn a_clean_saga_completes_once_payment_consumed_it_with_its_stage_latencies() {
        let mut s = sagas(true);
        let changes = feed(&mut s, vec![created(), reserved(2, T0 + 20), confirmed()]);
        assert!(changes.found.is_empty() && changes.stages.is_empty(), "{changes:?}");
        assert_eq!(s.in_flight(), (1, 0));
        let changes = s.consumed(1, 31, T0 + 130);
        assert!(changes.found.is_empty(), "{changes:?}");
        let stages: Vec<&str> = changes.stages.iter().map(|(s, _)| *s).collect();
        assert_eq!(stages, ["reservation", "confirmation", "payment", "saga"]);
        assert_eq!(changes.stages[2].1, 0.1, "consumed at T0+130, confirmed at T0+30");
        assert_eq!(s.in_flight(), (0, 0));
        assert!(s.tick(T0 + 130 + DEADLINE).found.is_empty());
        assert!(s.sagas.is_empty(), "forgotten a deadline after it completed");
    }

    #[test]
    fn a_cancelled_saga_completes_at_its_cancellation_whatever_the_arrival_order() {
        let mut s = sagas(true);
        let changes = feed(&mut s, vec![cancelled(), failed(), created()]);
        assert!(changes.found.is_empty(), "{changes:?}");
        assert_eq!(changes.stages.len(), 3, "reservation, confirmation, saga: {changes:?}");
        assert_eq!(s.in_flight(), (0, 0));
    }

    #[test]
    fn a_record_keyed_by_something_else_counts_once_under_order_1() {
        let mut s = sagas(false);
        let mut wrong = reserved(2, T0 + 20);
        wrong.key = Some("U1".into());
        let changes = feed(&mut s, vec![created(), wrong.clone(), confirmed()]);
        assert_eq!(checkers(&changes), [("ORDER-1", "key")]);
        assert!(changes.found[0].evidence.iter().any(|e| e.key.as_deref() == Some("U1") && e.offset == 22));
        wrong.offset = 99;
        assert!(feed(&mut s, vec![wrong]).found.is_empty(), "the same checker counts once per saga");
    }

    #[test]
    fn a_second_effect_with_a_new_event_id_counts_once_but_a_redelivery_does_not() {
        let mut s = sagas(false);
        assert!(feed(&mut s, vec![created(), reserved(2, T0 + 20), confirmed()]).found.is_empty());
        let mut again = reserved(2, T0 + 20);
        again.offset = 77;
        assert!(feed(&mut s, vec![again]).found.is_empty(), "same eventId: a redelivery");
        let changes = feed(&mut s, vec![reserved(9, T0 + 90)]);
        assert_eq!(checkers(&changes), [("ORDER-1", "duplicate")]);
        assert!(feed(&mut s, vec![reserved(10, T0 + 95)]).found.is_empty());
    }

    #[test]
    fn a_saga_without_its_last_step_is_past_its_deadline_and_counted_lost_once() {
        let mut s = sagas(true);
        assert!(feed(&mut s, vec![created(), failed()]).found.is_empty());
        assert!(s.tick(T0 + 100 + DEADLINE - 1).found.is_empty());
        assert_eq!(s.in_flight(), (1, 0));
        let changes = s.tick(T0 + 100 + DEADLINE);
        assert_eq!(checkers(&changes), [("ORDER-1", "lost")]);
        assert!(changes.found[0].detail.contains("order.cancelled"), "{:?}", changes.found[0]);
        assert_eq!(s.in_flight(), (1, 1));
        assert!(s.tick(T0 + 100 + 2 * DEADLINE).found.is_empty());
        s.tick(T0 + 100 + OVERDUE_KEPT * DEADLINE);
        assert_eq!(s.in_flight(), (0, 0), "forgotten after {OVERDUE_KEPT} deadlines");
    }

    #[test]
    fn a_confirmation_payment_never_consumed_is_late_but_no_violation_until_it_is() {
        let mut s = sagas(true);
        feed(&mut s, vec![created(), reserved(2, T0 + 20), confirmed()]);
        assert!(s.tick(T0 + 100 + DEADLINE).found.is_empty(), "no record is missing");
        assert_eq!(s.in_flight(), (1, 1));
        let changes = s.consumed(1, 31, T0 + 200 + DEADLINE);
        assert!(changes.found.is_empty());
        assert_eq!(changes.stages.len(), 4);
        assert_eq!(s.in_flight(), (0, 0));
    }

    #[test]
    fn both_outcomes_count_under_crash_1_and_a_bad_field_under_fields_1() {
        let mut s = sagas(false);
        let changes = feed(&mut s, vec![created(), reserved(2, T0 + 20), confirmed(), failed()]);
        assert_eq!(checkers(&changes), [("CRASH-1", "conflict")]);
        let mut s = sagas(false);
        let mut seconds = confirmed();
        seconds.value.as_mut().unwrap()["confirmedAt"] = json!((T0 + 30) / 1000);
        let changes = feed(&mut s, vec![created(), reserved(2, T0 + 20), seconds]);
        assert_eq!(checkers(&changes), [("FIELDS-1", "timestamp")]);
    }

    #[test]
    fn records_of_a_saga_begun_before_the_monitor_are_not_judged() {
        let mut s = sagas(false);
        let mut wrong = confirmed();
        wrong.key = Some("other".into());
        assert!(feed(&mut s, vec![reserved(2, T0 + 20), wrong]).found.is_empty());
        assert_eq!(s.in_flight(), (0, 0));
        assert!(s.tick(T0 + 100 + 10 * DEADLINE).found.is_empty());
        assert!(s.sagas.is_empty());
    }

    #[test]
    fn every_checker_the_monitor_reports_has_a_requirement() {
        let names: BTreeSet<&str> = rules::CHECKERS.iter().map(|(c, _)| *c).collect();
        assert_eq!(names.len(), rules::CHECKERS.len());
        for (checker, requirement) in rules::CHECKERS {
            assert_eq!(rules::requirement(checker), requirement);
        }
    }
}
