//! `saga-conformance monitor` against the reference stack (processes backend, real Kafka and
//! PostgreSQL), the monitor running in-process and read through its own `/metrics`:
//!
//! 1. **Clean traffic**: confirmed and cancelled orders → every saga completes, zero violations
//!    under every requirement, and each stage latency histogram has samples.
//! 2. **Payment Service down**: orders confirmed while it is stopped go past their deadline (the
//!    last step is its consumption, which leaves no record) without a violation; once it is back
//!    they complete.
//! 3. **Injected violations** under a steady load ([`LOAD_PER_S`] orders/s), each produced
//!    directly on Kafka: a record keyed by something else than its orderId (a redelivery with
//!    another key), a second `stock.reserved` with a new eventId, and a saga left without its
//!    last step (an `order.created` for a product nobody sells: the reservation fails and the
//!    Order Service, which never took the order, ends nothing) → once the load's sagas have
//!    completed, each counted exactly once under ORDER-1 (`key`, `duplicate`, `lost`), nothing
//!    else counted, and only the stalled saga past its deadline.
//!
//! Needs the service binaries: `cargo build --release --workspace --bins` first.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use saga_conformance::Service;
use saga_conformance::api::{NewOrder, OrderLine, ProductSpec};
use saga_conformance::backend::paths::repo_file;
use saga_conformance::backend::processes::{Stack, StackOptions};
use saga_conformance::client::SagaClient;
use saga_conformance::config::sections::GroupNames;
use saga_conformance::config::{BackendKind, Config};
use saga_conformance::monitor::Monitor;
use saga_conformance::observed::TapRecord;
use saga_conformance::poll;
use saga_conformance::sink::PushSink;
use saga_conformance::tap::{Pace, Tap};
use saga_contract::events::OrderItem;
use saga_contract::{EventCodec, Money, OrderCreated, SagaTopic, StockReserved, Topics, now_millis};
use std::time::{Duration, Instant};

/// Short, so the deadline phases take seconds; a clean saga here takes tens of milliseconds.
const SAGA_DEADLINE: Duration = Duration::from_secs(4);
/// How long a phase may take to show what it expects on `/metrics`.
const PHASE_DEADLINE: Duration = Duration::from_secs(60);
const CONFIRMED_ORDERS: usize = 20;
const CANCELLED_ORDERS: usize = 3;
const PAYMENT_DOWN_ORDERS: usize = 3;
const LOAD_PER_S: u64 = 20;

struct Ctx {
    stack: Stack,
    /// For the monitor's own endpoints.
    http: reqwest::Client,
    /// The saga's API.
    client: SagaClient,
    monitor: Monitor,
    tap: Tap,
    codec: EventCodec,
    producer: FutureProducer,
    topics: Topics,
}

/// The value of one series on `/metrics` (`name{labels}` exactly as exposed); 0 if absent.
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn violations(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with("saga_monitor_violations_total{"))
        .filter_map(|l| l.rsplit_once(' ').map(|(s, v)| (s.to_string(), v.parse().unwrap_or(f64::NAN))))
        .collect()
}

fn violation(requirement: &str, checker: &str) -> String {
    format!(r#"saga_monitor_violations_total{{requirement="{requirement}",checker="{checker}"}}"#)
}

async fn metrics(ctx: &Ctx) -> anyhow::Result<String> {
    Ok(ctx.http.get(format!("http://{}/metrics", ctx.monitor.addr)).send().await?.error_for_status()?.text().await?)
}

/// Reads `/metrics` until `done` holds on it, or fails with the last text.
async fn wait_metrics(ctx: &Ctx, what: &str, done: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    poll::until(PHASE_DEADLINE, Duration::from_millis(100), async || match metrics(ctx).await {
        Ok(text) if done(&text) => Ok(text),
        Ok(text) => Err(text),
        Err(e) => Err(format!("{e:#}")),
    })
    .await
    .map_err(|last| anyhow::anyhow!("/metrics did not show {what} within {PHASE_DEADLINE:?}; last:\n{last}"))
}

const PRICE: Money = Money(1_500_000);

async fn put_product(ctx: &Ctx, id: &str, stock: i64) -> anyhow::Result<()> {
    Ok(ctx.client.put_product(id, &ProductSpec { name: "monitor test".into(), price: PRICE, stock }).await?)
}

async fn place_orders(ctx: &Ctx, product: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let line = OrderLine { product_id: product.to_string(), quantity: 1, unit_price: PRICE };
        let order = NewOrder { store_id: "S1".into(), items: vec![line] };
        ids.push(ctx.client.place_order("U-monitor", &order).await?.0.order_id);
    }
    Ok(ids)
}

async fn produce(ctx: &Ctx, topic: SagaTopic, key: &str, value: &[u8]) -> anyhow::Result<()> {
    let name = ctx.topics.name(topic);
    ctx.producer
        .send(FutureRecord::to(name).key(key).payload(value), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing a {name} record keyed {key}: {e}"))?;
    Ok(())
}

/// The `stock.reserved` the tap recorded for `order`.
async fn reserved_of(ctx: &Ctx, order: &str) -> anyhow::Result<TapRecord> {
    ctx.tap
        .wait_for(SagaTopic::StockReserved, order, PHASE_DEADLINE)
        .await
        .map_err(|seen| anyhow::anyhow!("no stock.reserved for {order}; its records: {seen:?}"))
}

async fn clean_traffic(ctx: &Ctx) -> anyhow::Result<()> {
    put_product(ctx, "P-monitor", 100_000).await?;
    put_product(ctx, "P-monitor-none", 0).await?;
    place_orders(ctx, "P-monitor", CONFIRMED_ORDERS).await?;
    place_orders(ctx, "P-monitor-none", CANCELLED_ORDERS).await?;
    let all = (CONFIRMED_ORDERS + CANCELLED_ORDERS) as f64;
    let text = wait_metrics(ctx, "every clean saga complete", |t| {
        series(t, r#"saga_monitor_stage_seconds_count{stage="saga"}"#) >= all
            && series(t, "saga_monitor_sagas_in_flight") == 0.0
    })
    .await?;
    let counted: Vec<_> = violations(&text).into_iter().filter(|(_, v)| *v != 0.0).collect();
    anyhow::ensure!(counted.is_empty(), "clean traffic counted violations: {counted:?}");
    for stage in ["reservation", "confirmation", "payment", "saga"] {
        let n = series(&text, &format!(r#"saga_monitor_stage_seconds_count{{stage="{stage}"}}"#));
        anyhow::ensure!(n > 0.0, "no {stage} latency samples:\n{text}");
    }
    anyhow::ensure!(
        series(&text, r#"saga_monitor_stage_seconds_count{stage="payment"}"#) == CONFIRMED_ORDERS as f64,
        "expected one payment sample per confirmed order:\n{text}"
    );
    println!(
        "clean: {all} sagas complete, 0 violations, mean saga {:.1} ms",
        1000.0 * series(&text, r#"saga_monitor_stage_seconds_sum{stage="saga"}"#) / all
    );
    Ok(())
}

async fn payment_down(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.stack.stop_service(Service::Payment, true).await?;
    place_orders(ctx, "P-monitor", PAYMENT_DOWN_ORDERS).await?;
    let text = wait_metrics(ctx, "the orders confirmed while the Payment Service is down past their deadline", |t| {
        series(t, "saga_monitor_sagas_past_deadline") >= PAYMENT_DOWN_ORDERS as f64
    })
    .await?;
    let counted: Vec<_> = violations(&text).into_iter().filter(|(_, v)| *v != 0.0).collect();
    anyhow::ensure!(counted.is_empty(), "a stopped consumer counted as violations: {counted:?}");
    ctx.stack.start_service(Service::Payment).await?;
    wait_metrics(ctx, "those sagas complete once the Payment Service is back", |t| {
        series(t, "saga_monitor_sagas_past_deadline") == 0.0 && series(t, "saga_monitor_sagas_in_flight") == 0.0
    })
    .await?;
    println!("payment down: {PAYMENT_DOWN_ORDERS} sagas went past their deadline and completed after the restart");
    Ok(())
}

async fn injected(ctx: &Ctx) -> anyhow::Result<String> {
    // Fresh orders: the monitor keeps a completed saga for one deadline only.
    let confirmed = place_orders(ctx, "P-monitor", 2).await?;
    // A redelivery of one order's stock.reserved under another key.
    let original = reserved_of(ctx, &confirmed[0]).await?;
    produce(ctx, SagaTopic::StockReserved, "not-the-order-id", &original.raw).await?;
    // Another order's stock.reserved announced again with a new eventId.
    let second = reserved_of(ctx, &confirmed[1]).await?;
    let mut again: StockReserved = ctx.codec.decode_as(&second.raw).await?;
    (again.event_id, again.event_timestamp) = (uuid::Uuid::new_v4().to_string(), now_millis());
    let value = ctx.codec.encode(ctx.topics.name(SagaTopic::StockReserved), again).await?;
    produce(ctx, SagaTopic::StockReserved, &confirmed[1], &value).await?;
    // A saga that cannot end: the product does not exist, the Order Service never took the order.
    let order_id = uuid::Uuid::new_v4().to_string();
    let now = now_millis();
    let stalled = OrderCreated {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: now,
        order_id: order_id.clone(),
        user_id: "U-monitor".into(),
        store_id: "S1".into(),
        items: vec![OrderItem { product_id: "P-monitor-unknown".into(), quantity: 1, unit_price: Money(1_500_000) }],
        total_amount: Money(1_500_000),
        created_at: now,
    };
    let value = ctx.codec.encode(ctx.topics.name(SagaTopic::OrderCreated), stalled).await?;
    produce(ctx, SagaTopic::OrderCreated, &order_id, &value).await?;

    wait_metrics(ctx, "the three injected violations", |t| expected().iter().all(|s| series(t, s) >= 1.0)).await?;
    Ok(order_id)
}

fn expected() -> [String; 3] {
    [violation("ORDER-1", "key"), violation("ORDER-1", "duplicate"), violation("ORDER-1", "lost")]
}

/// Orders at [`LOAD_PER_S`], each sent without waiting for the previous one, until `phase`
/// ends; returns its result and how many orders were accepted.
async fn under_load<T>(ctx: &Ctx, phase: impl Future<Output = anyhow::Result<T>>) -> (anyhow::Result<T>, usize) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / LOAD_PER_S));
    let mut pending = FuturesUnordered::new();
    let mut accepted = 0;
    tokio::pin!(phase);
    let result = loop {
        tokio::select! {
            result = &mut phase => break result,
            Some(placed) = pending.next() => accepted += usize::from(Result::is_ok(&placed)),
            _ = tick.tick() => pending.push(place_orders(ctx, "P-monitor", 1)),
        }
    };
    while let Some(placed) = pending.next().await {
        accepted += usize::from(placed.is_ok());
    }
    (result, accepted)
}

/// After the load: its sagas complete, the injected violations stay counted once, nothing else
/// is counted, and only the stalled saga is past its deadline.
async fn settled(ctx: &Ctx, sagas_before: f64, load: usize, stalled: &str) -> anyhow::Result<()> {
    // The two orders the injections used and the load's.
    let complete = sagas_before + 2.0 + load as f64;
    wait_metrics(ctx, "the load's sagas complete", |t| {
        series(t, r#"saga_monitor_stage_seconds_count{stage="saga"}"#) >= complete
            && series(t, "saga_monitor_sagas_in_flight") == 1.0
    })
    .await?;
    // A further deadline: a violation judged again, or a second finding, would show by then.
    tokio::time::sleep(SAGA_DEADLINE).await;
    let text = wait_metrics(ctx, "an answer", |_| true).await?;
    for (name, value) in violations(&text) {
        let want = if expected().contains(&name) { 1.0 } else { 0.0 };
        anyhow::ensure!(value == want, "{name} = {value}, expected {want}:\n{text}");
    }
    anyhow::ensure!(
        series(&text, "saga_monitor_sagas_past_deadline") == 1.0,
        "expected only the stalled saga past its deadline:\n{text}"
    );
    let page = ctx.http.get(format!("http://{}/", ctx.monitor.addr)).send().await?.text().await?;
    anyhow::ensure!(
        page.contains("not-the-order-id") && page.contains(stalled),
        "the page does not list the wrong key and the stalled order"
    );
    println!(
        "injected under load ({load} orders at {LOAD_PER_S}/s): key, duplicate and lost each counted once under ORDER-1, nothing else; only the stalled saga past its deadline"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_counts_nothing_on_clean_traffic_and_each_injected_violation_once() {
    let _one_stack = crate::ONE_STACK_AT_A_TIME.lock().await;
    let began = Instant::now();
    let sink = PushSink::start(None).await.expect("starting the push sink");
    let topics = Topics::default();
    let options = StackOptions::reference(repo_file("reports/monitor/logs"), &sink.url(), topics.clone());
    let stack = Stack::start(options).await.expect("starting the stack");
    let e = stack.endpoints.clone();
    let mut config = Config { backend: BackendKind::External, ..Config::default() };
    config.external.kafka_bootstrap = e.kafka_bootstrap.clone();
    config.external.registry_url = e.registry_url.clone();
    config.external.consumer_groups = saga_conformance::types::reference_consumer_groups()
        .into_iter()
        .map(|(s, g)| (s.binary().trim_end_matches("-service").to_string(), GroupNames::Several(g)))
        .collect();
    config.monitor.listen = "127.0.0.1:0".into();
    config.monitor.saga_deadline_ms = SAGA_DEADLINE.as_millis() as u64;
    config.monitor.lag_poll_ms = 100;
    let outcome = async {
        let monitor = Monitor::start(&config).await?;
        let tap = Tap::start(&e.kafka_bootstrap, &e.registry_url, topics.clone(), true, Pace::Live).await?;
        let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &e.kafka_bootstrap).create()?;
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
        let client = SagaClient::new(http.clone(), &e);
        let ctx = Ctx { stack, http, client, monitor, tap, codec: EventCodec::new(&e.registry_url)?, producer, topics };
        let result = async {
            clean_traffic(&ctx).await?;
            payment_down(&ctx).await?;
            let before = series(&metrics(&ctx).await?, r#"saga_monitor_stage_seconds_count{stage="saga"}"#);
            let (stalled, load) = under_load(&ctx, injected(&ctx)).await;
            settled(&ctx, before, load, &stalled?).await
        }
        .await;
        ctx.monitor.stop();
        ctx.tap.close();
        ctx.stack.shutdown().await;
        result
    }
    .await;
    println!("monitor test took {:.1}s", began.elapsed().as_secs_f64());
    outcome.expect("the monitor test");
}
