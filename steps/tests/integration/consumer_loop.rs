//! The reference services' consumer loop under the failures it is built for, on one stack of
//! processes, printing what it measured (the bounds are generous: they catch a regression to
//! the session-timeout wait or to retried poison, not a slow machine):
//!
//! 1. **Recovery**: under a steady load (30 orders/s) each service in turn is SIGKILLed and
//!    restarted; the time from the restart to the first record the new process handles must
//!    stay under [`RECOVERY_BOUND`]. Every order completes, and the stock falls by exactly one
//!    unit per order (a reservation applied twice would show).
//! 2. **Zombie**: the Product Service is paused past its session timeout under load, then
//!    resumed: the broker has dropped it from the group, it rejoins, and every order still
//!    completes with one reservation and one payment push.
//! 3. **Poison**: 1,000 records the services cannot use (garbage, wrong magic byte, unknown
//!    schema id, truncated frame, empty value, wrong record type) across the consumed topics,
//!    then one order: it must reach PAYMENT_WAIT within [`POISON_BOUND`] of the last poison
//!    record, and all 1,000 must be in `.dlt` with their own and the dead-letter headers.
//!
//! Needs the service binaries: `cargo build --release --workspace --bins` first; `SAGA_BIN_DIR`
//! points the stack at other builds (e.g. to measure a baseline).

use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use saga_conformance::Service;
use saga_conformance::api::{NewOrder, OrderLine, ProductSpec};
use saga_conformance::backend::processes::{Stack, StackOptions};
use saga_conformance::client::SagaClient;
use saga_conformance::observed::TapRecord;
use saga_conformance::poll;
use saga_conformance::sink::PushSink;
use saga_conformance::tap::{Pace, Tap};
use saga_contract::{Money, PushKind, SagaTopic, Topics, now_millis};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const RATE_PER_S: u64 = 30;
const RECOVERY_BOUND: Duration = Duration::from_secs(15);
const POISON_BOUND: Duration = Duration::from_secs(5);
const POISON_RECORDS: usize = 1000;
/// Longer than the services' default session timeout (6 s), so the broker drops the member.
const ZOMBIE_PAUSE: Duration = Duration::from_secs(13);
const COMPLETE_DEADLINE: Duration = Duration::from_secs(120);
const STOCK: i64 = 1_000_000;

struct Ctx {
    stack: Stack,
    sink: PushSink,
    client: SagaClient,
    product_id: String,
}

/// An order the load accepted, and when it was sent (epoch ms).
struct Sent {
    order_id: String,
    at_ms: i64,
}

const PRICE: Money = Money(1_500_000);

async fn place_order(ctx: &Ctx) -> anyhow::Result<String> {
    let line = OrderLine { product_id: ctx.product_id.clone(), quantity: 1, unit_price: PRICE };
    let order = NewOrder { store_id: "S1".into(), items: vec![line] };
    Ok(ctx.client.place_order("U-consumer-loop", &order).await?.0.order_id)
}

async fn stock(ctx: &Ctx) -> anyhow::Result<i64> {
    let product = ctx.client.product(&ctx.product_id).await?;
    Ok(product.ok_or_else(|| anyhow::anyhow!("product {} answered 404", ctx.product_id))?.stock)
}

/// Open-loop load: one order every 1/[`RATE_PER_S`] s until `stop` resolves, each sent without
/// waiting for the previous one. Returns the accepted orders and how many were refused (the
/// Order Service down).
async fn load_until(ctx: &Ctx, stop: impl Future<Output = ()>) -> (Vec<Sent>, usize) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_S));
    let mut pending = FuturesUnordered::new();
    let (mut sent, mut refused) = (Vec::new(), 0);
    let mut record = |result: anyhow::Result<Sent>| match result {
        Ok(s) => sent.push(s),
        Err(_) => refused += 1,
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(result) = pending.next() => record(result),
            _ = tick.tick() => {
                let at_ms = now_millis();
                pending.push(async move { place_order(ctx).await.map(|order_id| Sent { order_id, at_ms }) });
            }
        }
    }
    while let Some(result) = pending.next().await {
        record(result);
    }
    (sent, refused)
}

/// Sum of the service's `saga_consumed_total` (0 for a process that just started).
async fn consumed(client: &SagaClient, service: Service) -> Option<f64> {
    let text = client.metrics(service).await.ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("saga_consumed_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Waits until every order has its PAYMENT_WAIT push; returns each order's end-to-end ms.
async fn completions(ctx: &Ctx, sent: &[Sent]) -> anyhow::Result<Vec<(i64, f64)>> {
    let ids: HashSet<&str> = sent.iter().map(|s| s.order_id.as_str()).collect();
    let done = ctx
        .sink
        .wait_until(COMPLETE_DEADLINE, |arrivals| {
            let paid: HashSet<&str> = arrivals
                .iter()
                .filter_map(|a| a.push.as_ref().ok())
                .filter(|p| p.kind == PushKind::PaymentWait)
                .map(|p| p.order_id.as_str())
                .collect();
            if ids.iter().all(|id| paid.contains(id)) { Ok(()) } else { Err(()) }
        })
        .await
        .is_ok();
    let arrivals = ctx.sink.arrivals();
    let mut paid: HashMap<&str, (i64, usize)> = HashMap::new();
    for push in arrivals
        .iter()
        .filter_map(|a| a.push.as_ref().ok().map(|p| (p, a.at_ms)))
        .filter(|(p, _)| p.kind == PushKind::PaymentWait)
    {
        let entry = paid.entry(push.0.order_id.as_str()).or_insert((push.1, 0));
        entry.1 += 1;
    }
    let missing: Vec<&&str> = ids.iter().filter(|id| !paid.contains_key(**id)).collect();
    anyhow::ensure!(
        done,
        "{} of {} orders had no PAYMENT_WAIT push within {COMPLETE_DEADLINE:?}, e.g. {:?}",
        missing.len(),
        ids.len(),
        missing.first()
    );
    let twice = ids.iter().filter(|id| paid[**id].1 > 1).count();
    if twice > 0 {
        println!(
            "    note: {twice} orders got their PAYMENT_WAIT push more than once (at-least-once push delivery after a crash)"
        );
    }
    Ok(sent.iter().map(|s| (s.at_ms, (paid[s.order_id.as_str()].0 - s.at_ms) as f64)).collect())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1]
}

/// Kills `service` under load, restarts it, and returns the seconds from the restart to its
/// first handled record.
async fn recovery(ctx: &Ctx, service: Service) -> anyhow::Result<f64> {
    let before = stock(ctx).await?;
    let mut outage = (0i64, 0i64);
    let faults = async {
        tokio::time::sleep(Duration::from_secs(3)).await; // steady load before the crash
        outage.0 = now_millis();
        ctx.stack.stop_service(service, true).await?;
        tokio::time::sleep(Duration::from_secs(1)).await; // the outage itself
        let restarted = Instant::now();
        let first = async {
            poll::until(RECOVERY_BOUND * 4, Duration::from_millis(20), async || {
                match consumed(&ctx.client, service).await {
                    Some(n) if n > 0.0 => Ok(restarted.elapsed()),
                    _ => Err(()),
                }
            })
            .await
            .map_err(|()| anyhow::anyhow!("{service} handled no record within {:?} of its restart", RECOVERY_BOUND * 4))
        };
        let (started, first) = tokio::join!(ctx.stack.start_service(service), first);
        started?;
        let first = first?;
        outage.1 = now_millis();
        tokio::time::sleep(Duration::from_secs(3)).await; // load after the recovery
        Ok::<_, anyhow::Error>(first)
    };
    let mut result = None;
    let (sent, refused) = load_until(ctx, async { result = Some(faults.await) }).await;
    let first = result.expect("the fault sequence ran")?;
    let e2e = completions(ctx, &sent).await?;
    let mut all: Vec<f64> = e2e.iter().map(|(_, ms)| *ms).collect();
    let mut in_outage: Vec<f64> =
        e2e.iter().filter(|(at, _)| *at >= outage.0 - 2000 && *at <= outage.1).map(|(_, ms)| *ms).collect();
    let used = before - stock(ctx).await?;
    println!(
        "recovery {service:<8} restart → first record handled {:>5.2}s | {} orders ({refused} refused while down): e2e p50 {:.0} ms p99 {:.0} ms; {} in flight during the outage: p99 {:.0} ms max {:.0} ms",
        first.as_secs_f64(),
        sent.len(),
        percentile(&mut all, 0.5),
        percentile(&mut all, 0.99),
        in_outage.len(),
        percentile(&mut in_outage, 0.99),
        percentile(&mut in_outage, 1.0),
    );
    anyhow::ensure!(
        used == sent.len() as i64,
        "the stock fell by {used} for {} orders of one unit each (a reservation lost or applied twice)",
        sent.len()
    );
    anyhow::ensure!(
        first < RECOVERY_BOUND,
        "{service} took {first:?} after its restart to handle a record (bound {RECOVERY_BOUND:?})"
    );
    Ok(first.as_secs_f64())
}

/// Pauses the Product Service past its session timeout under load, then resumes it.
async fn zombie(ctx: &Ctx) -> anyhow::Result<()> {
    let before = stock(ctx).await?;
    let mut resumed = 0i64;
    let faults = async {
        tokio::time::sleep(Duration::from_secs(2)).await; // steady load before the hang
        ctx.stack.pause_service(Service::Product, true).await?;
        tokio::time::sleep(ZOMBIE_PAUSE).await; // the hang being simulated
        ctx.stack.pause_service(Service::Product, false).await?;
        resumed = now_millis();
        tokio::time::sleep(Duration::from_secs(3)).await; // load after the resume
        Ok::<_, anyhow::Error>(())
    };
    let mut result = None;
    let (sent, _) = load_until(ctx, async { result = Some(faults.await) }).await;
    result.expect("the fault sequence ran")?;
    let e2e = completions(ctx, &sent).await?;
    let last = e2e.iter().map(|(at, ms)| *at + *ms as i64).max().unwrap_or(resumed);
    let used = before - stock(ctx).await?;
    println!(
        "zombie   product paused {ZOMBIE_PAUSE:?} (past its session timeout): {} orders all completed, the last {:.2}s after the resume",
        sent.len(),
        (last - resumed) as f64 / 1000.0
    );
    anyhow::ensure!(
        used == sent.len() as i64,
        "the stock fell by {used} for {} orders of one unit each (a reservation lost or applied twice)",
        sent.len()
    );
    Ok(())
}

/// The six kinds of poison, in turn, built from a real record of the topic (`valid`) and one
/// of another topic (`other`).
fn poison_value(kind: usize, valid: &[u8], other: &[u8]) -> (&'static str, Vec<u8>) {
    match kind {
        0 => ("garbage", b"\xde\xad\xbe\xef not an event".to_vec()),
        1 => ("wrong-magic", [&[1u8][..], &valid[1..]].concat()),
        2 => ("unknown-schema-id", [&[0u8, 0x7f, 0xff, 0xff, 0x00][..], &valid[5..]].concat()),
        3 => ("truncated", valid[..valid.len() / 2].to_vec()),
        4 => ("empty", Vec::new()),
        _ => ("wrong-record", other.to_vec()),
    }
}

async fn poison(ctx: &Ctx, tap: &Tap, topics: &Topics) -> anyhow::Result<f64> {
    let consumed = [
        SagaTopic::OrderCreated,
        SagaTopic::StockReserved,
        SagaTopic::StockReservationFailed,
        SagaTopic::OrderConfirmed,
    ];
    let real = |topic: SagaTopic| {
        tap.records()
            .into_iter()
            .find(|r: &TapRecord| r.topic == topics.name(topic) && r.schema_id.is_some())
            .map(|r| r.raw)
    };
    let created = real(SagaTopic::OrderCreated).ok_or_else(|| anyhow::anyhow!("the tap saw no order.created"))?;
    let reserved = real(SagaTopic::StockReserved).ok_or_else(|| anyhow::anyhow!("the tap saw no stock.reserved"))?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &ctx.stack.endpoints.kafka_bootstrap)
        .set("linger.ms", "5")
        .create()?;
    let mut sends = Vec::with_capacity(POISON_RECORDS);
    for i in 0..POISON_RECORDS {
        let topic = consumed[(i / 6) % consumed.len()];
        let (valid, other) = match topic {
            SagaTopic::OrderCreated => (&created, &reserved),
            SagaTopic::StockReserved => (&reserved, &created),
            _ => (&created, &reserved),
        };
        let (kind, value) = poison_value(i % 6, valid, other);
        let (producer, name) = (&producer, topics.name(topic).to_string());
        sends.push(async move {
            let key = uuid::Uuid::new_v4().to_string();
            let id = i.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: "poison.id", value: Some(&id) })
                .insert(Header { key: "poison.kind", value: Some(kind) });
            let record = FutureRecord::to(&name).key(&key).payload(&value).headers(headers);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|d| (id, name.clone(), d.partition, d.offset))
                .map_err(|(e, _)| anyhow::anyhow!("producing poison {i} to {name}: {e}"))
        });
    }
    let produced: Vec<(String, String, i32, i64)> = join_all(sends).await.into_iter().collect::<anyhow::Result<_>>()?;
    let last_poison = now_millis();
    let order_id = place_order(ctx).await?;
    ctx.sink
        .wait_for(&order_id, COMPLETE_DEADLINE, |p| p.iter().any(|p| p.kind == PushKind::PaymentWait))
        .await
        .map_err(|seen| {
            anyhow::anyhow!(
                "order {order_id} behind the poison got no PAYMENT_WAIT within {COMPLETE_DEADLINE:?}; pushes: {seen:?}"
            )
        })?;
    let delay =
        (ctx.sink.arrival_of(&order_id, PushKind::PaymentWait).unwrap_or_default() - last_poison) as f64 / 1000.0;

    let expected: HashMap<&str, (&str, i32, i64)> =
        produced.iter().map(|(id, t, p, o)| (id.as_str(), (t.as_str(), *p, *o))).collect();
    let dead = |log: &[TapRecord]| -> Vec<TapRecord> {
        log.iter().filter(|r| r.dead_letter && r.headers.iter().any(|(k, _)| k == "poison.id")).cloned().collect()
    };
    let letters = tap
        .wait_until(Duration::from_secs(60), |log| {
            let letters = dead(log);
            if letters.len() >= POISON_RECORDS { Ok(letters) } else { Err(letters) }
        })
        .await
        .unwrap_or_else(|letters| letters);
    let mut seen = HashSet::new();
    for letter in &letters {
        // The reference writes every header as text (docs/contract.md).
        let header =
            |name: &str| letter.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok());
        let id = header("poison.id").unwrap_or_default();
        let (topic, partition, offset) = expected
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("dead letter for unknown poison {id}: {}", letter.summary()))?;
        anyhow::ensure!(seen.insert(id.to_string()), "poison {id} was dead-lettered twice");
        anyhow::ensure!(letter.topic == format!("{topic}.dlt"), "poison {id} from {topic} landed in {}", letter.topic);
        let coordinates =
            (header("dlt.original.topic"), header("dlt.original.partition"), header("dlt.original.offset"));
        anyhow::ensure!(
            coordinates == (Some(topic), Some(partition.to_string().as_str()), Some(offset.to_string().as_str())),
            "poison {id} ({topic}[{partition}]@{offset}) has dead-letter headers {coordinates:?}"
        );
        anyhow::ensure!(
            header("poison.kind").is_some()
                && header("dlt.error").is_some_and(|e| !e.is_empty())
                && header("dlt.service").is_some(),
            "poison {id} lacks its own or the dead-letter headers: {:?}",
            letter.headers
        );
    }
    println!(
        "poison   {POISON_RECORDS} records (6 kinds over 4 topics): the order behind them reached PAYMENT_WAIT {delay:.2}s after the last; {} in .dlt with headers",
        letters.len()
    );
    anyhow::ensure!(
        letters.len() == POISON_RECORDS,
        "{} of {POISON_RECORDS} poison records reached the dead-letter topics",
        letters.len()
    );
    anyhow::ensure!(
        delay < POISON_BOUND.as_secs_f64(),
        "the order behind the poison took {delay:.2}s (bound {POISON_BOUND:?})"
    );
    Ok(delay)
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_loop_recovers_in_seconds_and_dead_letters_poison_at_once() {
    let _one_stack = crate::ONE_STACK_AT_A_TIME.lock().await;
    let began = Instant::now();
    let sink = PushSink::start(None).await.expect("starting the push sink");
    let topics = Topics::default();
    let options = StackOptions::reference(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/consumer-loop/logs"),
        &sink.url(),
        topics.clone(),
    );
    println!("service binaries from {}", options.bin_dir.display());
    let stack = Stack::start(options).await.expect("starting the stack");
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("http client");
    let client = SagaClient::new(http, &stack.endpoints);
    let ctx = Ctx { sink, client, product_id: format!("P-consumer-{}", uuid::Uuid::new_v4().simple()), stack };
    let outcome = async {
        let tap = Tap::start(
            &ctx.stack.endpoints.kafka_bootstrap,
            &ctx.stack.endpoints.registry_url,
            topics.clone(),
            true,
            Pace::Live,
        )
        .await?;
        let spec = ProductSpec { name: "Keyboard".into(), price: PRICE, stock: STOCK };
        ctx.client.put_product(&ctx.product_id, &spec).await?;
        let warm = place_order(&ctx).await?;
        completions(&ctx, &[Sent { order_id: warm, at_ms: now_millis() }]).await?;
        for service in [Service::Product, Service::Order, Service::Payment] {
            recovery(&ctx, service).await?;
        }
        zombie(&ctx).await?;
        poison(&ctx, &tap, &topics).await?;
        tap.close();
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let logs = ctx.stack.log_dir.clone();
    ctx.stack.shutdown().await;
    println!("consumer_loop: {:.1}s in all", began.elapsed().as_secs_f64());
    if let Err(e) = outcome {
        panic!("{e:#} (stack logs in {})", logs.display());
    }
}
