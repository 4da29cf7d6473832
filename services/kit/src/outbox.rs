//! The transactional outbox. A handler writes its state change and the outbox rows in one
//! [`OutboxTx`] (all of a batch's rows in one statement with its last writes, at commit); when that commits, the rows go straight from memory to the relay, which
//! publishes (Kafka) or delivers (push) at once and deletes what went out. A crash between
//! commit and publish leaves the rows in the table, and the relay's fallback scan sends them
//! when the service is back (or, with several instances, from another one) — nothing is lost.
//!
//! Why rows travel in memory: reading them back costs a transaction per round (BEGIN, a
//! locking SELECT, DELETE, COMMIT), which was about half of PostgreSQL's work per order and a
//! round trip of latency on every hop. Now the hot path costs one DELETE per batch of sent
//! rows, written without waiting for its WAL flush (a lost DELETE only means a resend).
//!
//! Delivery is at-least-once (a crash after publishing but before the delete resends), which
//! the consumers' `eventId` dedupe and the push payload's `eventId` absorb.

use crate::db::HeldConnection;
use crate::failpoint;
use crate::metrics::Metrics;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
pub use saga_contract::PushNotification;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments as _, Connection as _, Encode, PgConnection, PgPool, Postgres, Transaction, Type};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most rows taken per fallback round.
const BATCH: i64 = 256;
/// How often the fallback scan looks for rows the hot path did not send: left by a crash, by
/// a failed publish (retried from here) or by another instance.
const FALLBACK_POLL: Duration = Duration::from_millis(500);
/// Rows younger than this belong to the hot path (committed, on their way to the relay), so
/// the fallback leaves them alone; only its very first round, at start-up, takes every row.
const FALLBACK_MIN_AGE_MS: i64 = 2000;
/// How long sent ids are gathered into one DELETE (off the latency path). At a steady trickle
/// every window costs a statement, so a longer one saves PostgreSQL work (at 100 orders/s,
/// 20 ms meant ~160 deletes a second over the five relays); the price is that a crash resends
/// up to this much more, which consumers drop by eventId.
const DELETE_GATHER: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kafka,
    Push,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Kafka => "kafka",
            Kind::Push => "push",
        }
    }

    /// The seeded fault that keeps this kind's rows out of the table (self-test only): the
    /// window between commit and publish, or between publish and push.
    fn memory_only_fault(self) -> &'static str {
        match self {
            Kind::Kafka => "kit::publish-from-memory",
            Kind::Push => "kit::push-from-memory",
        }
    }
}

struct Row {
    id: i64,
    topic: String,
    msg_key: String,
    payload: Vec<u8>,
}

// By hand: `#[derive(sqlx::FromRow)]` needs sqlx's macros, which the workspace does without (see
// `db::Migration`).
impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Row {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Row {
            id: row.try_get("id")?,
            topic: row.try_get("topic")?,
            msg_key: row.try_get("msg_key")?,
            payload: row.try_get("payload")?,
        })
    }
}

/// A handler's transaction. Its queued events and pushes are written to the outbox at commit,
/// in one statement with the handler's last writes, and then handed to the relay.
///
/// At a light load an order's latency is mostly round trips to PostgreSQL (each one wakes the
/// server and the service), so the transaction spends as few as it can:
/// - it begins at the first [`OutboxTx::conn`], not before: work that only writes never sends
///   `BEGIN` and commits in the one statement that writes it (the intake: the orders, their
///   lines and their outbox rows, one round trip);
/// - [`OutboxTx::write_at_commit`] leaves the handler's last writes to the commit, which runs
///   them with the outbox rows as one statement (data-modifying CTEs), then `COMMIT`.
pub struct OutboxTx<'c> {
    conn: Conn<'c>,
    last_writes: Option<(&'static str, Binds)>,
    queued: Vec<(Kind, Row)>,
    relay: RelayHandle,
}

enum Conn<'c> {
    /// Nothing sent yet.
    Idle(&'c mut PgConnection),
    Begun(Transaction<'c, Postgres>),
    /// `BEGIN` failed (its error went to the caller); the transaction cannot be used.
    Broken,
}

/// Arguments for [`OutboxTx::write_at_commit`], bound in order as `$1`, `$2`, …
#[derive(Default)]
pub struct Binds {
    args: PgArguments,
    /// The first value that failed to encode; reported by the commit, as sqlx reports a
    /// `.bind()` that failed when its query runs.
    error: Option<BoxDynError>,
}

impl Binds {
    pub fn bind<'q, T: Encode<'q, Postgres> + Type<Postgres>>(mut self, value: T) -> Binds {
        if self.error.is_none()
            && let Err(error) = self.args.add(value)
        {
            self.error = Some(error);
        }
        self
    }
}

impl OutboxTx<'_> {
    /// The connection for the handler's own statements, inside the transaction (begun here
    /// on first use).
    pub async fn conn(&mut self) -> sqlx::Result<&mut PgConnection> {
        if let Conn::Idle(_) = self.conn {
            let Conn::Idle(conn) = std::mem::replace(&mut self.conn, Conn::Broken) else { unreachable!() };
            self.conn = Conn::Begun(conn.begin().await?);
        }
        match &mut self.conn {
            Conn::Begun(tx) => Ok(&mut **tx),
            _ => Err(not_begun()),
        }
    }

    /// Leaves the handler's last writes to the commit, which runs them in one statement with
    /// the outbox rows. `ctes` is a comma-separated list of data-modifying CTEs (`new_stock AS
    /// (UPDATE …), new_lines AS (INSERT …)`) whose parameters `$1…$n` are `binds`; nothing
    /// may read what they write (they run after every other statement of the transaction, and
    /// the CTEs of one statement do not see each other's changes). Once per transaction.
    pub fn write_at_commit(&mut self, ctes: &'static str, binds: Binds) {
        assert!(self.last_writes.is_none(), "write_at_commit is called once per transaction");
        self.last_writes = Some((ctes, binds));
    }

    /// Queues a framed Kafka record.
    pub fn event(&mut self, topic: &str, key: &str, payload: Vec<u8>) {
        self.queue(Kind::Kafka, topic, key, payload);
    }

    /// Queues a push notification.
    pub fn push(&mut self, push: &PushNotification) {
        let payload = serde_json::to_vec(push).expect("a notification serialises");
        self.queue(Kind::Push, "push", &push.order_id, payload);
    }

    /// Rows get their ids when they are written, at commit; 0 until then.
    fn queue(&mut self, kind: Kind, topic: &str, key: &str, payload: Vec<u8>) {
        self.queued.push((kind, Row { id: 0, topic: topic.to_string(), msg_key: key.to_string(), payload }));
    }

    /// Writes the last writes and the outbox rows, commits, then hands the rows to the relay.
    pub async fn commit(self) -> sqlx::Result<()> {
        let OutboxTx { conn, last_writes, mut queued, relay } = self;
        match conn {
            // Nothing begun: the statement is the whole transaction.
            Conn::Idle(conn) => write(conn, last_writes, &mut queued).await?,
            Conn::Begun(mut tx) => {
                write(&mut tx, last_writes, &mut queued).await?;
                tx.commit().await?;
            }
            Conn::Broken => return Err(not_begun()),
        }
        for kind in [Kind::Kafka, Kind::Push] {
            if let Some(pause) = failpoint::delay(kind.memory_only_fault()) {
                // Seeded fault: sent later from memory only (say, batched); a crash meanwhile
                // loses what was committed.
                let (later, now): (Vec<_>, Vec<_>) = queued.into_iter().partition(|(k, _)| *k == kind);
                queued = now;
                let relay = relay.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(pause).await;
                    relay.hand_over(later);
                });
            }
        }
        relay.hand_over(queued);
        Ok(())
    }
}

fn not_begun() -> sqlx::Error {
    sqlx::Error::Protocol("the transaction failed to begin; start a new one".into())
}

/// Writes `last_writes` and the `queued` rows in one statement, the rows in queue order. Ids
/// come from a sequence the insert draws in that order, so sorted they match the rows.
async fn write(
    conn: &mut PgConnection,
    last_writes: Option<(&'static str, Binds)>,
    queued: &mut [(Kind, Row)],
) -> sqlx::Result<()> {
    // Seeded faults: a kind's rows never reach the table (ids no row has), so nothing but
    // this process's memory remembers them.
    static MEMORY_IDS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(-1);
    let mut stored: Vec<&mut Row> = Vec::with_capacity(queued.len());
    let mut kinds: Vec<&'static str> = Vec::with_capacity(queued.len());
    for (kind, row) in queued.iter_mut() {
        if failpoint::active(kind.memory_only_fault()) {
            row.id = MEMORY_IDS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            kinds.push(kind.as_str());
            stored.push(row);
        }
    }
    let (ctes, binds) = match last_writes {
        Some((ctes, binds)) => (Some(ctes), binds),
        None if stored.is_empty() => return Ok(()),
        None => (None, Binds::default()),
    };
    if let Some(error) = binds.error {
        return Err(sqlx::Error::Encode(error));
    }
    let mut args = binds.args;
    let n = args.len();
    let rows = format!(
        "INSERT INTO outbox (kind, topic, msg_key, payload) \
         SELECT kind, topic, msg_key, payload FROM unnest(${}::text[], ${}::text[], ${}::text[], ${}::bytea[]) \
         WITH ORDINALITY AS r(kind, topic, msg_key, payload, ord) ORDER BY ord RETURNING id",
        n + 1,
        n + 2,
        n + 3,
        n + 4
    );
    let statement = match ctes {
        Some(ctes) => format!("WITH {ctes}, outbox_rows AS ({rows}) SELECT id FROM outbox_rows"),
        None => rows,
    };
    let encoded = args
        .add(&kinds)
        .and_then(|()| args.add(stored.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>()))
        .and_then(|()| args.add(stored.iter().map(|r| r.msg_key.as_str()).collect::<Vec<_>>()))
        .and_then(|()| args.add(stored.iter().map(|r| r.payload.as_slice()).collect::<Vec<_>>()));
    encoded.map_err(sqlx::Error::Encode)?;
    let mut ids: Vec<i64> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(statement), args).fetch_all(conn).await?;
    ids.sort_unstable();
    for (row, id) in stored.into_iter().zip(ids) {
        row.id = id;
    }
    Ok(())
}

/// The way into the relays; cheap to clone.
#[derive(Clone)]
pub struct RelayHandle {
    kafka: mpsc::UnboundedSender<Vec<Row>>,
    /// `None` without a push gateway: push rows then stay in the table.
    push: Option<mpsc::UnboundedSender<Vec<Row>>>,
}

impl RelayHandle {
    /// A transaction on `held`'s connection whose rows reach this relay on commit (nothing is
    /// sent to the database until it is used, see [`OutboxTx`]).
    pub async fn begin<'c>(&self, held: &'c mut HeldConnection) -> sqlx::Result<OutboxTx<'c>> {
        let conn = Conn::Idle(held.connection().await?);
        Ok(OutboxTx { conn, last_writes: None, queued: Vec::new(), relay: self.clone() })
    }

    fn hand_over(&self, queued: Vec<(Kind, Row)>) {
        let (kafka, push): (Vec<_>, Vec<_>) = queued.into_iter().partition(|(kind, _)| *kind == Kind::Kafka);
        // A closed channel means the relay stopped (shutdown): the rows wait in the table.
        if !kafka.is_empty() {
            let _ = self.kafka.send(kafka.into_iter().map(|(_, row)| row).collect());
        }
        if let (Some(channel), false) = (&self.push, push.is_empty()) {
            let _ = channel.send(push.into_iter().map(|(_, row)| row).collect());
        }
    }
}

/// Starts the Kafka relay and (when a gateway is configured) the push relay. Each first sends
/// whatever a previous run committed but did not send. `relay_pool` should be a small pool of
/// its own with `synchronous_commit=off` (see [`crate::db::connect_relay_pool`]).
pub fn start_relays(
    relay_pool: PgPool,
    producer: FutureProducer,
    push_gateway: Option<String>,
    metrics: Metrics,
    shutdown: crate::Shutdown,
) -> RelayHandle {
    let (kafka_tx, kafka_rx) = mpsc::unbounded_channel();
    let kafka = KafkaSink { producer, metrics: metrics.clone() };
    tokio::spawn(Relay::new(Kind::Kafka, relay_pool.clone(), kafka).run(kafka_rx, shutdown.clone()));
    let push = match push_gateway {
        Some(url) => {
            let (push_tx, push_rx) = mpsc::unbounded_channel();
            let sink = GatewaySink {
                client: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client"),
                url,
                metrics,
            };
            tokio::spawn(Relay::new(Kind::Push, relay_pool, sink).run(push_rx, shutdown));
            Some(push_tx)
        }
        None => {
            tracing::warn!("PUSH_GATEWAY_URL is not set: push notifications stay queued in the outbox");
            None
        }
    };
    RelayHandle { kafka: kafka_tx, push }
}

/// Where a relay sends rows. `start` begins sending synchronously (so records enqueued in
/// commit order keep that order per partition) and returns a future of the ids that went out.
trait Sink: Send + Sync + 'static {
    fn start(&self, rows: &[Row]) -> impl Future<Output = Vec<i64>> + Send + 'static;
}

struct Relay<S> {
    kind: Kind,
    pool: PgPool,
    sink: Arc<S>,
    /// Ids handed over by the hot path and not yet deleted; the fallback scan skips them.
    in_flight: Arc<Mutex<HashSet<i64>>>,
}

impl<S: Sink> Relay<S> {
    fn new(kind: Kind, pool: PgPool, sink: S) -> Relay<S> {
        Relay { kind, pool, sink: Arc::new(sink), in_flight: Arc::default() }
    }

    async fn run(self, mut hot: mpsc::UnboundedReceiver<Vec<Row>>, shutdown: crate::Shutdown) {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        tokio::spawn(delete_sent(self.kind, self.pool.clone(), self.in_flight.clone(), done_rx));
        let mut min_age_ms = 0; // the first round takes everything a previous run left
        let mut fallback = tokio::time::interval(FALLBACK_POLL);
        fallback.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = shutdown.clone();
        loop {
            tokio::select! {
                Some(rows) = hot.recv() => self.send_hot(rows, &mut hot, &done_tx),
                _ = fallback.tick() => {
                    // Rows already handed over are the hot path's: claim them before scanning.
                    self.send_hot(Vec::new(), &mut hot, &done_tx);
                    if let Err(error) = self.fallback_round(min_age_ms).await {
                        tracing::error!(kind = self.kind.as_str(), %error, "outbox fallback round failed; retrying");
                    }
                    min_age_ms = FALLBACK_MIN_AGE_MS;
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Starts sending `rows` and everything else already handed over; the outcome goes to
    /// [`delete_sent`].
    fn send_hot(
        &self,
        mut rows: Vec<Row>,
        hot: &mut mpsc::UnboundedReceiver<Vec<Row>>,
        done: &mpsc::UnboundedSender<(Vec<i64>, Vec<i64>)>,
    ) {
        while let Ok(more) = hot.try_recv() {
            rows.extend(more);
        }
        if rows.is_empty() {
            return;
        }
        let all: Vec<i64> = rows.iter().map(|r| r.id).collect();
        self.in_flight.lock().expect("in-flight set").extend(all.iter().copied());
        let sending = self.sink.start(&rows);
        let done = done.clone();
        tokio::spawn(async move {
            let sent = sending.await;
            let _ = done.send((sent, all));
        });
    }

    /// Sends, under row locks (SKIP LOCKED lets several instances share the table), rows no
    /// one is sending: at least `min_age_ms` old and not in flight here.
    async fn fallback_round(&self, min_age_ms: i64) -> sqlx::Result<()> {
        loop {
            let mut tx = self.pool.begin().await?;
            let in_flight: Vec<i64> = self.in_flight.lock().expect("in-flight set").iter().copied().collect();
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, topic, msg_key, payload FROM outbox WHERE kind = $1 AND created_at <= now() - make_interval(secs => $3::float8 / 1000) \
                 AND NOT (id = ANY($4)) ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(self.kind.as_str())
            .bind(BATCH)
            .bind(min_age_ms as f64)
            .bind(&in_flight)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let sent = self.sink.start(&rows).await;
            if !sent.is_empty() {
                sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&sent).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            if sent.len() == rows.len() {
                tracing::info!(
                    kind = self.kind.as_str(),
                    rows = rows.len(),
                    "outbox fallback sent rows the hot path had not"
                );
            } else {
                tracing::warn!(
                    kind = self.kind.as_str(),
                    taken = rows.len(),
                    sent = sent.len(),
                    "outbox fallback could not send every row; retrying next round"
                );
            }
            if sent.len() < rows.len() || (rows.len() as i64) < BATCH {
                return Ok(()); // failures wait for the next round; a short batch means no more
            }
        }
    }
}

/// Deletes what the hot path sent, many ids per statement, and only then forgets them as in
/// flight (so the fallback never resends a row that went out). Ids that failed to send are
/// forgotten at once: the fallback retries them.
async fn delete_sent(
    kind: Kind,
    pool: PgPool,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    mut done: mpsc::UnboundedReceiver<(Vec<i64>, Vec<i64>)>,
) {
    while let Some((mut sent, mut all)) = done.recv().await {
        let gather = tokio::time::sleep(DELETE_GATHER);
        tokio::pin!(gather);
        loop {
            tokio::select! {
                more = done.recv() => match more {
                    Some((s, a)) => { sent.extend(s); all.extend(a); }
                    None => break,
                },
                _ = &mut gather => break,
            }
        }
        let failed: HashSet<i64> = {
            let sent: HashSet<i64> = sent.iter().copied().collect();
            all.iter().copied().filter(|id| !sent.contains(id)).collect()
        };
        if !failed.is_empty() {
            tracing::warn!(
                kind = kind.as_str(),
                rows = failed.len(),
                "outbox rows not sent; the fallback scan retries them"
            );
            in_flight.lock().expect("in-flight set").retain(|id| !failed.contains(id));
        }
        if let Err(error) = sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&sent).execute(&pool).await {
            // Left in the table and forgotten here, the rows are resent by the fallback —
            // duplicates the consumers drop by eventId, never a loss.
            tracing::error!(kind = kind.as_str(), %error, rows = sent.len(), "deleting sent outbox rows failed");
        }
        let sent: HashSet<i64> = sent.into_iter().collect();
        in_flight.lock().expect("in-flight set").retain(|id| !sent.contains(id));
    }
}

#[derive(Clone)]
struct KafkaSink {
    producer: FutureProducer,
    metrics: Metrics,
}

impl Sink for KafkaSink {
    /// Enqueues every record now, in order (the idempotent producer keeps per-partition order),
    /// and resolves to the ids the broker acknowledged.
    fn start(&self, rows: &[Row]) -> impl Future<Output = Vec<i64>> + Send + 'static {
        let deliveries: Vec<_> = rows
            .iter()
            .map(|row| {
                let record = FutureRecord::to(&row.topic).key(&row.msg_key).payload(&row.payload).headers(
                    OwnedHeaders::new()
                        .insert(Header { key: "content-type", value: Some("application/vnd.confluent.avro") }),
                );
                let delivery = self.producer.send_result(record).map_err(|(error, _)| error);
                (row.id, row.topic.clone(), row.msg_key.clone(), delivery)
            })
            .collect();
        let metrics = self.metrics.clone();
        async move {
            let outcomes = deliveries.into_iter().map(|(id, topic, key, delivery)| {
                let metrics = metrics.clone();
                async move {
                    let result = match delivery {
                        Ok(future) => match future.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((error, _))) => Err(error.to_string()),
                            Err(_) => Err("producer dropped the delivery".to_string()),
                        },
                        Err(error) => Err(error.to_string()),
                    };
                    metrics.published(&topic, result.is_ok());
                    match result {
                        Ok(()) => Some(id),
                        Err(error) => {
                            tracing::warn!(%topic, %key, %error, "publish failed");
                            None
                        }
                    }
                }
            });
            join_all(outcomes).await.into_iter().flatten().collect()
        }
    }
}

#[derive(Clone)]
struct GatewaySink {
    client: reqwest::Client,
    url: String,
    metrics: Metrics,
}

impl Sink for GatewaySink {
    /// POSTs each notification; a 2xx or a 4xx (the gateway refuses it for good) counts as
    /// done, anything else leaves the row for a retry.
    fn start(&self, rows: &[Row]) -> impl Future<Output = Vec<i64>> + Send + 'static {
        let posts: Vec<_> = rows
            .iter()
            .map(|row| {
                let sink = self.clone();
                let (id, order_id) = (row.id, row.msg_key.clone());
                let request = self.client.post(&self.url).header("content-type", "application/json").body(row.payload.clone()).send();
                async move {
                    match request.await {
                        Ok(r) if r.status().is_success() => {
                            sink.metrics.pushed(true);
                            Some(id)
                        }
                        Ok(r) if r.status().is_client_error() => {
                            sink.metrics.pushed(false);
                            tracing::error!(status = %r.status(), %order_id, "push gateway refused the notification; dropping it");
                            Some(id)
                        }
                        Ok(r) => {
                            sink.metrics.pushed(false);
                            tracing::warn!(status = %r.status(), "push gateway failed; will retry");
                            forgotten(id)
                        }
                        Err(error) => {
                            sink.metrics.pushed(false);
                            tracing::warn!(%error, url = %sink.url, "push gateway unreachable; will retry");
                            forgotten(id)
                        }
                    }
                }
            })
            .collect();
        async move { join_all(posts).await.into_iter().flatten().collect() }
    }
}

/// `None`: a push that failed stays in the outbox for a retry. Seeded fault (self-test): it is
/// sent once and forgotten, counted as done although the gateway never took it.
fn forgotten(id: i64) -> Option<i64> {
    failpoint::active("kit::push-forgotten-on-error").then_some(id)
}
