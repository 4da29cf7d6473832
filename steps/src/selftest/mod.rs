//! `saga-conformance selftest`: the suite tests itself (mutation testing with hand-written
//! mutants). The reference services carry seeded faults behind the `failpoints` cargo feature
//! (`services/kit/src/failpoint.rs`); for each fault in [`SEEDED_BUGS`] this starts the processes
//! backend with the `*-failpoints` binaries and the fault's `FAILPOINTS` in the services'
//! environment, runs the families the fault can touch, and requires at least one scenario of
//! the family named for it to fail. A baseline run of the same families with no fault seeded
//! must pass, or the kill matrix would mean nothing. The runs go side by side, each in a
//! process of its own ([`jobs`], `--jobs`), with the waits cut to the reference's needs
//! (`OUTCOME_SECONDS`, `SETTLE_SECONDS`). The matrix (fault × failing requirements) is
//! printed and written to `selftest.json` and `index.html`.
//!
//! `--backend containers` runs the faults a backend fault catches ([`SeededBug::through_backend`]:
//! a kill, a stop, a pause, a database taken away take another path there) against the
//! `saga-*-service:failpoints` images (`docker/images.sh build failpoints`).

pub mod bugs;
pub mod jobs;

use bugs::{SEEDED_BUGS, SeededBug};
use jobs::Launcher;

use crate::Service;
use crate::config::sections::GroupNames;
use crate::config::{BackendKind, Config};
use crate::results::Status;
use crate::svg::esc;
use crate::types::ServiceVariant;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One row of the kill matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kill {
    pub fault: String,
    pub bug: String,
    pub family: String,
    pub tags: String,
    pub failpoints: Vec<(String, String)>,
    /// At least one scenario of `family` failed.
    pub caught: bool,
    /// Requirement ids of the failed scenarios (any family).
    pub failing: Vec<String>,
    pub passed: usize,
    pub failed: usize,
    /// Why the run could not happen (the fault then counts as not caught).
    pub error: Option<String>,
    pub seconds: f64,
    pub report_dir: PathBuf,
}

impl Kill {
    /// `fault`'s row before its run: nothing judged yet.
    fn new(fault: &SeededBug, tags: &str, report_dir: PathBuf) -> Kill {
        Kill {
            fault: fault.name.into(),
            bug: fault.bug.into(),
            family: fault.family.into(),
            tags: tags.into(),
            failpoints: fault.seeds.iter().map(|(s, f)| (s.binary().to_string(), (*f).to_string())).collect(),
            caught: false,
            failing: Vec::new(),
            passed: 0,
            failed: 0,
            error: None,
            seconds: 0.0,
            report_dir,
        }
    }

    /// The baseline's verdict: it ran, passed something and failed nothing.
    fn green(&self) -> bool {
        self.error.is_none() && self.failed == 0 && self.passed > 0
    }

    /// The matrix's word for this row, the baseline's (`baseline`) or a fault's.
    fn verdict(&self, baseline: bool) -> &'static str {
        match (baseline, self.green(), self.caught) {
            (true, true, _) => "green",
            (true, false, _) => "NOT GREEN",
            (false, _, true) => "caught",
            (false, _, false) => "NOT CAUGHT",
        }
    }
}

/// The whole self-test's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SelfTest {
    /// The baseline (nothing seeded) over every fault's families: must be all green.
    pub baseline: Kill,
    pub kills: Vec<Kill>,
    pub seconds: f64,
}

impl SelfTest {
    pub fn caught(&self) -> usize {
        self.kills.iter().filter(|k| k.caught).count()
    }

    /// The bar: a green baseline and every fault caught.
    pub fn ok(&self) -> bool {
        self.baseline.green() && self.caught() == self.kills.len()
    }

    pub fn closing_line(&self) -> String {
        format!(
            "selftest: {}/{} faults caught, baseline {} ({} passed, {} failed), {:.0} s",
            self.caught(),
            self.kills.len(),
            self.baseline.verdict(true),
            self.baseline.passed,
            self.baseline.failed,
            self.seconds
        )
    }
}

/// The faults named in `only` (all when empty) that can run on `backend`, each with the
/// scenarios run for it there; an unknown name, or one no backend fault catches asked for on
/// the containers backend, is an error.
pub fn select(only: &[String], backend: BackendKind) -> anyhow::Result<Vec<SeededBug>> {
    let on_backend = |f: &SeededBug| match backend {
        BackendKind::Containers => f.through_backend.map(|tags| SeededBug { tags, ..*f }),
        _ => Some(*f),
    };
    if only.is_empty() {
        return Ok(SEEDED_BUGS.iter().filter_map(on_backend).collect());
    }
    only.iter()
        .map(|name| {
            let fault = SEEDED_BUGS.iter().find(|f| f.name == name).ok_or_else(|| {
                anyhow::anyhow!(
                    "no seeded fault {name:?}; known: {}",
                    SEEDED_BUGS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                )
            })?;
            on_backend(fault).ok_or_else(|| {
                anyhow::anyhow!(
                    "{name} is caught without a backend fault, so the self-test runs it on processes only; on {backend:?}: {}",
                    SEEDED_BUGS.iter().filter(|f| f.through_backend.is_some()).map(|f| f.name).collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect()
}

/// The baseline's row: the failpoint build with nothing seeded, over every fault's scenarios.
const BASELINE: SeededBug = SeededBug {
    name: "baseline",
    bug: "nothing seeded: the failpoint build must conform",
    family: "",
    tags: "",
    through_backend: None,
    seeds: &[],
};

/// Runs the baseline and every fault, each on a fresh stack in a process of its own
/// (`launcher`), at most `jobs` at a time: the baseline starts first and runs beside the
/// faults, so it passes under the load they put on the machine or the self-test fails.
/// Progress goes to stderr as each run starts and ends; the results keep the faults' order.
pub async fn run(
    faults: &[SeededBug],
    report_dir: &Path,
    launcher: &Launcher,
    jobs: usize,
) -> anyhow::Result<SelfTest> {
    let began = Instant::now();
    std::fs::create_dir_all(report_dir)?;
    let union = faults.iter().map(|f| format!("({})", f.tags)).collect::<Vec<_>>().join(" or ");
    let runs: Vec<(SeededBug, String)> =
        std::iter::once((BASELINE, union)).chain(faults.iter().map(|f| (*f, f.tags.to_string()))).collect();
    eprintln!("[selftest] {} runs (the baseline and {} faults), {} at a time", runs.len(), faults.len(), jobs.max(1));
    let at = || format!("[selftest {:>5.0}s]", began.elapsed().as_secs_f64());
    let mut kills = jobs::schedule(runs.len(), jobs, |i| {
        let (fault, tags) = &runs[i];
        let at = &at;
        async move {
            eprintln!(
                "{} {} ({}) starts: {tags}",
                at(),
                fault.name,
                if i == 0 { "all families" } else { fault.family }
            );
            let kill = launcher.run(fault, tags, report_dir).await;
            let verdict = match &kill.error {
                Some(e) => format!("could not run: {e}"),
                None => kill.verdict(i == 0).to_string(),
            };
            eprintln!(
                "{} {} → {verdict} ({} passed, {} failed, {:.0} s)",
                at(),
                fault.name,
                kill.passed,
                kill.failed,
                kill.seconds
            );
            kill
        }
    })
    .await;
    let baseline = kills.remove(0);
    let result = SelfTest { baseline, kills, seconds: began.elapsed().as_secs_f64() };
    std::fs::write(report_dir.join("selftest.json"), serde_json::to_string_pretty(&result)?)?;
    std::fs::write(report_dir.join("index.html"), html(&result))?;
    Ok(result)
}

/// One run, in the process [`run`] started for it (`selftest --run-one NAME --tags TAGS`):
/// `name` (a fault, or `baseline`) seeded, `tags` run, its [`Kill`] written to
/// `report_dir/NAME/kill.json`.
pub async fn run_child(base: Config, name: &str, tags: &str, report_dir: &Path) -> anyhow::Result<()> {
    let fault = match name {
        "baseline" => BASELINE,
        _ => select(&[name.to_string()], base.backend)?[0],
    };
    let kill = run_one(&base, &fault, tags, report_dir).await;
    std::fs::write(jobs::kill_file(report_dir, name), serde_json::to_string_pretty(&kill)?)?;
    Ok(())
}

/// The longest the self-test waits for one order's outcome (`[deadlines] outcome_seconds`,
/// lowered to this when higher) and gives the load's orders and pushes to settle (`[capacity]
/// settle_seconds`, likewise). It runs the reference, whatever implementation the
/// configuration declares: in the baselines measured (docs/selftest.md) its slowest step that
/// waits for one order took 1.8 s and its slowest crash load settled in 5.0 s (7.8 s and 5.6 s
/// in every passing run of the reference kept on the machine, whole suites included). A caught
/// fault mostly waits one of these out, once per failing scenario; a bound too tight shows as a
/// red baseline (run with the same bounds, beside the faults), never as a fault caught.
const OUTCOME_SECONDS: u64 = 15;
const SETTLE_SECONDS: u64 = 15;

/// The configuration of one self-test run: `base` on its backend (processes, or containers with
/// the `:failpoints` images) with the failpoint build, `fault` seeded, its report in
/// `report_dir/<fault>`, and at most [`OUTCOME_SECONDS`] and [`SETTLE_SECONDS`] of waiting.
fn config_for(base: &Config, fault: &SeededBug, report_dir: &Path) -> Config {
    let mut config = base.clone();
    config.report_dir = report_dir.join(fault.name);
    config.deadlines.outcome_seconds = config.deadlines.outcome_seconds.min(OUTCOME_SECONDS);
    config.capacity.settle_seconds = config.capacity.settle_seconds.min(SETTLE_SECONDS);
    if config.backend == BackendKind::Containers {
        // The reference's images with the seeded faults built in; their consumer groups are the
        // reference's (the kit knows a service's groups only for the reference's own image).
        let images = &mut config.containers;
        for image in [&mut images.order, &mut images.product, &mut images.payment] {
            *image = format!("{}:failpoints", image.split(':').next().unwrap_or(image));
        }
        for (service, groups) in crate::types::reference_consumer_groups() {
            images.consumer_groups.insert(service.to_string(), GroupNames::Several(groups));
        }
    } else {
        config.backend = BackendKind::Processes;
    }
    let mut env: std::collections::HashMap<Service, Vec<(String, String)>> =
        Service::ALL.iter().map(|s| (*s, Vec::new())).collect();
    for (service, failpoints) in fault.seeds {
        env.entry(*service).or_default().push(("FAILPOINTS".into(), (*failpoints).into()));
    }
    config.service_variant = ServiceVariant { bin_suffix: "-failpoints".into(), env };
    config
}

async fn run_one(base: &Config, fault: &SeededBug, tags: &str, report_dir: &Path) -> Kill {
    let started = Instant::now();
    let config = config_for(base, fault, report_dir);
    let mut kill = Kill::new(fault, tags, config.report_dir.clone());
    match crate::runner::run(config, Some(tags.to_string())).await {
        Ok(summary) => {
            // The run's judged results: the scenarios plus the run-level FIELDS-1 check. A
            // skipped scenario is neither caught nor passed; the backend offers every
            // capability, so none is expected here.
            let results = &summary.results;
            // A scenario not judged neither caught the fault nor passed.
            let failed: Vec<_> = results.iter().filter(|r| r.status.is_failure()).collect();
            kill.passed = results.iter().filter(|r| r.status == Status::Passed).count();
            kill.failed = failed.len();
            if results.iter().all(|r| r.tags.iter().any(|t| t == "FIELDS-1")) {
                kill.error =
                    Some(format!("no scenario matches {tags}: the scenario that should catch this fault is missing"));
            }
            kill.caught = !fault.family.is_empty() && failed.iter().any(|r| r.tags.iter().any(|t| t == fault.family));
            let mut failing: Vec<String> = failed.iter().flat_map(|r| r.requirements()).map(str::to_string).collect();
            failing.sort();
            failing.dedup();
            kill.failing = failing;
        }
        Err(e) => kill.error = Some(format!("{e:#}")),
    }
    kill.seconds = started.elapsed().as_secs_f64();
    kill
}

/// The kill matrix as text, one line per fault.
pub fn matrix(result: &SelfTest) -> String {
    let mut out = String::from("fault                     family    caught      failing requirements\n");
    let mut line = |k: &Kill, verdict: &str| {
        let failing = if let Some(e) = &k.error {
            format!("could not run: {e}")
        } else if k.failing.is_empty() {
            "—".into()
        } else {
            k.failing.join(" ")
        };
        let _ = writeln!(out, "{:<25} {:<9} {:<11} {failing}  ({:.0} s)", k.fault, k.family, verdict, k.seconds);
    };
    line(&result.baseline, result.baseline.verdict(true));
    for k in &result.kills {
        line(k, k.verdict(false));
    }
    out
}

fn html(result: &SelfTest) -> String {
    let mut h = String::new();
    let (cls, word) = if result.ok() { ("ok", "ALL CAUGHT") } else { ("bad", "NOT ALL CAUGHT") };
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Saga conformance self-test</title><style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}}
.verdict{{display:inline-block;padding:.3rem .8rem;border-radius:4px;font-weight:600;color:#fff}}
.ok{{background:#2e7d32}} .bad{{background:#c62828}}
table{{border-collapse:collapse;width:100%;margin:1rem 0}} th,td{{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}}
th{{background:#f4f4f4}} .pill{{padding:.05rem .45rem;border-radius:3px;color:#fff;font-size:.85em}} code{{font-size:.85em}}
</style></head><body><h1>Self-test: the kill matrix</h1>
<p>Each row is a realistic bug seeded into the reference services (cargo feature <code>failpoints</code>), run against the families it can touch; it is caught when a scenario of its family fails.</p>
<p><span class="verdict {cls}">{word}</span> &nbsp; {caught}/{n} faults caught · {secs:.0} s</p>
<table><tr><th>Fault</th><th>Bug</th><th>Family</th><th>Verdict</th><th>Failing requirements</th><th>Seeded</th><th>Time</th></tr>"#,
        caught = result.caught(),
        n = result.kills.len(),
        secs = result.seconds,
    );
    let baseline_ok = result.baseline.green();
    for (k, ok, verdict) in
        std::iter::once((&result.baseline, baseline_ok, if baseline_ok { "green" } else { "not green" }))
            .chain(result.kills.iter().map(|k| (k, k.caught, if k.caught { "caught" } else { "not caught" })))
    {
        let failing = match &k.error {
            Some(e) => format!("could not run: {}", esc(e)),
            None => format!(
                "{} <small>({} passed, {} failed; <a href=\"{}/index.html\">report</a>)</small>",
                esc(&k.failing.join(" ")),
                k.passed,
                k.failed,
                esc(&k.fault)
            ),
        };
        let seeded = k
            .failpoints
            .iter()
            .map(|(s, f)| format!("{}: <code>{}</code>", esc(s), esc(f)))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td><span class=\"pill {}\">{verdict}</span></td><td>{failing}</td><td>{seeded}</td><td>{:.0} s</td></tr>",
            esc(&k.fault),
            esc(&k.bug),
            esc(&k.family),
            if ok { "ok" } else { "bad" },
            k.seconds
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(family: &str, caught: bool, failed: usize) -> Kill {
        Kill {
            fault: "f".into(),
            bug: String::new(),
            family: family.into(),
            tags: String::new(),
            failpoints: Vec::new(),
            caught,
            failing: Vec::new(),
            passed: 3,
            failed,
            error: None,
            seconds: 0.0,
            report_dir: PathBuf::new(),
        }
    }

    #[test]
    fn a_fault_not_caught_or_a_red_baseline_fails_the_self_test() {
        let green = SelfTest { baseline: kill("", false, 0), kills: vec![kill("FLOW", true, 1)], seconds: 0.0 };
        assert!(green.ok());
        let missed = SelfTest {
            baseline: kill("", false, 0),
            kills: vec![kill("FLOW", true, 1), kill("FAIL", false, 0)],
            seconds: 0.0,
        };
        assert!(!missed.ok());
        assert!(matrix(&missed).contains("NOT CAUGHT"));
        // Every fault "caught" beside a red baseline proves nothing: a bound too tight fails both.
        let red_baseline = SelfTest { baseline: kill("", false, 2), kills: vec![kill("FLOW", true, 1)], seconds: 0.0 };
        assert!(!red_baseline.ok());
        assert!(red_baseline.closing_line().contains("1/1 faults caught, baseline NOT GREEN"));
        let mut not_run = kill("", false, 0);
        not_run.error = Some("could not start".into());
        assert!(!SelfTest { baseline: not_run, kills: vec![kill("FLOW", true, 1)], seconds: 0.0 }.ok());
    }

    #[test]
    fn every_family_and_crash_window_has_a_fault_with_a_unique_name() {
        let mut names: Vec<&str> = SEEDED_BUGS.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SEEDED_BUGS.len(), "fault names must be unique (they name report directories)");
        for family in [
            "FLOW", "FAIL", "ORDER", "IDEMP", "TIME", "COUPLING", "WIRE", "INPUT", "STOCK", "LATE", "CRASH", "FIELDS",
            "PUSH",
        ] {
            assert!(SEEDED_BUGS.iter().any(|f| f.family == family), "no seeded fault for {family}");
        }
        for f in SEEDED_BUGS {
            assert!(
                f.tags.parse::<cucumber::gherkin::tagexpr::TagOperation>().is_ok(),
                "{}: {:?} is not a tag expression",
                f.name,
                f.tags
            );
            // FIELDS-1 is checked at the end of every run, whatever the tags.
            assert!(
                f.family == "FIELDS" || f.tags.contains(&format!("@{}", f.family)),
                "{}: runs {:?}, which does not include its family {}",
                f.name,
                f.tags,
                f.family
            );
            assert!(!f.seeds.is_empty(), "{} seeds nothing", f.name);
        }
    }

    #[test]
    fn a_run_seeds_its_fault_on_the_failpoint_build_with_bounds_no_longer_than_the_references() {
        let fault = select(&["push-forgotten-on-error".into()], BackendKind::Processes).unwrap()[0];
        let mut base = Config::default();
        base.capacity.settle_seconds = 120;
        let config = config_for(&base, &fault, Path::new("/r"));
        assert_eq!(config.capacity.settle_seconds, SETTLE_SECONDS, "lowered to the reference's");
        assert_eq!(config.deadlines.outcome_seconds, OUTCOME_SECONDS, "the default 30 s lowered to the reference's");
        assert!(OUTCOME_SECONDS < Config::default().deadlines.outcome_seconds);
        assert_eq!(
            (config.backend, config.report_dir.as_path()),
            (BackendKind::Processes, Path::new("/r/push-forgotten-on-error"))
        );
        assert_eq!(config.service_variant.bin_suffix, "-failpoints");
        let seeded = &config.service_variant.env[&Service::Payment];
        assert_eq!(seeded, &vec![("FAILPOINTS".to_string(), "kit::push-forgotten-on-error=return".to_string())]);
        (base.capacity.settle_seconds, base.deadlines.outcome_seconds) = (10, 5);
        let shorter = config_for(&base, &fault, Path::new("/r"));
        assert_eq!(
            (shorter.capacity.settle_seconds, shorter.deadlines.outcome_seconds),
            (10, 5),
            "shorter bounds stay"
        );
        base.backend = BackendKind::Containers;
        let config = config_for(&base, &fault, Path::new("/r"));
        assert_eq!(config.containers.payment, "saga-payment-service:failpoints");
        assert_eq!(
            config.consumer_groups().unwrap(),
            crate::types::reference_consumer_groups(),
            "the reference's groups"
        );
    }

    #[test]
    fn unknown_fault_names_are_refused() {
        assert!(select(&["no-such-fault".into()], BackendKind::Processes).is_err());
        assert_eq!(select(&["plain-avro".into()], BackendKind::Processes).unwrap().len(), 1);
    }

    #[test]
    fn on_containers_only_the_faults_a_backend_fault_catches_run_with_those_scenarios() {
        let all = select(&[], BackendKind::Containers).unwrap();
        assert!(!all.is_empty() && all.len() < SEEDED_BUGS.len(), "{} of {}", all.len(), SEEDED_BUGS.len());
        assert!(all.iter().all(|f| Some(f.tags) == f.through_backend), "each runs its through_backend scenarios");
        for window in ["publish-from-memory", "offset-before-effect", "push-from-memory", "publish-before-commit"] {
            assert!(all.iter().any(|f| f.name == window), "{window} (a crash window) must run on containers");
        }
        // A fault caught over HTTP and Kafka alone is the same on every backend: asked for by name it is refused.
        let err = select(&["plain-avro".into()], BackendKind::Containers).unwrap_err().to_string();
        assert!(err.contains("processes only") && err.contains("skip-after-retries"), "{err}");
    }
}
