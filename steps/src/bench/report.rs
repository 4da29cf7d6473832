//! The bench's result: everything one run measured ([`Report`]), the figures it is judged by
//! (headline step, sustained rate, the targets — each quoting the step it names) and
//! `bench.json`, serialised from the structs below.

use super::BenchArgs;
use super::floor::{Floor, FloorJson};
use super::handler_times::{BatchUse, batch_use, is_batches};
use super::pgstats::PgRates;
use super::procfs::{CpuUse, Machine, Procs};
use super::stats::{Measured, Pct, r2, r2_map, round2};
use super::summary::{Stages, StepResult, Unloaded};
use crate::Service;
use serde::Serialize;
use std::collections::BTreeMap;

/// The rate the latency targets are stated for (the issue "Benchmark the saga").
pub(super) const TARGET_RATE_PER_S: f64 = 100.0;
pub(super) const TARGET_INTAKE_P99_MS: f64 = 10.0;
pub(super) const TARGET_E2E_P50_MS: f64 = 20.0;
pub(super) const TARGET_E2E_P99_MS: f64 = 75.0;
/// The throughput target: this many orders/s with e2e p99 within [`TARGET_SUSTAINED_P99_MS`]
/// (also `--find-max`'s default criterion).
pub(super) const TARGET_SUSTAINED_PER_S: f64 = 500.0;
pub(super) const TARGET_SUSTAINED_P99_MS: f64 = 250.0;

/// The throughput target's verdict: judged by `--find-max`, or by a fixed-rate run at the
/// target rate or above; a fixed-rate run below it (CI's short bench at 20/s) did not try, so
/// it is not measured rather than missed. `sustained`: the highest rate that passed.
fn sustained_met(find_max: bool, fastest_rate: f64, sustained: Option<f64>) -> Option<bool> {
    (find_max || fastest_rate >= TARGET_SUSTAINED_PER_S).then(|| sustained.is_some_and(|r| r >= TARGET_SUSTAINED_PER_S))
}

/// A latency target: what it judges, its limit in ms, and that figure of a step.
type LatencyTarget = (&'static str, f64, fn(&Stages) -> f64);

/// Everything one bench run measured.
pub(super) struct Report {
    pub args: BenchArgs,
    /// `processes` or `external`.
    pub backend: &'static str,
    pub floor: Floor,
    pub unloaded: Option<Unloaded>,
    /// CPU of the idle target.
    pub idle: Option<CpuUse>,
    pub steps: Vec<StepResult>,
    /// Max VmRSS per known process, MB.
    pub rss: BTreeMap<String, f64>,
    /// The implementation's processes; `None` when unknown (external).
    pub procs: Option<Procs>,
    pub machine: Machine,
}

/// One target line: the figure it quotes comes from the step it names (`step_rate_per_s`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct Target {
    pub target: String,
    pub limit: f64,
    /// NaN (null) when no step qualifies.
    #[serde(serialize_with = "r2")]
    pub value: f64,
    /// `None` when the step the target names did not run.
    pub met: Option<bool>,
    pub step_rate_per_s: Option<f64>,
}

impl Report {
    /// The step the headline figures come from: the run itself, or with --find-max the highest
    /// passing step (the first step when none passed).
    pub fn headline(&self) -> &StepResult {
        if self.args.find_max {
            self.highest_passing(self.args.p99_limit_ms).unwrap_or(&self.steps[0])
        } else {
            &self.steps[0]
        }
    }

    /// The highest rate that passed `--find-max`'s criterion (`None` without --find-max).
    pub fn max_sustained(&self) -> Option<f64> {
        if !self.args.find_max {
            return None;
        }
        self.highest_passing(self.args.p99_limit_ms).map(|s| s.plan.rate)
    }

    fn highest_passing(&self, p99_limit_ms: f64) -> Option<&StepResult> {
        self.steps.iter().filter(|s| s.passes(p99_limit_ms)).max_by(|a, b| a.plan.rate.total_cmp(&b.plan.rate))
    }

    /// Nothing lost, cancelled or duplicated where it counts (find-max: in the passing steps).
    pub fn clean(&self) -> bool {
        self.steps
            .iter()
            .filter(|s| !self.args.find_max || s.passes(self.args.p99_limit_ms))
            .all(|s| s.lost == 0 && s.cancelled == 0 && s.duplicated == 0)
    }

    pub fn e2e_over_floor(&self) -> f64 {
        self.headline().stages.e2e.p50 / self.floor.floor_ms()
    }

    /// Whether the implementation's processes are known (CPU and RSS per process measured).
    pub fn procs_known(&self) -> bool {
        self.procs.is_some()
    }

    /// The targets, each judged on the step it names: the latency targets on the step at
    /// [`TARGET_RATE_PER_S`] (not measured when no step ran at that rate), the throughput
    /// target on the highest step that passed with e2e p99 ≤ [`TARGET_SUSTAINED_P99_MS`].
    pub fn targets(&self) -> Vec<Target> {
        let at = self.steps.iter().find(|s| (s.plan.rate - TARGET_RATE_PER_S).abs() < 0.5);
        let latency: [LatencyTarget; 3] = [
            ("intake p99", TARGET_INTAKE_P99_MS, |s| s.intake.p99),
            ("e2e p50", TARGET_E2E_P50_MS, |s| s.e2e.p50),
            ("e2e p99", TARGET_E2E_P99_MS, |s| s.e2e.p99),
        ];
        let mut targets: Vec<Target> = latency
            .into_iter()
            .map(|(what, limit, figure)| {
                let value = at.map(|s| figure(&s.stages));
                Target {
                    target: format!("{what} ≤ {limit} ms (at {TARGET_RATE_PER_S}/s)"),
                    limit,
                    value: value.unwrap_or(f64::NAN),
                    met: value.map(|v| v <= limit),
                    step_rate_per_s: at.map(|s| s.plan.rate),
                }
            })
            .collect();
        let sustained = self.highest_passing(TARGET_SUSTAINED_P99_MS).map(|s| s.plan.rate);
        let fastest = self.steps.iter().map(|s| s.plan.rate).fold(0.0, f64::max);
        targets.push(Target {
            target: format!("≥ {TARGET_SUSTAINED_PER_S}/s sustained with e2e p99 ≤ {TARGET_SUSTAINED_P99_MS} ms"),
            limit: TARGET_SUSTAINED_PER_S,
            value: sustained.unwrap_or(f64::NAN),
            met: sustained_met(self.args.find_max, fastest, sustained),
            step_rate_per_s: sustained,
        });
        targets
    }

    /// `bench.json`: the headline step's figures at the top level, then the run's.
    pub fn json(&self) -> BenchJson<'_> {
        let known = self.procs_known();
        let is_service = |name: &str| Service::ALL.iter().any(|s| s.binary() == name);
        let rss = |services: bool| -> BTreeMap<String, f64> {
            self.rss.iter().filter(|(k, _)| is_service(k) == services).map(|(k, v)| (k.clone(), round2(*v))).collect()
        };
        BenchJson {
            headline: self.step_json(self.headline()),
            mode: if self.args.find_max { "find-max" } else { "fixed-rate" },
            backend: self.backend,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            floor_ms: self.floor.floor_ms(),
            e2e_over_floor: self.e2e_over_floor(),
            floor: self.floor.json(),
            unloaded: self.unloaded.as_ref().map(|u| UnloadedJson {
                orders: u.0.e2e.n,
                intake_ms: &u.0.intake,
                e2e_ms: &u.0.e2e,
                stages_ms: StagesJson::of(&u.0),
            }),
            idle: self.idle.as_ref().map(|cpu| IdleJson {
                seconds: self.args.idle_seconds,
                cpu_cores_used: &cpu.cores,
                machine_cpu_busy_pct: cpu.machine_busy_pct,
            }),
            max_sustained_per_s: self.max_sustained(),
            find_max: self.args.find_max.then(|| FindMaxJson {
                criterion: format!(
                    "e2e p99 ≤ {} ms, no order lost or cancelled, no intake error",
                    self.args.p99_limit_ms
                ),
                step_factor: self.args.step_factor,
                refine: self.args.refine,
                steps: self.steps.iter().map(|s| self.step_json(s)).collect(),
            }),
            rss_mb: known.then(|| rss(true)).into(),
            rss_mb_other: rss(false),
            machine: MachineJson {
                cores: self.machine.cores,
                memory: format!("{:.1} GiB", self.machine.memory_mb / 1024.0),
                memory_mb: self.machine.memory_mb.round(),
                cpu_model: &self.machine.cpu_model,
                load_average_before: &self.machine.load_before,
                load_average_after: &self.machine.load_after,
            },
            processes: self
                .procs
                .as_ref()
                .map(|p| p.list.iter().map(|(n, pid)| (n.as_str(), *pid)).collect::<BTreeMap<_, _>>())
                .into(),
            targets: self.targets(),
        }
    }

    fn step_json<'a>(&'a self, s: &'a StepResult) -> StepJson<'a> {
        let known = self.procs_known();
        StepJson {
            rate_per_s: s.plan.rate,
            warmup_s: s.plan.warmup_s,
            duration_s: s.plan.duration_s,
            orders: s.orders,
            orders_total: s.orders_total,
            completed: s.completed,
            achieved_send_rate_per_s: s.achieved_rate,
            max_send_lag_ms: s.max_lag_ms,
            intake_ms: &s.stages.intake,
            e2e_ms: &s.stages.e2e,
            stages_ms: StagesJson::of(&s.stages),
            lost: s.lost,
            cancelled: s.cancelled,
            duplicated: s.duplicated,
            intake_errors: s.intake_errors,
            intake_error_samples: &s.error_samples,
            passed: s.passes(self.args.p99_limit_ms),
            drain_s: s.drain_s,
            cpu_cores_used: &s.cpu.cores,
            machine_cpu_busy_pct: s.cpu.machine_busy_pct,
            cpu_cores_used_by_other_processes: s.cpu.other_cores(known, self.machine.cores).map(round2).into(),
            // The database is the reference's own exactly when its processes are known.
            postgres: known.then_some(s.postgres.as_ref()).into(),
            handler_ms_mean: s
                .handler_ms
                .iter()
                .filter(|(k, _)| !is_batches(k))
                .map(|(k, (mean, records))| (k.as_str(), HandlerJson { mean: *mean, records: *records }))
                .collect(),
            batches: batch_use(&s.handler_ms),
            timeline: s
                .timeline
                .iter()
                .map(|b| BucketJson {
                    second: b.second,
                    sent: b.sent,
                    completed: b.e2e.n,
                    e2e_p50: b.e2e.p50,
                    e2e_p99: b.e2e.p99,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct BenchJson<'a> {
    #[serde(flatten)]
    headline: StepJson<'a>,
    mode: &'static str,
    backend: &'static str,
    command: String,
    #[serde(serialize_with = "r2")]
    floor_ms: f64,
    #[serde(serialize_with = "r2")]
    e2e_over_floor: f64,
    floor: FloorJson<'a>,
    unloaded: Option<UnloadedJson<'a>>,
    idle: Option<IdleJson<'a>>,
    max_sustained_per_s: Option<f64>,
    find_max: Option<FindMaxJson<'a>>,
    /// The services' max RSS, MB.
    rss_mb: Measured<BTreeMap<String, f64>>,
    /// The other known processes' (infrastructure, this process).
    rss_mb_other: BTreeMap<String, f64>,
    machine: MachineJson<'a>,
    processes: Measured<BTreeMap<&'a str, u32>>,
    targets: Vec<Target>,
}

#[derive(Serialize)]
struct StepJson<'a> {
    rate_per_s: f64,
    warmup_s: f64,
    duration_s: f64,
    orders: usize,
    orders_total: usize,
    completed: usize,
    #[serde(serialize_with = "r2")]
    achieved_send_rate_per_s: f64,
    #[serde(serialize_with = "r2")]
    max_send_lag_ms: f64,
    intake_ms: &'a Pct,
    e2e_ms: &'a Pct,
    stages_ms: StagesJson<'a>,
    lost: usize,
    cancelled: usize,
    duplicated: usize,
    intake_errors: usize,
    intake_error_samples: &'a [String],
    passed: bool,
    #[serde(serialize_with = "r2")]
    drain_s: f64,
    #[serde(serialize_with = "r2_map")]
    cpu_cores_used: &'a BTreeMap<String, f64>,
    #[serde(serialize_with = "r2")]
    machine_cpu_busy_pct: f64,
    cpu_cores_used_by_other_processes: Measured<f64>,
    postgres: Measured<Option<&'a PgRates>>,
    handler_ms_mean: BTreeMap<&'a str, HandlerJson>,
    /// Per service, from `saga_batch_seconds` (absent for an implementation without it).
    batches: BTreeMap<String, BatchUse>,
    timeline: Vec<BucketJson>,
}

/// The stages between intake and the end, as `stages_ms`.
#[derive(Serialize)]
struct StagesJson<'a> {
    created: &'a Pct,
    reservation: &'a Pct,
    confirmation: &'a Pct,
    payment: &'a Pct,
}

impl<'a> StagesJson<'a> {
    fn of(s: &'a Stages) -> StagesJson<'a> {
        StagesJson {
            created: &s.created,
            reservation: &s.reservation,
            confirmation: &s.confirmation,
            payment: &s.payment,
        }
    }
}

#[derive(Serialize)]
struct UnloadedJson<'a> {
    orders: usize,
    intake_ms: &'a Pct,
    e2e_ms: &'a Pct,
    stages_ms: StagesJson<'a>,
}

#[derive(Serialize)]
struct IdleJson<'a> {
    seconds: f64,
    #[serde(serialize_with = "r2_map")]
    cpu_cores_used: &'a BTreeMap<String, f64>,
    #[serde(serialize_with = "r2")]
    machine_cpu_busy_pct: f64,
}

#[derive(Serialize)]
struct FindMaxJson<'a> {
    criterion: String,
    step_factor: f64,
    /// Steps run between the highest passing rate and the first failing one, after it.
    refine: u32,
    steps: Vec<StepJson<'a>>,
}

#[derive(Serialize)]
struct HandlerJson {
    #[serde(serialize_with = "r2")]
    mean: f64,
    records: f64,
}

#[derive(Serialize)]
struct BucketJson {
    second: usize,
    sent: usize,
    completed: usize,
    #[serde(serialize_with = "r2")]
    e2e_p50: f64,
    #[serde(serialize_with = "r2")]
    e2e_p99: f64,
}

#[derive(Serialize)]
struct MachineJson<'a> {
    cores: usize,
    memory: String,
    memory_mb: f64,
    cpu_model: &'a str,
    load_average_before: &'a str,
    load_average_after: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throughput_target_is_judged_only_by_a_run_that_tried_it() {
        assert_eq!(sustained_met(false, 20.0, Some(20.0)), None, "a slow fixed-rate run did not try");
        assert_eq!(sustained_met(false, 600.0, Some(600.0)), Some(true));
        assert_eq!(sustained_met(false, 600.0, None), Some(false), "600/s ran and failed its p99");
        assert_eq!(sustained_met(true, 476.0, Some(381.0)), Some(false), "find-max topped out below 500/s");
        assert_eq!(sustained_met(true, 744.0, Some(595.0)), Some(true));
    }
}
