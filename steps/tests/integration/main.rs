//! The kit's integration tests, one test binary (a release link of the kit costs about a
//! minute on 2 cores; one binary pays it once instead of once per file):
//!
//! - [`contract_docs`]: the hand-written AsyncAPI/OpenAPI documents against the code;
//! - [`consumer_loop`]: the reference services' consumer loop under kills, a zombie and poison;
//! - [`monitor`]: `saga-conformance monitor` against the reference stack;
//! - [`reference_stack`]: the outbox across a kill, and our records through a real Confluent client.
//!
//! The last three each start a whole stack (PostgreSQL, Kafka, the registry, three services);
//! they take [`ONE_STACK_AT_A_TIME`] so libtest's parallel threads run them one after another
//! (two stacks on 2 cores would disturb the bounds `consumer_loop` measures).

mod consumer_loop;
mod contract_docs;
mod monitor;
mod reference_stack;

/// Held for the whole of a test that starts a stack. A tokio mutex: each `#[tokio::test]` has
/// its own runtime, and the guard is held across awaits.
pub static ONE_STACK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
