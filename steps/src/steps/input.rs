//! Bad input and the contract's limits: malformed requests, orders just past a limit (refused)
//! and at it (accepted), and poison records.

use super::orders::{place, post_order};
use super::params::{Amount, Topic};
use super::{Product, SagaWorld};
use crate::api::{OrderLine, ProductSpec};
use crate::observed::TapRecord;
use cucumber::{given, then, when};
use futures::StreamExt;
use rdkafka::producer::FutureRecord;
use saga_contract::SagaTopic;
use serde_json::json;
use std::time::Duration;

#[when(regex = r#"^user "([^"]+)" posts the order body (.+)$"#)]
async fn posts_body(world: &mut SagaWorld, user: String, body: String) {
    world.answer = Some(post_order(world, Some(&world.user(&user)), body).await);
}

#[when("an order is posted without the X-User-Id header")]
async fn posts_without_user(world: &mut SagaWorld) {
    let body = json!({"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": 10}]}).to_string();
    world.answer = Some(post_order(world, None, body).await);
}

#[when(regex = r#"^user "([^"]+)" posts an order body of (\d+) MiB$"#)]
async fn posts_oversized(world: &mut SagaWorld, user: String, mib: usize) {
    // Well-formed JSON, so only its size is wrong.
    let body = json!({"storeId": "x".repeat(mib * 1024 * 1024), "items": [{"productId": "P", "quantity": 1, "unitPrice": 10}]}).to_string();
    world.answer = Some(post_order(world, Some(&world.user(&user)), body).await);
}

#[when(regex = r#"^user "([^"]+)" posts an order of (\d+) lines$"#)]
async fn posts_lines(world: &mut SagaWorld, user: String, count: usize) {
    let items: Vec<_> =
        (1..=count).map(|i| json!({"productId": format!("P{i}"), "quantity": 1, "unitPrice": 1})).collect();
    let body = json!({"storeId": "S1", "items": items}).to_string();
    world.answer = Some(post_order(world, Some(&world.user(&user)), body).await);
}

#[when(regex = r#"^user "([^"]+)" posts a well-formed order as "([^"]+)"$"#)]
async fn posts_as(world: &mut SagaWorld, user: String, content_type: String) {
    let body = json!({"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": 10}]}).to_string();
    let answer = world.env.client.post_order_as(&world.user(&user), &content_type, body).await;
    world.answer = Some(answer.unwrap_or_else(|e| panic!("{e}")));
}

#[given(regex = r#"^the catalogue has products "([A-Za-z]+)1" to "[A-Za-z]+(\d+)" priced (\S+) with (\d+) in stock$"#)]
async fn seed_products(world: &mut SagaWorld, prefix: String, count: usize, price: Amount, stock: i64) {
    let seeding = (1..=count).map(|i| {
        let (alias, client) = (format!("{prefix}{i}"), &world.env.client);
        let id = format!("{alias}-{}", world.tag);
        async move {
            let spec = ProductSpec { name: format!("{alias} (conformance)"), price: price.0, stock };
            client.put_product(&id, &spec).await.unwrap_or_else(|e| panic!("{e}"));
            (alias, Product { id, price: price.0, stock })
        }
    });
    let seeded = futures::stream::iter(seeding).buffer_unordered(16).collect::<Vec<_>>().await;
    world.products.extend(seeded);
}

#[when(regex = r#"^user "([^"]+)" orders 1 of each of "([A-Za-z]+)1" to "[A-Za-z]+(\d+)" at store "([^"]+)"$"#)]
async fn orders_each(world: &mut SagaWorld, user: String, prefix: String, count: usize, store: String) {
    let items: Vec<OrderLine> = (1..=count)
        .map(|i| {
            let product = world.product(&format!("{prefix}{i}"));
            OrderLine { product_id: product.id, quantity: 1, unit_price: product.price }
        })
        .collect();
    world.request_items = items.clone();
    let (id, answer) = place(world, &world.user(&user), &format!("{store}-{}", world.tag), items).await;
    world.order = Some(id);
    world.answer = Some(answer);
}

/// `GET <path>` of a service; `{unknown}` in the path stands for an id nobody created.
#[when(regex = r#"^the (Order|Product|Payment) Service is asked for "([^"]+)"$"#)]
async fn asks(world: &mut SagaWorld, service: String, path: String) {
    let service = crate::Service::parse(&service).expect("one of the three services");
    let path = path.replace("{unknown}", &uuid::Uuid::new_v4().to_string());
    world.answer = Some(world.env.client.get_raw(service, &path).await.unwrap_or_else(|e| panic!("{e}")));
}

#[then(regex = r"^the response status is (\d+) with a problem body$")]
async fn problem(world: &mut SagaWorld, status: u16) {
    let answer = world.answer.as_ref().expect("no answer");
    assert_eq!(answer.status, status, "answer: {} {}", answer.status, answer.body);
    assert!(
        answer.content_type.starts_with("application/problem+json"),
        "content type {:?}, body {}",
        answer.content_type,
        answer.body
    );
    assert_eq!(answer.body["status"], json!(status), "problem body: {}", answer.body);
    for member in ["type", "title", "detail"] {
        assert!(
            answer.body[member].as_str().is_some_and(|t| !t.is_empty()),
            "problem body without {member} (RFC 9457: type, title, status, detail): {}",
            answer.body
        );
    }
}

#[then(regex = r#"^nothing is published on "order.created" for user "([^"]+)"$"#)]
async fn nothing_for_user(world: &mut SagaWorld, user: String) {
    let user = world.user(&user);
    let name = world.env.topics.name(SagaTopic::OrderCreated).to_string();
    let held = world
        .env
        .tap
        .holds_for(world.env.config.quiet_period(), |log| {
            match log.iter().find(|r| r.topic == name && r.value.as_ref().is_some_and(|v| v["userId"] == json!(user))) {
                Some(record) => Err(record.summary()),
                None => Ok(()),
            }
        })
        .await;
    if let Err(record) = held {
        panic!("a refused request was published: {record}");
    }
}

#[when(expr = "a poison record is published on {topic}")]
async fn publish_poison(world: &mut SagaWorld, topic: Topic) {
    let name = world.env.topics.name(topic.0).to_string();
    // One on every partition, so whichever partition the next order lands on has one ahead.
    for partition in 0..partitions(world, &name) {
        let key = format!("poison-{}-{partition}", world.tag);
        let record =
            FutureRecord::to(&name).key(&key).payload(crate::checkers::fields::SUITE_POISON).partition(partition);
        match world.env.producer.send(record, Duration::from_secs(10)).await {
            Ok(delivery) => world.poison.push((key, delivery.partition, delivery.offset)),
            Err((e, _)) => panic!("publishing poison to {name}[{partition}] failed: {e}"),
        }
    }
}

fn partitions(world: &SagaWorld, topic: &str) -> i32 {
    use rdkafka::producer::Producer;
    let metadata = world
        .env
        .producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
    metadata
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0)
        .unwrap_or_else(|| panic!("{topic} has no partitions"))
}

#[then(
    expr = "the poison record appears on the dead-letter topic of {topic} with its original topic, partition and offset"
)]
async fn poison_dead_lettered(world: &mut SagaWorld, topic: Topic) {
    let saga_topic = topic.0;
    let (name, dlt) = (world.env.topics.name(saga_topic).to_string(), world.env.topics.dead_letter(saga_topic));
    for (key, partition, offset) in world.poison.clone() {
        let found = world
            .env
            .tap
            .wait_until(world.deadline(), |log| {
                let dead: Vec<&TapRecord> = log.iter().filter(|r| r.topic == dlt).collect();
                dead.iter().find(|r| r.key.as_deref() == Some(&key)).map(|r| (*r).clone()).ok_or(dead.len())
            })
            .await;
        let record = found.unwrap_or_else(|dead| {
            panic!(
                "poison {key} ({name}[{partition}]@{offset}) did not reach {dlt} within {:?} ({dead} other record(s) did)",
                world.deadline()
            )
        });
        let origin = dead_letter_origin(&record.headers)
            .unwrap_or_else(|why| panic!("{why}: {:?} on {}", shown(&record.headers), record.summary()));
        assert_eq!(
            (origin.topic.as_str(), origin.partition, origin.offset),
            (name.as_str(), partition, offset),
            "the dead letter's origin headers name another record: {}",
            record.summary()
        );
        assert_eq!(record.raw, crate::checkers::fields::SUITE_POISON, "the dead letter must carry the original bytes");
    }
}

/// Where a dead letter came from, as its headers say.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    topic: String,
    partition: i32,
    offset: i64,
}

/// The contract's dead-letter headers (`dlt.original.topic`, `…partition`, `…offset`,
/// `dlt.error`) or Spring Kafka's (`kafka_dlt-original-topic`, `…-partition`, `…-offset`,
/// `kafka_dlt-exception-message`); numbers as decimal text (the contract) or big-endian binary
/// (Spring: 4 bytes for the partition, 8 for the offset). `Err`: which header is missing or
/// unreadable.
fn dead_letter_origin(headers: &[(String, Vec<u8>)]) -> Result<Origin, String> {
    let find = |names: [&str; 2]| {
        headers
            .iter()
            .find(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| format!("no {} header (nor {})", names[0], names[1]))
    };
    let number = |names: [&str; 2]| -> Result<i64, String> {
        let bytes = find(names)?;
        header_number(bytes)
            .ok_or_else(|| format!("{} is neither decimal text nor a big-endian int: {bytes:?}", names[0]))
    };
    let topic = String::from_utf8(find(["dlt.original.topic", "kafka_dlt-original-topic"])?.to_vec())
        .map_err(|_| "dlt.original.topic is not UTF-8".to_string())?;
    let partition = number(["dlt.original.partition", "kafka_dlt-original-partition"])?;
    let offset = number(["dlt.original.offset", "kafka_dlt-original-offset"])?;
    let error = find(["dlt.error", "kafka_dlt-exception-message"])?;
    if error.is_empty() {
        return Err("the dead letter's error header is empty".into());
    }
    let partition = i32::try_from(partition).map_err(|_| format!("partition {partition} is out of range"))?;
    Ok(Origin { topic, partition, offset })
}

/// A header number: decimal text, or a big-endian int of 4 or 8 bytes.
fn header_number(bytes: &[u8]) -> Option<i64> {
    if let Some(n) = std::str::from_utf8(bytes).ok().and_then(|t| t.trim().parse().ok()) {
        return Some(n);
    }
    match bytes.len() {
        4 => Some(i64::from(i32::from_be_bytes(bytes.try_into().ok()?))),
        8 => Some(i64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// Headers as text where they are text, for a failure message.
fn shown(headers: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap_or_else(|_| format!("{v:?}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
    }

    #[test]
    fn the_contracts_text_headers_and_springs_binary_ones_both_read() {
        let ours = headers(&[
            ("dlt.original.topic", b"order.created"),
            ("dlt.original.partition", b"2"),
            ("dlt.original.offset", b"1234"),
            ("dlt.error", b"not Avro"),
        ]);
        let want = Origin { topic: "order.created".into(), partition: 2, offset: 1234 };
        assert_eq!(dead_letter_origin(&ours), Ok(want));
        let spring = headers(&[
            ("kafka_dlt-original-topic", b"order.created"),
            ("kafka_dlt-original-partition", &2i32.to_be_bytes()),
            ("kafka_dlt-original-offset", &1234i64.to_be_bytes()),
            ("kafka_dlt-exception-message", b"Deserialization failed"),
        ]);
        assert_eq!(
            dead_letter_origin(&spring),
            Ok(Origin { topic: "order.created".into(), partition: 2, offset: 1234 })
        );
    }

    #[test]
    fn a_missing_or_unreadable_origin_header_is_caught() {
        let no_offset = headers(&[("dlt.original.topic", b"t"), ("dlt.original.partition", b"0"), ("dlt.error", b"e")]);
        assert!(dead_letter_origin(&no_offset).unwrap_err().contains("no dlt.original.offset header"));
        let garbled = headers(&[
            ("dlt.original.topic", b"t"),
            ("dlt.original.partition", b"0"),
            ("dlt.original.offset", &[1, 2, 3]),
            ("dlt.error", b"e"),
        ]);
        assert!(dead_letter_origin(&garbled).unwrap_err().contains("neither decimal text nor a big-endian int"));
        let silent = headers(&[
            ("dlt.original.topic", b"t"),
            ("dlt.original.partition", b"0"),
            ("dlt.original.offset", b"5"),
            ("dlt.error", b""),
        ]);
        assert!(dead_letter_origin(&silent).unwrap_err().contains("error header is empty"));
    }
}
