//! Late and stray events: records the suite makes itself, with a *new* eventId — a second
//! event for an effect already applied, an event for an order in another state, an event for
//! an order nobody knows. Deduplication by eventId does not cover these; the implementation's
//! state machine must. Records are framed with the contract's schemas through the
//! implementation's registry, exactly as a producer of the saga would.

use super::SagaWorld;
use super::params::{Kind, Status, Topic};
use apache_avro::types::Value;
use cucumber::{then, when};
use rdkafka::producer::{FutureRecord, Producer as _};
use saga_contract::events::{FailedItem, ReservedItem};
use saga_contract::{
    Decoded, Event, OrderCancelled, OrderConfirmed, OrderCreated, SagaTopic, StockReservationFailed, StockReserved,
    now_millis,
};
use std::time::Duration;
use uuid::Uuid;

impl SagaWorld {
    /// Publishes `value` on `topic` keyed by `key` (to `partition`, if given) and remembers it
    /// as injected, so later "nothing new happens" checks wait until it was consumed.
    pub(super) async fn inject(&mut self, topic: SagaTopic, key: &str, value: Vec<u8>, partition: Option<i32>) {
        let name = self.env.topics.name(topic).to_string();
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&name).key(key).payload(&value);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        match self.env.producer.send(record, Duration::from_secs(10)).await {
            Ok(delivery) => self.mark_injected(topic, delivery.partition, delivery.offset),
            Err((e, _)) => panic!("publishing a {name} record keyed {key} failed: {e}"),
        }
    }

    /// Remembers a record the suite published for the implementation to consume: later "nothing
    /// new happens" checks wait until it was consumed, and do not count it as an effect.
    pub(super) fn mark_injected(&mut self, topic: SagaTopic, partition: i32, offset: i64) {
        self.injected.push((topic, partition, offset));
        self.sent.insert((self.env.topics.name(topic).to_string(), partition, offset));
    }

    /// How many partitions `topic` has (from the broker's metadata).
    fn partition_count(&self, topic: SagaTopic) -> i32 {
        let name = self.env.topics.name(topic);
        let client = self.env.producer.client();
        let metadata = tokio::task::block_in_place(|| client.fetch_metadata(Some(name), Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("reading the metadata of {name}: {e}"));
        metadata
            .topics()
            .first()
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name} has no partitions"))
    }

    /// `value` read as `topic`'s event (it must match the contract) and framed again.
    async fn reframe<E: Event>(&self, topic: SagaTopic, value: &Value) -> Vec<u8> {
        let event = E::from_value(value)
            .unwrap_or_else(|e| panic!("the recorded {} does not match the contract: {e}", topic.default_name()));
        self.frame(topic, event).await
    }

    async fn frame<E: Event>(&self, topic: SagaTopic, event: E) -> Vec<u8> {
        let name = self.env.topics.name(topic);
        self.env
            .codec
            .encode(name, event)
            .await
            .unwrap_or_else(|e| panic!("framing a {name} record through the registry failed: {e}"))
    }
}

/// The recorded event with a fresh eventId and timestamp, framed again: the same effect
/// announced a second time, as a buggy or replayed producer would.
async fn reissued(world: &SagaWorld, topic: SagaTopic, decoded: &Decoded) -> Vec<u8> {
    let mut value = decoded.value.clone();
    if let Value::Record(fields) = &mut value {
        for (name, field) in fields.iter_mut() {
            match name.as_str() {
                "eventId" => *field = Value::String(Uuid::new_v4().to_string()),
                "eventTimestamp" => *field = Value::Long(now_millis()),
                _ => {}
            }
        }
    }
    match topic {
        SagaTopic::OrderCreated => world.reframe::<OrderCreated>(topic, &value).await,
        SagaTopic::StockReserved => world.reframe::<StockReserved>(topic, &value).await,
        SagaTopic::StockReservationFailed => world.reframe::<StockReservationFailed>(topic, &value).await,
        SagaTopic::OrderConfirmed => world.reframe::<OrderConfirmed>(topic, &value).await,
        SagaTopic::OrderCancelled => world.reframe::<OrderCancelled>(topic, &value).await,
    }
}

#[when(expr = "the order's {topic} event is published again with a new eventId")]
async fn published_again_new_id(world: &mut SagaWorld, topic: Topic) {
    let saga_topic = topic.0;
    let original = world.record(saga_topic).await;
    let decoded = world
        .env
        .codec
        .decode(&original.raw)
        .await
        .unwrap_or_else(|e| panic!("decoding {} again failed: {e}", original.summary()));
    let value = reissued(world, saga_topic, &decoded).await;
    let key = world.order_id();
    world.inject(saga_topic, &key, value, Some(original.partition)).await;
}

/// A `stock.reserved` or `stock.reservation.failed` for the current order built from its
/// order.created lines — an answer the Product Service never gave (e.g. for an order already
/// cancelled, or already confirmed).
#[when(expr = "a {topic} event for the order is published with a new eventId")]
async fn late_stock_answer(world: &mut SagaWorld, topic: Topic) {
    let created = world.record(SagaTopic::OrderCreated).await;
    let decoded = world
        .env
        .codec
        .decode(&created.raw)
        .await
        .unwrap_or_else(|e| panic!("decoding {} failed: {e}", created.summary()));
    let order = OrderCreated::from_value(&decoded.value).unwrap_or_else(|e| panic!("{}: {e}", created.summary()));
    let (event_id, now) = (Uuid::new_v4().to_string(), now_millis());
    let value = match topic.0 {
        SagaTopic::StockReserved => {
            let items = order.items.iter().map(|i| ReservedItem {
                product_id: i.product_id.clone(),
                quantity: i.quantity,
                reserved_stock: 0,
            });
            let event = StockReserved {
                event_id,
                event_timestamp: now,
                order_id: order.order_id.clone(),
                reserved_items: items.collect(),
                reserved_at: now,
            };
            world.frame(topic.0, event).await
        }
        SagaTopic::StockReservationFailed => {
            let items = order.items.iter().map(|i| FailedItem {
                product_id: i.product_id.clone(),
                requested_quantity: i.quantity,
                available_stock: 0,
            });
            let event = StockReservationFailed {
                event_id,
                event_timestamp: now,
                order_id: order.order_id.clone(),
                failed_items: items.collect(),
                failure_reason: "INSUFFICIENT_STOCK".into(),
                failed_at: now,
            };
            world.frame(topic.0, event).await
        }
        other => panic!("late answers are made for the stock topics, not {other}"),
    };
    world.inject(topic.0, &order.order_id, value, None).await;
}

#[then(expr = "no push of type {push_kind} arrives for the order")]
async fn no_push_for_order(world: &mut SagaWorld, kind: Kind) {
    let (kind, id) = (kind.0, world.order_id());
    world
        .stays(&format!("no {kind} push"), async |world| {
            match world.env.sink.for_order(&id).iter().find(|p| p.kind == kind) {
                Some(push) => Err(format!("{push:?}{}", world.evidence(&id))),
                None => Ok(()),
            }
        })
        .await;
}

#[then(expr = "the order stays {order_status}")]
async fn order_stays(world: &mut SagaWorld, status: Status) {
    let (expected, id) = (status.0, world.order_id());
    if let Err(last) = super::orders::wait_status(world, &id, expected, world.deadline()).await {
        panic!("order {id} is {last}, not {expected}{}", world.evidence(&id));
    }
    world
        .stays(&format!("status {expected}"), async |world| match super::orders::status_of(world, &id).await {
            Ok(now) if now == expected => Ok(()),
            Ok(now) => Err(format!("order {id} moved to {now}{}", world.evidence(&id))),
            Err(unread) => Err(format!("order {id} reads {unread}")),
        })
        .await;
}

/// Events for an order no service has heard of, one on every partition, so whichever
/// partition a later order lands on has a stray record in front of it.
#[when(expr = "a {topic} event for an unknown order is published on every partition")]
async fn stray_events(world: &mut SagaWorld, topic: Topic) {
    let saga_topic = topic.0;
    let now = now_millis();
    let product_id = format!("P-{}", world.tag);
    for partition in 0..world.partition_count(saga_topic) {
        let unknown = format!("unknown-order-{}-{partition}", world.tag);
        let event_id = Uuid::new_v4().to_string();
        let value = match saga_topic {
            SagaTopic::StockReserved => {
                let items = vec![ReservedItem { product_id: product_id.clone(), quantity: 1, reserved_stock: 0 }];
                world
                    .frame(
                        saga_topic,
                        StockReserved {
                            event_id,
                            event_timestamp: now,
                            order_id: unknown.clone(),
                            reserved_items: items,
                            reserved_at: now,
                        },
                    )
                    .await
            }
            SagaTopic::StockReservationFailed => {
                let items =
                    vec![FailedItem { product_id: product_id.clone(), requested_quantity: 1, available_stock: 0 }];
                let event = StockReservationFailed {
                    event_id,
                    event_timestamp: now,
                    order_id: unknown.clone(),
                    failed_items: items,
                    failure_reason: "INSUFFICIENT_STOCK".into(),
                    failed_at: now,
                };
                world.frame(saga_topic, event).await
            }
            other => panic!("stray events are made for the stock topics, not {other}"),
        };
        world.inject(saga_topic, &unknown, value, Some(partition)).await;
    }
}

/// The stray orders of [`stray_events`] caused nothing: no saga event and no push names them.
/// The suite's own records sit on the stock topics, and no implementation publishes there for
/// an order it never saw created, so those topics are left out; a copy in a dead-letter topic
/// is allowed (setting aside an event nobody can use is no effect on the saga).
#[then("nothing is published or pushed for the unknown orders")]
async fn nothing_for_strays(world: &mut SagaWorld) {
    let prefix = format!("unknown-order-{}-", world.tag);
    let ours = [
        world.env.topics.name(SagaTopic::StockReserved).to_string(),
        world.env.topics.name(SagaTopic::StockReservationFailed).to_string(),
    ];
    world
        .stays("nothing for the unknown orders", async |world| {
            let names = |id: &Option<String>| id.as_deref().is_some_and(|id| id.starts_with(&prefix));
            let effects: Vec<String> = world
                .env
                .tap
                .records()
                .iter()
                .filter(|r| !r.dead_letter && !ours.contains(&r.topic) && (names(&r.order_id) || names(&r.key)))
                .map(|r| r.summary())
                .collect();
            let pushes: Vec<String> = world
                .env
                .sink
                .arrivals()
                .iter()
                .filter_map(|a| a.push.as_ref().ok())
                .filter(|p| p.order_id.starts_with(&prefix))
                .map(|p| format!("{p:?}"))
                .collect();
            if effects.is_empty() && pushes.is_empty() {
                Ok(())
            } else {
                Err(format!("records {effects:?}, pushes {pushes:?}"))
            }
        })
        .await;
}
