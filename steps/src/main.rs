//! `saga-conformance`: run the conformance suite, or start the reference stack by hand.
//!
//! ```text
//! saga-conformance run   [--config FILE] [--backend processes|external] [--tags EXPR] [--report-dir DIR]
//! saga-conformance stack [--push-port PORT]
//! ```

use clap::{Parser, Subcommand};
use saga_conformance::config::{BackendKind, Config};
use saga_conformance::sink::PushSink;
use saga_conformance::stack::{Stack, StackOptions, cache_dir, default_bin_dir};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "saga-conformance", version, about = "Conformance kit for the order-creation saga")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the features against an implementation and write reports; exits non-zero on any failure.
    Run {
        /// conformance.toml (default: ./conformance.toml if present, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        /// Cucumber tag expression, e.g. "@FLOW or @FAIL", "not @TIME".
        #[arg(long)]
        tags: Option<String>,
        #[arg(long)]
        report_dir: Option<PathBuf>,
    },
    /// Start the reference stack (PostgreSQL, Kafka, registry, the three services and a push
    /// sink) on free loopback ports, print the endpoints, and stop it all on Ctrl-C.
    Stack {
        /// Port for the push sink (default: a free one).
        #[arg(long)]
        push_port: Option<u16>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,rdkafka=off,librdkafka=off".into())).with_writer(std::io::stderr).init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("saga-conformance: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Run { config, backend, tags, report_dir } => {
            let mut config = Config::load(config.as_deref())?;
            if let Some(b) = backend {
                config.backend = b;
            }
            if let Some(dir) = report_dir {
                config.report_dir = dir;
            }
            let summary = saga_conformance::runner::run(config, tags).await?;
            for s in &summary.skipped {
                println!("skipped: {} — {} ({})", s.feature, s.scenario, s.reason);
            }
            println!("{}", summary.closing_line());
            Ok(if summary.failed == 0 && summary.passed > 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
        }
        Command::Stack { push_port } => {
            let sink = PushSink::start(push_port).await?;
            let options = StackOptions {
                bin_dir: default_bin_dir(),
                kafka_libs: cache_dir().join("kafka-libs"),
                log_dir: PathBuf::from("reports/stack-logs"),
                push_gateway_url: sink.url(),
                topics: Config::load(None)?.topic_map(),
            };
            let stack = Stack::start(options).await?;
            let e = &stack.endpoints;
            println!("reference stack is up (Ctrl-C stops it)");
            println!("  order service    {}", e.order_url);
            println!("  product service  {}", e.product_url);
            println!("  payment service  {}", e.payment_url);
            println!("  kafka            {}", e.kafka_bootstrap);
            println!("  schema registry  {}", e.registry_url);
            println!("  push sink        {}", sink.url());
            println!("  logs             {}", stack.log_dir.display());
            println!();
            println!("try:");
            println!("  curl -X PUT {}/api/v1/products/P1 -H 'content-type: application/json' -d '{{\"name\":\"Keyboard\",\"price\":15000,\"stock\":50}}'", e.product_url);
            println!("  curl -X POST {}/api/v1/orders -H 'content-type: application/json' -H 'X-User-Id: U1' -d '{{\"storeId\":\"S1\",\"items\":[{{\"productId\":\"P1\",\"quantity\":2,\"unitPrice\":15000}}]}}'", e.order_url);
            println!("  curl {}/api/v1/orders/<orderId>   and   curl '{}/api/v1/payments?orderId=<orderId>'", e.order_url, e.payment_url);
            let _ = tokio::signal::ctrl_c().await;
            println!("stopping…");
            stack.shutdown().await;
            let pushes = sink.arrivals().len();
            println!("stopped ({pushes} push notification(s) were received)");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
