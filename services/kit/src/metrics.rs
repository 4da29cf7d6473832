//! The seed's monitoring points as Prometheus metrics, served on `/metrics`:
//! publish success/failure per topic (`saga_publish_total`), processing time per stage
//! (`saga_stage_seconds`: for each record, the time of the batch it was handled in), batch
//! handling time (`saga_batch_seconds`: once per batch, so its sum is the workers' busy time and
//! its count the number of transactions), records handled per outcome (`saga_consumed_total`), consumer lag
//! per partition (`saga_consumer_lag`, from librdkafka statistics) and push deliveries.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    publish: Family<Labels, Counter>,
    consumed: Family<Labels, Counter>,
    push: Family<Labels, Counter>,
    stage: HistogramFamily,
    batch: Histogram,
    lag: Family<Labels, Gauge>,
}

fn stage_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new(service: &str) -> Metrics {
        let mut registry =
            Registry::with_prefix_and_labels("saga", [("service".into(), service.to_string().into())].into_iter());
        let publish = Family::<Labels, Counter>::default();
        let consumed = Family::<Labels, Counter>::default();
        let push = Family::<Labels, Counter>::default();
        let stage = HistogramFamily::new_with_constructor(stage_histogram as fn() -> Histogram);
        let batch = stage_histogram();
        let lag = Family::<Labels, Gauge>::default();
        registry.register("publish", "Records published to Kafka by outcome", publish.clone());
        registry.register(
            "consumed",
            "Records consumed by outcome (processed, duplicate, dead_letter)",
            consumed.clone(),
        );
        registry.register("push", "Push notifications delivered by outcome", push.clone());
        registry.register("stage_seconds", "Processing time of each saga stage handled here", stage.clone());
        registry.register("batch_seconds", "Handling time of one batch of records (one transaction)", batch.clone());
        registry.register("consumer_lag", "Consumer lag per topic partition (librdkafka statistics)", lag.clone());
        Metrics { inner: Arc::new(Inner { registry, publish, consumed, push, stage, batch, lag }) }
    }

    pub fn published(&self, topic: &str, ok: bool) {
        self.inner.publish.get_or_create(&vec![("topic", topic.to_string()), ("outcome", outcome(ok))]).inc();
    }

    pub fn consumed(&self, topic: &str, outcome: &'static str) {
        self.inner.consumed.get_or_create(&vec![("topic", topic.to_string()), ("outcome", outcome.to_string())]).inc();
    }

    pub fn pushed(&self, ok: bool) {
        self.inner.push.get_or_create(&vec![("outcome", outcome(ok))]).inc();
    }

    pub fn stage(&self, stage: &str, seconds: f64) {
        self.inner.stage.get_or_create(&vec![("stage", stage.to_string())]).observe(seconds);
    }

    pub fn batch(&self, seconds: f64) {
        self.inner.batch.observe(seconds);
    }

    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.inner
            .lag
            .get_or_create(&vec![("topic", topic.to_string()), ("partition", partition.to_string())])
            .set(lag);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

fn outcome(ok: bool) -> String {
    if ok { "success" } else { "failure" }.to_string()
}
