//! A step's figures from its orders' outcomes: percentiles per stage over the measured orders,
//! counts (completed, lost, cancelled, duplicated, intake errors), the achieved send rate, the 1-second
//! timeline the chart draws, and what the step cost (CPU, PostgreSQL, handler times).

use super::outcome::{Outcome, Plan, Sent};
use super::pgstats::PgRates;
use super::procfs::CpuUse;
use super::stats::Pct;
use std::collections::BTreeMap;

/// Intake errors quoted in the report, per step.
const ERROR_SAMPLES: usize = 5;

/// One 1-second bucket of the measured window (by send time).
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    pub second: usize,
    pub sent: usize,
    pub e2e: Pct,
}

/// The latency of each stage over a set of orders.
#[derive(Debug, Clone)]
pub(super) struct Stages {
    pub intake: Pct,
    pub created: Pct,
    pub reservation: Pct,
    pub confirmation: Pct,
    pub payment: Pct,
    pub e2e: Pct,
}

impl Stages {
    /// The stages after intake over `orders`, intake over `intake` (a step's intake counts
    /// refused orders too).
    fn of(orders: &[&Outcome], intake: Pct) -> Stages {
        let series = |f: fn(&Outcome) -> Option<f64>| Pct::of(&orders.iter().filter_map(|o| f(o)).collect::<Vec<_>>());
        Stages {
            intake,
            created: series(Outcome::created),
            reservation: series(Outcome::reservation),
            confirmation: series(Outcome::confirmation),
            payment: series(Outcome::payment),
            e2e: series(Outcome::e2e),
        }
    }
}

/// Percentiles of the unloaded orders.
pub(super) struct Unloaded(pub Stages);

impl Unloaded {
    pub fn of(outcomes: &[Outcome]) -> Unloaded {
        let all: Vec<&Outcome> = outcomes.iter().collect();
        Unloaded(Stages::of(&all, Pct::of(&outcomes.iter().map(|o| o.sent.intake_ms).collect::<Vec<_>>())))
    }
}

/// A load step's figures.
pub(super) struct StepResult {
    pub plan: Plan,
    pub outcomes: Vec<Outcome>,
    pub stages: Stages,
    pub orders: usize,
    pub orders_total: usize,
    pub completed: usize,
    /// Accepted, not ended by the end of the drain ([`crate::checkers::once::lost`]).
    pub lost: usize,
    /// Accepted and cancelled: not lost, but a bench order has stock to spare.
    pub cancelled: usize,
    /// A record or push seen with two distinct eventIds ([`crate::checkers::once::duplicated`]).
    pub duplicated: usize,
    pub intake_errors: usize,
    pub achieved_rate: f64,
    pub max_lag_ms: f64,
    pub drain_s: f64,
    pub timeline: Vec<Bucket>,
    pub cpu: CpuUse,
    /// Commits and WAL flushes per second while measuring; `None` when not available.
    pub postgres: Option<PgRates>,
    /// "<service> <stage>" → (mean ms, records) during the step, from the services' histograms.
    pub handler_ms: BTreeMap<String, (f64, f64)>,
    pub error_samples: Vec<String>,
}

impl StepResult {
    /// Nothing lost or cancelled, no intake error, and e2e p99 within `p99_limit_ms`.
    pub fn passes(&self, p99_limit_ms: f64) -> bool {
        self.lost == 0
            && self.cancelled == 0
            && self.intake_errors == 0
            && self.stages.e2e.n > 0
            && self.stages.e2e.p99 <= p99_limit_ms
    }
}

pub(super) fn summarize(
    plan: Plan,
    outcomes: Vec<Outcome>,
    drain_s: f64,
    cpu: CpuUse,
    postgres: Option<PgRates>,
    handler_ms: BTreeMap<String, (f64, f64)>,
    measured_start_epoch_ms: f64,
) -> StepResult {
    let measured: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent.measured && o.accepted()).collect();
    let intake = Pct::of(&outcomes.iter().filter(|o| o.sent.measured).map(|o| o.sent.intake_ms).collect::<Vec<_>>());
    let measured_sent: Vec<&Sent> = outcomes.iter().map(|o| &o.sent).filter(|s| s.measured).collect();
    let achieved_rate = match (measured_sent.first(), measured_sent.last()) {
        (Some(a), Some(b)) if measured_sent.len() > 1 && b.sent_at_ms > a.sent_at_ms => {
            (measured_sent.len() - 1) as f64 / ((b.sent_at_ms - a.sent_at_ms) / 1000.0)
        }
        _ => f64::NAN,
    };
    let mut buckets: BTreeMap<usize, (usize, Vec<f64>)> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.sent.measured) {
        let second = ((o.sent.sent_at_ms - measured_start_epoch_ms) / 1000.0).floor().max(0.0) as usize;
        let b = buckets.entry(second).or_default();
        b.0 += 1;
        if let Some(e) = o.e2e() {
            b.1.push(e);
        }
    }
    StepResult {
        plan,
        stages: Stages::of(&measured, intake),
        orders: measured_sent.len(),
        orders_total: outcomes.len(),
        completed: outcomes.iter().filter(|o| o.payment_at_ms.is_some()).count(),
        lost: outcomes.iter().filter(|o| o.lost()).count(),
        cancelled: outcomes.iter().filter(|o| o.cancelled()).count(),
        duplicated: outcomes.iter().filter(|o| o.duplicated()).count(),
        intake_errors: outcomes.iter().filter(|o| o.sent.error.is_some()).count(),
        achieved_rate,
        max_lag_ms: outcomes.iter().map(|o| o.sent.lag_ms).fold(0.0, f64::max),
        drain_s,
        timeline: buckets
            .into_iter()
            .map(|(second, (sent, e2e))| Bucket { second, sent, e2e: Pct::of(&e2e) })
            .collect(),
        cpu,
        postgres,
        handler_ms,
        error_samples: outcomes.iter().filter_map(|o| o.sent.error.clone()).take(ERROR_SAMPLES).collect(),
        outcomes,
    }
}
