//! Every Kafka client the kit makes, one function per kind, the settings they share in one
//! place ([`settings`]: the bootstrap servers, a reconnection within a second). None of them joins a consumer group or commits
//! an offset: the kit watches the implementation's topics and groups, it never takes part.
//!
//! | kind | used by |
//! |---|---|
//! | [`metadata_client`]: metadata, watermarks, offsets by time, group descriptions | the tap's start offsets, the backends' cluster metadata, group membership, the monitor's lag |
//! | [`offset_reader`]: one group's committed offsets | consumer groups |
//! | [`assigned_consumer`]: reads assigned partitions, committed records only | the tap, the bench's floor |
//! | [`peek_reader`]: whether a committed record is left after an offset | the capacity scenarios' idle precondition |
//! | [`producer`]: the suite's records (`acks=all`) | the steps (late, stray and poison records) |
//! | [`round_trip_producer`]: as the services produce (idempotent, `acks=all`, `linger.ms=0`) | the bench's floor |
//! | [`admin`]: creates and deletes topics | the bench's floor |

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, StreamConsumer};
use rdkafka::producer::FutureProducer;

/// What every client of the kit is set with: the bootstrap servers, and a reconnection within a
/// second of a broker's return. With librdkafka's default (the backoff doubling up to 10 s) a
/// client the kit keeps — a group's [`offset_reader`], the tap — came back seconds after the
/// implementation did: after COUPLING-4's broker restart, CAPACITY-1's idle precondition
/// waited 4–8 s on the offset readers, not on the implementation.
fn settings(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("reconnect.backoff.max.ms", "1000");
    config
}

/// A client that only reads the cluster's metadata and asks coordinators (it joins no group).
pub fn metadata_client(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    settings(bootstrap).create().with_context(|| format!("creating a Kafka metadata client for {bootstrap}"))
}

/// A reader of `group`'s committed offsets: never subscribed and never committing, it only asks
/// the group's coordinator.
pub fn offset_reader(bootstrap: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    settings(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .with_context(|| format!("creating an offset reader for group {group}"))
}

/// How eagerly an [`assigned_consumer`] fetches: a broker answers a fetch once it holds
/// `min_bytes`, or after `wait_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Fetch {
    pub wait_ms: u32,
    pub min_bytes: u32,
}

/// A consumer the caller assigns partitions to (no subscription, no commits; its group id is
/// unique, `saga-conformance-<role>-<uuid>`). It reads committed records only
/// (`read_committed`), like any consumer of the saga, and reconnects within a second.
pub fn assigned_consumer(bootstrap: &str, role: &str, fetch: Fetch) -> anyhow::Result<StreamConsumer> {
    settings(bootstrap)
        .set("group.id", format!("saga-conformance-{role}-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch.wait_ms.to_string())
        .set("fetch.min.bytes", fetch.min_bytes.to_string())
        .set("isolation.level", "read_committed")
        // After a broker outage the tap must be back no later than the implementation is: with
        // librdkafka's default (backoff doubling up to 10 s) and the reference's services
        // reconnecting within 1 s, the tap missed ~1000 order.created records written in the
        // seconds after the broker restarted in CRASH-2 (no consumer error surfaced; its
        // assigned partitions did not resume, cf. fede1024/rust-rdkafka#597), and FIELDS-1
        // blamed the implementation. Measured: with 1 s ([`settings`]), 4 of 4 runs of CRASH-2,
        // CRASH-3 and COUPLING-4 saw every record.
        .create()
        .with_context(|| format!("creating the {role}'s Kafka consumer for {bootstrap}"))
}

/// A reader the caller assigns partitions to, to see whether a `read_committed` consumer would
/// still get a record after an offset: it reports reaching a partition's end
/// (`enable.partition.eof`). No subscription, no commits, a group id of its own.
pub fn peek_reader(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    settings(bootstrap)
        .set("group.id", format!("saga-conformance-peek-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .with_context(|| format!("creating a Kafka reader for {bootstrap}"))
}

/// The producer of the suite's own records: acknowledged by every in-sync replica.
pub fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    settings(bootstrap).set("acks", "all").create().context("creating the kit's Kafka producer")
}

/// A producer set as the reference services' (idempotent, `acks=all`, `linger.ms=0`), for the
/// bench's round trips.
pub fn round_trip_producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    settings(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .with_context(|| format!("creating the round-trip producer for {bootstrap}"))
}

/// An admin client, to create and delete topics.
pub fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    settings(bootstrap).create().with_context(|| format!("creating a Kafka admin client for {bootstrap}"))
}
