//! # saga-service-kit
//!
//! What the three reference services (Order, Product, Payment) share, so each service's crate
//! holds only its own domain logic:
//!
//! - [`config`]: the runtime knobs every implementation reads from env (the contract's list);
//! - [`outbox`]: the transactional outbox — events and push notifications are rows written in
//!   the same transaction as the state change, handed to the relay on commit (with a fallback
//!   scan for what a crash left);
//! - [`claims`]: the dedupe by `eventId`, claimed in the handler's first statement;
//! - [`consumer`]: the idempotent consumer loop — dedupe by `eventId` in the handler's
//!   transaction, offsets stored only after it commits; a failure on a dependency retried
//!   until it heals, a bad record alone on `<topic>.dlt`;
//! - [`kafka`]: producer settings (idempotent, `acks=all`) and topic creation;
//! - [`http`]: RFC 9457 problem responses, `/health`, `/metrics`, serving with graceful shutdown;
//! - [`metrics`]: the seed's monitoring points as Prometheus metrics;
//! - [`failpoint`]: seeded faults for the suite's self-test (feature `failpoints` only);
//! - [`throttle`]: an optional cap on records handled per second, to try the suite on a slow
//!   implementation (`CONSUMER_MAX_RECORDS_PER_SECOND`, unset by default).

pub mod claims;
pub mod config;
pub mod consumer;
pub mod db;
pub mod failpoint;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod outbox;
pub mod service;
pub mod telemetry;
pub mod throttle;

pub use config::ServiceConfig;

/// A shutdown signal shared by every task of a service: flips to `true` once.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;

/// Returns a sender that is set on SIGINT/SIGTERM and the receiver tasks wait on.
pub fn shutdown_on_signals() -> (tokio::sync::watch::Sender<bool>, Shutdown) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutdown requested");
        let _ = signal_tx.send(true);
    });
    (tx, rx)
}

/// Resolves when `shutdown` flips to `true` (or its sender is gone).
pub async fn wait_for_shutdown(mut shutdown: Shutdown) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
