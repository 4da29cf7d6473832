//! The saga's observable effects: events on Kafka (through the tap), payments, pushes, and
//! the Jepsen-style checks over many orders.

use super::SagaWorld;
use super::params::{Amount, Kind, PaymentState, Topic, TopicList};
use crate::api::Payment;
use crate::checkers;
use crate::observed::Push;
use crate::observed::TapRecord;
use cucumber::{then, when};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use saga_contract::{PushKind, SagaTopic};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

impl SagaWorld {
    /// The first record of `topic` for the current order (waits for it).
    pub(super) async fn record(&self, topic: SagaTopic) -> TapRecord {
        let id = self.order_id();
        match self.env.tap.wait_for(topic, &id, self.deadline()).await {
            Ok(r) => r,
            Err(_) => panic!("no {topic} for order {id} within {:?}{}", self.deadline(), self.evidence(&id)),
        }
    }

    fn records_on(&self, topic: SagaTopic, order_id: &str) -> Vec<TapRecord> {
        let name = self.env.topics.name(topic).to_string();
        self.env.tap.for_order(order_id).into_iter().filter(|r| r.topic == name).collect()
    }

    /// Distinct events of `topic` for the order: a record sent again with the same eventId is
    /// at-least-once delivery, not a second event.
    fn events_on(&self, topic: SagaTopic, order_id: &str) -> BTreeSet<String> {
        self.records_on(topic, order_id)
            .into_iter()
            .map(|r| r.event_id.unwrap_or_else(|| format!("<no eventId>@{}", r.offset)))
            .collect()
    }

    /// The order's payments. An HTTP error is a failure of the step, never "no payments".
    pub(super) async fn payments(&self, order_id: &str) -> Vec<Payment> {
        self.env.client.payments(order_id).await.unwrap_or_else(|e| panic!("{e}"))
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
        let quiet = world.env.config.quiet_period();
        let both = async || {
            still_true(world).await?;
            world.no_second_effects()
        };
        if let Err(e) = crate::poll::holds_for(quiet, Duration::from_millis(50), both).await {
            panic!("{what}: {e}");
        }
    }

    /// "Nothing new happens" watches every saga topic and the push sink, for the scenario's
    /// order and batch, whatever a step names (see [`checkers::second_effects`]).
    fn no_second_effects(&self) -> Result<(), String> {
        let orders: BTreeSet<String> = self.order.iter().chain(&self.batch).cloned().collect();
        if orders.is_empty() {
            return Ok(());
        }
        let pushes: Vec<Push> = self
            .env
            .sink
            .arrivals()
            .into_iter()
            .filter_map(|a| a.push.ok())
            .filter(|p| orders.contains(&p.order_id))
            .collect();
        let violations = checkers::second_effects(&self.env.tap.for_orders(&orders), &pushes, &orders, &self.sent);
        match violations.first() {
            None => Ok(()),
            Some(first) => Err(format!(
                "a second effect: {}{}",
                violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                self.evidence(&first.order_id)
            )),
        }
    }
}

fn field<'a>(record: &'a TapRecord, name: &str) -> &'a Value {
    record.value.as_ref().and_then(|v| v.get(name)).unwrap_or(&Value::Null)
}

/// Asserts a JSON amount equals the feature's, whatever its JSON spelling.
fn assert_amount(actual: &Value, expected: Amount, context: &str) {
    let expected = expected.0;
    assert!(super::same_amount(actual, expected), "amount {actual} is not {expected}: {context}");
}

#[then(expr = "{topic} is published for the order")]
async fn published(world: &mut SagaWorld, topic: Topic) {
    let record = world.record(topic.0).await;
    assert_eq!(
        record.key.as_deref(),
        Some(world.order_id().as_str()),
        "{} is not keyed by the orderId",
        record.summary()
    );
}

#[then(
    expr = "the \"order.created\" event carries user {string}, store {string}, the ordered lines and total {amount}"
)]
async fn created_carries(world: &mut SagaWorld, user: String, store: String, total: Amount) {
    let r = world.record(SagaTopic::OrderCreated).await;
    assert_eq!(field(&r, "userId"), &json!(world.user(&user)), "{}", r.summary());
    assert_eq!(field(&r, "storeId"), &json!(format!("{store}-{}", world.tag)), "{}", r.summary());
    assert_eq!(field(&r, "items"), &world.request_json(), "{}", r.summary());
    assert_amount(field(&r, "totalAmount"), total, &r.summary());
    assert!(field(&r, "eventId").as_str().is_some_and(|e| !e.is_empty()), "{}", r.summary());
}

#[then(regex = r#"^the "stock.reserved" event reserves (.+)$"#)]
async fn reserved_items(world: &mut SagaWorld, spec: String) {
    let r = world.record(SagaTopic::StockReserved).await;
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

#[then(expr = "\"order.confirmed\" is published for the order with total {amount}")]
async fn confirmed_total(world: &mut SagaWorld, total: Amount) {
    let r = world.record(SagaTopic::OrderConfirmed).await;
    assert_amount(field(&r, "totalAmount"), total, &r.summary());
    assert_eq!(r.key.as_deref(), Some(world.order_id().as_str()));
}

#[then(regex = r#"^"order.cancelled" is published for the order with reason "([^"]+)"$"#)]
async fn cancelled_reason(world: &mut SagaWorld, reason: String) {
    let r = world.record(SagaTopic::OrderCancelled).await;
    assert_eq!(field(&r, "cancellationReason"), &json!(reason), "{}", r.summary());
}

#[then(regex = r#"^the failure lists "([^"]+)" with (\d+) requested and (\d+) available$"#)]
async fn failure_lists(world: &mut SagaWorld, alias: String, requested: i64, available: i64) {
    let r = world.record(SagaTopic::StockReservationFailed).await;
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

#[then(expr = "user {string} receives the push {string} of type {push_kind} for the order")]
async fn receives_push(world: &mut SagaWorld, user: String, message: String, kind: Kind) {
    let kind = kind.0;
    let id = world.order_id();
    let user = world.user(&user);
    let wanted = |p: &Push| p.kind == kind && p.message == message && p.user_id == user && !p.event_id.is_empty();
    if world.env.sink.wait_for(&id, world.deadline(), |pushes| pushes.iter().any(wanted)).await.is_err() {
        panic!("no push {kind} \"{message}\" to {user}{}", world.evidence(&id));
    }
}

#[then(expr = "user {string} receives exactly one push of type {push_kind} for the order")]
async fn exactly_one_push(world: &mut SagaWorld, user: String, kind: Kind) {
    let kind = kind.0;
    let id = world.order_id();
    let user = world.user(&user);
    let count = |pushes: &[Push]| distinct_pushes(pushes, kind, Some(&user));
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

#[then(expr = "a payment in {payment_status} for {amount} exists for the order")]
async fn payment_exists(world: &mut SagaWorld, status: PaymentState, total: Amount) {
    let status = status.0;
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
    assert_eq!(payment.status, status, "{payment:?}");
    assert_amount(&payment.amount, total, &format!("{payment:?}"));
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

#[then(expr = "the order's saga ends with exactly one of each: {topics}")]
async fn exactly_one_of_each(world: &mut SagaWorld, topics: TopicList) {
    let topics = topics.0;
    let id = world.order_id();
    for t in &topics {
        world.record(*t).await;
    }
    world
        .stays("one event per topic, none on the others", async |world| {
            for t in SagaTopic::ALL {
                let (n, expected) = (world.events_on(t, &id).len(), usize::from(topics.contains(&t)));
                if n != expected {
                    return Err(format!("{n} distinct events on {t}, expected {expected}{}", world.evidence(&id)));
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
            let events: BTreeSet<(PushKind, &str)> = pushes.iter().map(|p| (p.kind, p.event_id.as_str())).collect();
            let kinds: Vec<PushKind> = events.iter().map(|(kind, _)| *kind).collect();
            if payments == 1 && kinds == [PushKind::OrderConfirmed, PushKind::PaymentWait] {
                Ok(())
            } else {
                Err(format!("{payments} payment(s), pushes (kind, eventId) {events:?}{}", world.evidence(&id)))
            }
        })
        .await;
}

#[when(expr = "the order's {topic} event is delivered again")]
async fn redeliver(world: &mut SagaWorld, topic: Topic) {
    let topic = topic.0;
    let original = world.record(topic).await;
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
        Ok(delivery) => world.mark_injected(topic, delivery.partition, delivery.offset),
        Err((e, _)) => panic!("re-publishing {} failed: {e}", original.summary()),
    }
}

#[then(expr = "nothing new is published on {topic} for the order")]
async fn nothing_new(world: &mut SagaWorld, topic: Topic) {
    let topic = topic.0;
    let id = world.order_id();
    world.record(topic).await;
    world
        .stays(&format!("a single {topic} event"), async |world| match world.events_on(topic, &id).len() {
            1 => Ok(()),
            n => Err(format!("{n} distinct events on {topic}{}", world.evidence(&id))),
        })
        .await;
}

#[then(expr = "no {topic} is published for the order")]
async fn none_published(world: &mut SagaWorld, topic: Topic) {
    let topic = topic.0;
    let id = world.order_id();
    world
        .stays(&format!("no {topic}"), async |world| match world.records_on(topic, &id).len() {
            0 => Ok(()),
            n => Err(format!("{n} records on {topic}{}", world.evidence(&id))),
        })
        .await;
}

/// Waits until the tap has `topics` for every order of the batch, then runs `check`.
async fn check_batch(
    world: &SagaWorld,
    topics: &[SagaTopic],
    check: impl Fn(&[TapRecord], &BTreeSet<String>) -> Vec<checkers::Violation>,
) {
    let orders: BTreeSet<String> = world.batch.iter().cloned().collect();
    let names: Vec<String> = topics.iter().map(|t| world.env.topics.name(*t).to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let complete = world
        .env
        .tap
        .wait_until(world.deadline(), |log| {
            let lost = checkers::lost_events(log, &orders, &names);
            if lost.is_empty() { Ok(()) } else { Err(lost) }
        })
        .await;
    let log = world.env.tap.records();
    let violations = match complete {
        Ok(()) => check(&log, &orders),
        Err(lost) => lost,
    };
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
}

const SAGA: [SagaTopic; 3] = [SagaTopic::OrderCreated, SagaTopic::StockReserved, SagaTopic::OrderConfirmed];

#[then("every saga record of these orders is keyed by its orderId")]
async fn batch_keys(world: &mut SagaWorld) {
    check_batch(world, &SAGA, checkers::keyed_by_order_id).await;
}

#[then(expr = "for every order {topic} precedes {topic} precedes {topic}")]
async fn batch_causal(world: &mut SagaWorld, a: Topic, b: Topic, c: Topic) {
    let chain: Vec<(SagaTopic, String)> =
        [a.0, b.0, c.0].into_iter().map(|t| (t, world.env.topics.name(t).to_string())).collect();
    let chain: Vec<(SagaTopic, &str)> = chain.iter().map(|(t, n)| (*t, n.as_str())).collect();
    check_batch(world, &SAGA, |log, orders| checkers::causal_order(log, orders, &chain)).await;
}

#[then(expr = "no order lost or duplicated an event of {topics}")]
async fn batch_lost_duplicated(world: &mut SagaWorld, topics: TopicList) {
    let topics = topics.0;
    check_batch(world, &topics, checkers::duplicate_effects).await;
    let orders: BTreeSet<String> = world.batch.iter().cloned().collect();
    world
        .stays("no duplicated effects", async |world| {
            let v = checkers::duplicate_effects(&world.env.tap.records(), &orders);
            if v.is_empty() { Ok(()) } else { Err(v.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")) }
        })
        .await;
}

#[then(expr = "the orders' {topic} records used at least {int} partitions")]
async fn batch_spread(world: &mut SagaWorld, topic: Topic, at_least: usize) {
    let topic = topic.0;
    let orders: BTreeSet<&String> = world.batch.iter().collect();
    let name = world.env.topics.name(topic).to_string();
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

#[then(expr = "no push of type {push_kind} arrives for these orders")]
async fn no_push_for_batch(world: &mut SagaWorld, kind: Kind) {
    let kind = kind.0;
    world
        .stays(&format!("no {kind} push"), async |world| {
            let early: Vec<&String> =
                world.batch.iter().filter(|id| world.env.sink.for_order(id).iter().any(|p| p.kind == kind)).collect();
            if early.is_empty() { Ok(()) } else { Err(format!("{} order(s) already got it: {early:?}", early.len())) }
        })
        .await;
}

#[then(expr = "every order has exactly one payment in {payment_status} and one push of type {push_kind}")]
async fn batch_one_payment_one_push(world: &mut SagaWorld, status: PaymentState, kind: Kind) {
    let status = status.0;
    let kind = kind.0;
    for id in &world.batch {
        if world.env.sink.wait_for(id, world.deadline(), |p| p.iter().any(|p| p.kind == kind)).await.is_err() {
            panic!("no {kind} push for order {id}{}", world.evidence(id));
        }
    }
    world
        .stays("one payment and one push per order", async |world| {
            for id in &world.batch {
                let payments = world.payments(id).await;
                let pushes = distinct_pushes(&world.env.sink.for_order(id), kind, None);
                if payments.len() != 1 || payments[0].status != status || pushes != 1 {
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
fn distinct_pushes(pushes: &[Push], kind: PushKind, user: Option<&str>) -> usize {
    pushes
        .iter()
        .filter(|p| p.kind == kind && user.is_none_or(|u| p.user_id == u))
        .map(|p| p.event_id.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}
