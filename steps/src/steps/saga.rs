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
    pub(super) async fn record(&self, topic: &str) -> TapRecord {
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

    /// Distinct events of `topic` for the order: a record sent again with the same eventId is
    /// at-least-once delivery, not a second event.
    fn events_on(&self, topic: &str, order_id: &str) -> BTreeSet<String> {
        self.records_on(topic, order_id)
            .into_iter()
            .map(|r| r.event_id.unwrap_or_else(|| format!("<no eventId>@{}", r.offset)))
            .collect()
    }

    /// The order's payments. An HTTP error is a failure of the step, never "no payments".
    pub(super) async fn payments(&self, order_id: &str) -> Vec<Value> {
        let url = format!("{}/api/v1/payments?orderId={order_id}", self.env.endpoints.payment_url);
        let answer = match self.env.http.get(&url).send().await {
            Ok(answer) => answer,
            Err(e) => panic!("GET {url} failed: {e}"),
        };
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {url} answered {status}: {body}");
        match serde_json::from_str::<Value>(&body) {
            Ok(Value::Array(payments)) => payments,
            _ => panic!("GET {url} answered {status} with {body:?}, not a JSON array of payments"),
        }
    }

    /// Waits until the implementation has consumed every record this scenario injected (its
    /// consumer group committed past it), so a "nothing new happens" window starts when the
    /// record was handled, not when the suite sent it. Where the group is unknown, waits a
    /// longer quiet period instead and says so in the report.
    async fn settle(&mut self) {
        let mut unknown = false;
        for (topic, partition, offset) in std::mem::take(&mut self.injected) {
            let Some(service) = crate::groups::consumer_of(topic) else { continue };
            let name = self.env.topics.name(topic).to_string();
            match self.env.groups.wait_consumed(service, &name, partition, offset, self.deadline()).await {
                Ok(true) => {}
                Ok(false) => unknown = true,
                Err(e) => panic!("{e}"),
            }
        }
        if unknown {
            self.env.notes.lock().expect("notes lock poisoned").insert(
                "Consumer groups unknown ([external.consumer_groups]): \"nothing new happens\" windows after an injected record were held for 3× the quiet period from the send instead of from the implementation's commit.".into(),
            );
            tokio::time::sleep(self.env.config.quiet_period() * 2).await;
        }
    }

    /// Holds `still_true` over the quiet period (something must *not* happen meanwhile),
    /// starting once the implementation consumed what this scenario injected.
    pub(super) async fn stays(
        &mut self,
        what: &str,
        mut still_true: impl AsyncFnMut(&SagaWorld) -> Result<(), String>,
    ) {
        self.settle().await;
        let world = &*self;
        let until = tokio::time::Instant::now() + world.env.config.quiet_period();
        loop {
            if let Err(e) = still_true(world).await {
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

/// Asserts a JSON amount equals the feature's decimal literal, whatever its JSON spelling.
fn assert_amount(actual: &Value, expected: &str, context: &str) {
    assert!(super::same_amount(actual, expected), "amount {actual} is not {expected}: {context}");
}

#[then(regex = r#"^"([a-z.]+)" is published for the order$"#)]
async fn published(world: &mut SagaWorld, topic: String) {
    let record = world.record(&topic).await;
    assert_eq!(
        record.key.as_deref(),
        Some(world.order_id().as_str()),
        "{} is not keyed by the orderId",
        record.summary()
    );
}

#[then(
    regex = r#"^the "order.created" event carries user "([^"]+)", store "([^"]+)", the ordered lines and total ([\d.]+)$"#
)]
async fn created_carries(world: &mut SagaWorld, user: String, store: String, total: String) {
    let r = world.record("order.created").await;
    assert_eq!(field(&r, "userId"), &json!(world.user(&user)), "{}", r.summary());
    assert_eq!(field(&r, "storeId"), &json!(format!("{store}-{}", world.tag)), "{}", r.summary());
    assert_eq!(field(&r, "items"), &Value::Array(world.request_items.clone()), "{}", r.summary());
    assert_amount(field(&r, "totalAmount"), &total, &r.summary());
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
        let found = items
            .iter()
            .find(|i| i["productId"] == json!(id))
            .unwrap_or_else(|| panic!("{id} not in reservedItems: {}", r.summary()));
        assert_eq!(found["quantity"], json!(c[1].parse::<i64>().unwrap()), "{}", r.summary());
        assert_eq!(found["reservedStock"], json!(c[3].parse::<i64>().unwrap()), "{}", r.summary());
    }
}

#[then(regex = r#"^"order.confirmed" is published for the order with total ([\d.]+)$"#)]
async fn confirmed_total(world: &mut SagaWorld, total: String) {
    let r = world.record("order.confirmed").await;
    assert_amount(field(&r, "totalAmount"), &total, &r.summary());
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
    let item = items
        .iter()
        .find(|i| i["productId"] == json!(id))
        .unwrap_or_else(|| panic!("{id} not among failedItems: {}", r.summary()));
    assert_eq!(item["requestedQuantity"], json!(requested), "{}", r.summary());
    assert_eq!(item["availableStock"], json!(available), "{}", r.summary());
    assert!(
        field(&r, "failureReason").as_str().is_some_and(|s| !s.is_empty()),
        "failureReason is empty: {}",
        r.summary()
    );
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
    let count = |pushes: &[Push]| distinct_pushes(pushes, &kind, Some(&user));
    if world.env.sink.wait_for(&id, world.deadline(), |p| count(p) >= 1).await.is_err() {
        panic!("no push {kind} to {user}{}", world.evidence(&id));
    }
    world
        .stays(&format!("exactly one {kind} push"), async |world| match count(&world.env.sink.for_order(&id)) {
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
    let payment = payments
        .first()
        .unwrap_or_else(|| panic!("no payment for order {id} after {:?}{}", world.deadline(), world.evidence(&id)));
    assert_eq!(payment["status"], json!(status), "{payment}");
    assert_amount(&payment["amount"], &total, &payment.to_string());
}

#[then("no payment exists for the order")]
async fn no_payment(world: &mut SagaWorld) {
    let id = world.order_id();
    world
        .stays("no payment", async |world| match world.payments(&id).await.len() {
            0 => Ok(()),
            n => Err(format!("{n} payment(s) for a cancelled order {id}")),
        })
        .await;
}

#[then("the order still has exactly one payment")]
async fn still_one_payment(world: &mut SagaWorld) {
    let id = world.order_id();
    world
        .stays("exactly one payment", async |world| match world.payments(&id).await.len() {
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
        .stays("one event per topic", async |world| {
            for t in &topics {
                let n = world.events_on(t, &id).len();
                if n != 1 {
                    return Err(format!("{n} distinct events on {t}{}", world.evidence(&id)));
                }
            }
            Ok(())
        })
        .await;
}

#[then("the order has exactly one payment and one push of each type")]
async fn one_payment_one_push_each(world: &mut SagaWorld) {
    let id = world.order_id();
    world
        .stays("one payment and one push of each type", async |world| {
            let payments = world.payments(&id).await.len();
            let pushes = world.env.sink.for_order(&id);
            // Pushes are counted by the event that caused them: a retried push keeps its eventId.
            let events: BTreeSet<(&str, &str)> =
                pushes.iter().map(|p| (p.kind.as_str(), p.event_id.as_str())).collect();
            let kinds: Vec<&str> = events.iter().map(|(kind, _)| *kind).collect();
            if payments == 1 && kinds == ["ORDER_CONFIRMED", "PAYMENT_WAIT"] {
                Ok(())
            } else {
                Err(format!("{payments} payment(s), pushes (kind, eventId) {events:?}{}", world.evidence(&id)))
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
    let record = FutureRecord::to(&original.topic)
        .key(&key)
        .payload(&original.raw)
        .partition(original.partition)
        .headers(headers);
    match world.env.producer.send(record, Duration::from_secs(10)).await {
        Ok(delivery) => world.injected.push((world.topic(&topic), delivery.partition, delivery.offset)),
        Err((e, _)) => panic!("re-publishing {} failed: {e}", original.summary()),
    }
}

#[then(regex = r#"^nothing new is published on "([a-z.]+)" for the order$"#)]
async fn nothing_new(world: &mut SagaWorld, topic: String) {
    let id = world.order_id();
    world.record(&topic).await;
    world
        .stays(&format!("a single {topic} event"), async |world| match world.events_on(&topic, &id).len() {
            1 => Ok(()),
            n => Err(format!("{n} distinct events on {topic}{}", world.evidence(&id))),
        })
        .await;
}

#[then(regex = r#"^no "([a-z.]+)" is published for the order$"#)]
async fn none_published(world: &mut SagaWorld, topic: String) {
    let id = world.order_id();
    world
        .stays(&format!("no {topic}"), async |world| match world.records_on(&topic, &id).len() {
            0 => Ok(()),
            n => Err(format!("{n} records on {topic}{}", world.evidence(&id))),
        })
        .await;
}

/// Waits until the tap has `topics` for every order of the batch, then runs `check`.
async fn check_batch(
    world: &SagaWorld,
    topics: &[&str],
    check: impl Fn(&[TapRecord], &BTreeSet<String>) -> Vec<checkers::Violation>,
) {
    let orders: BTreeSet<String> = world.batch.iter().cloned().collect();
    let names: Vec<String> = topics.iter().map(|t| world.env.topics.name(world.topic(t)).to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let complete = world
        .env
        .tap
        .wait_until(world.deadline(), |log| checkers::lost_events(log, &orders, &names).is_empty().then_some(()))
        .await;
    let log = world.env.tap.records();
    let mut violations = checkers::lost_events(&log, &orders, &names);
    if complete.is_ok() {
        violations.extend(check(&log, &orders));
    }
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
}

const SAGA: [&str; 3] = ["order.created", "stock.reserved", "order.confirmed"];

#[then("every saga record of these orders is keyed by its orderId")]
async fn batch_keys(world: &mut SagaWorld) {
    check_batch(world, &SAGA, checkers::keyed_by_order_id).await;
}

#[then(regex = r#"^for every order "([a-z.]+)" precedes "([a-z.]+)" precedes "([a-z.]+)"$"#)]
async fn batch_causal(world: &mut SagaWorld, a: String, b: String, c: String) {
    let chain: Vec<(SagaTopic, String)> =
        [a, b, c].into_iter().map(|t| (world.topic(&t), world.env.topics.name(world.topic(&t)).to_string())).collect();
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
        .stays("no duplicated effects", async |world| {
            let v = checkers::duplicate_effects(&world.env.tap.records(), &orders);
            if v.is_empty() { Ok(()) } else { Err(v.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")) }
        })
        .await;
}

#[then(regex = r#"^the orders' "([a-z.]+)" records used at least (\d+) partitions$"#)]
async fn batch_spread(world: &mut SagaWorld, topic: String, at_least: usize) {
    let orders: BTreeSet<&String> = world.batch.iter().collect();
    let name = world.env.topics.name(world.topic(&topic)).to_string();
    let partitions: BTreeSet<i32> = world
        .env
        .tap
        .records()
        .iter()
        .filter(|r| r.topic == name && r.order_id.as_ref().is_some_and(|o| orders.contains(o)))
        .map(|r| r.partition)
        .collect();
    assert!(partitions.len() >= at_least, "{} orders used partitions {partitions:?} of {name}", orders.len());
}

#[then(regex = r#"^no push of type "([A-Z_]+)" arrives for these orders$"#)]
async fn no_push_for_batch(world: &mut SagaWorld, kind: String) {
    world
        .stays(&format!("no {kind} push"), async |world| {
            let early: Vec<&String> =
                world.batch.iter().filter(|id| world.env.sink.for_order(id).iter().any(|p| p.kind == kind)).collect();
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
    world
        .stays("one payment and one push per order", async |world| {
            for id in &world.batch {
                let payments = world.payments(id).await;
                let pushes = distinct_pushes(&world.env.sink.for_order(id), &kind, None);
                if payments.len() != 1 || payments[0]["status"] != json!(status) || pushes != 1 {
                    return Err(format!(
                        "order {id}: payments {payments:?}, {pushes} {kind} push(es){}",
                        world.evidence(id)
                    ));
                }
            }
            Ok(())
        })
        .await;
}

/// Pushes of `kind` (to `user`, if given) counted by the eventId that caused them: a gateway
/// retry keeps its eventId and is not a second notification.
fn distinct_pushes(pushes: &[Push], kind: &str, user: Option<&str>) -> usize {
    pushes
        .iter()
        .filter(|p| p.kind == kind && user.is_none_or(|u| p.user_id == u))
        .map(|p| p.event_id.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}
