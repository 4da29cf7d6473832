//! # `saga-conformance bench`: open-loop load against the reference saga
//!
//! ```text
//! saga-conformance bench [--rate R] [--duration S] [--warmup S] [--json FILE] [--find-max] [--report-dir DIR]
//! ```
//!
//! Starts the reference stack on the `processes` backend (as `saga-conformance stack` does:
//! [`Stack::start`] pointed at a [`PushSink`]), starts a [`Tap`] on the saga topics, and then:
//!
//! 1. **Floor.** On the idle stack, measures what one saga step cannot beat on this machine:
//!    a raw Kafka produce→consume round trip on a scratch topic (idempotent producer,
//!    `acks=all`, same broker; sequential round trips, p50) and a raw single-row PostgreSQL
//!    `BEGIN; INSERT; COMMIT` with `synchronous_commit = on` in the stack's `order_db`.
//!    `floor_ms = 3 × hop_p50 + 4 × commit_p50` (three Kafka hops — `order.created`,
//!    `stock.reserved`, `order.confirmed` — and four committing transactions — intake,
//!    reservation, confirmation, payment); `e2e_over_floor = e2e p50 / floor_ms`.
//! 2. **Catalogue.** Seeds `--products` products with a huge stock; orders go round-robin over
//!    them so the product rows' locks do not serialise every reservation on one row.
//!    **Unloaded.** Then `--unloaded-orders` (50) orders one at a time, each waited for: the
//!    pipeline's latency without any queueing, to tell intrinsic latency from queueing delay.
//! 3. **Load.** Open loop: order *i* is sent at `start + i / rate` (precomputed send instants),
//!    in its own task, whether or not earlier orders have finished — a slow system gets more
//!    concurrent work, not fewer requests (no coordinated omission). The first `--warmup`
//!    seconds are sent at the same rate but excluded from the latency statistics.
//!    Every second a progress line shows sent / answered / completed / in-flight.
//! 4. **Drain.** After the last send, waits (bounded: `--drain` seconds, default 30) until every
//!    accepted order's `PAYMENT_WAIT` push has arrived. An accepted order whose push has not
//!    arrived by then is **lost**. An order with more than one `PAYMENT_WAIT` push, more than one
//!    `ORDER_CONFIRMED` push, or more than one distinct-`eventId` `stock.reserved` record is
//!    **duplicated** (judged on what has arrived by the end of the drain). Under overload,
//!    `lost` counts the backlog too: an order still queued when the drain ends is lost *for the
//!    benchmark*, whether or not it would complete later.
//! 5. **Per-order measurements.** intake = HTTP round trip of `POST /api/v1/orders`;
//!    from the tap's record timestamps (producer CreateTime, ms): reservation =
//!    `stock.reserved − order.created`, confirmation = `order.confirmed − stock.reserved`;
//!    payment = `PAYMENT_WAIT` push arrival at the sink − `order.confirmed`; end-to-end =
//!    push arrival − the moment the request was sent. (Push arrivals and record timestamps
//!    have 1 ms resolution.) Percentiles use [`crate::timing::percentile`] (nearest rank).
//! 6. **Resources.** VmRSS of every service process (`/proc/<pid>/status`) sampled every
//!    250 ms (max per process), CPU time per process over the measured window
//!    (`/proc/<pid>/stat`, PostgreSQL including its backends), machine CPU busy % (and what of
//!    it other processes on the machine took), the services' own `saga_stage_seconds` handler
//!    times (scraped from `/metrics` before and after each step), and PostgreSQL's commits and
//!    WAL fsyncs per second (`pg_stat_database`, `pg_stat_wal`; the bench turns on
//!    `track_wal_io_timing` in its throw-away cluster to get the fsync time; the reload logs
//!    a harmless note that `max_connections` needs a restart). Before the load, `--idle-seconds`
//!    (3) of CPU on the idle stack show what the processes burn with no orders at all.
//!
//! `--find-max` replaces the single run by successive short steps (`--step-duration`, default
//! 10 s, after a `--step-warmup` of 2 s), multiplying the rate by `--step-factor` (1.5) from
//! `--rate` until a step misses the criterion (e2e p99 > `--p99-limit-ms` (250), or any order
//! lost, or any intake error) or `--max-rate` is reached; `max_sustained_per_s` is the
//! highest rate that passed.
//!
//! Output, in `--report-dir` (default `reports/bench/`): `bench.json` (also copied to `--json
//! FILE`), `e2e-latency.svg` (e2e p50/p99 per 1 s bucket of send time), `orders.csv` (one line
//! per order), `metrics/<service>.prom` (the services' Prometheus text after the run) and
//! `logs/` (every process's log). A readable table goes to stdout. The exit code is non-zero
//! when an order was lost or duplicated (with `--find-max`: in a step that passed).
//!
//! The database URL and the services' pids come from [`Stack::database_url`] and
//! [`Stack::service_pids`]; the infrastructure's pids (Kafka, PostgreSQL, registry), which the
//! stack keeps private, are the other children of this process in `/proc`. All traffic goes to
//! 127.0.0.1 (the stack binds loopback only).
//! Waiting is on events (HTTP answers, the tap's and the push sink's change notifications),
//! each under a hard deadline; the measured arrival times are recorded by the sink itself and
//! do not depend on when we look.

use crate::config::Config;
use crate::sink::PushSink;
use crate::stack::{Stack, StackOptions, cache_dir, default_bin_dir};
use crate::tap::{Tap, TapRecord};
use crate::timing::percentile;
use anyhow::{Context as _, bail};
use rdkafka::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use saga_contract::{SagaTopic, Topics};
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// Arguments of `saga-conformance bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Orders per second, sent open-loop; with --find-max, the first step's rate.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Warm-up seconds at the same rate, excluded from the statistics.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Raise the rate step by step until e2e p99 exceeds --p99-limit-ms or an order is lost.
    #[arg(long)]
    pub find_max: bool,
    /// Where bench.json, the SVG chart, orders.csv, metrics/ and logs/ go.
    #[arg(long, default_value = "reports/bench")]
    pub report_dir: PathBuf,
    /// --find-max: measured seconds per step.
    #[arg(long, default_value_t = 10.0)]
    pub step_duration: f64,
    /// --find-max: warm-up seconds per step.
    #[arg(long, default_value_t = 2.0)]
    pub step_warmup: f64,
    /// --find-max: rate multiplier between steps.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// --find-max: stop raising the rate here (keeps the search bounded).
    #[arg(long, default_value_t = 5000.0)]
    pub max_rate: f64,
    /// --find-max: a step passes while e2e p99 is at most this (and nothing is lost).
    #[arg(long, default_value_t = 250.0)]
    pub p99_limit_ms: f64,
    /// Seconds after the end of sending an accepted order may take before it counts as lost.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
    /// Products the orders are spread over (round-robin).
    #[arg(long, default_value_t = 10)]
    pub products: usize,
    /// Orders sent one at a time on the idle stack before the load (latency without queueing);
    /// 0 skips this.
    #[arg(long, default_value_t = 50)]
    pub unloaded_orders: usize,
    /// Seconds of CPU measurement on the idle stack before the load; 0 skips this.
    #[arg(long, default_value_t = 3.0)]
    pub idle_seconds: f64,
    /// Sequential round trips per floor measurement (Kafka hop, PostgreSQL commit).
    #[arg(long, default_value_t = 200)]
    pub floor_round_trips: usize,
}

/// The targets of the issue ("Benchmark the saga"), stated for 100 orders/s.
const TARGET_INTAKE_P99_MS: f64 = 10.0;
const TARGET_E2E_P50_MS: f64 = 20.0;
const TARGET_E2E_P99_MS: f64 = 75.0;
const TARGET_SUSTAINED_PER_S: f64 = 500.0;
/// Stock per seeded product: plenty for any run (the column is an `INTEGER`).
const PRODUCT_STOCK: i64 = 1_000_000_000;
/// Cadence of the progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Cadence of the RSS sampler.
const RSS_EVERY: Duration = Duration::from_millis(250);

/// Runs the benchmark. `Ok(true)` when no order was lost or duplicated (in `--find-max` mode:
/// in the steps that passed), `Ok(false)` otherwise; `Err` when the bench itself could not run.
pub async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    validate(&args)?;
    let began = Instant::now();
    let load_before = loadavg();
    std::fs::create_dir_all(&args.report_dir).with_context(|| format!("creating {}", args.report_dir.display()))?;
    // Each process appends to its log: start from empty logs so they describe this run only.
    let log_dir = args.report_dir.join("logs");
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir).with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    let config = Config::load(None)?;
    let sink = Arc::new(PushSink::start(None).await?);
    let options = StackOptions {
        bin_dir: default_bin_dir(),
        kafka_libs: cache_dir().join("kafka-libs"),
        log_dir,
        push_gateway_url: sink.url(),
        topics: config.topic_map(),
        variant: Default::default(),
        scale: config.scale()?,
    };
    let stack = Stack::start(options).await?;
    let result = bench_on(&args, &stack, sink, config.topic_map(), began, load_before).await;
    eprintln!("[bench {:>6.1}s] stopping the stack", began.elapsed().as_secs_f64());
    stack.shutdown().await;
    result
}

fn validate(args: &BenchArgs) -> anyhow::Result<()> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(anyhow::anyhow!("--{name} must be a positive number, got {v}"))
        }
    };
    positive("rate", args.rate)?;
    positive("duration", args.duration)?;
    positive("drain", args.drain)?;
    positive("step-duration", args.step_duration)?;
    positive("max-rate", args.max_rate)?;
    positive("p99-limit-ms", args.p99_limit_ms)?;
    if !(args.warmup.is_finite() && args.warmup >= 0.0 && args.step_warmup.is_finite() && args.step_warmup >= 0.0) {
        bail!("--warmup and --step-warmup must be ≥ 0");
    }
    if !(args.step_factor.is_finite() && args.step_factor > 1.0) {
        bail!("--step-factor must be > 1");
    }
    if args.find_max && args.rate > args.max_rate {
        bail!("--rate ({}) is above --max-rate ({}): --find-max would run no step", args.rate, args.max_rate);
    }
    if args.products == 0 || args.floor_round_trips == 0 {
        bail!("--products and --floor-round-trips must be ≥ 1");
    }
    Ok(())
}

/// Everything a load step needs.
struct Ctx {
    order_url: String,
    http: reqwest::Client,
    sink: Arc<PushSink>,
    tap: Tap,
    procs: Procs,
    /// `order_db` of the stack (any database of the cluster serves for server-wide stats).
    database_url: String,
    bodies: Vec<String>,
    began: Instant,
}

async fn bench_on(
    args: &BenchArgs,
    stack: &Stack,
    sink: Arc<PushSink>,
    topics: Topics,
    began: Instant,
    load_before: String,
) -> anyhow::Result<bool> {
    let say = |what: &str| eprintln!("[bench {:>6.1}s] {what}", began.elapsed().as_secs_f64());
    let endpoints = stack.endpoints.clone();
    let procs = Procs::discover(stack.service_pids().await);
    say(&format!("processes: {}", procs.list.iter().map(|(n, p)| format!("{n}={p}")).collect::<Vec<_>>().join(" ")));
    let order_db = stack.database_url(crate::Service::Order.database());
    let tap =
        Tap::start(&endpoints.kafka_bootstrap, &endpoints.registry_url, topics, crate::tap::Pace::Batched).await?;
    let rss = RssSampler::start(procs.clone());

    say("measuring the floor (raw Kafka round trip, raw PostgreSQL commit)");
    let floor = Floor::measure(&endpoints.kafka_bootstrap, &order_db, args.floor_round_trips).await?;
    say(&format!(
        "floor: kafka hop p50 {:.2} ms, pg commit p50 {:.2} ms → {:.1} ms",
        floor.hop.p50,
        floor.commit.p50,
        floor.floor_ms()
    ));

    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).tcp_nodelay(true).build()?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut bodies = Vec::new();
    for p in 0..args.products {
        let id = format!("BENCH-{run_id}-{p}");
        let url = format!("{}/api/v1/products/{id}", endpoints.product_url);
        let response = http
            .put(&url)
            .json(&json!({"name": format!("bench product {p}"), "price": 10, "stock": PRODUCT_STOCK}))
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        if !response.status().is_success() {
            bail!("PUT {url} answered {}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        bodies.push(json!({"storeId": format!("S-bench-{run_id}"), "items": [{"productId": id, "quantity": 1, "unitPrice": 10}]}).to_string());
    }
    say(&format!("seeded {} products with {PRODUCT_STOCK} in stock each", args.products));

    let ctx = Ctx {
        order_url: format!("{}/api/v1/orders", endpoints.order_url),
        http,
        sink,
        tap: tap.clone(),
        procs: procs.clone(),
        database_url: order_db.clone(),
        bodies,
        began,
    };
    let mut index = TapIndex::default();
    let unloaded = if args.unloaded_orders > 0 {
        say(&format!("unloaded: {} orders one at a time", args.unloaded_orders));
        let u = unloaded(&ctx, &mut index, args.unloaded_orders).await?;
        say(&format!(
            "unloaded: e2e p50 {:.1} ms p99 {:.1} ms (intake p50 {:.1} ms)",
            u.e2e.p50, u.e2e.p99, u.intake.p50
        ));
        Some(u)
    } else {
        None
    };
    // CPU of the idle stack: what the processes burn with no orders (polling, timers).
    let idle = if args.idle_seconds > 0.0 {
        let before = CpuSnapshot::take(&procs);
        tokio::time::sleep(Duration::from_secs_f64(args.idle_seconds)).await; // a measurement window
        let idle = before.until(&CpuSnapshot::take(&procs));
        say(&format!(
            "idle CPU over {:.0} s: {}",
            args.idle_seconds,
            idle.0.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>().join(", ")
        ));
        Some(idle)
    } else {
        None
    };
    let mut steps: Vec<StepResult> = Vec::new();
    if args.find_max {
        let mut rate = args.rate;
        // Bounded: the rate grows geometrically up to --max-rate.
        while rate <= args.max_rate {
            let step = load(
                &ctx,
                &mut index,
                Plan { rate, warmup_s: args.step_warmup, duration_s: args.step_duration, drain_s: args.drain },
                &endpoints_metrics(&endpoints),
            )
            .await?;
            let passed = step.passes(args.p99_limit_ms);
            say(&format!(
                "step {rate:.0}/s: e2e p50 {:.1} ms p99 {:.1} ms, lost {}, intake errors {} → {}",
                step.e2e.p50,
                step.e2e.p99,
                step.lost,
                step.intake_errors,
                if passed { "pass" } else { "FAIL" }
            ));
            steps.push(step);
            if !passed {
                break;
            }
            rate = (rate * args.step_factor).round();
        }
    } else {
        steps.push(
            load(
                &ctx,
                &mut index,
                Plan { rate: args.rate, warmup_s: args.warmup, duration_s: args.duration, drain_s: args.drain },
                &endpoints_metrics(&endpoints),
            )
            .await?,
        );
    }
    tap.close();
    let rss = rss.stop().await;
    // The services' own view after the run (handler times, publish/push counters, lag).
    let metrics_dir = args.report_dir.join("metrics");
    std::fs::create_dir_all(&metrics_dir)?;
    for (name, url) in endpoints_metrics(&endpoints) {
        if let Ok(text) = scrape(&ctx.http, &url).await {
            std::fs::write(metrics_dir.join(format!("{name}.prom")), text)?;
        }
    }

    let report =
        Report { args: args.clone(), floor, unloaded, idle, steps, rss, procs, machine: Machine::read(load_before) };
    let json = report.to_json();
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(args.report_dir.join("bench.json"), &text)?;
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::write(args.report_dir.join("e2e-latency.svg"), report.chart())?;
    std::fs::write(args.report_dir.join("orders.csv"), report.csv())?;
    println!("{}", report.table());
    println!("report: {} (bench.json, e2e-latency.svg, orders.csv, metrics/, logs/)", args.report_dir.display());
    Ok(report.clean())
}

/// `(name, /metrics URL)` of the three services.
fn endpoints_metrics(e: &crate::stack::Endpoints) -> Vec<(&'static str, String)> {
    vec![
        ("order-service", format!("{}/metrics", e.order_url)),
        ("product-service", format!("{}/metrics", e.product_url)),
        ("payment-service", format!("{}/metrics", e.payment_url)),
    ]
}

async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(http.get(url).timeout(Duration::from_secs(5)).send().await?.error_for_status()?.text().await?)
}

// ---------------------------------------------------------------------------------------------
// Statistics helpers
// ---------------------------------------------------------------------------------------------

/// Percentiles of one series, in ms (NaN when empty; serialised as null).
#[derive(Debug, Clone, Copy)]
struct Pct {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Pct {
    fn of(values: &[f64]) -> Pct {
        let mean = if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 };
        Pct {
            n: values.len(),
            p50: percentile(values, 50.0),
            p90: percentile(values, 90.0),
            p99: percentile(values, 99.0),
            max: values.iter().copied().fold(f64::NAN, f64::max),
            mean,
        }
    }

    fn json(&self) -> Value {
        json!({"p50": round2(self.p50), "p90": round2(self.p90), "p99": round2(self.p99), "max": round2(self.max), "mean": round2(self.mean), "samples": self.n})
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn epoch_ms_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// A value for the table: `-` when there is none.
fn ms(v: f64) -> String {
    if v.is_finite() { format!("{v:.1}") } else { "-".into() }
}

// ---------------------------------------------------------------------------------------------
// Floor: raw Kafka hop and raw PostgreSQL commit on this machine
// ---------------------------------------------------------------------------------------------

struct Floor {
    /// Produce → consume of one record, sequential round trips.
    hop: Pct,
    /// Produce → broker acknowledgement (`acks=all`) of the same records.
    ack: Pct,
    /// `BEGIN; INSERT one row; COMMIT` with `synchronous_commit = on`.
    commit: Pct,
    /// `SELECT 1`: one PostgreSQL round trip, for scale.
    select: Pct,
    /// `fsync`, `synchronous_commit`, `wal_sync_method` as the server reports them.
    pg_settings: BTreeMap<String, String>,
}

impl Floor {
    fn floor_ms(&self) -> f64 {
        3.0 * self.hop.p50 + 4.0 * self.commit.p50
    }

    async fn measure(bootstrap: &str, database_url: &str, round_trips: usize) -> anyhow::Result<Floor> {
        let (hop, ack) = kafka_round_trips(bootstrap, round_trips).await.context("measuring the Kafka floor")?;
        let (commit, select, pg_settings) =
            pg_commits(database_url, round_trips).await.context("measuring the PostgreSQL floor")?;
        Ok(Floor { hop, ack, commit, select, pg_settings })
    }
}

/// Sequential produce→consume round trips on a fresh one-partition topic, producer settings as
/// the services' (idempotent, `acks=all`) but `linger.ms=0`, consumer `fetch.wait.max.ms=10` as
/// theirs. The topic is deleted afterwards.
async fn kafka_round_trips(bootstrap: &str, n: usize) -> anyhow::Result<(Pct, Pct)> {
    const WARMUP: usize = 20;
    let topic = format!("bench.floor.{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(20)))
        .request_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))], &options).await? {
        result.map_err(|(t, code)| anyhow::anyhow!("creating {t}: {code}"))?;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create()?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-floor-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let (mut hops, mut acks) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..WARMUP + n {
        let payload = format!("floor-{i}");
        let started = Instant::now();
        let delivery =
            producer.send_result(FutureRecord::to(&topic).key("floor").payload(&payload)).map_err(|(e, _)| e)?;
        let acked = async {
            let r = delivery.await;
            (started.elapsed(), r)
        };
        let consumed = async {
            // Bounded: each receive has a deadline, and only records sent earlier can precede ours.
            loop {
                let message = tokio::time::timeout(Duration::from_secs(15), consumer.recv())
                    .await
                    .context("no record within 15 s")??;
                if message.payload() == Some(payload.as_bytes()) {
                    return Ok::<_, anyhow::Error>(started.elapsed());
                }
            }
        };
        let ((ack_took, delivered), hop_took) = tokio::join!(acked, consumed);
        let hop_took = hop_took?;
        delivered.map_err(|_| anyhow::anyhow!("delivery future cancelled"))?.map_err(|(e, _)| e)?;
        if i >= WARMUP {
            hops.push(hop_took.as_secs_f64() * 1000.0);
            acks.push(ack_took.as_secs_f64() * 1000.0);
        }
    }
    drop(consumer);
    let _ = admin.delete_topics(&[&topic], &options).await;
    Ok((Pct::of(&hops), Pct::of(&acks)))
}

/// Sequential single-row committing transactions on a scratch table in the stack's `order_db`
/// (a regular table: a temporary one is not WAL-logged and would not pay for the commit).
async fn pg_commits(database_url: &str, n: usize) -> anyhow::Result<(Pct, Pct, BTreeMap<String, String>)> {
    const WARMUP: usize = 20;
    let mut conn = sqlx::PgConnection::connect(database_url).await.context("connecting to order_db")?;
    sqlx::query("SET synchronous_commit = on").execute(&mut conn).await?;
    // WAL fsync timing for the load's PostgreSQL figures (the cluster is the bench's own).
    sqlx::query("ALTER SYSTEM SET track_wal_io_timing = on").execute(&mut conn).await?;
    sqlx::query("SELECT pg_reload_conf()").execute(&mut conn).await?;
    let mut settings = BTreeMap::new();
    for (name, sql) in [
        ("fsync", "SHOW fsync"),
        ("synchronous_commit", "SHOW synchronous_commit"),
        ("wal_sync_method", "SHOW wal_sync_method"),
    ] {
        let value: String = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
        settings.insert(name.to_string(), value);
    }
    sqlx::query("DROP TABLE IF EXISTS bench_floor").execute(&mut conn).await?;
    sqlx::query("CREATE TABLE bench_floor (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())").execute(&mut conn).await?;
    let (mut commits, mut selects) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..WARMUP + n {
        let started = Instant::now();
        let mut tx = conn.begin().await?;
        sqlx::query("INSERT INTO bench_floor (payload) VALUES ($1)")
            .bind(format!("floor-{i}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let took = started.elapsed();
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        if i >= WARMUP {
            commits.push(took.as_secs_f64() * 1000.0);
            selects.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    sqlx::query("DROP TABLE bench_floor").execute(&mut conn).await?;
    conn.close().await?;
    Ok((Pct::of(&commits), Pct::of(&selects), settings))
}

// ---------------------------------------------------------------------------------------------
// Processes: pids, RSS, CPU (from /proc; the stack does not expose its children)
// ---------------------------------------------------------------------------------------------

/// The stack's processes: the services (from [`Stack::service_pids`]) and the infrastructure —
/// the other children of this process, named after `argv[0]` (the stack keeps those private).
#[derive(Clone, Debug)]
struct Procs {
    list: Vec<(String, u32)>,
}

/// The services, in the order reports show them.
const SERVICES: [&str; 3] = ["order-service", "product-service", "payment-service"];
/// This process (load generator, push sink, tap), in the CPU and RSS tables.
const SELF_NAME: &str = "bench (this process)";

impl Procs {
    fn discover(services: Vec<(String, u32)>) -> Procs {
        let me = std::process::id();
        let service_pids: HashSet<u32> = services.iter().map(|(_, p)| *p).collect();
        let mut list: Vec<(String, u32)> = all_pids()
            .into_iter()
            .filter(|pid| parent_of(*pid) == Some(me) && !service_pids.contains(pid))
            .filter_map(|pid| {
                let argv0 = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let argv0 = String::from_utf8_lossy(argv0.split(|b| *b == 0).next()?).into_owned();
                let base = Path::new(&argv0).file_name()?.to_string_lossy().into_owned();
                let name = match base.as_str() {
                    "java" => "kafka".to_string(),
                    "postgres" => "postgresql".to_string(),
                    "schema-registry" => "schema-registry".to_string(),
                    _ => return None, // a short-lived helper (`kill`, …)
                };
                Some((name, pid))
            })
            .chain(services)
            .collect();
        list.sort();
        Procs { list }
    }
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The fields of `/proc/<pid>/stat` after the `(comm)` (which may contain spaces):
/// index 0 is the state, 1 the parent pid, 11/12 utime/stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| {
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .unwrap_or(0)
}

fn vm_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Clock ticks per second for `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time per process at one instant (PostgreSQL: the postmaster and its backends), and the
/// machine's busy/total ticks from `/proc/stat`.
struct CpuSnapshot {
    at: Instant,
    per: BTreeMap<String, u64>,
    machine: (u64, u64),
}

impl CpuSnapshot {
    fn take(procs: &Procs) -> CpuSnapshot {
        let mut per = BTreeMap::new();
        for (name, pid) in &procs.list {
            let mut ticks = cpu_ticks(*pid);
            if name == "postgresql" {
                ticks += all_pids().into_iter().filter(|p| parent_of(*p) == Some(*pid)).map(cpu_ticks).sum::<u64>();
            }
            per.insert(name.clone(), ticks);
        }
        per.insert(SELF_NAME.to_string(), cpu_ticks(std::process::id()));
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let fields: Vec<u64> =
                    s.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
                let total: u64 = fields.iter().take(8).sum();
                let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
                Some((total.saturating_sub(idle), total))
            })
            .unwrap_or((0, 0));
        CpuSnapshot { at: Instant::now(), per, machine }
    }

    /// Cores used per process between `self` and `later`, and the machine's busy %.
    fn until(&self, later: &CpuSnapshot) -> (BTreeMap<String, f64>, f64) {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let hz = clock_ticks();
        let per = later
            .per
            .iter()
            .map(|(name, t)| (name.clone(), t.saturating_sub(*self.per.get(name).unwrap_or(&0)) as f64 / hz / seconds))
            .collect();
        let busy = later.machine.0.saturating_sub(self.machine.0) as f64;
        let total = later.machine.1.saturating_sub(self.machine.1) as f64;
        (per, if total > 0.0 { 100.0 * busy / total } else { f64::NAN })
    }
}

/// Server-wide PostgreSQL counters: committed transactions and WAL flushes. Their rates over
/// the measured window show whether WAL fsync is the bottleneck (`wal_sync_time` needs
/// `track_wal_io_timing`, which [`pg_commits`] turns on in the bench's throw-away cluster).
#[derive(Debug, Clone, Copy)]
struct PgStats {
    at: Instant,
    commits: f64,
    wal_syncs: f64,
    wal_sync_ms: f64,
}

impl PgStats {
    /// `None` when the server has no `pg_stat_wal` of this shape (PostgreSQL 14–17 have it).
    async fn take(database_url: String) -> Option<PgStats> {
        let mut conn = sqlx::PgConnection::connect(&database_url).await.ok()?;
        let (commits,): (f64,) =
            sqlx::query_as("SELECT sum(xact_commit)::float8 FROM pg_stat_database").fetch_one(&mut conn).await.ok()?;
        let (wal_syncs, wal_sync_ms): (f64, f64) =
            sqlx::query_as("SELECT wal_sync::float8, wal_sync_time::float8 FROM pg_stat_wal")
                .fetch_one(&mut conn)
                .await
                .ok()?;
        let _ = conn.close().await;
        Some(PgStats { at: Instant::now(), commits, wal_syncs, wal_sync_ms })
    }

    /// Rates between two snapshots.
    fn until(&self, later: &PgStats) -> Value {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let commits = (later.commits - self.commits) / seconds;
        let syncs = (later.wal_syncs - self.wal_syncs) / seconds;
        let sync_ms = (later.wal_sync_ms - self.wal_sync_ms) / seconds;
        json!({
            "commits_per_s": round2(commits),
            "wal_syncs_per_s": round2(syncs),
            "commits_per_wal_sync": round2(if syncs > 0.0 { commits / syncs } else { f64::NAN }),
            "wal_sync_ms_mean": round2(if syncs > 0.0 { sync_ms / syncs } else { f64::NAN }),
            "wal_sync_busy_pct": round2(sync_ms / 10.0),
        })
    }
}

/// Samples every process's VmRSS until stopped; keeps the max per process.
struct RssSampler {
    max: Arc<Mutex<BTreeMap<String, f64>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(procs: Procs) -> RssSampler {
        let max: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn({
            let max = max.clone();
            async move {
                let mut tick = tokio::time::interval(RSS_EVERY);
                let me = std::process::id();
                loop {
                    tokio::select! {
                        _ = tick.tick() => {},
                        _ = stopped.changed() => return,
                    }
                    let mut max = max.lock().expect("rss poisoned");
                    for (name, pid) in procs.list.iter().map(|(n, p)| (n.as_str(), *p)).chain([(SELF_NAME, me)]) {
                        if let Some(mb) = vm_rss_mb(pid) {
                            let entry = max.entry(name.to_string()).or_insert(0.0);
                            *entry = entry.max(mb);
                        }
                    }
                }
            }
        });
        RssSampler { max, stop, task }
    }

    async fn stop(self) -> BTreeMap<String, f64> {
        self.stop.send_replace(true);
        let _ = self.task.await;
        self.max.lock().expect("rss poisoned").clone()
    }
}

/// Mean handler time per (service, topic) from the services' `saga_stage_seconds` histograms.
fn handler_means(text: &str) -> BTreeMap<String, (f64, f64)> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let (metric, is_sum) = if let Some(rest) = line.strip_prefix("saga_stage_seconds_sum{") {
            (rest, true)
        } else if let Some(rest) = line.strip_prefix("saga_stage_seconds_count{") {
            (rest, false)
        } else {
            continue;
        };
        let Some((labels, value)) = metric.rsplit_once("} ") else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let stage =
            labels.split(',').find_map(|l| l.strip_prefix("stage=")).unwrap_or("?").trim_matches('"').to_string();
        let entry = sums.entry(stage).or_insert((0.0, 0.0));
        if is_sum { entry.0 += value } else { entry.1 += value }
    }
    sums
}

// ---------------------------------------------------------------------------------------------
// Tap index: the saga records per order, built incrementally from the tap's log
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug, Clone)]
struct Trace {
    created_ts: Option<i64>,
    reserved_ts: Option<i64>,
    confirmed_ts: Option<i64>,
    reserved_event_ids: HashSet<String>,
}

impl Trace {
    /// The tap has seen the order's created, reserved and confirmed records. It receives
    /// partitions independently, so a later topic's record can arrive before an earlier one's.
    fn has_every_stage(&self) -> bool {
        self.created_ts.is_some() && self.reserved_ts.is_some() && self.confirmed_ts.is_some()
    }
}

/// Reads only the records added since the last look (the tap's log is append-only).
#[derive(Default)]
struct TapIndex {
    cursor: usize,
    orders: HashMap<String, Trace>,
}

impl TapIndex {
    fn ingest(&mut self, log: &[TapRecord]) {
        for r in &log[self.cursor.min(log.len())..] {
            if r.dead_letter {
                continue;
            }
            let Some(order) = r.order_id.clone().or_else(|| r.key.clone()) else { continue };
            let trace = self.orders.entry(order).or_default();
            match r.saga_topic {
                Some(SagaTopic::OrderCreated) => {
                    trace.created_ts.get_or_insert(r.timestamp_ms);
                }
                Some(SagaTopic::StockReserved) => {
                    trace.reserved_ts.get_or_insert(r.timestamp_ms);
                    if let Some(id) = &r.event_id {
                        trace.reserved_event_ids.insert(id.clone());
                    }
                }
                Some(SagaTopic::OrderConfirmed) => {
                    trace.confirmed_ts.get_or_insert(r.timestamp_ms);
                }
                _ => {}
            }
        }
        self.cursor = log.len();
    }
}

// ---------------------------------------------------------------------------------------------
// Load: open-loop sending, drain, per-order outcomes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Plan {
    rate: f64,
    warmup_s: f64,
    duration_s: f64,
    drain_s: f64,
}

/// One order as sent and answered.
#[derive(Debug, Clone)]
struct Sent {
    seq: usize,
    /// Seconds after the start of the measured window (negative during warm-up).
    scheduled_s: f64,
    /// How late the request left relative to its scheduled instant.
    lag_ms: f64,
    /// When the request left, epoch ms (sub-ms precision).
    sent_at_ms: f64,
    intake_ms: f64,
    status: u16,
    order_id: Option<String>,
    error: Option<String>,
    measured: bool,
}

/// One order's outcome.
#[derive(Debug, Clone)]
struct Outcome {
    sent: Sent,
    payment_at_ms: Option<i64>,
    payment_pushes: usize,
    confirmed_pushes: usize,
    trace: Trace,
}

impl Outcome {
    fn accepted(&self) -> bool {
        self.sent.status == 201 && self.sent.order_id.is_some()
    }
    fn e2e(&self) -> Option<f64> {
        self.payment_at_ms.map(|at| at as f64 - self.sent.sent_at_ms)
    }
    fn created(&self) -> Option<f64> {
        self.trace.created_ts.map(|c| c as f64 - self.sent.sent_at_ms)
    }
    fn reservation(&self) -> Option<f64> {
        Some((self.trace.reserved_ts? - self.trace.created_ts?) as f64)
    }
    fn confirmation(&self) -> Option<f64> {
        Some((self.trace.confirmed_ts? - self.trace.reserved_ts?) as f64)
    }
    fn payment(&self) -> Option<f64> {
        Some((self.payment_at_ms? - self.trace.confirmed_ts?) as f64)
    }
    fn lost(&self) -> bool {
        self.accepted() && self.payment_at_ms.is_none()
    }
    fn duplicated(&self) -> bool {
        self.payment_pushes > 1 || self.confirmed_pushes > 1 || self.trace.reserved_event_ids.len() > 1
    }
}

/// One 1-second bucket of the measured window (by send time).
#[derive(Debug, Clone)]
struct Bucket {
    second: usize,
    sent: usize,
    e2e: Pct,
}

/// A load step's figures.
struct StepResult {
    plan: Plan,
    outcomes: Vec<Outcome>,
    intake: Pct,
    e2e: Pct,
    created: Pct,
    reservation: Pct,
    confirmation: Pct,
    payment: Pct,
    orders: usize,
    orders_total: usize,
    completed: usize,
    lost: usize,
    duplicated: usize,
    intake_errors: usize,
    achieved_rate: f64,
    max_lag_ms: f64,
    drain_s: f64,
    timeline: Vec<Bucket>,
    cpu_cores: BTreeMap<String, f64>,
    machine_busy_pct: f64,
    /// Commits and WAL flushes per second while measuring ([`PgStats`]).
    postgres: Value,
    /// (service, topic) → (mean ms, records) during the step, from the services' histograms.
    handler_ms: BTreeMap<String, (f64, f64)>,
    error_samples: Vec<String>,
}

impl StepResult {
    /// Cores busy on the machine but not in the stack or this process: other work competing.
    fn other_cores(&self, cores: usize) -> f64 {
        (self.machine_busy_pct / 100.0 * cores as f64 - self.cpu_cores.values().sum::<f64>()).max(0.0)
    }

    fn passes(&self, p99_limit_ms: f64) -> bool {
        self.lost == 0 && self.intake_errors == 0 && self.e2e.n > 0 && self.e2e.p99 <= p99_limit_ms
    }
}

/// Shared counters for the progress line.
#[derive(Default)]
struct Counters {
    sent: AtomicUsize,
    answered: AtomicUsize,
    errors: AtomicUsize,
}

fn payment_pushes(sink: &PushSink) -> usize {
    sink.arrivals().iter().filter(|a| a.push.as_ref().is_ok_and(|p| p.kind == "PAYMENT_WAIT")).count()
}

async fn load(
    ctx: &Ctx,
    index: &mut TapIndex,
    plan: Plan,
    metrics: &[(&'static str, String)],
) -> anyhow::Result<StepResult> {
    let total = ((plan.warmup_s + plan.duration_s) * plan.rate).round() as usize;
    let warm = (plan.warmup_s * plan.rate).round() as usize;
    eprintln!(
        "[bench {:>6.1}s] load: {:.0} orders/s for {:.0} s (+{:.0} s warm-up) = {total} orders",
        ctx.began.elapsed().as_secs_f64(),
        plan.rate,
        plan.duration_s,
        plan.warmup_s
    );
    let metrics_before = scrape_handlers(&ctx.http, metrics).await;
    let baseline = payment_pushes(&ctx.sink);
    let counters = Arc::new(Counters::default());

    // Progress: one line a second until the step is drained.
    let (stop_progress, mut progress_stopped) = tokio::sync::watch::channel(false);
    let progress = tokio::spawn({
        let (counters, sink, began, rate) = (counters.clone(), ctx.sink.clone(), ctx.began, plan.rate);
        async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {},
                    _ = progress_stopped.changed() => return,
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
        }
    });

    // Open loop: order i leaves at start + i/rate, in its own task.
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let measured_start_epoch_ms = epoch_ms_f64() + 20.0 + plan.warmup_s * 1000.0;
    let mut handles = Vec::with_capacity(total);
    let mut cpu_before = None;
    let mut pg_before = None;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(at).await; // pacing of the open-loop schedule
        if i == warm {
            cpu_before = Some(CpuSnapshot::take(&ctx.procs));
            pg_before = Some(tokio::spawn(PgStats::take(ctx.database_url.clone())));
        }
        let scheduled_s = i as f64 / plan.rate - plan.warmup_s;
        let (http, url, body, counters) =
            (ctx.http.clone(), ctx.order_url.clone(), ctx.bodies[i % ctx.bodies.len()].clone(), counters.clone());
        let measured = i >= warm;
        handles.push(tokio::spawn(async move {
            let lag_ms = tokio::time::Instant::now().saturating_duration_since(at).as_secs_f64() * 1000.0;
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let sent = send_order(&http, &url, body, i, measured).await;
            counters.answered.fetch_add(1, Ordering::Relaxed);
            if sent.error.is_some() {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            Sent { scheduled_s, lag_ms, ..sent }
        }));
    }
    let sending_ended = tokio::time::Instant::now();
    let cpu_before = cpu_before.unwrap_or_else(|| CpuSnapshot::take(&ctx.procs));
    let cpu_after = CpuSnapshot::take(&ctx.procs);
    let pg_after = PgStats::take(ctx.database_url.clone()).await;
    let pg_before = match pg_before {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    let postgres = match (pg_before, pg_after) {
        (Some(a), Some(b)) => a.until(&b),
        _ => Value::Null,
    };
    let mut sent = Vec::with_capacity(total);
    for handle in handles {
        sent.push(handle.await.context("an order task panicked")?);
    }
    let accepted: HashSet<String> =
        sent.iter().filter(|s| s.status == 201).filter_map(|s| s.order_id.clone()).collect();

    // Drain: every accepted order's PAYMENT_WAIT push, or the deadline.
    let deadline = sending_ended + Duration::from_secs_f64(plan.drain_s);
    ctx.sink
        .wait_until(deadline, |arrivals| {
            let done = arrivals
                .iter()
                .filter_map(|a| a.push.as_ref().ok())
                .filter(|p| p.kind == "PAYMENT_WAIT" && accepted.contains(&p.order_id))
                .map(|p| p.order_id.as_str())
                .collect::<HashSet<_>>()
                .len();
            done >= accepted.len()
        })
        .await;
    let arrivals = ctx.sink.arrivals();
    let drain_s = sending_ended.elapsed().as_secs_f64();
    stop_progress.send_replace(true);
    let _ = progress.await;

    // Pushes per order (this step's orders only).
    let mut pushes: HashMap<&str, (Option<i64>, usize, usize)> = HashMap::new();
    for a in &arrivals {
        let Ok(p) = &a.push else { continue };
        if !accepted.contains(&p.order_id) {
            continue;
        }
        let entry = pushes.entry(p.order_id.as_str()).or_insert((None, 0, 0));
        match p.kind.as_str() {
            "PAYMENT_WAIT" => {
                entry.0 = Some(entry.0.map_or(a.at_ms, |t| t.min(a.at_ms)));
                entry.1 += 1;
            }
            "ORDER_CONFIRMED" => entry.2 += 1,
            _ => {}
        }
    }
    // The tap must have seen every stage's record of every completed order (it consumes in
    // parallel with the services, and in batches, so it may trail them): wait on its change feed.
    let completed_ids: Vec<&str> = pushes.iter().filter(|(_, v)| v.0.is_some()).map(|(k, _)| *k).collect();
    let _ = ctx
        .tap
        .wait_until(Duration::from_secs(15), |log| {
            index.ingest(log);
            completed_ids.iter().all(|id| index.orders.get(*id).is_some_and(Trace::has_every_stage)).then_some(())
        })
        .await;
    // Duplicates can only be judged on what has arrived; a late stock.reserved is caught by the
    // tap in the next step or not at all — `lost` and `duplicated` are counted at this point.
    let metrics_after = scrape_handlers(&ctx.http, metrics).await;
    let handler_ms = metrics_after
        .iter()
        .map(|(k, (sum, count))| {
            let (s0, c0) = metrics_before.get(k).copied().unwrap_or((0.0, 0.0));
            let (ds, dc) = (sum - s0, count - c0);
            (k.clone(), (if dc > 0.0 { 1000.0 * ds / dc } else { f64::NAN }, dc))
        })
        .collect();

    let outcomes: Vec<Outcome> = sent
        .into_iter()
        .map(|s| {
            let (payment_at_ms, payment_pushes, confirmed_pushes) =
                s.order_id.as_deref().and_then(|id| pushes.get(id).copied()).unwrap_or((None, 0, 0));
            let trace = s.order_id.as_deref().and_then(|id| index.orders.get(id).cloned()).unwrap_or_default();
            Outcome { sent: s, payment_at_ms, payment_pushes, confirmed_pushes, trace }
        })
        .collect();
    let (cpu_cores, machine_busy_pct) = cpu_before.until(&cpu_after);
    let mut step = summarize(plan, outcomes, drain_s, cpu_cores, machine_busy_pct, handler_ms, measured_start_epoch_ms);
    step.postgres = postgres;
    Ok(step)
}

/// POSTs order `seq` (user `bench-user-<seq mod 97>`) and times the answer.
async fn send_order(http: &reqwest::Client, url: &str, body: String, seq: usize, measured: bool) -> Sent {
    let user = format!("bench-user-{}", seq % 97);
    let sent_at_ms = epoch_ms_f64();
    let began = Instant::now();
    let answer = async {
        let response = http
            .post(url)
            .header("content-type", "application/json")
            .header("X-User-Id", user)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok::<_, reqwest::Error>((status, text))
    }
    .await;
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
            sent.order_id =
                serde_json::from_str::<Value>(&text).ok().and_then(|v| v.get("orderId")?.as_str().map(str::to_string));
            if status != 201 || sent.order_id.is_none() {
                sent.error = Some(format!("{status}: {}", text.chars().take(200).collect::<String>()));
            }
        }
        Err(e) => sent.error = Some(e.to_string()),
    }
    sent
}

/// The pipeline's latency without queueing: `n` orders one after another on the idle stack,
/// each waited for (its `PAYMENT_WAIT` push) before the next is sent.
async fn unloaded(ctx: &Ctx, index: &mut TapIndex, n: usize) -> anyhow::Result<Unloaded> {
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let order = send_order(&ctx.http, &ctx.order_url, ctx.bodies[i % ctx.bodies.len()].clone(), i, true).await;
        if let Some(error) = &order.error {
            bail!("unloaded order {i} was refused: {error}");
        }
        let id = order.order_id.clone().unwrap_or_default();
        if ctx
            .sink
            .wait_for(&id, Duration::from_secs(30), |p| p.iter().any(|p| p.kind == "PAYMENT_WAIT"))
            .await
            .is_err()
        {
            bail!("unloaded order {id} did not reach PAYMENT_WAIT within 30 s");
        }
        sent.push(order);
    }
    let ids: Vec<String> = sent.iter().filter_map(|s| s.order_id.clone()).collect();
    let _ = ctx
        .tap
        .wait_until(Duration::from_secs(15), |log| {
            index.ingest(log);
            ids.iter().all(|id| index.orders.get(id).is_some_and(Trace::has_every_stage)).then_some(())
        })
        .await;
    let outcomes: Vec<Outcome> = sent
        .into_iter()
        .map(|s| {
            let id = s.order_id.clone().unwrap_or_default();
            let payment_at_ms = ctx.sink.arrival_of(&id, "PAYMENT_WAIT");
            let trace = index.orders.get(&id).cloned().unwrap_or_default();
            Outcome { sent: s, payment_at_ms, payment_pushes: 1, confirmed_pushes: 1, trace }
        })
        .collect();
    let series = |f: &dyn Fn(&Outcome) -> Option<f64>| Pct::of(&outcomes.iter().filter_map(f).collect::<Vec<_>>());
    Ok(Unloaded {
        intake: series(&|o| Some(o.sent.intake_ms)),
        created: series(&Outcome::created),
        reservation: series(&Outcome::reservation),
        confirmation: series(&Outcome::confirmation),
        payment: series(&Outcome::payment),
        e2e: series(&Outcome::e2e),
    })
}

/// Percentiles of the unloaded orders.
struct Unloaded {
    intake: Pct,
    created: Pct,
    reservation: Pct,
    confirmation: Pct,
    payment: Pct,
    e2e: Pct,
}

impl Unloaded {
    fn json(&self) -> Value {
        json!({
            "orders": self.e2e.n,
            "intake_ms": self.intake.json(),
            "e2e_ms": self.e2e.json(),
            "stages_ms": {"created": self.created.json(), "reservation": self.reservation.json(), "confirmation": self.confirmation.json(), "payment": self.payment.json()},
        })
    }
}

async fn scrape_handlers(http: &reqwest::Client, metrics: &[(&'static str, String)]) -> BTreeMap<String, (f64, f64)> {
    let mut all = BTreeMap::new();
    for (name, url) in metrics {
        if let Ok(text) = scrape(http, url).await {
            for (stage, v) in handler_means(&text) {
                all.insert(format!("{name} {stage}"), v);
            }
        }
    }
    all
}

fn summarize(
    plan: Plan,
    outcomes: Vec<Outcome>,
    drain_s: f64,
    cpu_cores: BTreeMap<String, f64>,
    machine_busy_pct: f64,
    handler_ms: BTreeMap<String, (f64, f64)>,
    measured_start_epoch_ms: f64,
) -> StepResult {
    let measured: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent.measured && o.accepted()).collect();
    let series = |f: &dyn Fn(&Outcome) -> Option<f64>| -> Pct {
        Pct::of(&measured.iter().filter_map(|o| f(o)).collect::<Vec<_>>())
    };
    let intake = Pct::of(&outcomes.iter().filter(|o| o.sent.measured).map(|o| o.sent.intake_ms).collect::<Vec<_>>());
    let measured_sent: Vec<&Sent> = outcomes.iter().map(|o| &o.sent).filter(|s| s.measured).collect();
    let achieved_rate = match (measured_sent.first(), measured_sent.last()) {
        (Some(a), Some(b)) if measured_sent.len() > 1 && b.sent_at_ms > a.sent_at_ms => {
            (measured_sent.len() - 1) as f64 / ((b.sent_at_ms - a.sent_at_ms) / 1000.0)
        }
        _ => f64::NAN,
    };
    let mut buckets: BTreeMap<usize, (usize, Vec<f64>)> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.sent.measured) {
        let second = ((o.sent.sent_at_ms - measured_start_epoch_ms) / 1000.0).floor().max(0.0) as usize;
        let b = buckets.entry(second).or_default();
        b.0 += 1;
        if let Some(e) = o.e2e() {
            b.1.push(e);
        }
    }
    let error_samples = outcomes.iter().filter_map(|o| o.sent.error.clone()).take(5).collect();
    StepResult {
        plan,
        intake,
        e2e: series(&Outcome::e2e),
        created: series(&Outcome::created),
        reservation: series(&Outcome::reservation),
        confirmation: series(&Outcome::confirmation),
        payment: series(&Outcome::payment),
        orders: measured_sent.len(),
        orders_total: outcomes.len(),
        completed: outcomes.iter().filter(|o| o.payment_at_ms.is_some()).count(),
        lost: outcomes.iter().filter(|o| o.lost()).count(),
        duplicated: outcomes.iter().filter(|o| o.duplicated()).count(),
        intake_errors: outcomes.iter().filter(|o| o.sent.error.is_some()).count(),
        achieved_rate,
        max_lag_ms: outcomes.iter().map(|o| o.sent.lag_ms).fold(0.0, f64::max),
        drain_s,
        timeline: buckets
            .into_iter()
            .map(|(second, (sent, e2e))| Bucket { second, sent, e2e: Pct::of(&e2e) })
            .collect(),
        cpu_cores,
        machine_busy_pct,
        postgres: Value::Null,
        handler_ms,
        error_samples,
        outcomes,
    }
}

// ---------------------------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------------------------

struct Machine {
    cores: usize,
    memory_mb: f64,
    cpu_model: String,
    /// `/proc/loadavg` before the stack started and after the run: other work on the machine
    /// (builds, other stacks) competes with the stack and shows here.
    load_before: String,
    load_after: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    fn read(load_before: String) -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            memory_mb: memory_kb / 1024.0,
            cpu_model,
            load_before,
            load_after: loadavg(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Report: JSON, table, SVG, CSV
// ---------------------------------------------------------------------------------------------

struct Report {
    args: BenchArgs,
    floor: Floor,
    unloaded: Option<Unloaded>,
    /// Cores per process and machine busy % on the idle stack.
    idle: Option<(BTreeMap<String, f64>, f64)>,
    steps: Vec<StepResult>,
    rss: BTreeMap<String, f64>,
    procs: Procs,
    machine: Machine,
}

impl Report {
    /// The step the headline figures come from: the run itself, or with --find-max the highest
    /// passing step (the first step when none passed).
    fn headline(&self) -> &StepResult {
        if self.args.find_max {
            self.steps.iter().rev().find(|s| s.passes(self.args.p99_limit_ms)).unwrap_or(&self.steps[0])
        } else {
            &self.steps[0]
        }
    }

    fn max_sustained(&self) -> Option<f64> {
        if !self.args.find_max {
            return None;
        }
        self.steps
            .iter()
            .filter(|s| s.passes(self.args.p99_limit_ms))
            .map(|s| s.plan.rate)
            .fold(None, |m, r| Some(m.map_or(r, |m: f64| m.max(r))))
    }

    /// No loss and no duplicate where it counts (find-max: in the passing steps).
    fn clean(&self) -> bool {
        let relevant: Vec<&StepResult> = if self.args.find_max {
            self.steps.iter().filter(|s| s.passes(self.args.p99_limit_ms)).collect()
        } else {
            self.steps.iter().collect()
        };
        relevant.iter().all(|s| s.lost == 0 && s.duplicated == 0)
    }

    fn e2e_over_floor(&self) -> f64 {
        self.headline().e2e.p50 / self.floor.floor_ms()
    }

    fn targets(&self) -> Vec<(&'static str, f64, f64, bool)> {
        let h = self.headline();
        let mut t = vec![
            ("intake p99 ≤ 10 ms (at 100/s)", TARGET_INTAKE_P99_MS, h.intake.p99, h.intake.p99 <= TARGET_INTAKE_P99_MS),
            ("e2e p50 ≤ 20 ms (at 100/s)", TARGET_E2E_P50_MS, h.e2e.p50, h.e2e.p50 <= TARGET_E2E_P50_MS),
            ("e2e p99 ≤ 75 ms (at 100/s)", TARGET_E2E_P99_MS, h.e2e.p99, h.e2e.p99 <= TARGET_E2E_P99_MS),
        ];
        let sustained = self
            .max_sustained()
            .unwrap_or_else(|| if h.passes(self.args.p99_limit_ms) { h.plan.rate } else { f64::NAN });
        t.push((
            "≥ 500/s sustained with e2e p99 ≤ 250 ms",
            TARGET_SUSTAINED_PER_S,
            sustained,
            sustained >= TARGET_SUSTAINED_PER_S,
        ));
        t
    }

    fn step_json(&self, s: &StepResult) -> Value {
        json!({
            "rate_per_s": s.plan.rate,
            "warmup_s": s.plan.warmup_s,
            "duration_s": s.plan.duration_s,
            "orders": s.orders,
            "orders_total": s.orders_total,
            "completed": s.completed,
            "achieved_send_rate_per_s": round2(s.achieved_rate),
            "max_send_lag_ms": round2(s.max_lag_ms),
            "intake_ms": s.intake.json(),
            "e2e_ms": s.e2e.json(),
            "stages_ms": {
                "created": s.created.json(),
                "reservation": s.reservation.json(),
                "confirmation": s.confirmation.json(),
                "payment": s.payment.json(),
            },
            "lost": s.lost,
            "duplicated": s.duplicated,
            "intake_errors": s.intake_errors,
            "intake_error_samples": s.error_samples,
            "passed": s.passes(self.args.p99_limit_ms),
            "drain_s": round2(s.drain_s),
            "cpu_cores_used": s.cpu_cores.iter().map(|(k, v)| (k.clone(), json!(round2(*v)))).collect::<serde_json::Map<_, _>>(),
            "machine_cpu_busy_pct": round2(s.machine_busy_pct),
            "cpu_cores_used_by_other_processes": round2(s.other_cores(self.machine.cores)),
            "postgres": s.postgres,
            "handler_ms_mean": s.handler_ms.iter().map(|(k, (m, n))| (k.clone(), json!({"mean": round2(*m), "records": n, "capacity_per_s": round2(1000.0 / m)}))).collect::<serde_json::Map<_, _>>(),
            "timeline": s.timeline.iter().map(|b| json!({"second": b.second, "sent": b.sent, "completed": b.e2e.n, "e2e_p50": round2(b.e2e.p50), "e2e_p99": round2(b.e2e.p99)})).collect::<Vec<_>>(),
        })
    }

    fn to_json(&self) -> Value {
        let h = self.headline();
        let services: serde_json::Map<String, Value> = self
            .rss
            .iter()
            .filter(|(k, _)| SERVICES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), json!(round2(*v))))
            .collect();
        let others: serde_json::Map<String, Value> = self
            .rss
            .iter()
            .filter(|(k, _)| !SERVICES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), json!(round2(*v))))
            .collect();
        let mut headline = self.step_json(h);
        let extra = json!({
            "mode": if self.args.find_max { "find-max" } else { "fixed-rate" },
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "floor_ms": round2(self.floor.floor_ms()),
            "e2e_over_floor": round2(self.e2e_over_floor()),
            "floor": {
                "formula": "3 × kafka_hop_p50 + 4 × pg_commit_p50",
                "round_trips": self.args.floor_round_trips,
                "kafka_hop_ms": self.floor.hop.json(),
                "kafka_produce_ack_ms": self.floor.ack.json(),
                "pg_commit_ms": self.floor.commit.json(),
                "pg_select1_ms": self.floor.select.json(),
                "postgres": self.floor.pg_settings,
            },
            "unloaded": self.unloaded.as_ref().map(Unloaded::json),
            "idle": self.idle.as_ref().map(|(cores, busy)| json!({
                "seconds": self.args.idle_seconds,
                "cpu_cores_used": cores.iter().map(|(k, v)| (k.clone(), json!(round2(*v)))).collect::<serde_json::Map<_, _>>(),
                "machine_cpu_busy_pct": round2(*busy),
            })),
            "max_sustained_per_s": self.max_sustained(),
            "find_max": self.args.find_max.then(|| json!({
                "criterion": format!("e2e p99 ≤ {} ms, no order lost, no intake error", self.args.p99_limit_ms),
                "step_factor": self.args.step_factor,
                "steps": self.steps.iter().map(|s| self.step_json(s)).collect::<Vec<_>>(),
            })),
            "rss_mb": services,
            "rss_mb_other": others,
            "machine": {
                "cores": self.machine.cores,
                "memory": format!("{:.1} GiB", self.machine.memory_mb / 1024.0),
                "memory_mb": self.machine.memory_mb.round(),
                "cpu_model": self.machine.cpu_model,
                "load_average_before": self.machine.load_before,
                "load_average_after": self.machine.load_after,
            },
            "processes": self.procs.list.iter().map(|(n, p)| (n.clone(), json!(p))).collect::<serde_json::Map<_, _>>(),
            "targets": self.targets().iter().map(|(name, target, value, met)| json!({"target": name, "limit": target, "value": round2(*value), "met": met})).collect::<Vec<_>>(),
        });
        if let (Value::Object(h), Value::Object(e)) = (&mut headline, extra) {
            h.extend(e);
        }
        headline
    }

    fn table(&self) -> String {
        let h = self.headline();
        let mut out = String::new();
        let _ = writeln!(out);
        let mode = if self.args.find_max {
            format!(" (find-max: headline = highest passing step, {:.0}/s)", h.plan.rate)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "saga bench — {:.0} orders/s open loop, {:.0} s measured after {:.0} s warm-up{mode}",
            h.plan.rate, h.plan.duration_s, h.plan.warmup_s
        );
        let _ = writeln!(
            out,
            "machine: {} cores, {:.1} GiB, {}, load avg {} before / {} after | sent {} measured ({} total), achieved {:.1}/s, max send lag {:.1} ms",
            self.machine.cores,
            self.machine.memory_mb / 1024.0,
            self.machine.cpu_model,
            self.machine.load_before,
            self.machine.load_after,
            h.orders,
            h.orders_total,
            h.achieved_rate,
            h.max_lag_ms
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "latency (ms)", "p50", "p90", "p99", "max", "mean", "n"
        );
        let rows: [(&str, &Pct); 6] = [
            ("intake (HTTP round trip)", &h.intake),
            ("  sent → order.created record", &h.created),
            ("  reservation (created→reserved)", &h.reservation),
            ("  confirmation (reserved→confirmed)", &h.confirmation),
            ("  payment (confirmed→push)", &h.payment),
            ("end-to-end (sent → PAYMENT_WAIT)", &h.e2e),
        ];
        for (name, p) in rows {
            let _ = writeln!(
                out,
                "  {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
                name,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.max),
                ms(p.mean),
                p.n
            );
        }
        if let Some(u) = &self.unloaded {
            let _ = writeln!(
                out,
                "  unloaded ({} orders one at a time, p50): intake {} | created {} | reservation {} | confirmation {} | payment {} | e2e {} (p99 {})",
                u.e2e.n,
                ms(u.intake.p50),
                ms(u.created.p50),
                ms(u.reservation.p50),
                ms(u.confirmation.p50),
                ms(u.payment.p50),
                ms(u.e2e.p50),
                ms(u.e2e.p99)
            );
        }
        let _ = writeln!(out);
        let f = &self.floor;
        let _ = writeln!(
            out,
            "floor: kafka hop p50 {:.2} ms (ack {:.2}), pg commit p50 {:.2} ms (SELECT 1 {:.2}; fsync={} synchronous_commit={} wal_sync_method={})",
            f.hop.p50,
            f.ack.p50,
            f.commit.p50,
            f.select.p50,
            f.pg_settings.get("fsync").map(String::as_str).unwrap_or("?"),
            f.pg_settings.get("synchronous_commit").map(String::as_str).unwrap_or("?"),
            f.pg_settings.get("wal_sync_method").map(String::as_str).unwrap_or("?")
        );
        let _ = writeln!(
            out,
            "       floor_ms = 3×{:.2} + 4×{:.2} = {:.1} ms; e2e p50 / floor = {:.1}",
            f.hop.p50,
            f.commit.p50,
            f.floor_ms(),
            self.e2e_over_floor()
        );
        let _ = writeln!(
            out,
            "orders: completed {} of {}, lost {} (accepted, no PAYMENT_WAIT push within {:.0} s after sending ended), duplicated {}, intake errors {}; drain took {:.1} s",
            h.completed, h.orders_total, h.lost, self.args.drain, h.duplicated, h.intake_errors, h.drain_s
        );
        for e in &h.error_samples {
            let _ = writeln!(out, "  intake error: {e}");
        }
        let rss: Vec<String> = self.rss.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        let _ = writeln!(out, "RSS max (MB): {}", rss.join(", "));
        let cpu: Vec<String> = h.cpu_cores.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        let _ = writeln!(
            out,
            "CPU (cores used while measuring): {}; machine busy {:.0}% (other processes: {:.2} cores)",
            cpu.join(", "),
            h.machine_busy_pct,
            h.other_cores(self.machine.cores)
        );
        if let Some(pg) = h.postgres.as_object() {
            let _ = writeln!(
                out,
                "PostgreSQL while measuring: {} commits/s, {} WAL fsyncs/s ({} commits per fsync, {} ms each, WAL fsync busy {}%)",
                pg["commits_per_s"],
                pg["wal_syncs_per_s"],
                pg["commits_per_wal_sync"],
                pg["wal_sync_ms_mean"],
                pg["wal_sync_busy_pct"]
            );
        }
        if let Some((cores, busy)) = &self.idle {
            let idle: Vec<String> = cores.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
            let _ = writeln!(out, "CPU of the idle stack (cores): {}; machine busy {busy:.0}%", idle.join(", "));
        }
        let handlers: Vec<String> = h
            .handler_ms
            .iter()
            .filter(|(_, (_, n))| *n > 0.0)
            .map(|(k, (m, n))| format!("{k} {m:.2} ms×{n:.0} (one-at-a-time capacity ≈ {:.0}/s)", 1000.0 / m))
            .collect();
        let _ =
            writeln!(out, "handler time (services' saga_stage_seconds, mean per record):\n  {}", handlers.join("\n  "));
        if self.args.find_max {
            let _ = writeln!(out);
            let _ = writeln!(out, "  find-max steps (pass: e2e p99 ≤ {:.0} ms, nothing lost):", self.args.p99_limit_ms);
            for s in &self.steps {
                let _ = writeln!(
                    out,
                    "  {:>6.0}/s  achieved {:>7.1}/s  intake p99 {:>7} ms  e2e p50 {:>8} ms  p99 {:>8} ms  lost {:>5}  dup {}  busy {:>3.0}%  {}",
                    s.plan.rate,
                    s.achieved_rate,
                    ms(s.intake.p99),
                    ms(s.e2e.p50),
                    ms(s.e2e.p99),
                    s.lost,
                    s.duplicated,
                    s.machine_busy_pct,
                    if s.passes(self.args.p99_limit_ms) { "pass" } else { "FAIL" }
                );
            }
            let _ = writeln!(
                out,
                "  max_sustained_per_s: {}",
                self.max_sustained().map(|r| format!("{r:.0}")).unwrap_or_else(|| "none passed".into())
            );
        }
        let _ = writeln!(out);
        for (name, _, value, met) in self.targets() {
            let _ = writeln!(out, "  target {:<42} {:>9}  {}", name, ms(value), if met { "met" } else { "MISSED" });
        }
        out
    }

    /// e2e p50/p99 per 1-second bucket of send time; find-max steps are laid end to end.
    fn chart(&self) -> String {
        let mut points = Vec::new();
        let mut markers = Vec::new();
        let mut offset = 0.0;
        for s in &self.steps {
            markers.push((offset, format!("{:.0}/s", s.plan.rate)));
            for b in &s.timeline {
                let incomplete = if b.sent > 0 { 1.0 - b.e2e.n as f64 / b.sent as f64 } else { 0.0 };
                points.push((offset + b.second as f64 + 0.5, b.e2e.p50, b.e2e.p99, incomplete));
            }
            offset += s.plan.duration_s.ceil().max(s.timeline.last().map(|b| b.second as f64 + 1.0).unwrap_or(0.0));
        }
        let title = if self.args.find_max {
            format!("saga e2e latency (request → PAYMENT_WAIT push), find-max steps ×{}", self.args.step_factor)
        } else {
            format!("saga e2e latency (request → PAYMENT_WAIT push) at {:.0} orders/s", self.steps[0].plan.rate)
        };
        svg_chart(&title, &points, &markers, offset.max(1.0))
    }

    fn csv(&self) -> String {
        let mut out = String::from(
            "step_rate,seq,measured,scheduled_s,sent_at_ms,send_lag_ms,status,order_id,intake_ms,created_ms,reservation_ms,confirmation_ms,payment_ms,e2e_ms,payment_pushes,confirmed_pushes,reserved_event_ids,error\n",
        );
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
        for s in &self.steps {
            for o in &s.outcomes {
                let _ = writeln!(
                    out,
                    "{},{},{},{:.4},{:.3},{:.3},{},{},{:.3},{},{},{},{},{},{},{},{},{}",
                    s.plan.rate,
                    o.sent.seq,
                    o.sent.measured,
                    o.sent.scheduled_s,
                    o.sent.sent_at_ms,
                    o.sent.lag_ms,
                    o.sent.status,
                    o.sent.order_id.as_deref().unwrap_or(""),
                    o.sent.intake_ms,
                    opt(o.created()),
                    opt(o.reservation()),
                    opt(o.confirmation()),
                    opt(o.payment()),
                    opt(o.e2e()),
                    o.payment_pushes,
                    o.confirmed_pushes,
                    o.trace.reserved_event_ids.len(),
                    o.sent.error.as_deref().unwrap_or("").replace([',', '\n'], " ")
                );
            }
        }
        out
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A self-contained SVG line chart: `points` are `(x seconds, p50, p99, share of the bucket's
/// orders that never completed)` — that share is drawn as a red band hanging from the top, so
/// an overloaded run (few completions) does not look like an empty chart; the y axis is
/// logarithmic when the values span more than 20×, linear otherwise. Dashed lines mark the
/// issue's targets (20 / 75 / 250 ms) that fall inside the range.
fn svg_chart(title: &str, points: &[(f64, f64, f64, f64)], markers: &[(f64, String)], x_max: f64) -> String {
    let (w, h, left, right, top, bottom) = (960.0, 440.0, 70.0, 20.0, 44.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let values: Vec<f64> = points.iter().flat_map(|p| [p.1, p.2]).filter(|v| v.is_finite() && *v > 0.0).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let log = values.len() > 1 && hi / lo.max(0.1) > 20.0;
    let (y_lo, y_hi, ticks): (f64, f64, Vec<f64>) = if values.is_empty() {
        (0.0, 1.0, vec![0.0, 1.0])
    } else if log {
        let a = 10f64.powf(lo.max(0.1).log10().floor());
        let b = 10f64.powf(hi.log10().ceil());
        let mut ticks = Vec::new();
        let mut decade = a;
        while decade <= b * 1.0001 {
            for m in [1.0, 2.0, 5.0] {
                let t = decade * m;
                if t >= a * 0.999 && t <= b * 1.001 {
                    ticks.push(t);
                }
            }
            decade *= 10.0;
        }
        (a, b, ticks)
    } else {
        let raw = hi * 1.1 / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
        let top_v = (hi * 1.1 / step).ceil() * step;
        ((0.0), top_v, (0..=((top_v / step).round() as usize)).map(|i| i as f64 * step).collect())
    };
    let y = |v: f64| -> f64 {
        let f = if log {
            (v.max(y_lo).log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10())
        } else {
            (v - y_lo) / (y_hi - y_lo)
        };
        top + ph * (1.0 - f.clamp(0.0, 1.0))
    };
    let x = |t: f64| left + pw * (t / x_max).clamp(0.0, 1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#, w / 2.0, xml(title));
    for t in &ticks {
        let yy = y(*t);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            yy + 4.0,
            if *t >= 10.0 || *t == 0.0 { format!("{t:.0}") } else { format!("{t}") }
        );
    }
    let x_step =
        [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0].into_iter().find(|s| x_max / s <= 12.0).unwrap_or(300.0);
    let mut t = 0.0;
    while t <= x_max + 1e-9 {
        let xx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{}" stroke="#f0f0f0"/><text x="{xx:.1}" y="{}" text-anchor="middle">{t:.0}</text>"##,
            top + ph,
            top + ph + 16.0
        );
        t += x_step;
    }
    let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the measured window (orders bucketed by send time)</text>"#,
        left + pw / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">ms{}</text>"#,
        top + ph / 2.0,
        if log { " (log scale)" } else { "" }
    );
    let mut last_label_y = f64::INFINITY;
    for (limit, label) in [
        (TARGET_E2E_P50_MS, "p50 target 20 ms"),
        (TARGET_E2E_P99_MS, "p99 target 75 ms"),
        (250.0, "find-max limit 250 ms"),
    ] {
        if limit >= y_lo && limit <= y_hi {
            let yy = y(limit);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#999" stroke-dasharray="5,4"/>"##,
                left + pw
            );
            // Label only lines far enough apart to read (y grows downwards; limits ascend).
            if last_label_y - yy >= 14.0 {
                let _ = writeln!(
                    s,
                    r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#777">{label}</text>"##,
                    left + pw - 4.0,
                    yy - 4.0
                );
                last_label_y = yy;
            }
        }
    }
    let mut any_incomplete = false;
    for p in points.iter().filter(|p| p.3 > 0.0) {
        any_incomplete = true;
        let (x0, x1) = (x(p.0 - 0.5), x(p.0 + 0.5));
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="#d62728" fill-opacity="0.15"/>"##,
            (x1 - x0).max(0.5),
            ph * p.3.clamp(0.0, 1.0)
        );
    }
    if any_incomplete {
        let ly = top + 48.0;
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="24" height="10" fill="#d62728" fill-opacity="0.15"/><text x="{}" y="{}">share of the second's orders not completed (band height)</text>"##,
            left + 10.0,
            ly - 5.0,
            left + 40.0,
            ly + 4.0
        );
    }
    for (mx, label) in markers.iter().filter(|_| markers.len() > 1) {
        let xx = x(*mx);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{}" stroke="#bbb"/><text x="{:.1}" y="{}" fill="#555">{}</text>"##,
            top + ph,
            xx + 3.0,
            top + 14.0,
            xml(label)
        );
    }
    for (series, colour, name) in [(1usize, "#1f77b4", "e2e p50"), (2, "#d62728", "e2e p99")] {
        // Break the line where a bucket has no value.
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, s: &mut String| {
            if segment.len() > 1 {
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                    segment.join(" ")
                );
            } else if let Some(p) = segment.first() {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="2" fill="{colour}"/>"#);
            }
            segment.clear();
        };
        for p in points {
            let v = if series == 1 { p.1 } else { p.2 };
            if v.is_finite() {
                segment.push(format!("{:.1},{:.1}", x(p.0), y(v)));
            } else {
                flush(&mut segment, &mut s);
            }
        }
        flush(&mut segment, &mut s);
        let ly = top + 16.0 + if series == 1 { 0.0 } else { 16.0 };
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
            left + 10.0,
            left + 34.0,
            left + 40.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_means_reads_prometheus_text() {
        let text = "# HELP x\nsaga_stage_seconds_sum{service=\"product\",stage=\"order.created\"} 0.5\nsaga_stage_seconds_count{service=\"product\",stage=\"order.created\"} 100\nsaga_stage_seconds_bucket{le=\"0.001\"} 3\n";
        let m = handler_means(text);
        assert_eq!(m["order.created"], (0.5, 100.0));
    }

    #[test]
    fn chart_is_well_formed_for_linear_and_log_ranges() {
        let linear = svg_chart(
            "t & t",
            &[(0.5, 10.0, 20.0, 0.0), (1.5, f64::NAN, f64::NAN, 1.0), (2.5, 12.0, 30.0, 0.0)],
            &[],
            3.0,
        );
        assert!(
            linear.starts_with("<svg")
                && linear.ends_with("</svg>\n")
                && linear.contains("t &amp; t")
                && linear.contains("not completed")
        );
        let log = svg_chart(
            "log",
            &[(0.5, 5.0, 20.0, 0.0), (1.5, 50.0, 5000.0, 0.5)],
            &[(0.0, "100/s".into()), (1.0, "150/s".into())],
            2.0,
        );
        assert!(log.contains("log scale") && log.contains("150/s"));
        assert!(!svg_chart("empty", &[], &[], 1.0).contains("NaN"));
    }

    #[test]
    fn outcome_flags_loss_and_duplicates() {
        let sent = Sent {
            seq: 0,
            scheduled_s: 0.0,
            lag_ms: 0.0,
            sent_at_ms: 1000.0,
            intake_ms: 2.0,
            status: 201,
            order_id: Some("o".into()),
            error: None,
            measured: true,
        };
        let mut o =
            Outcome { sent, payment_at_ms: None, payment_pushes: 0, confirmed_pushes: 0, trace: Trace::default() };
        assert!(o.lost() && !o.duplicated());
        o.payment_at_ms = Some(1010);
        o.payment_pushes = 1;
        o.trace.reserved_event_ids = ["a".to_string(), "b".to_string()].into();
        assert!(!o.lost() && o.duplicated());
        assert_eq!(o.e2e(), Some(10.0));
    }
}
