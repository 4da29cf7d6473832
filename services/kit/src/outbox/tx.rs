//! The write side of the outbox: [`OutboxTx`], a handler's transaction, which writes its queued
//! events and pushes as outbox rows in one statement with the handler's last writes, commits,
//! and hands the rows to the relay.

use super::relay::RelayHandle;
use super::{Kind, PushNotification, Row};
use crate::failpoint;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments as _, Connection as _, Encode, PgConnection, Postgres, Transaction, Type};

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
    pub(super) conn: Conn<'c>,
    pub(super) last_writes: Option<(&'static str, Binds)>,
    pub(super) queued: Vec<(Kind, Row)>,
    pub(super) relay: RelayHandle,
}

pub(super) enum Conn<'c> {
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
