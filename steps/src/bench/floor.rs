//! The floor: what one saga step cannot beat on this machine, measured on the idle target
//! before any load — a raw Kafka produce→consume round trip on a scratch topic of the
//! implementation's broker, one HTTP round trip to its Order Service, and (when the bench can
//! reach the database: the reference stack) a raw single-row PostgreSQL commit.
//!
//! `floor_ms = 3 × hop_p50 + 4 × commit_p50` on the reference (three Kafka hops —
//! `order.created`, `stock.reserved`, `order.confirmed` — and four committing transactions —
//! intake, reservation, confirmation, payment). Against an external implementation, whose
//! database the bench cannot see, `floor_ms = 3 × hop_p50 + http_p50` (the hops, and the
//! request and push that frame an order).

use super::stats::{Measured, Pct};
use crate::Service;
use crate::client::SagaClient;
use crate::kafka;
use anyhow::Context as _;
use rdkafka::Message as _;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer as _;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::Connection as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Round trips made before measuring, so connections, metadata and caches are warm.
const WARMUP: usize = 20;
/// How long one floor round trip may take before the measurement fails.
const ROUND_TRIP_DEADLINE: Duration = Duration::from_secs(15);

pub(super) struct Floor {
    /// Produce → consume of one record, sequential round trips.
    pub hop: Pct,
    /// Produce → broker acknowledgement (`acks=all`) of the same records.
    pub ack: Pct,
    /// `GET <order_url>/health`, sequential, on one kept-alive connection.
    pub http: Pct,
    /// `None` when the bench cannot reach the implementation's database (external).
    pub postgres: Option<PgFloor>,
    round_trips: usize,
}

pub(super) struct PgFloor {
    /// `BEGIN; INSERT one row; COMMIT` with `synchronous_commit = on`.
    pub commit: Pct,
    /// `SELECT 1`: one PostgreSQL round trip, for scale.
    pub select: Pct,
    /// `fsync`, `synchronous_commit`, `wal_sync_method` as the server reports them.
    pub settings: BTreeMap<String, String>,
}

/// `floor` in `bench.json`.
#[derive(Serialize)]
pub(super) struct FloorJson<'a> {
    formula: &'static str,
    round_trips: usize,
    kafka_hop_ms: &'a Pct,
    kafka_produce_ack_ms: &'a Pct,
    http_round_trip_ms: &'a Pct,
    pg_commit_ms: Measured<&'a Pct>,
    pg_select1_ms: Measured<&'a Pct>,
    postgres: Measured<&'a BTreeMap<String, String>>,
}

impl Floor {
    pub fn floor_ms(&self) -> f64 {
        match &self.postgres {
            Some(pg) => 3.0 * self.hop.p50 + 4.0 * pg.commit.p50,
            None => 3.0 * self.hop.p50 + self.http.p50,
        }
    }

    fn formula(&self) -> &'static str {
        match self.postgres {
            Some(_) => "3 × kafka_hop_p50 + 4 × pg_commit_p50",
            None => "3 × kafka_hop_p50 + http_round_trip_p50",
        }
    }

    /// The formula with this run's figures, e.g. `3×1.20 + 4×2.10 = 12.0 ms`.
    pub fn worked(&self) -> String {
        match &self.postgres {
            Some(pg) => format!("3×{:.2} + 4×{:.2} = {:.1} ms", self.hop.p50, pg.commit.p50, self.floor_ms()),
            None => format!("3×{:.2} + {:.2} (HTTP) = {:.1} ms", self.hop.p50, self.http.p50, self.floor_ms()),
        }
    }

    /// Measures on the idle target; `database_url` is `None` for an external implementation.
    pub async fn measure(
        bootstrap: &str,
        client: &SagaClient,
        database_url: Option<&str>,
        round_trips: usize,
    ) -> anyhow::Result<Floor> {
        let (hop, ack) = kafka_round_trips(bootstrap, round_trips).await.context("measuring the Kafka floor")?;
        let http = http_round_trips(client, round_trips).await.context("measuring the HTTP floor")?;
        let postgres = match database_url {
            Some(url) => Some(pg_commits(url, round_trips).await.context("measuring the PostgreSQL floor")?),
            None => None,
        };
        Ok(Floor { hop, ack, http, postgres, round_trips })
    }

    pub fn json(&self) -> FloorJson<'_> {
        let pg = self.postgres.as_ref();
        FloorJson {
            formula: self.formula(),
            round_trips: self.round_trips,
            kafka_hop_ms: &self.hop,
            kafka_produce_ack_ms: &self.ack,
            http_round_trip_ms: &self.http,
            pg_commit_ms: pg.map(|p| &p.commit).into(),
            pg_select1_ms: pg.map(|p| &p.select).into(),
            postgres: pg.map(|p| &p.settings).into(),
        }
    }
}

/// Sequential produce→consume round trips on a fresh one-partition topic, producer settings as
/// the services' (idempotent, `acks=all`, `linger.ms=0`), consumer `fetch.wait.max.ms=10`. The topic is deleted afterwards.
async fn kafka_round_trips(bootstrap: &str, n: usize) -> anyhow::Result<(Pct, Pct)> {
    let topic = format!("bench.floor.{}", uuid::Uuid::new_v4().simple());
    let admin = kafka::admin(bootstrap)?;
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(20)))
        .request_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))], &options).await? {
        result.map_err(|(t, code)| anyhow::anyhow!("creating {t}: {code}"))?;
    }
    let producer = kafka::round_trip_producer(bootstrap)?;
    let consumer = kafka::assigned_consumer(bootstrap, "bench-floor", kafka::Fetch { wait_ms: 10, min_bytes: 1 })?;
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
                let message = tokio::time::timeout(ROUND_TRIP_DEADLINE, consumer.recv())
                    .await
                    .with_context(|| format!("no record within {ROUND_TRIP_DEADLINE:?}"))??;
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

/// Sequential `GET`s of the Order Service's `/health` (the one endpoint every implementation
/// has that changes nothing).
async fn http_round_trips(client: &SagaClient, n: usize) -> anyhow::Result<Pct> {
    let client = client.with_timeout(ROUND_TRIP_DEADLINE);
    let mut took = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let started = Instant::now();
        client.health(Service::Order).await?;
        if i >= WARMUP {
            took.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(Pct::of(&took))
}

/// Sequential single-row committing transactions on a scratch table in the stack's `order_db`
/// (a regular table: a temporary one is not WAL-logged and would not pay for the commit).
async fn pg_commits(database_url: &str, n: usize) -> anyhow::Result<PgFloor> {
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
    Ok(PgFloor { commit: Pct::of(&commits), select: Pct::of(&selects), settings })
}
