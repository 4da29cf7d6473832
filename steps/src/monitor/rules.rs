//! The suite's checkers as the monitor applies them to one saga, and the requirement each one
//! stands for — the scenario whose steps call it (`features/`): keys, causal order, lost and
//! duplicated events are ORDER-1's steps, contract matching WIRE-1's, both outcomes of one
//! order CRASH-1's, and every field meaning of `fields.rs` is FIELDS-1. No rule is written
//! here: each check is the suite's own function, run on the saga's records alone.

use crate::checkers::fields::{self, RunWindow};
use crate::checkers::{self, Violation};
use crate::observed::TapRecord;
use saga_contract::SagaTopic;
use std::collections::BTreeSet;

/// Every checker name the monitor can report, with its requirement (also the label sets
/// `/metrics` shows at zero from the start).
pub const CHECKERS: [(&str, &str); 10] = [
    ("key", "ORDER-1"),
    ("causal-order", "ORDER-1"),
    ("duplicate", "ORDER-1"),
    ("lost", "ORDER-1"),
    ("contract", "WIRE-1"),
    ("conflict", "CRASH-1"),
    ("event-id", "FIELDS-1"),
    ("timestamp", "FIELDS-1"),
    ("cancelled-fields", "FIELDS-1"),
    ("confirmed-fields", "FIELDS-1"),
];

/// The requirement a checker's violation breaks. Whatever `fields::check_run` reports is
/// FIELDS-1, as the runner reports it.
pub fn requirement(checker: &str) -> &'static str {
    CHECKERS.iter().find(|(c, _)| *c == checker).map_or("FIELDS-1", |(_, r)| r)
}

/// The saga's path by its reservation outcome: cancelled when stock was short (and nothing
/// was reserved), otherwise the happy path.
pub fn chain(records: &[TapRecord]) -> [SagaTopic; 3] {
    let has = |t: SagaTopic| records.iter().any(|r| !r.dead_letter && r.saga_topic == Some(t));
    if has(SagaTopic::StockReservationFailed) && !has(SagaTopic::StockReserved) {
        [SagaTopic::OrderCreated, SagaTopic::StockReservationFailed, SagaTopic::OrderCancelled]
    } else {
        [SagaTopic::OrderCreated, SagaTopic::StockReserved, SagaTopic::OrderConfirmed]
    }
}

/// Every checker over one order's records, `names` being its `chain` with the topic names.
/// Missing records (`lost`) are judged only once the saga is `due` (past its deadline): until
/// then a record may simply not have arrived yet.
pub fn check(
    records: &[TapRecord],
    order: &str,
    names: &[(SagaTopic, &str)],
    window: RunWindow,
    due: bool,
) -> Vec<Violation> {
    let orders: BTreeSet<String> = [order.to_string()].into();
    let mut found = checkers::keyed_by_order_id(records, &orders);
    found.extend(checkers::causal_order(records, &orders, names));
    found.extend(checkers::duplicate_effects(records, &orders));
    found.extend(checkers::contract_violations(records, &orders));
    found.extend(checkers::conflicting_outcomes(records, &orders));
    found.extend(fields::check_run(records, &[], window));
    if due {
        let topics: Vec<&str> = names.iter().map(|(_, n)| *n).collect();
        found.extend(checkers::lost_events(records, &orders, &topics));
    }
    found
}
