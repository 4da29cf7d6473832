//! Structured logs: JSON lines when `LOG_FORMAT=json`, compact text otherwise; level from
//! `RUST_LOG` (default `info`, with librdkafka's chatter and sqlx statements at `warn`); colours
//! only on a terminal, so log files and collectors get plain text.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(service_name: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(std::io::stdout().is_terminal());
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().flatten_event(true).init();
    } else {
        builder.compact().init();
    }
    tracing::info!(service = service_name, "starting");
}
