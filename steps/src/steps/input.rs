//! Bad input: malformed requests and poison records.

use super::SagaWorld;
use super::orders::post_order;
use super::params::Topic;
use crate::tap::TapRecord;
use cucumber::{then, when};
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
    assert!(
        answer.body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "problem body without title: {}",
        answer.body
    );
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
        let record = FutureRecord::to(&name).key(&key).payload("this is not Avro".as_bytes()).partition(partition);
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
        assert_eq!(record.raw, b"this is not Avro", "the dead letter must carry the original bytes");
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
