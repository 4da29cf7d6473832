//! `saga-conformance`: run the conformance suite, or start the reference stack by hand.
//!
//! ```text
//! saga-conformance run   [--config FILE] [--backend processes|containers|external] [--tags EXPR] [--report-dir DIR] [--baseline FILE] [--features-dir DIR]
//! saga-conformance verify RECORD [--badge FILE]
//! saga-conformance badge  RECORD [-o FILE]
//! saga-conformance stack [--push-port PORT]
//! saga-conformance selftest [--fault NAME]… [--backend processes|containers] [--report-dir DIR] [--jobs N]
//! saga-conformance bench [--config FILE] [--rate R] [--duration S] [--warmup S] [--json FILE] [--find-max] [--report-dir DIR]
//! saga-conformance monitor [--config FILE] [--listen ADDR] [--start end|TIME]
//! ```

use clap::{Parser, Subcommand};
use saga_conformance::backend::processes::control::{self, FaultEndpoint};
use saga_conformance::backend::processes::{Stack, StackOptions};
use saga_conformance::config::{BackendKind, Config, Overrides};
use saga_conformance::sink::PushSink;
use std::path::PathBuf;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(name = "saga-conformance", version, about = "Conformance kit for the order-creation saga")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the features against an implementation and write reports. Exit code: 0 conforms
    /// (or a --tags subset passed), 1 does not conform, 2 could not run, 3 incomplete (a
    /// required scenario was skipped for want of a capability).
    Run {
        /// conformance.toml (default: ./conformance.toml if present, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
        /// Cucumber tag expression, e.g. "@FLOW or @FAIL", "not @TIME".
        #[arg(long)]
        tags: Option<String>,
        /// Expected failures (`known.toml`: `[expected_failures]` with `REQ-ID = "reason"`):
        /// reported, but they do not fail the run.
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Check a conformance record (`conformance.json`, written beside every report): recompute
    /// its verdict, check its features against this kit's built-in ones, and say what it is —
    /// "a full, unfiltered run of saga-conformance X against Y: VERDICT" (exit 0) — or why it is
    /// refused: other features, a --tags run, an edit, a missing @must requirement (exit 1).
    Verify {
        record: PathBuf,
        /// Also write the badge of the verified record here.
        #[arg(long)]
        badge: Option<PathBuf>,
    },
    /// Draw the SVG badge of a conformance record ("saga-conformance 0.1.0 | CONFORMS 50/50
    /// must"); only a record `verify` accepts gets one (exit 1 otherwise).
    Badge {
        record: PathBuf,
        /// Where to write the SVG (default: badge.svg beside the record).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Start the reference stack (PostgreSQL, Kafka, registry, the three services and a push
    /// sink) on free loopback ports, print the endpoints, and stop it all on Ctrl-C.
    Stack {
        /// Send pushes to 127.0.0.1:PORT (where `run --backend external` listens) instead of a
        /// sink of the stack's own; also writes reports/stack/external.toml, its fault commands
        /// served by the stack on a loopback port.
        #[arg(long)]
        push_port: Option<u16>,
    },
    /// Benchmark the saga — the reference stack, or an external implementation with
    /// `--config` — open-loop orders at a fixed rate (or --find-max): latency percentiles vs. a
    /// measured floor, loss, duplicates, CPU and RSS where the processes are known; writes
    /// bench.json, orders.csv and an SVG chart (see `bench/mod.rs`).
    Bench(saga_conformance::bench::BenchArgs),
    /// Watch a live system, observe-only: the suite's checkers on its saga topics as records
    /// arrive, Prometheus `/metrics` (violations by requirement, sagas in flight and past their
    /// deadline, stage latencies, the services' consumer lag) and a page of recent violations.
    Monitor(saga_conformance::monitor::MonitorArgs),
    /// The suite tests itself: run the families each seeded fault can touch against the
    /// reference's `*-failpoints` build and require each fault to be caught (kill matrix in
    /// REPORT_DIR/index.html and selftest.json); exits 1 if one is not, or the baseline fails.
    Selftest {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only these faults (repeatable); default: all (on containers: those a backend fault
        /// catches, against the `:failpoints` images of `docker/images.sh build failpoints`).
        #[arg(long = "fault")]
        faults: Vec<String>,
        #[arg(long, value_enum, default_value = "processes")]
        backend: BackendKind,
        #[arg(long, default_value = "reports/selftest")]
        report_dir: PathBuf,
        /// How many runs (the baseline, one per fault) go side by side, each on its own stack.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
        /// One run, started by the self-test itself: this fault (or `baseline`) seeded,
        /// `--tags` run, its row written to REPORT_DIR/NAME/kill.json.
        #[arg(long, hide = true, requires = "tags")]
        run_one: Option<String>,
        #[arg(long, hide = true)]
        tags: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // RUST_LOG is a `target=level` list (tracing-subscriber's `Targets`; its `EnvFilter` would
    // link a regex engine into the services, which share this build); anything else is ignored.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| "warn,rdkafka=off,librdkafka=off".parse().expect("a target=level list"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(filter)
        .init();
    let cli = Cli::parse();
    // `stack` waits for the signal itself and shuts down gracefully; every other command is
    // dropped on it, and with it what it started (processes killed, containers removed), so a
    // CI job cancelled with SIGTERM leaves no stack behind.
    let outcome = if matches!(cli.command, Command::Stack { .. }) {
        run(cli).await
    } else {
        tokio::select! {
            outcome = run(cli) => outcome,
            signal = interrupted() => {
                eprintln!("saga-conformance: {signal}: stopped what it had started");
                return std::process::ExitCode::from(130);
            }
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("saga-conformance: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Run { config, overrides, tags, baseline } => {
            let mut config = Config::load_with(config.as_deref(), &overrides)?;
            if baseline.is_some() {
                config.baseline = baseline;
            }
            let summary = saga_conformance::runner::run(config, tags).await?;
            let judgement = &summary.judgement;
            for s in &summary.skipped {
                println!("skipped: {} — {} ({})", s.feature, s.scenario, s.reason);
            }
            for k in &judgement.known_failures {
                println!("known failure (baseline): {} — {} ({})", k.requirement, k.scenario, k.reason);
            }
            for id in &judgement.fixed_known_failures {
                println!("baseline: {id} passes now — remove it from the baseline");
            }
            for id in &judgement.unmatched_baseline {
                println!("baseline: {id} names no scenario of this run");
            }
            println!("report: {}", summary.report_dir.join("index.html").display());
            println!(
                "record: {} (check it: saga-conformance verify {0})",
                summary.report_dir.join(saga_conformance::record::FILE_NAME).display()
            );
            println!("{}", judgement.closing_line());
            Ok(std::process::ExitCode::from(judgement.verdict.exit_code()))
        }
        Command::Verify { record, badge } => Ok(verify_record(&record, badge.as_deref())?),
        Command::Badge { record, output } => {
            let output = output.unwrap_or_else(|| record.with_file_name("badge.svg"));
            Ok(verify_record(&record, Some(&output))?)
        }
        Command::Selftest { config: config_path, faults, backend, report_dir, jobs, run_one, tags } => {
            anyhow::ensure!(
                backend != BackendKind::External,
                "the self-test seeds faults into the reference's own build: use --backend processes or containers"
            );
            let mut config = Config::load(config_path.as_deref())?;
            config.backend = backend;
            if let Some(name) = run_one {
                let tags = tags.unwrap_or_default();
                saga_conformance::selftest::run_child(config, &name, &tags, &report_dir).await?;
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let faults = saga_conformance::selftest::select(&faults, backend)?;
            let launcher = saga_conformance::selftest::jobs::Launcher {
                exe: saga_conformance::selftest::jobs::this_binary()?,
                backend,
                config: config_path,
            };
            let result = saga_conformance::selftest::run(&faults, &report_dir, &launcher, jobs.into()).await?;
            print!("{}", saga_conformance::selftest::matrix(&result));
            println!("{}", result.closing_line());
            Ok(if result.ok() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
        }
        Command::Bench(args) => Ok(if saga_conformance::bench::run(args).await? {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }),
        Command::Monitor(args) => {
            saga_conformance::monitor::run(args).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Stack { push_port } => {
            // With --push-port the services push to that port, where a suite run with
            // `--backend external` will listen; otherwise the stack brings its own sink.
            let sink = match push_port {
                Some(_) => None,
                None => Some(PushSink::start(None).await?),
            };
            let push_url = match (&sink, push_port) {
                (Some(sink), _) => sink.url(),
                (None, port) => format!("http://127.0.0.1:{}/push", port.unwrap_or_default()),
            };
            let config = Config::load(None)?;
            let mut options =
                StackOptions::reference(PathBuf::from("reports/stack/logs"), &push_url, config.topic_map());
            options.scale = config.scale()?;
            let stack = Stack::start(options).await?;
            let e = &stack.endpoints;
            println!("reference stack is up (Ctrl-C stops it)");
            println!("  order service    {}", e.order_url);
            println!("  product service  {}", e.product_url);
            println!("  payment service  {}", e.payment_url);
            println!("  kafka            {}", e.kafka_bootstrap);
            println!("  schema registry  {}", e.registry_url);
            println!("  push gateway     {push_url}");
            println!("  logs             {}", stack.log_dir.display());
            println!();
            println!("try:");
            println!(
                "  curl -X PUT {}/api/v1/products/P1 -H 'content-type: application/json' -d '{{\"name\":\"Keyboard\",\"price\":15000,\"stock\":50}}'",
                e.product_url
            );
            println!(
                "  curl -X POST {}/api/v1/orders -H 'content-type: application/json' -H 'X-User-Id: U1' -d '{{\"storeId\":\"S1\",\"items\":[{{\"productId\":\"P1\",\"quantity\":2,\"unitPrice\":15000}}]}}'",
                e.order_url
            );
            println!(
                "  curl {}/api/v1/orders/<orderId>   and   curl '{}/api/v1/payments?orderId=<orderId>'",
                e.order_url, e.payment_url
            );
            let mut faults = None;
            if let Some(port) = push_port {
                let endpoint = FaultEndpoint::serve().await?;
                let external = PathBuf::from("reports/stack/external.toml");
                std::fs::write(&external, external_config(&stack, port, endpoint.port()))?;
                faults = Some(endpoint);
                println!();
                println!(
                    "check it as an external implementation: saga-conformance run --config {}",
                    external.display()
                );
            }
            // Fault commands are carried out here, in the task that owns the stack, until a signal.
            let commands = async {
                if let Some(faults) = faults {
                    faults.apply(&stack).await;
                }
                std::future::pending::<()>().await
            };
            let signal = tokio::select! {
                signal = interrupted() => signal,
                () = commands => "fault endpoint closed",
            };
            println!("{signal}: stopping…");
            stack.shutdown().await;
            let pushes = sink.map(|s| s.arrivals().len()).unwrap_or_default();
            println!("stopped ({pushes} push notification(s) received by the stack's own sink)");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// `verify` (and `badge`): prints what the record is, or why it is refused; writes the badge of
/// a verified record to `badge`.
fn verify_record(path: &std::path::Path, badge: Option<&std::path::Path>) -> anyhow::Result<std::process::ExitCode> {
    use saga_conformance::record::{Record, badge, verify};
    let record = Record::load(path)?;
    match verify::verify(&record) {
        Ok(verified) => {
            for note in &verified.notes {
                println!("note: {note}");
            }
            println!("{}", verified.statement);
            if let Some(out) = badge {
                std::fs::write(out, badge::render(&record, &verified))
                    .map_err(|e| anyhow::anyhow!("writing the badge {}: {e}", out.display()))?;
                println!("badge: {}", out.display());
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(reasons) => {
            println!(
                "{} is refused: it is not a full, unfiltered run of this kit's features as recorded",
                path.display()
            );
            for reason in &reasons {
                println!("  - {reason}");
            }
            if badge.is_some() {
                println!("no badge: only a record that verify accepts gets one");
            }
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, naming which.
async fn interrupted() -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => term.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate => "SIGTERM",
    }
}

/// A conformance.toml that checks this stack as an external implementation, its faults through
/// the stack's fault endpoint on `control_port`.
fn external_config(stack: &Stack, push_port: u16, control_port: u16) -> String {
    let e = &stack.endpoints;
    format!(
        "# Written by `saga-conformance stack --push-port {push_port}`.\nbackend = \"external\"\nreport_dir = \"reports/external\"\n\n[implementation]\nname = \"{}\"\nversion = \"{}\"\n\n[external]\norder_url = \"{}\"\nproduct_url = \"{}\"\npayment_url = \"{}\"\nkafka_bootstrap = \"{}\"\nregistry_url = \"{}\"\npush_sink_port = {push_port}\ndead_letter_topics = true\n\n[external.commands]   # the stack's fault endpoint (steps/src/backend/processes/control.rs)\n{}\n[external.consumer_groups]\n{}",
        saga_conformance::config::sections::REFERENCE_NAME,
        env!("CARGO_PKG_VERSION"),
        e.order_url,
        e.product_url,
        e.payment_url,
        e.kafka_bootstrap,
        e.registry_url,
        control::commands_toml(control_port),
        saga_conformance::types::reference_consumer_groups()
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .map(|(service, groups)| format!("{} = {groups:?}\n", service.binary().trim_end_matches("-service")))
            .collect::<Vec<_>>()
            .concat()
    )
}
