//! # schema-registry
//!
//! A small schema registry that speaks the part of Confluent Schema Registry's REST API that
//! Avro serializers and deserializers use, so the saga's services (and any implementation
//! using Confluent's clients) frame records exactly as they would against the real one. No
//! registry can be installed on the project's machines; users can point everything at a real
//! one instead (`SCHEMA_REGISTRY_URL`).
//!
//! Endpoints: register (`POST /subjects/{s}/versions`), look up (`POST /subjects/{s}`),
//! `GET /schemas/ids/{id}` (+ `/versions`), `GET /subjects`, `GET /subjects/{s}/versions`
//! (+ `/{v|latest}` and `/{v}/schema`), `POST /compatibility/subjects/{s}/versions/{v|latest}`,
//! `GET|PUT /config` and `/config/{s}`. Compatibility defaults to BACKWARD and is checked with
//! Avro schema resolution; refusals use Confluent's error codes. AVRO schemas only.
//!
//! Run: `DATABASE_URL=postgres://… HTTP_PORT=8085 schema-registry`.

mod api;
mod store;

use anyhow::Context as _;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    saga_service_kit::telemetry::init("schema-registry");
    let database_url =
        std::env::var("DATABASE_URL").context("schema-registry: environment variable DATABASE_URL is not set")?;
    let port: u16 = match std::env::var("HTTP_PORT") {
        Ok(p) => p.parse().with_context(|| format!("HTTP_PORT={p} is not a port number"))?,
        Err(_) => 8085,
    };
    let pool =
        sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(&database_url).await.with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {}; check DATABASE_URL",
                saga_service_kit::db::redact(&database_url)
            )
        })?;
    MIGRATIONS.run(&pool).await.context("running registry migrations")?;
    let (_tx, shutdown) = saga_service_kit::shutdown_on_signals();
    let router = api::routes(store::Store::new(pool))
        .route("/health", axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "UP"})) }));
    saga_service_kit::http::serve(router, port, shutdown).await
}
