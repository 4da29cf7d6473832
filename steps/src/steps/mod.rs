//! The cucumber World and the step library, one module per domain concept; `params` holds the
//! typed captures the step texts use (`{topic}`, `{service}`, `{push_kind}`, …). A World is made
//! per scenario and gives every alias ("P1", "U1") a fresh id, so scenarios run concurrently
//! without seeing each other's data. Everything a step waits for has a deadline; a failing
//! step's message carries the evidence (the order's records and pushes).

mod capacity;
mod catalogue;
mod evolve;
mod faults;
mod fields;
mod gateway;
mod input;
mod journal;
mod late;
mod lines;
mod load;
mod load_verdicts;
mod orders;
mod params;
mod readback;
pub mod recovery;
mod saga;
mod scale;
mod timing;
mod wire;

use crate::api::OrderLine;
use crate::backend::{Backend, Capabilities};
use crate::client::{Answer, SagaClient};
use crate::config::Config;
use crate::sink::PushSink;
use crate::tap::Tap;
use crate::timing::Recorder;
use crate::types::Endpoints;
pub use fields::check_suite;
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
    /// For requests outside the saga's API (the schema registry).
    pub http: reqwest::Client,
    /// The saga's HTTP API.
    pub client: SagaClient,
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
    /// What scenarios measured, by (feature, scenario) name, for the conformance record.
    pub figures: std::sync::Mutex<crate::record::Figures>,
    /// Whether the implementation must be checked before the next scenario (one failed).
    pub recovery: tokio::sync::Mutex<recovery::Recovery>,
}

/// The environment of the run in progress. cucumber builds Worlds through a plain
/// constructor, so they find it here; a process may run the suite several times (one run per
/// backend), each installing its own.
static ENV: RwLock<Option<Arc<SuiteEnv>>> = RwLock::new(None);

/// Installs the environment the steps of the next run use (replacing the previous run's), until
/// the [`Installed`] it returns is dropped.
pub fn install(env: Arc<SuiteEnv>) -> (Arc<SuiteEnv>, Installed) {
    *ENV.write().expect("suite environment lock poisoned") = Some(env.clone());
    (env, Installed(()))
}

/// Takes the run's environment out again when dropped — at the run's end, or when its future is
/// dropped on a signal: held here, the environment (and with it the backend and every process
/// or container it started) would outlive the run, as a `static` is never dropped.
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        if let Ok(mut env) = ENV.write() {
            *env = None;
        }
    }
}

fn env() -> Arc<SuiteEnv> {
    ENV.read()
        .expect("suite environment lock poisoned")
        .clone()
        .expect("the suite environment is installed before scenarios run")
}

#[derive(Debug, Clone)]
struct Product {
    id: String,
    price: Money,
    /// The stock it was seeded with.
    stock: i64,
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
    request_items: Vec<OrderLine>,
    /// Poison records this scenario published: (key, partition, offset).
    poison: Vec<(String, i32, i64)>,
    /// Records this scenario injected for the implementation to consume: (topic, partition, offset).
    injected: Vec<(SagaTopic, i32, i64)>,
    /// Every record this scenario published for the implementation (not an effect of it).
    sent: crate::checkers::Injected,
    /// Faults this scenario put in place and has not undone; the runner undoes them after it.
    faults: Vec<crate::backend::fault::Fault>,
    /// When each fault of this scenario was in place, for the crash checkers.
    fault_spans: Vec<(crate::backend::fault::Fault, crate::checkers::crash::FaultSpan)>,
    /// How many faults have been put in place so far: a burst keeps the implementation busy
    /// until the next one is (see `load::load_burst`).
    faults_in_place: tokio::sync::watch::Sender<usize>,
    /// The steady load of a crash scenario (stops when dropped).
    load: Option<load::Load>,
    /// The push gateway's outage this scenario put in place.
    gateway: Option<gateway::GatewayOutage>,
    /// Timing samples this scenario measured.
    samples: Vec<crate::timing::Sample>,
    /// What this scenario measured, by name (the conformance record's `figures`).
    figures: std::collections::BTreeMap<String, serde_json::Value>,
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
            sent: Default::default(),
            faults: Vec::new(),
            fault_spans: Vec::new(),
            faults_in_place: tokio::sync::watch::Sender::new(0),
            load: None,
            gateway: None,
            samples: Vec::new(),
            figures: Default::default(),
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

    /// Hands what this scenario measured to the run, for the conformance record (the runner's
    /// hook, after the scenario).
    pub fn hand_over_figures(&mut self, feature: &str, scenario: &str) {
        let figures = std::mem::take(&mut self.figures);
        if !figures.is_empty() {
            let mut all = self.env.figures.lock().expect("figures lock poisoned");
            all.insert((feature.to_string(), scenario.to_string()), figures);
        }
    }

    /// The environment, for the runner's hooks.
    pub fn env(&self) -> &Arc<SuiteEnv> {
        &self.env
    }

    fn deadline(&self) -> Duration {
        self.env.config.outcome_deadline()
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
        // A push the contract cannot read (an unknown type, a missing field) is not among the
        // order's pushes; shown here, it explains why the wanted one "never arrived".
        let unreadable: Vec<String> = self
            .env
            .sink
            .arrivals()
            .into_iter()
            .filter_map(|a| a.push.err())
            .filter(|body| body.contains(order_id))
            .collect();
        if !unreadable.is_empty() {
            out.push_str(&format!("--- {} push body(ies) that are not pushes ---\n", unreadable.len()));
            for body in &unreadable {
                out.push_str(body);
                out.push('\n');
            }
        }
        out
    }

    /// The last order request's lines as JSON, to compare with what records and reads carry.
    fn request_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.request_items).expect("order lines serialise")
    }
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap_or_else(|| panic!("{text} is not an amount"))
}

/// Whether `actual` is the amount `expected`, whatever its JSON spelling.
fn same_amount(actual: &serde_json::Value, expected: Money) -> bool {
    Money::from_json(actual) == Some(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_compare_as_decimals() {
        for written in [json!(15000), json!(15000.0), json!("15000.00"), json!(1.5e4)] {
            assert!(same_amount(&written, money("15000.00")), "{written}");
        }
        assert!(same_amount(&json!(99.99), money("99.99")));
        assert!(same_amount(&json!(0.1), money("0.10")));
        assert!(!same_amount(&json!(99.98999), money("99.99")), "float drift is not the amount");
        assert!(!same_amount(&json!(15000.01), money("15000.00")));
        assert!(!same_amount(&json!(null), money("0")));
        assert!(!same_amount(&json!("fifteen"), money("15")));
    }
}
