//! What a service's handler is to the consumer loop: the records it is given ([`Incoming`]),
//! what it answers per record ([`Outcome`]) and why it may fail ([`HandleError`]: poison, which
//! the loop splits out and dead-letters, or transient, which it retries).

use crate::outbox::OutboxTx;
use futures::future::BoxFuture;
use saga_contract::{Decoded, FramingError, SagaTopic};
use std::sync::Arc;

/// What a handler did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect was applied (and its events/pushes queued in the same transaction).
    Processed,
    /// The `eventId` was seen before: nothing changed, nothing published.
    Duplicate,
}

/// Why a record could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The record itself is wrong (undecodable, not the contract's shape); retrying won't help.
    #[error("{0}")]
    Poison(String),
    /// Something we depend on failed (database, registry); worth retrying.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

impl From<sqlx::Error> for HandleError {
    /// The database refusing the record's data (SQLSTATE class 22 data exception, 23 integrity
    /// violation) is the record's fault and will not change; anything else (connection lost,
    /// pool exhausted, server shutting down, serialization failure) may heal.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")) => {
                HandleError::Poison(format!("the database refused the record's data: {e}"))
            }
            _ => HandleError::Transient(e.into()),
        }
    }
}

impl From<FramingError> for HandleError {
    fn from(e: FramingError) -> Self {
        if e.is_transient() { HandleError::Transient(e.into()) } else { HandleError::Poison(e.to_string()) }
    }
}

/// A record handed to a [`Handler`]: its topic and its value, already checked to be that
/// topic's record.
pub struct Incoming {
    pub topic: SagaTopic,
    pub record: Decoded,
}

/// A service's reaction to the saga topics it subscribes to.
pub trait Handler: Send + Sync + 'static {
    /// Handles records of one partition, in offset order, in `tx`: all of them (one outcome
    /// per record, in the batch's order) or none (an error). The loop begins `tx` on the
    /// worker's own connection and commits it when this returns `Ok`. A poisoned batch is
    /// split by the loop so the poison goes to the dead letters alone; a transient failure is
    /// retried.
    fn handle(
        &self,
        tx: &mut OutboxTx<'_>,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<Outcome>, HandleError>> + Send;
}

/// A [`Handler`] behind a pointer, so the consumer loop (workers, retries, dead letters,
/// membership) is one piece of code in this crate rather than a copy in every service binary,
/// compiled again for each handler type (see [`crate::service`]). The price is one boxed
/// future per batch, next to a database transaction.
pub(crate) type SharedHandler = Arc<dyn DynHandler>;

/// [`Handler`] in a form that can sit behind `dyn`: its future boxed.
pub(crate) trait DynHandler: Send + Sync + 'static {
    fn handle_boxed<'a>(
        &'a self,
        tx: &'a mut OutboxTx<'_>,
        batch: &'a [Incoming],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, HandleError>>;
}

impl<H: Handler> DynHandler for H {
    fn handle_boxed<'a>(
        &'a self,
        tx: &'a mut OutboxTx<'_>,
        batch: &'a [Incoming],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, HandleError>> {
        Box::pin(self.handle(tx, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A database error with a given SQLSTATE, as PostgreSQL would send it.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn is_poison(error: HandleError) -> bool {
        matches!(error, HandleError::Poison(_))
    }

    #[test]
    fn bad_data_is_poison_and_an_unavailable_database_is_transient() {
        for poison in ["22003", "22P02", "23505", "23503"] {
            assert!(
                is_poison(sqlx::Error::Database(Box::new(Sqlstate(poison))).into()),
                "SQLSTATE {poison} should be poison"
            );
        }
        for transient in ["08006", "57P01", "40001", "40P01", "53300"] {
            assert!(
                !is_poison(sqlx::Error::Database(Box::new(Sqlstate(transient))).into()),
                "SQLSTATE {transient} should be transient"
            );
        }
        assert!(!is_poison(sqlx::Error::PoolTimedOut.into()));
        assert!(!is_poison(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)).into()));
    }

    #[test]
    fn framing_errors_keep_their_classification() {
        assert!(is_poison(FramingError::NotFramed("3 bytes".into()).into()));
        assert!(is_poison(FramingError::UnknownSchema { id: 9, url: "http://registry".into() }.into()));
        assert!(is_poison(FramingError::WrongRecord { expected: "a", found: "b".into() }.into()));
        let unreachable =
            schema_registry_converter::error::SRCError::new("http call to schema registry failed", None, true);
        assert!(!is_poison(FramingError::Registry { url: "http://registry".into(), source: unreachable }.into()));
    }
}
