//! The cucumber World and the step library, one module per domain concept. A World is made
//! per scenario and gives every alias ("P1", "U1") a fresh id, so scenarios run concurrently
//! without seeing each other's data. Everything a step waits for has a deadline; a failing
//! step's message carries the evidence (the order's records and pushes).

mod catalogue;
mod faults;
mod fields;
mod input;
mod late;
mod load;
mod orders;
mod saga;
mod scale;
mod timing;
mod wire;

use crate::backend::Endpoints;
use crate::backend::{Backend, Capabilities};
use crate::config::Config;
use crate::sink::PushSink;
use crate::tap::Tap;
use crate::timing::Recorder;
use rdkafka::producer::FutureProducer;
use saga_contract::{Money, SagaTopic, Topics};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What every scenario shares: the backend and the kit's instruments.
pub struct SuiteEnv {
    pub config: Config,
    pub topics: Topics,
    pub endpoints: Endpoints,
    pub http: reqwest::Client,
    pub tap: Tap,
    pub sink: PushSink,
    /// For re-publishing recorded records and publishing poison.
    pub producer: FutureProducer,
    pub backend: Backend,
    pub capabilities: Capabilities,
    pub timing: Recorder,
    /// Frames records the suite makes itself (late and stray events).
    pub codec: saga_contract::EventCodec,
    /// The implementation's consumer groups, to know when it has consumed an injected record.
    pub groups: crate::groups::ConsumerGroups,
    /// Things the report should say about how the run was judged (e.g. a fallback taken).
    pub notes: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The environment of the run in progress. cucumber builds Worlds through a plain
/// constructor, so they find it here; a process may run the suite several times (one run per
/// backend), each installing its own.
static ENV: RwLock<Option<Arc<SuiteEnv>>> = RwLock::new(None);

/// Installs the environment the steps of the next run use (replacing the previous run's).
pub fn install(env: Arc<SuiteEnv>) -> Arc<SuiteEnv> {
    *ENV.write().expect("suite environment lock poisoned") = Some(env.clone());
    env
}

fn env() -> Arc<SuiteEnv> {
    ENV.read()
        .expect("suite environment lock poisoned")
        .clone()
        .expect("the suite environment is installed before scenarios run")
}

/// An HTTP answer kept for later steps.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub content_type: String,
    /// The `Location` header, if any.
    pub location: Option<String>,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone)]
struct Product {
    id: String,
    price: Money,
}

#[derive(cucumber::World)]
#[world(init = Self::new)]
pub struct SagaWorld {
    env: Arc<SuiteEnv>,
    /// Suffix that makes this scenario's ids unique.
    tag: String,
    products: HashMap<String, Product>,
    answer: Option<Answer>,
    /// The scenario's current order.
    order: Option<String>,
    /// Orders placed together (concurrency scenarios).
    batch: Vec<String>,
    /// Lines of the last order request, as sent.
    request_items: Vec<serde_json::Value>,
    /// Poison records this scenario published: (key, partition, offset).
    poison: Vec<(String, i32, i64)>,
    /// Records this scenario injected for the implementation to consume: (topic, partition, offset).
    injected: Vec<(SagaTopic, i32, i64)>,
    /// Faults this scenario put in place and has not undone; the runner undoes them after it.
    faults: Vec<faults::Fault>,
    /// When each fault of this scenario was in place, for the crash checkers.
    fault_spans: Vec<(faults::Fault, crate::checkers_crash::FaultSpan)>,
    /// The steady load of a crash scenario (stops when dropped).
    load: Option<load::Load>,
    /// Timing samples this scenario measured.
    samples: Vec<crate::timing::Sample>,
}

impl std::fmt::Debug for SagaWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaWorld")
            .field("tag", &self.tag)
            .field("order", &self.order)
            .field("batch", &self.batch.len())
            .finish()
    }
}

impl SagaWorld {
    fn new() -> SagaWorld {
        SagaWorld {
            env: env(),
            tag: uuid::Uuid::new_v4().simple().to_string()[..10].to_string(),
            products: HashMap::new(),
            answer: None,
            order: None,
            batch: Vec::new(),
            request_items: Vec::new(),
            poison: Vec::new(),
            injected: Vec::new(),
            faults: Vec::new(),
            fault_spans: Vec::new(),
            load: None,
            samples: Vec::new(),
        }
    }

    fn user(&self, alias: &str) -> String {
        format!("{alias}-{}", self.tag)
    }

    fn product(&self, alias: &str) -> Product {
        self.products
            .get(alias)
            .cloned()
            .unwrap_or_else(|| panic!("product {alias} is not in this scenario's catalogue"))
    }

    fn order_id(&self) -> String {
        self.order.clone().expect("no order was placed in this scenario")
    }

    /// The environment, for the runner's hooks.
    pub fn env(&self) -> &Arc<SuiteEnv> {
        &self.env
    }

    fn deadline(&self) -> Duration {
        self.env.config.outcome_deadline()
    }

    fn topic(&self, seed_name: &str) -> SagaTopic {
        SagaTopic::ALL
            .into_iter()
            .find(|t| t.default_name() == seed_name)
            .unwrap_or_else(|| panic!("{seed_name} is not a saga topic"))
    }

    /// The order's records and pushes, for a failure message.
    fn evidence(&self, order_id: &str) -> String {
        let records = self.env.tap.for_order(order_id);
        let pushes = self.env.sink.for_order(order_id);
        let mut out = format!("\n--- evidence for order {order_id}: {} record(s) ---\n", records.len());
        for r in &records {
            out.push_str(&r.summary());
            out.push('\n');
        }
        out.push_str(&format!("--- {} push(es) ---\n", pushes.len()));
        for p in &pushes {
            out.push_str(&serde_json::to_string(p).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap_or_else(|| panic!("{text} is not an amount"))
}

/// Whether `actual` is the amount `expected` (a decimal literal from a feature).
fn same_amount(actual: &serde_json::Value, expected: &str) -> bool {
    Money::from_json(actual) == Some(money(expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_compare_as_decimals() {
        for written in [json!(15000), json!(15000.0), json!("15000.00"), json!(1.5e4)] {
            assert!(same_amount(&written, "15000.00"), "{written}");
        }
        assert!(same_amount(&json!(99.99), "99.99"));
        assert!(same_amount(&json!(0.1), "0.10"));
        assert!(!same_amount(&json!(99.98999), "99.99"), "float drift is not the amount");
        assert!(!same_amount(&json!(15000.01), "15000.00"));
        assert!(!same_amount(&json!(null), "0"));
        assert!(!same_amount(&json!("fifteen"), "15"));
    }
}
