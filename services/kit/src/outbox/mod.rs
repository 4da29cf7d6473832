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
//!
//! The parts:
//! - [`tx`]: the write side, [`OutboxTx`] — the handler's transaction, its last writes and the
//!   outbox rows in one statement at commit, then the rows handed to the relay;
//! - [`relay`]: the relays ([`start_relays`], [`RelayHandle`]) — the hot path that sends what
//!   was just committed and deletes it once sent;
//! - [`fallback`]: the relay's fallback scan for rows the hot path did not send;
//! - [`sinks`]: where rows go — Kafka (the idempotent producer) and the push gateway;
//! - [`transactions`]: opt-in, Kafka in transactions, some aborted on purpose
//!   (`OUTBOX_KAFKA_TRANSACTIONS`).

mod fallback;
mod relay;
mod sinks;
mod transactions;
mod tx;

pub use relay::{KafkaOut, RelayHandle, start_relays};
pub use saga_contract::PushNotification;
pub use tx::{Binds, OutboxTx};

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

#[derive(Clone)]
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
