//! Placing orders through the Order Service's API and reading them back.

use super::params::Status;
use super::{SagaWorld, money};
use crate::client::{Answer, NewOrder, OrderLine};
use cucumber::{then, when};
use regex::Regex;
use saga_contract::OrderStatus;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

static LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^(\d+) of (unknown product )?"([^"]+)"(?: at ([\d.]+))?$"#).unwrap());

/// "2 of "P1" and 1 of "P2" at 9.99 and 1 of unknown product "X" at 1.00" → order lines.
pub(super) fn lines(world: &SagaWorld, text: &str) -> Vec<OrderLine> {
    text.split(" and ")
        .map(|part| {
            let c = LINE.captures(part.trim()).unwrap_or_else(|| panic!("cannot read the order line {part:?}"));
            let quantity: i64 = c[1].parse().unwrap();
            let (product_id, catalogue_price) = if c.get(2).is_some() {
                (format!("{}-{}", &c[3], world.tag), None)
            } else {
                let p = world.product(&c[3]);
                (p.id, Some(p.price))
            };
            let unit_price = c
                .get(4)
                .map(|m| money(m.as_str()))
                .or(catalogue_price)
                .unwrap_or_else(|| panic!("no price for {part:?}"));
            OrderLine { product_id, quantity, unit_price }
        })
        .collect()
}

/// POSTs an order body as it is (the bad-input scenarios); fails only when nothing answers.
pub(super) async fn post_order(world: &SagaWorld, user: Option<&str>, body: String) -> Answer {
    world.env.client.post_order_raw(user, body).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Places an order and returns its id (fails the step with the answer if it was not a 201).
pub(super) async fn place(world: &SagaWorld, user: &str, store: &str, items: Vec<OrderLine>) -> (String, Answer) {
    let order = NewOrder { store_id: store.to_string(), items };
    match world.env.client.place_order(user, &order).await {
        Ok((placed, answer)) => (placed.order_id, answer),
        Err(e) => panic!("order intake: {e}"),
    }
}

#[when(regex = r#"^user "([^"]+)" orders (.+) from store "([^"]+)"$"#)]
async fn user_orders(world: &mut SagaWorld, user: String, items: String, store: String) {
    let items = lines(world, &items);
    world.request_items = items.clone();
    let (id, answer) = place(world, &world.user(&user), &format!("{store}-{}", world.tag), items).await;
    world.order = Some(id);
    world.answer = Some(answer);
}

#[when(regex = r#"^(\d+) users each order (\d+) of "([^"]+)" at the same time$"#)]
async fn concurrent_orders(world: &mut SagaWorld, users: usize, quantity: i64, alias: String) {
    let product = world.product(&alias);
    let store = format!("S-{}", world.tag);
    let placing = (0..users).map(|i| {
        let items = vec![OrderLine { product_id: product.id.clone(), quantity, unit_price: product.price }];
        let user = world.user(&format!("U{i}"));
        let store = store.clone();
        let world = &*world;
        async move { place(world, &user, &store, items).await.0 }
    });
    world.batch = futures::future::join_all(placing).await;
}

#[then(expr = "the order is accepted with status {order_status} and message {string}")]
async fn accepted(world: &mut SagaWorld, status: Status, message: String) {
    let answer = world.answer.as_ref().expect("no answer");
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body["status"], status.0.as_str(), "body: {}", answer.body);
    assert_eq!(answer.body["message"], message.as_str(), "body: {}", answer.body);
    assert!(answer.body["orderId"].as_str().is_some_and(|id| !id.is_empty()), "body: {}", answer.body);
}

#[then("the order is accepted within the intake budget")]
async fn accepted_in_budget(world: &mut SagaWorld) {
    let answer = world.answer.as_ref().expect("no answer");
    assert_eq!(answer.status, 201, "{}", answer.body);
    let budget = crate::timing::budget(&world.env.config.timing, "intake");
    // One request is one sample; allow the budget ×5 for a single cold request — the timing
    // feature checks the percentile over many.
    assert!(
        answer.elapsed_ms <= budget * 5.0,
        "intake took {:.1} ms, budget {budget} ms (×5 for a single sample)",
        answer.elapsed_ms
    );
}

#[then(regex = r#"^the order reads back with status "ORDER_CREATED" or later$"#)]
async fn reads_back(world: &mut SagaWorld) {
    let id = world.order_id();
    // Any status of the contract is ORDER_CREATED or later; an unknown one fails the read.
    match world.env.client.order(&id).await {
        Ok(Some(order)) => assert_eq!(order.order_id, id, "GET order {id} answered another order: {order:?}"),
        Ok(None) => panic!("GET order {id} answered 404"),
        Err(e) => panic!("{e}"),
    }
}

/// What the order's status reads as now: the status, or what the read got instead.
async fn status_of(world: &SagaWorld, order_id: &str) -> Result<OrderStatus, String> {
    match world.env.client.order(order_id).await {
        Ok(Some(order)) => Ok(order.status),
        Ok(None) => Err("HTTP 404".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until the order's status is `expected`; the last status seen is in the message.
pub(super) async fn wait_status(
    world: &SagaWorld,
    order_id: &str,
    expected: OrderStatus,
    deadline: Duration,
) -> Result<(), String> {
    crate::poll::until(deadline, Duration::from_millis(25), async || match status_of(world, order_id).await {
        Ok(status) if status == expected => Ok(()),
        Ok(status) => Err(status.to_string()),
        Err(other) => Err(other),
    })
    .await
}

#[then(expr = "the order becomes {order_status}")]
async fn becomes(world: &mut SagaWorld, status: Status) {
    let id = world.order_id();
    if let Err(last) = wait_status(world, &id, status.0, world.deadline()).await {
        panic!("order {id} is {last}, not {}, after {:?}{}", status.0, world.deadline(), world.evidence(&id));
    }
}

#[then(expr = "every order ends {order_status}")]
async fn every_order_ends(world: &mut SagaWorld, status: Status) {
    for id in &world.batch {
        if let Err(last) = wait_status(world, id, status.0, world.deadline()).await {
            panic!("order {id} is {last}, not {}{}", status.0, world.evidence(id));
        }
    }
}

#[then(expr = "{int} orders end {order_status} and {int} end {order_status}")]
async fn split_outcome(world: &mut SagaWorld, n1: usize, s1: Status, n2: usize, s2: Status) {
    let (s1, s2) = (s1.0.to_string(), s2.0.to_string());
    let settled = crate::poll::until(world.deadline(), Duration::from_millis(100), async || {
        let mut counts = BTreeMap::<String, usize>::new();
        for id in &world.batch {
            let status = status_of(world, id).await.map(|s| s.to_string()).unwrap_or_else(|other| other);
            *counts.entry(status).or_default() += 1;
        }
        let done = counts.get(&s1).copied().unwrap_or(0) + counts.get(&s2).copied().unwrap_or(0) == world.batch.len();
        if done { Ok(counts) } else { Err(counts) }
    })
    .await;
    let counts = settled.unwrap_or_else(|counts| counts);
    assert_eq!(counts.get(&s1).copied().unwrap_or(0), n1, "statuses: {counts:?}");
    assert_eq!(counts.get(&s2).copied().unwrap_or(0), n2, "statuses: {counts:?}");
}
