//! Placing orders through the Order Service's API and reading them back.

use super::params::Status;
use super::{SagaWorld, money};
use crate::api::{NewOrder, OrderLine};
use crate::client::Answer;
use cucumber::{then, when};
use regex::Regex;
use saga_contract::{OrderStatus, SagaTopic};
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

/// Posts the order whatever it holds and keeps the answer, for a step to judge (e.g. a 422).
#[when(regex = r#"^user "([^"]+)" tries to order (.+) from store "([^"]+)"$"#)]
async fn user_tries_to_order(world: &mut SagaWorld, user: String, items: String, store: String) {
    let items = lines(world, &items);
    world.request_items = items.clone();
    let order = NewOrder { store_id: format!("{store}-{}", world.tag), items };
    let body = serde_json::to_string(&order).expect("an order serialises");
    world.answer = Some(post_order(world, Some(&world.user(&user)), body).await);
}

/// Orders that name the same products in opposite orders (A+B and B+A), placed in pairs: each
/// pair's two orders at the same moment, the next pair once both are decided (left
/// `ORDER_CREATED`) or dead-lettered. Nothing else is in flight then, so an implementation that
/// handles orders concurrently (a worker per partition, say) and takes the pair apart takes
/// both orders' row locks at once, in opposite orders: one that locks rows in request order
/// deadlocks every such time, not only when a burst happens to line up. A correct one simply
/// decides each pair. How many pairs had their `order.created` on two partitions is a figure.
#[when(regex = r#"^(\d+) pairs of users order (.+), one of each pair in the opposite order, pair after pair$"#)]
async fn opposite_pairs(world: &mut SagaWorld, pairs: usize, items: String) {
    let items = lines(world, &items);
    let store = format!("S-{}", world.tag);
    let mut reversed = items.clone();
    reversed.reverse();
    let mut placed: Vec<[String; 2]> = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        let (user_a, user_b) = (world.user(&format!("U{}", 2 * pair)), world.user(&format!("U{}", 2 * pair + 1)));
        let (a, b) = futures::future::join(
            place(world, &user_a, &store, items.clone()),
            place(world, &user_b, &store, reversed.clone()),
        )
        .await;
        let ids = [a.0, b.0];
        let decided = crate::poll::until(world.deadline(), Duration::from_millis(10), async || {
            let records = world.env.tap.for_orders(&ids.iter().cloned().collect());
            let mut open = Vec::new();
            for id in &ids {
                let dead_lettered = records.iter().any(|r| r.dead_letter && r.order_id.as_ref() == Some(id));
                match status_of(world, id).await {
                    Ok(status) if status != OrderStatus::Created || dead_lettered => {}
                    last => open.push(format!("{id}: {}", last.map_or_else(|e| e, |s| s.to_string()))),
                }
            }
            if open.is_empty() { Ok(()) } else { Err(open) }
        })
        .await;
        if let Err(open) = decided {
            let evidence: String = ids.iter().map(|id| world.evidence(id)).collect();
            panic!("pair {} of {pairs} not decided within {:?}: {open:?}{evidence}", pair + 1, world.deadline());
        }
        world.batch.extend(ids.iter().cloned());
        placed.push(ids);
    }
    // Read once all are decided, when the tap has long seen every order.created.
    let log = world.env.tap.for_orders(&world.batch.iter().cloned().collect());
    let partition_of = |id: &String| {
        log.iter()
            .find(|r| {
                r.saga_topic == Some(SagaTopic::OrderCreated) && !r.dead_letter && r.order_id.as_ref() == Some(id)
            })
            .map(|r| r.partition)
    };
    let on_two_partitions = placed.iter().filter(|[a, b]| partition_of(a) != partition_of(b)).count();
    eprintln!("[stock] {pairs} opposite pairs, {on_two_partitions} with their order.created on two partitions");
    world
        .figures
        .insert("opposite_pairs".into(), serde_json::json!({"pairs": pairs, "on_two_partitions": on_two_partitions}));
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
pub(super) async fn status_of(world: &SagaWorld, order_id: &str) -> Result<OrderStatus, String> {
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
