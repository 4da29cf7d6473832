//! # `saga-conformance bench`: open-loop load against the saga
//!
//! ```text
//! saga-conformance bench [--config FILE] [--rate R] [--duration S] [--warmup S] [--json FILE] [--find-max] [--report-dir DIR]
//! ```
//!
//! The target is the one `saga-conformance run` would check with the same config: the
//! reference stack on the `processes` backend (the default), or an implementation already
//! running (`backend = "external"`, URLs from `[external]`; it must push to the bench's sink on
//! `push_sink_port`). The bench starts a push sink and a [`crate::tap::Tap`] on the saga
//! topics, and then:
//!
//! 1. **Floor** ([`floor`]): on the idle target, what one saga step cannot beat here.
//! 2. **Catalogue, unloaded** ([`load`]): `--products` products with a huge stock, then
//!    `--unloaded-orders` orders one at a time — latency without queueing.
//! 3. **Load** ([`load`]): open loop at `--rate` for `--warmup` + `--duration` seconds (the
//!    warm-up is excluded from the statistics), or with `--find-max` successive steps
//!    (`--step-duration` after `--step-warmup`), the rate multiplied by `--step-factor` until a
//!    step misses the criterion (e2e p99 > `--p99-limit-ms`, an order lost or cancelled, an intake
//!    error) or
//!    `--max-rate` is reached, then `--refine` steps between the highest passing rate and the
//!    failing one; `max_sustained_per_s` is the highest rate that passed.
//! 4. **Drain**: up to `--drain` seconds for every accepted order to end: its `PAYMENT_WAIT`
//!    push, or `ORDER_CANCELLED`. Lost and duplicated mean what they mean for the suite's
//!    checkers ([`crate::checkers::once`]): an accepted order that has not ended by then is
//!    **lost** (under overload that counts the backlog); an order with more than one distinct
//!    eventId among its records on one saga topic, or its pushes of one kind, is **duplicated**
//!    (a resent push or redelivered record keeps its eventId and is not). A bench order has stock
//!    to spare, so one **cancelled** fails the run like a lost one. (Before issue 25, a cancelled
//!    order counted as lost, and a push resent with its eventId as duplicated; records of topics
//!    other than `stock.reserved` and pushes other than `PAYMENT_WAIT`/`ORDER_CONFIRMED` were
//!    not counted.)
//! 5. **Per order** ([`summary`]): intake = HTTP round trip of `POST /api/v1/orders`; from the
//!    tap's record timestamps ([`trace`]) reservation, confirmation; payment = push arrival −
//!    `order.confirmed`; end-to-end = push arrival − send. Percentiles are nearest-rank.
//! 6. **Resources**: CPU and max RSS per process ([`procfs`]; the reference's processes from
//!    [`crate::backend::processes::Stack::pids`], an external implementation's are unknown: "not measured (external)"),
//!    machine CPU busy %, the services' handler times from `/metrics` ([`handler_times`]), and
//!    PostgreSQL's commits and WAL fsyncs per second ([`pgstats`], reference only). Before the
//!    load, `--idle-seconds` of CPU on the idle target.
//!
//! Output in `--report-dir` (default `reports/bench/`): `bench.json` ([`report`]; also copied
//! to `--json FILE`), `e2e-latency.svg` ([`chart`]), `orders.csv` ([`orders_csv`]),
//! `metrics/<service>.prom`, and on the reference `logs/`; a table on stdout ([`table`]). The
//! exit code is non-zero when an order was lost, cancelled or duplicated (with `--find-max`: in a
//! step that passed). Waiting is on events (HTTP answers, the tap's and the sink's change notifications),
//! each under a deadline; arrival times are recorded by the sink itself.

mod chart;
mod floor;
mod handler_times;
mod load;
mod orders_csv;
mod outcome;
mod pgstats;
mod procfs;
mod report;
mod stats;
mod summary;
mod table;
mod trace;

use self::procfs::{CpuSnapshot, Machine, Procs, RssSampler, loadavg};
use crate::backend::Backend;
use crate::client::SagaClient;
use crate::config::{BackendKind, Config};
use crate::sink::PushSink;
use crate::tap::{Pace, Tap};
use anyhow::{Context as _, bail};
use floor::Floor;
use load::Ctx;
use outcome::Plan;
use report::{Report, TARGET_SUSTAINED_P99_MS};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trace::TapIndex;

/// How long one HTTP request of the bench may take.
const HTTP_DEADLINE: Duration = Duration::from_secs(30);

/// Arguments of `saga-conformance bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// conformance.toml naming the target: `backend = "external"` with `[external]` benchmarks
    /// an implementation already running (default: ./conformance.toml if present, else the
    /// reference stack on the processes backend).
    #[arg(long)]
    pub config: Option<PathBuf>,
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
    /// Raise the rate step by step until e2e p99 exceeds --p99-limit-ms or an order is lost or
    /// cancelled.
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
    /// --find-max: steps after the first failure, each at the geometric middle of the highest
    /// passing rate and the lowest failing one, so the figure is found closer than one
    /// --step-factor.
    #[arg(long, default_value_t = 2)]
    pub refine: u32,
    /// --find-max: stop raising the rate here (keeps the search bounded).
    #[arg(long, default_value_t = 5000.0)]
    pub max_rate: f64,
    /// --find-max: a step passes while e2e p99 is at most this (and nothing is lost or cancelled).
    #[arg(long, default_value_t = TARGET_SUSTAINED_P99_MS)]
    pub p99_limit_ms: f64,
    /// Seconds after the end of sending an accepted order may take to end (paid or cancelled)
    /// before it counts as lost.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
    /// Products the orders are spread over (round-robin).
    #[arg(long, default_value_t = 10)]
    pub products: usize,
    /// Orders sent one at a time on the idle target before the load (latency without
    /// queueing); 0 skips this.
    #[arg(long, default_value_t = 50)]
    pub unloaded_orders: usize,
    /// Seconds of CPU measurement on the idle target before the load; 0 skips this.
    #[arg(long, default_value_t = 3.0)]
    pub idle_seconds: f64,
    /// Sequential round trips per floor measurement (Kafka hop, HTTP, PostgreSQL commit).
    #[arg(long, default_value_t = 200)]
    pub floor_round_trips: usize,
}

/// Runs the benchmark. `Ok(true)` when no order was lost, cancelled or duplicated (in `--find-max` mode:
/// in the steps that passed), `Ok(false)` otherwise; `Err` when the bench itself could not run.
pub async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    validate(&args)?;
    let began = Instant::now();
    let load_before = loadavg();
    let mut config = Config::load(args.config.as_deref())?;
    // The processes backend writes its logs under the report directory: the bench's.
    config.report_dir = args.report_dir.clone();
    if config.backend == BackendKind::Containers {
        bail!(
            "bench drives the processes backend or an external implementation (backend = \"external\"); for containers, start them and describe them as external"
        );
    }
    std::fs::create_dir_all(&args.report_dir).with_context(|| format!("creating {}", args.report_dir.display()))?;
    // Each process appends to its log: start from empty logs so they describe this run only.
    let log_dir = args.report_dir.join("logs");
    if config.backend == BackendKind::Processes && log_dir.exists() {
        std::fs::remove_dir_all(&log_dir).with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    let sink_port = (config.backend == BackendKind::External).then_some(config.external.push_sink_port);
    let sink = Arc::new(PushSink::start(sink_port).await?);
    let backend = Backend::start(&config, &sink.url()).await?;
    let result = bench_on(&args, &config, &backend, sink, began, load_before).await;
    if matches!(backend, Backend::Processes(_)) {
        eprintln!("[bench {:>6.1}s] stopping the stack", began.elapsed().as_secs_f64());
    }
    backend.shutdown().await;
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

/// What the bench can see of the reference stack beyond its endpoints: its processes and
/// its database. `None` for an external implementation.
async fn insight(backend: &Backend) -> Option<(Procs, String)> {
    let Backend::Processes(stack) = backend else { return None };
    Some((Procs::new(stack.pids().await), stack.database_url(crate::Service::Order.database())))
}

async fn bench_on(
    args: &BenchArgs,
    config: &Config,
    backend: &Backend,
    sink: Arc<PushSink>,
    began: Instant,
    load_before: String,
) -> anyhow::Result<bool> {
    let endpoints = backend.endpoints().clone();
    let (procs, database_url) = insight(backend).await.unzip();
    let http = reqwest::Client::builder().timeout(HTTP_DEADLINE).tcp_nodelay(true).build()?;
    let dead_letters = backend.capabilities().has("dead-letters");
    let tap = Tap::start(
        &endpoints.kafka_bootstrap,
        &endpoints.registry_url,
        config.topic_map(),
        dead_letters,
        Pace::Batched,
    )
    .await?;
    let mut ctx = Ctx {
        client: Arc::new(SagaClient::new(http, &endpoints)),
        sink,
        tap: tap.clone(),
        procs,
        database_url,
        bodies: Vec::new(),
        began,
    };
    ctx.say(&match &ctx.procs {
        Some(p) => {
            format!("processes: {}", p.list.iter().map(|(n, p)| format!("{n}={p}")).collect::<Vec<_>>().join(" "))
        }
        None => format!("external implementation at {}: its processes and database are not known", endpoints.order_url),
    });
    let rss = RssSampler::start(ctx.procs.as_ref());

    ctx.say("measuring the floor (raw Kafka round trip, HTTP round trip, raw PostgreSQL commit where reachable)");
    let floor =
        Floor::measure(&endpoints.kafka_bootstrap, &ctx.client, ctx.database_url.as_deref(), args.floor_round_trips)
            .await?;
    ctx.say(&format!("floor: {}", floor.worked()));

    ctx.bodies = load::seed_catalogue(&ctx.client, args.products).await?;
    ctx.say(&format!("seeded {} products with {} in stock each", args.products, load::PRODUCT_STOCK));
    let mut index = TapIndex::default();
    let unloaded = if args.unloaded_orders > 0 {
        ctx.say(&format!("unloaded: {} orders one at a time", args.unloaded_orders));
        let u = load::unloaded(&ctx, &mut index, args.unloaded_orders).await?;
        ctx.say(&format!(
            "unloaded: e2e p50 {:.1} ms p99 {:.1} ms (intake p50 {:.1} ms)",
            u.0.e2e.p50, u.0.e2e.p99, u.0.intake.p50
        ));
        Some(u)
    } else {
        None
    };
    // CPU of the idle target: what the processes burn with no orders (polling, timers).
    let idle = if args.idle_seconds > 0.0 {
        let before = CpuSnapshot::take(ctx.procs.as_ref());
        tokio::time::sleep(Duration::from_secs_f64(args.idle_seconds)).await; // a measurement window
        let idle = before.until(&CpuSnapshot::take(ctx.procs.as_ref()));
        ctx.say(&format!(
            "idle CPU over {:.0} s: {}",
            args.idle_seconds,
            idle.cores.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>().join(", ")
        ));
        Some(idle)
    } else {
        None
    };
    let steps = run_steps(args, &ctx, &mut index).await?;
    tap.close();
    let rss = rss.stop().await;
    // The services' own view after the run (handler times, publish/push counters, lag).
    handler_times::save(&ctx.client, &args.report_dir.join("metrics")).await?;

    let report = Report {
        args: args.clone(),
        backend: if ctx.procs.is_some() { "processes" } else { "external" },
        floor,
        unloaded,
        idle,
        steps,
        rss,
        procs: ctx.procs.clone(),
        machine: Machine::read(load_before),
    };
    let text = serde_json::to_string_pretty(&report.json())?;
    std::fs::write(args.report_dir.join("bench.json"), &text)?;
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::write(args.report_dir.join("e2e-latency.svg"), report.chart())?;
    report.write_csv(&args.report_dir.join("orders.csv"))?;
    println!("{}", report.table());
    let logs = if report.procs_known() { ", logs/" } else { "" };
    println!("report: {} (bench.json, e2e-latency.svg, orders.csv, metrics/{logs})", args.report_dir.display());
    Ok(report.clean())
}

/// The load: one step at `--rate`, or with `--find-max` steps of rising rate until one fails.
async fn run_steps(args: &BenchArgs, ctx: &Ctx, index: &mut TapIndex) -> anyhow::Result<Vec<summary::StepResult>> {
    if !args.find_max {
        let plan = Plan { rate: args.rate, warmup_s: args.warmup, duration_s: args.duration, drain_s: args.drain };
        return Ok(vec![load::load(ctx, index, plan).await?]);
    }
    let mut steps = Vec::new();
    let (mut passing, mut failing) = (None, None);
    let mut rate = args.rate;
    // Bounded: the rate grows geometrically up to --max-rate.
    while rate <= args.max_rate {
        let passed = find_max_step(args, ctx, index, rate, &mut steps).await?;
        if !passed {
            failing = Some(rate);
            break;
        }
        passing = Some(rate);
        rate = (rate * args.step_factor).round();
    }
    // Bounded: at most --refine steps, each halving the (geometric) gap.
    if let (Some(mut low), Some(mut high)) = (passing, failing) {
        for _ in 0..args.refine {
            let middle = (low * high).sqrt().round();
            if middle <= low || middle >= high {
                break;
            }
            if find_max_step(args, ctx, index, middle, &mut steps).await? {
                low = middle;
            } else {
                high = middle;
            }
        }
    }
    Ok(steps)
}

/// One `--find-max` step at `rate`, appended to `steps`; whether it passed.
async fn find_max_step(
    args: &BenchArgs,
    ctx: &Ctx,
    index: &mut TapIndex,
    rate: f64,
    steps: &mut Vec<summary::StepResult>,
) -> anyhow::Result<bool> {
    let plan = Plan { rate, warmup_s: args.step_warmup, duration_s: args.step_duration, drain_s: args.drain };
    let step = load::load(ctx, index, plan).await?;
    let passed = step.passes(args.p99_limit_ms);
    ctx.say(&format!(
        "step {rate:.0}/s: e2e p50 {:.1} ms p99 {:.1} ms, lost {}, intake errors {} → {}",
        step.stages.e2e.p50,
        step.stages.e2e.p99,
        step.lost,
        step.intake_errors,
        if passed { "pass" } else { "FAIL" }
    ));
    steps.push(step);
    Ok(passed)
}
