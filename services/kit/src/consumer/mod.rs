//! The idempotent consumer loop (after rust-rdkafka's at-least-once example), batched: a
//! partition worker takes what its partition has ready (up to [`worker::MAX_BATCH`], never waiting for
//! more) and hands it to the handler, which claims every `eventId` and applies the effects in
//! one transaction (begun by the loop on the worker's own connection, see
//! [`crate::db::HeldConnection`]); the offsets are stored only once it has committed, so a crash redelivers
//! the batch and the claims make the redelivery change nothing. A record that is itself wrong
//! (undecodable, unknown schema, not the contract's shape) poisons its batch: the batch is
//! split and retried until the record is alone, and it is copied to `<topic>.dlt` with headers
//! saying where it came from and why — its neighbours are handled and the partition keeps
//! moving. A failure of something the handler depends on (database, registry) is retried with
//! backoff until it heals, holding the partition so its order is kept. Partitions are worked on
//! concurrently, each in offset order (see [`run`]).
//!
//! Group membership is static (`group.instance.id`, see [`crate::ServiceConfig::instance_id`]): a
//! restarted instance takes its partitions back as soon as it joins, instead of waiting for
//! the broker to time the old member out; the assignment is cooperative, so a member joining
//! or leaving moves only the partitions that change owner.
//!
//! The parts:
//! - [`handler`]: what a service's handler is given and answers — [`Incoming`], [`Outcome`],
//!   [`HandleError`] (poison or transient, and which database errors are which);
//! - [`membership`]: the Kafka consumer, its group membership, the fetch loop that hands each
//!   partition to its worker, the consumer-lag metrics, and [`run`];
//! - [`worker`]: the partition workers — batching, decoding, the handler's transaction, the
//!   offsets stored after it commits;
//! - [`retry`]: transient failures retried with backoff, poisoned batches split in halves;
//! - [`dead_letters`]: the poisoned record copied to `<topic>.dlt` with its context.

mod dead_letters;
mod handler;
mod membership;
mod retry;
mod worker;

pub(crate) use handler::SharedHandler;
pub use handler::{HandleError, Handler, Incoming, Outcome};
pub use membership::ConsumerSetup;
pub(crate) use membership::run;
