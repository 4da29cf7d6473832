//! The load generator: the catalogue the orders use, the unloaded orders (one at a time), and
//! one open-loop step — order *i* leaves at `start + i / rate` ([`OpenLoop`], the crash load's
//! schedule too) in its own task whether or not earlier orders have finished (no coordinated
//! omission), a progress line a second, then the drain until every accepted order has ended
//! (its `PAYMENT_WAIT` or `ORDER_CANCELLED` push arrived) or the deadline passed, and each
//! order's outcome from the push sink and the tap.

use super::handler_times::{handler_means, scrape_handlers};
use super::outcome::{Outcome, Plan, Sent};
use super::pgstats::PgStats;
use super::procfs::{CpuSnapshot, Procs};
use super::stats::epoch_ms_f64;
use super::summary::{StepResult, Unloaded, summarize};
use super::trace::TapIndex;
use crate::api::{NewOrder, OrderLine, ProductSpec};
use crate::client::SagaClient;
use crate::observed::{Arrival, Push};
use crate::open_loop::OpenLoop;
use crate::sink::PushSink;
use crate::tap::Tap;
use anyhow::{Context as _, bail};
use saga_contract::{Money, PushKind};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Stock per seeded product: plenty for any run (the column is an `INTEGER`).
pub(super) const PRODUCT_STOCK: i64 = 1_000_000_000;
/// Cadence of the progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long an unloaded order may take to reach `PAYMENT_WAIT`.
const UNLOADED_DEADLINE: Duration = Duration::from_secs(30);
/// How long the tap may trail the pushes: it consumes in parallel with the services, and in
/// batches.
const TAP_DEADLINE: Duration = Duration::from_secs(15);
/// Users the orders rotate over (`X-User-Id`), so no one user carries the whole load.
const USERS: usize = 97;
/// The push that ends an order's saga.
const PAYMENT_WAIT: PushKind = PushKind::PaymentWait;
/// Every seeded product's price.
const PRICE: Money = Money(1000);

/// Everything a load step needs.
pub(super) struct Ctx {
    /// Shared by every order's task without a copy.
    pub client: Arc<SagaClient>,
    pub sink: Arc<PushSink>,
    pub tap: Tap,
    /// The implementation's processes; `None` when unknown (external).
    pub procs: Option<Procs>,
    /// A database of the implementation's PostgreSQL (any serves for server-wide stats);
    /// `None` when the bench cannot reach it (external).
    pub database_url: Option<String>,
    /// Order bodies, one per seeded product, used round-robin.
    pub bodies: Vec<String>,
    pub began: Instant,
}

impl Ctx {
    pub fn say(&self, what: &str) {
        eprintln!("[bench {:>6.1}s] {what}", self.began.elapsed().as_secs_f64());
    }
}

/// Seeds `n` products with a huge stock (orders go round-robin over them, so the product
/// rows' locks do not serialise every reservation on one row) and returns one order body per
/// product.
pub(super) async fn seed_catalogue(client: &SagaClient, n: usize) -> anyhow::Result<Vec<String>> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut bodies = Vec::with_capacity(n);
    for p in 0..n {
        let id = format!("BENCH-{run_id}-{p}");
        let spec = ProductSpec { name: format!("bench product {p}"), price: PRICE, stock: PRODUCT_STOCK };
        client.put_product(&id, &spec).await?;
        let order = NewOrder {
            store_id: format!("S-bench-{run_id}"),
            items: vec![OrderLine { product_id: id, quantity: 1, unit_price: PRICE }],
        };
        bodies.push(serde_json::to_string(&order).context("serialising an order")?);
    }
    Ok(bodies)
}

/// Shared counters for the progress line.
#[derive(Default)]
struct Counters {
    sent: AtomicUsize,
    answered: AtomicUsize,
    errors: AtomicUsize,
}

fn payment_pushes(sink: &PushSink) -> usize {
    sink.arrivals().iter().filter(|a| a.push.as_ref().is_ok_and(|p| p.kind == PAYMENT_WAIT)).count()
}

/// Prints sent / answered / completed / in-flight once a second until `stopped` changes.
fn progress(
    ctx: &Ctx,
    rate: f64,
    counters: Arc<Counters>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (sink, began) = (ctx.sink.clone(), ctx.began);
    let baseline = payment_pushes(&sink);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = stopped.changed() => return,
            }
            let sent = counters.sent.load(Ordering::Relaxed);
            let answered = counters.answered.load(Ordering::Relaxed);
            let errors = counters.errors.load(Ordering::Relaxed);
            let completed = payment_pushes(&sink).saturating_sub(baseline);
            let in_flight = sent.saturating_sub(completed + errors);
            eprintln!(
                "[bench {:>6.1}s] {rate:>5.0}/s  sent {sent:>6}  answered {answered:>6}  completed {completed:>6}  in-flight {in_flight:>5}  intake errors {errors}",
                began.elapsed().as_secs_f64()
            );
        }
    })
}

/// One open-loop step: send, drain, and the step's figures.
pub(super) async fn load(ctx: &Ctx, index: &mut TapIndex, plan: Plan) -> anyhow::Result<StepResult> {
    let total = ((plan.warmup_s + plan.duration_s) * plan.rate).round() as usize;
    let warm = (plan.warmup_s * plan.rate).round() as usize;
    ctx.say(&format!(
        "load: {:.0} orders/s for {:.0} s (+{:.0} s warm-up) = {total} orders",
        plan.rate, plan.duration_s, plan.warmup_s
    ));
    let metrics_before = scrape_handlers(&ctx.client).await;
    let counters = Arc::new(Counters::default());
    let (stop_progress, progress_stopped) = tokio::sync::watch::channel(false);
    let progress = progress(ctx, plan.rate, counters.clone(), progress_stopped);

    // Open loop: order i leaves at start + i/rate, in its own task.
    let mut schedule = OpenLoop::new(tokio::time::Instant::now() + Duration::from_millis(20), plan.rate);
    let measured_start_epoch_ms = epoch_ms_f64() + 20.0 + plan.warmup_s * 1000.0;
    let mut handles = Vec::with_capacity(total);
    let mut cpu_before = None;
    let mut pg_before = None;
    for _ in 0..total {
        let (i, at) = schedule.next().await;
        if i == warm {
            cpu_before = Some(CpuSnapshot::take(ctx.procs.as_ref()));
            pg_before = ctx.database_url.clone().map(|url| tokio::spawn(PgStats::take(url)));
        }
        let scheduled_s = i as f64 / plan.rate - plan.warmup_s;
        let (client, body, counters) = (ctx.client.clone(), ctx.bodies[i % ctx.bodies.len()].clone(), counters.clone());
        let measured = i >= warm;
        handles.push(tokio::spawn(async move {
            let lag_ms = tokio::time::Instant::now().saturating_duration_since(at).as_secs_f64() * 1000.0;
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let sent = send_order(&client, body, i, measured).await;
            counters.answered.fetch_add(1, Ordering::Relaxed);
            if sent.error.is_some() {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            Sent { scheduled_s, lag_ms, ..sent }
        }));
    }
    let sending_ended = tokio::time::Instant::now();
    let cpu_before = cpu_before.unwrap_or_else(|| CpuSnapshot::take(ctx.procs.as_ref()));
    let cpu = cpu_before.until(&CpuSnapshot::take(ctx.procs.as_ref()));
    let pg_after = match &ctx.database_url {
        Some(url) => PgStats::take(url.clone()).await,
        None => None,
    };
    let pg_before = match pg_before {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    let postgres = pg_before.zip(pg_after).map(|(a, b)| a.until(&b));
    let mut sent = Vec::with_capacity(total);
    for handle in handles {
        sent.push(handle.await.context("an order task panicked")?);
    }
    let accepted: HashSet<String> =
        sent.iter().filter(|s| s.status == 201).filter_map(|s| s.order_id.clone()).collect();

    // Drain: every accepted order ended (its PAYMENT_WAIT or ORDER_CANCELLED push), or the deadline.
    let deadline =
        (sending_ended + Duration::from_secs_f64(plan.drain_s)).saturating_duration_since(tokio::time::Instant::now());
    let _ = ctx
        .sink
        .wait_until(deadline, |arrivals| {
            let done = arrivals
                .iter()
                .filter_map(|a| a.push.as_ref().ok())
                .filter(|p| matches!(p.kind, PushKind::PaymentWait | PushKind::OrderCancelled))
                .filter(|p| accepted.contains(&p.order_id))
                .map(|p| p.order_id.as_str())
                .collect::<HashSet<_>>()
                .len();
            if done >= accepted.len() { Ok(()) } else { Err(done) }
        })
        .await;
    let arrivals = ctx.sink.arrivals();
    let drain_s = sending_ended.elapsed().as_secs_f64();
    stop_progress.send_replace(true);
    let _ = progress.await;

    let pushes = pushes_of(&arrivals, &accepted);
    let completed_ids: Vec<&str> = pushes.iter().filter(|(_, v)| v.0.is_some()).map(|(k, _)| *k).collect();
    await_traces(&ctx.tap, index, &completed_ids).await;
    // Duplicates can only be judged on what has arrived; a late stock.reserved is caught by the
    // tap in the next step or not at all — `lost` and `duplicated` are counted at this point.
    let handler_ms = handler_means(&metrics_before, &scrape_handlers(&ctx.client).await);

    let outcomes: Vec<Outcome> = sent.into_iter().map(|s| outcome(s, index, &pushes)).collect();
    Ok(summarize(plan, outcomes, drain_s, cpu, postgres, handler_ms, measured_start_epoch_ms))
}

/// This step's orders' pushes (of `ids`), per order: when the first `PAYMENT_WAIT` arrived, and
/// the pushes.
fn pushes_of<'a>(arrivals: &'a [Arrival], ids: &HashSet<String>) -> HashMap<&'a str, (Option<i64>, Vec<&'a Push>)> {
    let mut pushes: HashMap<&str, (Option<i64>, Vec<&Push>)> = HashMap::new();
    for a in arrivals {
        let Ok(p) = &a.push else { continue };
        if !ids.contains(&p.order_id) {
            continue;
        }
        let entry = pushes.entry(p.order_id.as_str()).or_default();
        if p.kind == PAYMENT_WAIT {
            entry.0 = Some(entry.0.map_or(a.at_ms, |t| t.min(a.at_ms)));
        }
        entry.1.push(p);
    }
    pushes
}

/// An order's outcome: as sent, its records from the tap's index, its pushes.
fn outcome(sent: Sent, index: &TapIndex, pushes: &HashMap<&str, (Option<i64>, Vec<&Push>)>) -> Outcome {
    let id = sent.order_id.as_deref();
    let mut trace = id.and_then(|id| index.orders.get(id).cloned()).unwrap_or_default();
    let (payment_at_ms, mine) = id.and_then(|id| pushes.get(id)).map_or((None, &[][..]), |(at, p)| (*at, &p[..]));
    mine.iter().for_each(|p| trace.effects.add_push(p));
    Outcome { sent, payment_at_ms, trace }
}

/// Waits, on the tap's change feed, until it has every stage's record of each of `ids` (it
/// may trail the pushes). Bounded; a stage still missing then shows as a missing figure.
async fn await_traces(tap: &Tap, index: &mut TapIndex, ids: &[&str]) {
    let _ = tap
        .wait_until(TAP_DEADLINE, |log| {
            index.ingest(log);
            if index.complete(ids.iter().copied()) { Ok(()) } else { Err(()) }
        })
        .await;
}

/// POSTs order `seq` (user `bench-user-<seq mod USERS>`) and times the answer.
async fn send_order(client: &SagaClient, body: String, seq: usize, measured: bool) -> Sent {
    let user = format!("bench-user-{}", seq % USERS);
    let sent_at_ms = epoch_ms_f64();
    let began = Instant::now();
    let answer = client.post_order_text(user, body).await;
    let intake_ms = began.elapsed().as_secs_f64() * 1000.0;
    let mut sent = Sent {
        seq,
        scheduled_s: 0.0,
        lag_ms: 0.0,
        sent_at_ms,
        intake_ms,
        status: 0,
        order_id: None,
        error: None,
        measured,
    };
    match answer {
        Ok((status, text)) => {
            sent.status = status;
            match client.placed(status, &text) {
                Ok(placed) => sent.order_id = Some(placed.order_id),
                Err(_) => sent.error = Some(format!("{status}: {}", text.chars().take(200).collect::<String>())),
            }
        }
        Err(e) => sent.error = Some(e.to_string()),
    }
    sent
}

/// The pipeline's latency without queueing: `n` orders one after another on the idle target,
/// each waited for (its `PAYMENT_WAIT` push) before the next is sent.
pub(super) async fn unloaded(ctx: &Ctx, index: &mut TapIndex, n: usize) -> anyhow::Result<Unloaded> {
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let order = send_order(&ctx.client, ctx.bodies[i % ctx.bodies.len()].clone(), i, true).await;
        if let Some(error) = &order.error {
            bail!("unloaded order {i} was refused: {error}");
        }
        let id = order.order_id.clone().unwrap_or_default();
        if ctx.sink.wait_for(&id, UNLOADED_DEADLINE, |p| p.iter().any(|p| p.kind == PAYMENT_WAIT)).await.is_err() {
            bail!("unloaded order {id} did not reach {PAYMENT_WAIT} within {UNLOADED_DEADLINE:?}");
        }
        sent.push(order);
    }
    let ids: Vec<&str> = sent.iter().filter_map(|s| s.order_id.as_deref()).collect();
    await_traces(&ctx.tap, index, &ids).await;
    let (arrivals, ids) = (ctx.sink.arrivals(), ids.iter().map(|id| id.to_string()).collect());
    let pushes = pushes_of(&arrivals, &ids);
    let outcomes: Vec<Outcome> = sent.into_iter().map(|s| outcome(s, index, &pushes)).collect();
    Ok(Unloaded::of(&outcomes))
}
