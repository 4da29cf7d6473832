//! The field meanings of a saga's outcome records: `order.cancelled` keyed by its orderId and
//! carrying its order's lines and user, `order.confirmed` its order's user and total.

use super::{text, violation};
use crate::checkers::Violation;
use crate::observed::TapRecord;
use saga_contract::{Money, SagaTopic};
use serde_json::Value;
use std::collections::BTreeMap;

/// The order's lines as (productId, quantity), sorted (their order in the record is not a field
/// meaning).
fn lines(r: &TapRecord) -> Vec<(String, i64)> {
    let items = r.value.as_ref().and_then(|v| v.get("items")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut lines: Vec<(String, i64)> = items
        .iter()
        .map(|i| (i["productId"].as_str().unwrap_or_default().to_string(), i["quantity"].as_i64().unwrap_or_default()))
        .collect();
    lines.sort();
    lines
}

fn created_by_order<'a>(records: &[&'a TapRecord]) -> BTreeMap<&'a str, &'a TapRecord> {
    let mut created = BTreeMap::new();
    for r in records.iter().filter(|r| r.saga_topic == Some(SagaTopic::OrderCreated)) {
        if let Some(o) = r.order_id.as_deref() {
            created.entry(o).or_insert(*r);
        }
    }
    created
}

/// `order.cancelled` is keyed by its orderId and lists exactly the lines of that order's
/// `order.created`, for the same user.
pub(super) fn cancellations(records: &[&TapRecord]) -> Vec<Violation> {
    let created = created_by_order(records);
    let mut violations = Vec::new();
    for r in records.iter().filter(|r| r.saga_topic == Some(SagaTopic::OrderCancelled)) {
        if r.key.is_none() || r.key != r.order_id {
            violations.push(violation(
                "cancelled-fields",
                r,
                format!("order.cancelled has key {:?}, not its orderId {:?}", r.key, r.order_id),
            ));
        }
        let Some(order) = r.order_id.as_deref().and_then(|o| created.get(o)) else {
            violations.push(violation(
                "cancelled-fields",
                r,
                "order.cancelled for an order with no order.created in the run".into(),
            ));
            continue;
        };
        if lines(r) != lines(order) {
            violations.push(violation(
                "cancelled-fields",
                r,
                format!("order.cancelled lists {:?}, the order has {:?}", lines(r), lines(order)),
            ));
        }
        if text(r, "userId") != text(order, "userId") {
            violations.push(violation(
                "cancelled-fields",
                r,
                format!(
                    "order.cancelled is for user {:?}, the order is {:?}'s",
                    text(r, "userId"),
                    text(order, "userId")
                ),
            ));
        }
    }
    violations
}

/// `order.confirmed` carries its order's user and total (compared as decimals).
pub(super) fn confirmations(records: &[&TapRecord]) -> Vec<Violation> {
    let created = created_by_order(records);
    let amount = |r: &TapRecord| r.value.as_ref().and_then(|v| Money::from_json(&v["totalAmount"]));
    let mut violations = Vec::new();
    for r in records.iter().filter(|r| r.saga_topic == Some(SagaTopic::OrderConfirmed)) {
        let Some(order) = r.order_id.as_deref().and_then(|o| created.get(o)) else {
            violations.push(violation(
                "confirmed-fields",
                r,
                "order.confirmed for an order with no order.created in the run".into(),
            ));
            continue;
        };
        if text(r, "userId") != text(order, "userId") || amount(r).is_none() || amount(r) != amount(order) {
            violations.push(violation(
                "confirmed-fields",
                r,
                format!(
                    "order.confirmed has user {:?} total {:?}, the order user {:?} total {:?}",
                    text(r, "userId"),
                    amount(r).map(|m| m.to_string()),
                    text(order, "userId"),
                    amount(order).map(|m| m.to_string())
                ),
            ));
        }
    }
    violations
}
