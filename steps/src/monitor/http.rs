//! The monitor's HTTP endpoints: `/` the live page, `/metrics` the Prometheus text, `/health`.

use super::Shared;
use axum::Router;
use axum::http::header;
use axum::response::Html;
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves until `close` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut close: watch::Receiver<bool>) {
    let page = shared.clone();
    let router = Router::new()
        .route(
            "/",
            get(move || {
                let shared = page.clone();
                async move { Html(shared.page()) }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let shared = shared.clone();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render()) }
            }),
        )
        .route("/health", get(|| async { r#"{"status":"UP"}"# }));
    let stopped = async move {
        let _ = close.wait_for(|closed| *closed).await;
    };
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
        tracing::error!(error = %e, "the monitor's HTTP server stopped");
    }
}
