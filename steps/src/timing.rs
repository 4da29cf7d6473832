//! Latency samples per saga stage, percentiles, and the budgets they are held to.

use crate::config::sections::Timing;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The stages of the seed's processing-time table.
pub const STAGES: [&str; 5] = ["intake", "reservation", "confirmation", "payment", "saga"];

/// One order's measured stage latencies in milliseconds (a stage may be missing if its
/// evidence never arrived; that order then counts as lost, not as fast).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub order_id: String,
    pub started_at_ms: i64,
    pub stages: BTreeMap<&'static str, f64>,
}

/// Summary of one stage: the percentiles the report shows and the budget it is held to.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: &'static str,
    pub samples: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub budget_ms: f64,
    /// The percentile the budget applies to (from config).
    pub checked_percentile: f64,
    pub checked_value: f64,
    pub within_budget: bool,
}

/// Nearest-rank percentile of an unsorted slice (`p` in 0..=100).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub fn budget(timing: &Timing, stage: &str) -> f64 {
    let base = match stage {
        "intake" => timing.intake_ms,
        "reservation" => timing.reservation_ms,
        "confirmation" => timing.confirmation_ms,
        "payment" => timing.payment_ms,
        _ => timing.saga_ms,
    };
    base * timing.scale
}

pub fn summarize(samples: &[Sample], timing: &Timing) -> Vec<StageSummary> {
    STAGES
        .iter()
        .map(|stage| {
            let values: Vec<f64> = samples.iter().filter_map(|s| s.stages.get(stage).copied()).collect();
            let checked_value = percentile(&values, timing.percentile);
            let budget_ms = budget(timing, stage);
            StageSummary {
                stage,
                samples: values.len(),
                p50: percentile(&values, 50.0),
                p95: percentile(&values, 95.0),
                p99: percentile(&values, 99.0),
                max: values.iter().copied().fold(f64::NAN, f64::max),
                budget_ms,
                checked_percentile: timing.percentile,
                checked_value,
                within_budget: !values.is_empty() && checked_value <= budget_ms,
            }
        })
        .collect()
}

/// Samples gathered during a run, for the report.
#[derive(Default)]
pub struct Recorder {
    samples: Mutex<Vec<Sample>>,
}

impl Recorder {
    pub fn add(&self, samples: &[Sample]) {
        self.samples.lock().expect("recorder poisoned").extend_from_slice(samples);
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("recorder poisoned").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn a_stage_over_budget_or_without_samples_fails() {
        let timing = Timing { scale: 2.0, ..Timing::default() };
        let mk = |intake: f64| Sample { stages: [("intake", intake)].into(), ..Sample::default() };
        let samples: Vec<Sample> = (0..19).map(|_| mk(10.0)).chain([mk(500.0)]).collect();
        let summary = summarize(&samples, &timing);
        let intake = summary.iter().find(|s| s.stage == "intake").unwrap();
        assert_eq!(intake.budget_ms, 200.0, "scaled");
        assert!(intake.within_budget, "p95 of 19×10ms + 1×500ms is 10ms");
        let late: Vec<Sample> = (0..20).map(|_| mk(300.0)).collect();
        assert!(!summarize(&late, &timing)[0].within_budget);
        assert!(
            !summarize(&samples, &timing).iter().find(|s| s.stage == "saga").unwrap().within_budget,
            "no samples is not a pass"
        );
    }
}
