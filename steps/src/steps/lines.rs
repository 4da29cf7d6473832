//! Orders of several lines: which lines a failed reservation lists, and that a batch of
//! multi-product orders left nothing in the dead letters. "All lines are reserved or none"
//! itself is judged by the stock (`catalogue`) and by what the saga published (`saga`).

use super::SagaWorld;
use crate::observed::TapRecord;
use cucumber::then;
use regex::Regex;
use saga_contract::SagaTopic;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

static FAILED_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^"([^"]+)" \((\d+) requested, (\d+) available\)$"#).unwrap());

/// `"M" (9 requested, 5 available) and "Z" (7 requested, 5 available)`: exactly these products
/// are in `failedItems`, each with these quantities — a good line listed as failed, or a
/// failed one left out, fails the step.
#[then(regex = r#"^the failure lists exactly (.+)$"#)]
async fn failure_lists_exactly(world: &mut SagaWorld, spec: String) {
    let expected: BTreeMap<String, (i64, i64)> = spec
        .split(" and ")
        .map(|part| {
            let c = FAILED_LINE.captures(part.trim()).unwrap_or_else(|| panic!("cannot read the failed line {part:?}"));
            (world.product(&c[1]).id, (c[2].parse().unwrap(), c[3].parse().unwrap()))
        })
        .collect();
    let record = world.record(SagaTopic::StockReservationFailed).await;
    let items = record.value.as_ref().and_then(|v| v["failedItems"].as_array().cloned()).unwrap_or_default();
    let listed: BTreeMap<String, (i64, i64)> = items
        .iter()
        .map(|i| {
            let number = |field: &str| i[field].as_i64().unwrap_or(-1);
            (
                i["productId"].as_str().unwrap_or_default().to_string(),
                (number("requestedQuantity"), number("availableStock")),
            )
        })
        .collect();
    assert_eq!(
        listed,
        expected,
        "failedItems (productId → requested, available) must list exactly the failed lines: {}",
        record.summary()
    );
    assert_eq!(items.len(), listed.len(), "a product listed twice: {}", record.summary());
}

/// No record of these orders went to a dead-letter topic: a record the implementation gave up
/// on (a deadlock taken for bad data, say) is an order the saga dropped.
#[then("nothing is dead-lettered for these orders")]
async fn nothing_dead_lettered(world: &mut SagaWorld) {
    let orders: BTreeSet<String> = world.batch.iter().cloned().collect();
    let dead: Vec<String> =
        world.env.tap.for_orders(&orders).iter().filter(|r| r.dead_letter).map(TapRecord::summary).collect();
    assert!(dead.is_empty(), "{} record(s) of these orders were dead-lettered:\n{}", dead.len(), dead.join("\n"));
}
