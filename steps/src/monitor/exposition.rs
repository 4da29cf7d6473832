//! The monitor's Prometheus metrics, `saga_monitor_*`, through `prometheus-client` (the crate
//! the reference services already use for theirs, so the text format is the same library's):
//!
//! - `violations_total{requirement, checker}`: sagas in which a checker found a violation (each
//!   checker counts once per saga); every pair starts at 0 so a clean system shows zeros;
//! - `sagas_in_flight`, `sagas_past_deadline`: watched sagas not complete, and of those the ones
//!   past their deadline;
//! - `stage_seconds{stage}`: reservation, confirmation (record timestamps), payment (until the
//!   Payment Service's group committed past the `order.confirmed`, an upper bound) and saga;
//! - `consumer_lag{group, topic, partition}`: high watermark minus the group's committed offset;
//! - `records_total{topic}`: records read.

use super::rules::CHECKERS;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    violations: Family<Labels, Counter>,
    in_flight: Gauge,
    past_deadline: Gauge,
    stages: HistogramFamily,
    lag: Family<Labels, Gauge>,
    records: Family<Labels, Counter>,
}

fn stage_histogram() -> Histogram {
    // 1 ms … ~65 s: a healthy stage takes milliseconds, a stalled one up to the deadline.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("saga_monitor");
        let violations = Family::<Labels, Counter>::default();
        let in_flight = Gauge::default();
        let past_deadline = Gauge::default();
        let stages = HistogramFamily::new_with_constructor(stage_histogram as fn() -> Histogram);
        let lag = Family::<Labels, Gauge>::default();
        let records = Family::<Labels, Counter>::default();
        registry.register(
            "violations",
            "Sagas in which a checker of the suite found a violation, by requirement id",
            violations.clone(),
        );
        registry.register("sagas_in_flight", "Sagas started and not complete", in_flight.clone());
        registry.register(
            "sagas_past_deadline",
            "Sagas not complete a deadline after they started",
            past_deadline.clone(),
        );
        registry.register("stage_seconds", "Latency of each saga stage", stages.clone());
        registry.register("consumer_lag", "Records the services' consumer groups have not consumed yet", lag.clone());
        registry.register("records", "Records read from the saga topics", records.clone());
        // Every series exists from the start, so a clean system shows its zeros.
        for (checker, requirement) in CHECKERS {
            let _ = violations.get_or_create(&labels(requirement, checker));
        }
        Metrics { registry, violations, in_flight, past_deadline, stages, lag, records }
    }
}

fn labels(requirement: &str, checker: &str) -> Labels {
    vec![("requirement", requirement.to_string()), ("checker", checker.to_string())]
}

impl Metrics {
    pub fn violation(&self, requirement: &str, checker: &str) {
        self.violations.get_or_create(&labels(requirement, checker)).inc();
    }

    pub fn sagas(&self, in_flight: usize, past_deadline: usize) {
        self.in_flight.set(in_flight as i64);
        self.past_deadline.set(past_deadline as i64);
    }

    pub fn stage(&self, stage: &str, seconds: f64) {
        self.stages.get_or_create(&vec![("stage", stage.to_string())]).observe(seconds);
    }

    pub fn lag(&self, group: &str, topic: &str, partition: i32, lag: i64) {
        let labels =
            vec![("group", group.to_string()), ("topic", topic.to_string()), ("partition", partition.to_string())];
        self.lag.get_or_create(&labels).set(lag);
    }

    pub fn record(&self, topic: &str) {
        self.records.get_or_create(&vec![("topic", topic.to_string())]).inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_requirement_shows_zero_before_any_violation_and_counts_after() {
        let metrics = Metrics::default();
        let text = metrics.render();
        assert!(text.contains(r#"saga_monitor_violations_total{requirement="ORDER-1",checker="key"} 0"#), "{text}");
        metrics.violation("ORDER-1", "key");
        metrics.stage("reservation", 0.004);
        metrics.lag("payment-service", "order.confirmed", 2, 7);
        let text = metrics.render();
        assert!(text.contains(r#"saga_monitor_violations_total{requirement="ORDER-1",checker="key"} 1"#), "{text}");
        assert!(text.contains(r#"saga_monitor_stage_seconds_count{stage="reservation"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"saga_monitor_consumer_lag{group="payment-service",topic="order.confirmed",partition="2"} 7"#
            )
        );
    }
}
