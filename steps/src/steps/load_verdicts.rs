//! The crash scenarios' verdicts on what the load's orders ended as (`Then` steps after `every
//! order the load placed settles …` in `load.rs`, which reads them back): intake only unavailable
//! while the fault was in place, one payment per confirmed order, one push of each kind, no
//! duplicate or conflicting effect on Kafka, each product's stock down by the units confirmed —
//! each judged by [`crate::checkers::crash`].

use super::SagaWorld;
use super::load::Load;
use super::readback::read_stock;
use crate::checkers::crash::{self as crash, Settled};
use crate::checkers::{self, Violation};
use cucumber::then;
use std::collections::{BTreeMap, BTreeSet};

#[then("the load was answered 201, or 503 or not at all only while the fault was in place")]
async fn load_intake(world: &mut SagaWorld) {
    let spans: Vec<_> = world.fault_spans.iter().map(|(_, span)| *span).collect();
    let violations = crash::intake(&world.load().journal.attempts(), &spans);
    world.judge("intake", &violations);
}

#[then("each confirmed order has exactly one payment and no cancelled order has one")]
async fn load_payments(world: &mut SagaWorld) {
    let violations = crash::payments(world.settled());
    world.judge("payment", &violations);
}

#[then("each order got exactly one push of each kind it is due, counted by eventId")]
async fn load_pushes(world: &mut SagaWorld) {
    // Pushes may trail the orders' outcomes (those a failing gateway refused are retried), so
    // the pushes are read until every order has its own, or the deadline passes.
    let settled = world.settled().to_vec();
    let judged = world
        .env
        .sink
        .wait_until(world.env.config.capacity.settle_bound(), |arrivals| {
            let mut pushes: BTreeMap<&str, Vec<crate::observed::Push>> = BTreeMap::new();
            for p in arrivals.iter().filter_map(|a| a.push.as_ref().ok()) {
                pushes.entry(p.order_id.as_str()).or_default().push(p.clone());
            }
            let now: Vec<Settled> = settled
                .iter()
                .map(|o| Settled { pushes: pushes.remove(o.order_id.as_str()).unwrap_or_default(), ..o.clone() })
                .collect();
            let violations = crash::pushes(&now);
            if violations.is_empty() { Ok(()) } else { Err(violations) }
        })
        .await;
    world.judge("push", &judged.err().unwrap_or_default());
}

#[then("no order of the load has a duplicate or conflicting effect on Kafka")]
async fn load_kafka_effects(world: &mut SagaWorld) {
    let orders: BTreeSet<String> = world.settled().iter().map(|o| o.order_id.clone()).collect();
    let log = world.env.tap.records();
    let mut violations = checkers::duplicate_effects(&log, &orders);
    violations.extend(checkers::conflicting_outcomes(&log, &orders));
    world.judge("Kafka effect", &violations);
}

#[then(regex = r#"^the stock of "([^"]+)" fell by exactly the units confirmed$"#)]
async fn load_stock(world: &mut SagaWorld, alias: String) {
    let product = world.product(&alias);
    let load = world.load.as_ref().expect("no load ran in this scenario");
    let Some(initial) = load.initial_stock.get(&product.id).copied() else {
        panic!("the load did not order {alias}: it orders {:?}", load.initial_stock.keys())
    };
    let now = read_stock(&world.env, &product.id).await.unwrap_or_else(|e| panic!("reading the stock of {alias}: {e}"));
    if let Err(e) = crash::stock(&product.id, initial, now, world.settled()) {
        panic!("product {alias} ({}): {e}; {}", product.id, load.summary());
    }
}

/// Violations listed in a failure message (the rest are counted).
const LISTED: usize = 30;

impl SagaWorld {
    pub(super) fn load(&mut self) -> &mut Load {
        self.load.as_mut().expect(
            "no load runs in this scenario: start one with `Given orders flow at N per second for product \"P1\"`",
        )
    }

    pub(super) fn settled(&self) -> &[Settled] {
        self.load
            .as_ref()
            .and_then(|l| l.settled.as_deref())
            .expect("the load's orders were not read back: `Then every order the load placed settles …` comes first")
    }

    /// Fails the step with the violations, the load's summary and the evidence of a few orders.
    pub(super) fn judge(&self, what: &str, violations: &[Violation]) {
        if violations.is_empty() {
            return;
        }
        let mut out = format!("{} {what} violation(s):\n", violations.len());
        for v in violations.iter().take(LISTED) {
            out.push_str(&format!("{v}\n"));
        }
        if violations.len() > LISTED {
            out.push_str(&format!("… and {} more\n", violations.len() - LISTED));
        }
        if let Some(load) = &self.load {
            out.push_str(&load.summary());
        }
        out.push_str(&format!("; faults: {:?}", self.fault_spans));
        let known: BTreeSet<&str> = self.settled_ids();
        for id in violations
            .iter()
            .map(|v| v.order_id.as_str())
            .filter(|id| known.contains(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(3)
        {
            out.push_str(&self.evidence(id));
        }
        panic!("{out}");
    }

    fn settled_ids(&self) -> BTreeSet<&str> {
        self.load
            .as_ref()
            .and_then(|l| l.settled.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|o| o.order_id.as_str())
            .collect()
    }
}
