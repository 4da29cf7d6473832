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
        let header = |k: &str| record.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(header("dlt.original.topic").as_deref(), Some(name.as_str()), "{}", record.summary());
        assert_eq!(header("dlt.original.partition"), Some(partition.to_string()), "{}", record.summary());
        assert_eq!(header("dlt.original.offset"), Some(offset.to_string()), "{}", record.summary());
        assert!(header("dlt.error").is_some_and(|e| !e.is_empty()), "no dlt.error header: {:?}", record.headers);
        assert_eq!(record.raw, b"this is not Avro", "the dead letter must carry the original bytes");
    }
}
