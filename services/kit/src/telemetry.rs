//! Structured logs: JSON lines when `LOG_FORMAT=json`, compact text otherwise; level from
//! `RUST_LOG` (default `info`, with librdkafka's chatter and sqlx statements at `warn`); colours
//! only on a terminal, so log files and collectors get plain text.
//!
//! `RUST_LOG` is a `target=level` list (`info,saga_service_kit=debug`), read by
//! tracing-subscriber's `Targets`: the span and field filters of its `EnvFilter` would link a
//! regex engine into every service for a feature nobody here uses (docs/performance.md,
//! "Build time").

use std::io::IsTerminal;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const DEFAULT_FILTER: &str = "info,rdkafka=warn,sqlx=warn";

pub fn init(service_name: &str) {
    let filter = targets_from_env(DEFAULT_FILTER);
    let builder = tracing_subscriber::fmt().with_target(false).with_ansi(std::io::stdout().is_terminal());
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().flatten_event(true).finish().with(filter).init();
    } else {
        builder.compact().finish().with(filter).init();
    }
    tracing::info!(service = service_name, "starting");
}

/// `RUST_LOG` as a `target=level` list, or `default` when it is unset or not such a list (said
/// on stderr: logging is not up yet).
fn targets_from_env(default: &str) -> Targets {
    let default = || default.parse().expect("the default log filter is a target=level list");
    match std::env::var("RUST_LOG") {
        Err(_) => default(),
        Ok(spec) => spec.parse().unwrap_or_else(|error| {
            eprintln!("RUST_LOG={spec:?} is not a target=level list ({error}); logging with the default filter");
            default()
        }),
    }
}
