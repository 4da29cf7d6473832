//! The saga's observable effects: events on Kafka (through the tap), payments, pushes, and
//! the Jepsen-style checks over many orders.

use super::SagaWorld;
use crate::checkers;
use crate::sink::Push;
use crate::tap::TapRecord;
use cucumber::{then, when};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use saga_contract::SagaTopic;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

impl SagaWorld {
    /// The first record of `topic` for the current order (waits for it).
    async fn record(&self, topic: &str) -> TapRecord {
        let id = self.order_id();
        match self.env.tap.wait_for(self.topic(topic), &id, self.deadline()).await {
            Ok(r) => r,
            Err(_) => panic!("no {topic} for order {id} within {:?}{}", self.deadline(), self.evidence(&id)),
        }
    }

    fn records_on(&self, topic: &str, order_id: &str) -> Vec<TapRecord> {
        let name = self.env.topics.name(self.topic(topic)).to_string();
        self.env.tap.for_order(order_id).into_iter().filter(|r| r.topic == name).collect()
    }

    async fn payments(&self, order_id: &str) -> Vec<Value> {
        let url = format!("{}/api/v1/payments?orderId={order_id}", self.env.endpoints.payment_url);
        match self.env.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok().and_then(|v| v.as_array().cloned()).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Holds `still_true` over the quiet period (something must *not* happen meanwhile).
    async fn stays(&self, what: &str, mut still_true: impl AsyncFnMut() -> Result<(), String>) {
        let until = tokio::time::Instant::now() + self.env.config.quiet_period();
        loop {
            if let Err(e) = still_true().await {
                panic!("{what}: {e}");
            }
            if tokio::time::Instant::now() >= until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn field<'a>(record: &'a TapRecord, name: &str) -> &'a Value {
    record.value.as_ref().and_then(|v| v.get(name)).unwrap_or(&Value::Null)
}

fn amount(text: &str) -> Value {
    super::money(text).to_json()
}

#[then(regex = r#"^"([a-z.]+)" is published for the order$"#)]
async fn published(world: &mut SagaWorld, topic: String) {
    let record = world.record(&topic).await;
    assert_eq!(record.key.as_deref(), Some(world.order_id().as_str()), "{} is not keyed by the orderId", record.summary());
}

#[then(regex = r#"^the "order.created" event carries user "([^"]+)", store "([^"]+)", the ordered lines and total ([\d.]+)$"#)]
async fn created_carries(world: &mut SagaWorld, user: String, store: String, total: String) {
    let r = world.record("order.created").await;
    assert_eq!(field(&r, "userId"), &json!(world.user(&user)), "{}", r.summary());
    assert_eq!(field(&r, "storeId"), &json!(format!("{store}-{}", world.tag)), "{}", r.summary());
    assert_eq!(field(&r, "items"), &Value::Array(world.request_items.clone()), "{}", r.summary());
    assert_eq!(field(&r, "totalAmount"), &amount(&total), "{}", r.summary());
    assert!(field(&r, "eventId").as_str().is_some_and(|e| !e.is_empty()), "{}", r.summary());
}

#[then(regex = r#"^the "stock.reserved" event reserves (.+)$"#)]
async fn reserved_items(world: &mut SagaWorld, spec: String) {
    let r = world.record("stock.reserved").await;
    let items = field(&r, "reservedItems").as_array().cloned().unwrap_or_default();
    let re = regex::Regex::new(r#"^(\d+) of "([^"]+)" leaving (\d+)$"#).unwrap();
    for part in spec.split(" and ") {
        let c = re.captures(part.trim()).unwrap_or_else(|| panic!("cannot read {part:?}"));
        let id = world.product(&c[2]).id;
        let found = items.iter().find(|i| i["productId"] == json!(id)).unwrap_or_else(|| panic!("{id} not in reservedItems: {}", r.summary()));
        assert_eq!(found["quantity"], json!(c[1].parse::<i64>().unwrap()), "{}", r.summary());
        assert_eq!(found["reservedStock"], json!(c[3].parse::<i64>().unwrap()), "{}", r.summary());
    }
}

#[then(regex = r#"^"order.confirmed" is published for the order with total ([\d.]+)$"#)]
async fn confirmed_total(world: &mut SagaWorld, total: String) {
    let r = world.record("order.confirmed").await;
    assert_eq!(field(&r, "totalAmount"), &amount(&total), "{}", r.summary());
    assert_eq!(r.key.as_deref(), Some(world.order_id().as_str()));
}

#[then(regex = r#"^"order.cancelled" is published for the order with reason "([^"]+)"$"#)]
async fn cancelled_reason(world: &mut SagaWorld, reason: String) {
    let r = world.record("order.cancelled").await;
    assert_eq!(field(&r, "cancellationReason"), &json!(reason), "{}", r.summary());
}

#[then(regex = r#"^the failure lists "([^"]+)" with (\d+) requested and (\d+) available$"#)]
async fn failure_lists(world: &mut SagaWorld, alias: String, requested: i64, available: i64) {
    let r = world.record("stock.reservation.failed").await;
    let id = world.products.get(&alias).map(|p| p.id.clone()).unwrap_or_else(|| format!("{alias}-{}", world.tag));
    let items = field(&r, "failedItems").as_array().cloned().unwrap_or_default();
    let item = items.iter().find(|i| i["productId"] == json!(id)).unwrap_or_else(|| panic!("{id} not among failedItems: {}", r.summary()));
    assert_eq!(item["requestedQuantity"], json!(requested), "{}", r.summary());
    assert_eq!(item["availableStock"], json!(available), "{}", r.summary());
    assert!(field(&r, "failureReason").as_str().is_some_and(|s| !s.is_empty()), "failureReason is empty: {}", r.summary());
}

#[then(regex = r#"^user "([^"]+)" receives the push "([^"]+)" of type "([^"]+)" for the order$"#)]
async fn receives_push(world: &mut SagaWorld, user: String, message: String, kind: String) {
    let id = world.order_id();
    let user = world.user(&user);
    let wanted = |p: &Push| p.kind == kind && p.message == message && p.user_id == user && !p.event_id.is_empty();
    if world.env.sink.wait_for(&id, world.deadline(), |pushes| pushes.iter().any(wanted)).await.is_err() {
        panic!("no push {kind} \"{message}\" to {user}{}", world.evidence(&id));
    }
}

#[then(regex = r#"^user "([^"]+)" receives exactly one push of type "([^"]+)" for the order$"#)]
async fn exactly_one_push(world: &mut SagaWorld, user: String, kind: String) {
    let id = world.order_id();
    let user = world.user(&user);
    let count = |pushes: &[Push]| pushes.iter().filter(|p| p.kind == kind && p.user_id == user).count();
    if world.env.sink.wait_for(&id, world.deadline(), |p| count(p) >= 1).await.is_err() {
        panic!("no push {kind} to {user}{}", world.evidence(&id));
    }
    let sink = &world.env.sink;
    world
        .stays(&format!("exactly one {kind} push"), async || match count(&sink.for_order(&id)) {
            1 => Ok(()),
            n => Err(format!("{n} pushes{}", world.evidence(&id))),
        })
        .await;
}

#[then(regex = r#"^a payment in "([^"]+)" for ([\d.]+) exists for the order$"#)]
async fn payment_exists(world: &mut SagaWorld, status: String, total: String) {
    let id = world.order_id();
    let payments = crate::poll::until(world.deadline(), Duration::from_millis(25), async || {
        let payments = world.payments(&id).await;
        if payments.is_empty() { Err(payments) } else { Ok(payments) }
    })
    .await
    .unwrap_or_else(|none| none);
    let payment = payments.first().unwrap_or_else(|| panic!("no payment for order {id} after {:?}{}", world.deadline(), world.evidence(&id)));
    assert_eq!(payment["status"], json!(status), "{payment}");
    assert_eq!(payment["amount"], amount(&total), "{payment}");
}

#[then("no payment exists for the order")]
async fn no_payment(world: &mut SagaWorld) {
    let id = world.order_id();
    world
        .stays("no payment", async || match world.payments(&id).await.len() {
            0 => Ok(()),
            n => Err(format!("{n} payment(s) for a cancelled order {id}")),
        })
        .await;
}

#[then("the order still has exactly one payment")]
async fn still_one_payment(world: &mut SagaWorld) {
    let id = world.order_id();
    world
        .stays("exactly one payment", async || match world.payments(&id).await.len() {
            1 => Ok(()),
            n => Err(format!("{n} payments for order {id}")),
        })
        .await;
}

#[then(regex = r#"^exactly (\d+) payments exist for these orders$"#)]
async fn payments_for_batch(world: &mut SagaWorld, expected: usize) {
    let mut total = 0;
    for id in &world.batch {
        let n = world.payments(id).await.len();
        assert!(n <= 1, "order {id} has {n} payments");
        total += n;
    }
    assert_eq!(total, expected);
}

#[then(regex = r#"^the order's saga ends with exactly one of each: (.+)$"#)]
async fn exactly_one_of_each(world: &mut SagaWorld, topics: String) {
    let id = world.order_id();
    let topics: Vec<String> = topics.split(", ").map(|t| t.trim_matches('"').to_string()).collect();
    for t in &topics {
        world.record(t).await;
    }
    world
        .stays("one record per topic", async || {
            for t in &topics {
                let n = world.records_on(t, &id).len();
                if n != 1 {
                    return Err(format!("{n} records on {t}{}", world.evidence(&id)));
                }
            }
            Ok(())
        })
        .await;
}

#[then("the order has exactly one payment and one push of each type")]
async fn one_payment_one_push_each(world: &mut SagaWorld) {
    let id = world.order_id();
    let sink = &world.env.sink;
    world
        .stays("one payment and one push of each type", async || {
            let payments = world.payments(&id).await.len();
            let pushes = sink.for_order(&id);
            let kinds: Vec<&str> = pushes.iter().map(|p| p.kind.as_str()).collect();
            let mut unique = kinds.clone();
            unique.sort();
            unique.dedup();
            if payments == 1 && kinds.len() == unique.len() && unique == ["ORDER_CONFIRMED", "PAYMENT_WAIT"] {
                Ok(())
            } else {
                Err(format!("{payments} payment(s), pushes {kinds:?}{}", world.evidence(&id)))
            }
        })
        .await;
}

#[when(regex = r#"^the order's "([a-z.]+)" event is delivered again$"#)]
async fn redeliver(world: &mut SagaWorld, topic: String) {
    let original = world.record(&topic).await;
    let mut headers = OwnedHeaders::new();
    for (k, v) in &original.headers {
        headers = headers.insert(Header { key: k, value: Some(v) });
    }
    let key = original.key.clone().unwrap_or_default();
    let record = FutureRecord::to(&original.topic).key(&key).payload(&original.raw).partition(original.partition).headers(headers);
    if let Err((e, _)) = world.env.producer.send(record, Duration::from_secs(10)).await {
        panic!("re-publishing {} failed: {e}", original.summary());
    }
}

#[then(regex = r#"^nothing new is published on "([a-z.]+)" for the order$"#)]
async fn nothing_new(world: &mut SagaWorld, topic: String) {
    let id = world.order_id();
    world.record(&topic).await;
    world
        .stays(&format!("a single {topic}"), async || match world.records_on(&topic, &id).len() {
            1 => Ok(()),
            n => Err(format!("{n} records on {topic}{}", world.evidence(&id))),
        })
        .await;
}

#[then(regex = r#"^no "([a-z.]+)" is published for the order$"#)]
async fn none_published(world: &mut SagaWorld, topic: String) {
    let id = world.order_id();
    world
        .stays(&format!("no {topic} yet"), async || match world.records_on(&topic, &id).len() {
            0 => Ok(()),
            n => Err(format!("{n} records on {topic}{}", world.evidence(&id))),
        })
        .await;
}

/// Waits until the tap has `topics` for every order of the batch, then runs `check`.
async fn check_batch(world: &SagaWorld, topics: &[&str], check: impl Fn(&[TapRecord], &BTreeSet<String>) -> Vec<checkers::Violation>) {
    let orders: BTreeSet<String> = world.batch.iter().cloned().collect();
    let names: Vec<String> = topics.iter().map(|t| world.env.topics.name(world.topic(t)).to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let complete = world.env.tap.wait_until(world.deadline(), |log| checkers::lost_events(log, &orders, &names).is_empty().then_some(())).await;
    let log = world.env.tap.records();
    let mut violations = checkers::lost_events(&log, &orders, &names);
    if complete.is_ok() {
        violations.extend(check(&log, &orders));
    }
    assert!(violations.is_empty(), "{} violation(s):\n{}", violations.len(), violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
}

const SAGA: [&str; 3] = ["order.created", "stock.reserved", "order.confirmed"];

#[then("every saga record of these orders is keyed by its orderId")]
async fn batch_keys(world: &mut SagaWorld) {
    check_batch(world, &SAGA, checkers::keyed_by_order_id).await;
}

#[then("each order's records stay on one partition per topic")]
async fn batch_partitions(world: &mut SagaWorld) {
    check_batch(world, &SAGA, checkers::one_partition_per_order).await;
}

#[then(regex = r#"^for every order "([a-z.]+)" precedes "([a-z.]+)" precedes "([a-z.]+)"$"#)]
async fn batch_causal(world: &mut SagaWorld, a: String, b: String, c: String) {
    let chain: Vec<(SagaTopic, String)> = [a, b, c].into_iter().map(|t| (world.topic(&t), world.env.topics.name(world.topic(&t)).to_string())).collect();
    let chain: Vec<(SagaTopic, &str)> = chain.iter().map(|(t, n)| (*t, n.as_str())).collect();
    check_batch(world, &SAGA, |log, orders| checkers::causal_order(log, orders, &chain)).await;
}

#[then(regex = r#"^no order lost or duplicated an event of (.+)$"#)]
async fn batch_lost_duplicated(world: &mut SagaWorld, topics: String) {
    let topics: Vec<String> = topics.split(", ").map(|t| t.trim_matches('"').to_string()).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    check_batch(world, &topics, checkers::duplicate_effects).await;
    let orders: BTreeSet<String> = world.batch.iter().cloned().collect();
    world
        .stays("no duplicated effects", async || {
            let v = checkers::duplicate_effects(&world.env.tap.records(), &orders);
            if v.is_empty() { Ok(()) } else { Err(v.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")) }
        })
        .await;
}

#[then(regex = r#"^the orders' "([a-z.]+)" records used at least (\d+) partitions$"#)]
async fn batch_spread(world: &mut SagaWorld, topic: String, at_least: usize) {
    let orders: BTreeSet<&String> = world.batch.iter().collect();
    let name = world.env.topics.name(world.topic(&topic)).to_string();
    let partitions: BTreeSet<i32> = world.env.tap.records().iter().filter(|r| r.topic == name && r.order_id.as_ref().is_some_and(|o| orders.contains(o))).map(|r| r.partition).collect();
    assert!(partitions.len() >= at_least, "{} orders used partitions {partitions:?} of {name}", orders.len());
}

#[then(regex = r#"^no push of type "([A-Z_]+)" arrives for these orders$"#)]
async fn no_push_for_batch(world: &mut SagaWorld, kind: String) {
    let sink = &world.env.sink;
    world
        .stays(&format!("no {kind} push"), async || {
            let early: Vec<&String> = world.batch.iter().filter(|id| sink.for_order(id).iter().any(|p| p.kind == kind)).collect();
            if early.is_empty() { Ok(()) } else { Err(format!("{} order(s) already got it: {early:?}", early.len())) }
        })
        .await;
}

#[then(regex = r#"^every order has exactly one payment in "([A-Z_]+)" and one push of type "([A-Z_]+)"$"#)]
async fn batch_one_payment_one_push(world: &mut SagaWorld, status: String, kind: String) {
    for id in &world.batch {
        if world.env.sink.wait_for(id, world.deadline(), |p| p.iter().any(|p| p.kind == kind)).await.is_err() {
            panic!("no {kind} push for order {id}{}", world.evidence(id));
        }
    }
    let sink = &world.env.sink;
    world
        .stays("one payment and one push per order", async || {
            for id in &world.batch {
                let payments = world.payments(id).await;
                let pushes = sink.for_order(id).into_iter().filter(|p| p.kind == kind).count();
                if payments.len() != 1 || payments[0]["status"] != json!(status) || pushes != 1 {
                    return Err(format!("order {id}: payments {payments:?}, {pushes} {kind} push(es){}", world.evidence(id)));
                }
            }
            Ok(())
        })
        .await;
}
