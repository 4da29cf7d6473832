//! `saga-conformance selftest`: the suite tests itself (mutation testing with hand-written
//! mutants). The reference services carry seeded faults behind the `failpoints` cargo feature
//! (`services/kit/src/failpoint.rs`); for each fault in [`FAULTS`] this starts the processes
//! backend with the `*-failpoints` binaries and the fault's `FAILPOINTS` in the services'
//! environment, runs the families the fault can touch, and requires at least one scenario of
//! the family named for it to fail. A baseline run of the same families with no fault seeded
//! must pass first, or the kill matrix would mean nothing. The matrix (fault × failing
//! requirements) is printed and written to `selftest.json` and `index.html`.

use crate::Service;
use crate::backend::processes::ServiceVariant;
use crate::config::{BackendKind, Config};
use crate::report::Status;
use crate::svg::esc;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One seeded bug and what must catch it.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// Short id, also the report's sub-directory.
    pub name: &'static str,
    /// The bug, as a reviewer would describe it.
    pub bug: &'static str,
    /// The requirement family that must catch it (a scenario tagged `@<family>` fails).
    pub family: &'static str,
    /// The scenarios run for it: the families (or requirements) it can touch.
    pub tags: &'static str,
    /// `FAILPOINTS` per service that carries the bug.
    pub seeds: &'static [(Service, &'static str)],
}

const ALL: [Service; 3] = Service::ALL;

/// The seeded faults: at least one per requirement family and one per crash window.
pub const FAULTS: &[Fault] = &[
    Fault {
        name: "stock-before-reserve",
        bug: "stock.reserved reports the stock read before the decrement, not what is left",
        family: "FLOW",
        tags: "@FLOW",
        seeds: &[(Service::Product, "product::stock-before-reserve=return")],
    },
    Fault {
        name: "no-cancel-push",
        bug: "the cancellation push is never sent",
        family: "FAIL",
        tags: "@FAIL",
        seeds: &[(Service::Order, "order::no-cancel-push=return")],
    },
    Fault {
        name: "skip-price-check",
        bug: "the Product Service does not compare the client's unitPrice with the catalogue",
        family: "FAIL",
        tags: "@FAIL",
        seeds: &[(Service::Product, "product::skip-price-check=return")],
    },
    Fault {
        name: "not-idempotent",
        bug: "the Order Service neither dedupes by eventId nor checks the order's status",
        family: "IDEMP",
        tags: "@IDEMP",
        seeds: &[(Service::Order, "kit::no-dedupe=return;order::ignore-status=return")],
    },
    Fault {
        name: "key-by-event-id",
        bug: "order.confirmed / order.cancelled are keyed by their eventId instead of the orderId",
        family: "ORDER",
        tags: "@ORDER",
        seeds: &[(Service::Order, "kit::key-by-event-id=return")],
    },
    Fault {
        name: "slow-intake",
        bug: "the intake does 400 ms of work in line before answering",
        family: "TIME",
        tags: "@TIME",
        seeds: &[(Service::Order, "order::slow-intake=return(400)")],
    },
    Fault {
        name: "intake-waits-for-stock",
        bug: "the intake holds its answer until the Product Service has decided (up to 10 s)",
        family: "COUPLING",
        tags: "@COUPLING-1 or @COUPLING-3",
        seeds: &[(Service::Order, "order::intake-waits-for-stock=return(10000)")],
    },
    Fault {
        name: "plain-avro",
        bug: "the Product Service writes plain Avro, without the Confluent header",
        family: "WIRE",
        tags: "@WIRE",
        seeds: &[(Service::Product, "kit::plain-avro=return")],
    },
    Fault {
        name: "poison-retried-forever",
        bug: "a record that cannot be decoded is retried forever instead of dead-lettered",
        family: "INPUT",
        tags: "@INPUT-4 or @INPUT-5",
        seeds: &[(Service::Product, "kit::poison-retried-forever=return")],
    },
    Fault {
        name: "lost-update",
        bug: "stock is read without FOR UPDATE and the value read is written back (lost update, oversell)",
        family: "STOCK",
        tags: "@STOCK",
        seeds: &[(Service::Product, "product::lost-update=return(20)")],
    },
    Fault {
        name: "float-total",
        bug: "the order total is added up in binary floating point and its cents truncated",
        family: "FLOW",
        tags: "@FLOW",
        seeds: &[(Service::Order, "order::float-total=return")],
    },
    Fault {
        name: "push-own-event-id",
        bug: "the PAYMENT_WAIT push carries a fresh eventId instead of the order.confirmed that caused it",
        family: "FIELDS",
        tags: "@FLOW",
        seeds: &[(Service::Payment, "payment::push-own-event-id=return")],
    },
    Fault {
        name: "timestamp-seconds",
        bug: "order.confirmed carries eventTimestamp in epoch seconds where milliseconds are due",
        family: "FIELDS",
        tags: "@FLOW",
        seeds: &[(Service::Order, "order::timestamp-seconds=return")],
    },
    Fault {
        name: "confirm-cancelled-order",
        bug: "stock.reserved moves the order whatever its status (only the eventId dedupe guards it)",
        family: "LATE",
        tags: "@LATE",
        seeds: &[(Service::Order, "order::ignore-status=return")],
    },
    Fault {
        name: "payment-dedupe-by-event-only",
        bug: "payments are deduped by eventId only: no one-payment-per-order constraint",
        family: "LATE",
        tags: "@LATE",
        seeds: &[(Service::Payment, "payment::no-unique-order=return")],
    },
    Fault {
        name: "dedupe-in-memory",
        bug: "the Order Service remembers handled eventIds in memory only (forgotten on restart)",
        family: "IDEMP",
        tags: "@IDEMP",
        seeds: &[(Service::Order, "kit::dedupe-in-memory=return;order::ignore-status=return")],
    },
    Fault {
        name: "payment-dedupe-in-memory",
        bug: "the Payment Service remembers handled eventIds in memory only (forgotten on restart) and has no one-payment-per-order check",
        family: "IDEMP",
        tags: "@IDEMP",
        seeds: &[(Service::Payment, "kit::dedupe-in-memory=return;payment::no-unique-order=return")],
    },
    Fault {
        name: "publish-from-memory",
        bug: "crash window commit → publish: events are published 300 ms after commit from memory, with no outbox row",
        family: "CRASH",
        tags: "@CRASH-1",
        seeds: &[
            (Service::Order, "kit::publish-from-memory=return(300)"),
            (Service::Product, "kit::publish-from-memory=return(300)"),
            (Service::Payment, "kit::publish-from-memory=return(300)"),
        ],
    },
    Fault {
        name: "offset-before-effect",
        bug: "crash window effect → offset: the offset is committed 100 ms before the handler's transaction",
        family: "CRASH",
        tags: "@CRASH-1",
        seeds: &[(Service::Product, "kit::offset-before-effect=return(100)")],
    },
    Fault {
        name: "push-from-memory",
        bug: "crash window publish → push: the PAYMENT_WAIT push is sent 300 ms after commit from memory, with no outbox row",
        family: "CRASH",
        tags: "@CRASH-1",
        seeds: &[(Service::Payment, "kit::push-from-memory=return(300)")],
    },
    Fault {
        name: "keep-good-lines",
        bug: "a refused reservation keeps the lines taken before the failing one (request order): not all or none",
        family: "FAIL",
        tags: "@FAIL",
        seeds: &[(Service::Product, "product::keep-good-lines=return")],
    },
    Fault {
        name: "duplicate-lines-per-line",
        bug: "intake accepts two lines of one product, and each line is checked alone against the stock (oversell)",
        family: "FAIL",
        tags: "@FAIL",
        seeds: &[
            (Service::Order, "order::accept-duplicate-lines=return"),
            (Service::Product, "product::per-line-stock-check=return"),
        ],
    },
    Fault {
        name: "unordered-locks",
        bug: "stock rows locked one by one in request order, 200 ms apart (A+B and B+A deadlock), and the deadlock taken for poison",
        family: "STOCK",
        tags: "@STOCK-3",
        seeds: &[(Service::Product, "product::unordered-locks=return(200)")],
    },
    Fault {
        name: "cancel-without-guard",
        bug: "stock.reservation.failed cancels the order whatever its status: the cancel path has no guard",
        family: "LATE",
        tags: "@LATE",
        seeds: &[(Service::Order, "order::cancel-ignores-status=return")],
    },
    Fault {
        name: "push-forgotten-on-error",
        bug: "a push is sent once and forgotten when the gateway answers 5xx or does not answer",
        family: "PUSH",
        tags: "@PUSH",
        seeds: &[
            (Service::Order, "kit::push-forgotten-on-error=return"),
            (Service::Payment, "kit::push-forgotten-on-error=return"),
        ],
    },
    Fault {
        name: "decode-with-own-schema",
        bug: "consumers decode with their own copy of the schema, ignoring the writer's schema id",
        family: "WIRE",
        tags: "@WIRE",
        seeds: &[
            (Service::Order, "kit::decode-with-own-schema=return"),
            (Service::Product, "kit::decode-with-own-schema=return"),
            (Service::Payment, "kit::decode-with-own-schema=return"),
        ],
    },
    Fault {
        name: "publish-before-commit",
        bug: "the intake publishes order.created before its transaction commits (no outbox row): a failed commit leaves a record for an order that does not exist",
        family: "CRASH",
        tags: "@CRASH-3",
        seeds: &[(Service::Order, "order::publish-before-commit=return")],
    },
    Fault {
        name: "skip-after-retries",
        bug: "a consumer gives up on a record after 5 failed attempts (~1.5 s) and commits past it",
        family: "CRASH",
        tags: "@CRASH-5",
        seeds: &[
            (Service::Order, "kit::skip-after-retries=return(5)"),
            (Service::Product, "kit::skip-after-retries=return(5)"),
            (Service::Payment, "kit::skip-after-retries=return(5)"),
        ],
    },
    Fault {
        name: "no-total-cap",
        bug: "the intake caps each line's amount but not the order's total (two lines may sum past 99,999,999.99)",
        family: "INPUT",
        tags: "@INPUT-1",
        seeds: &[(Service::Order, "order::no-total-cap=return")],
    },
];

/// One row of the kill matrix.
#[derive(Debug, Clone, Serialize)]
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
        self.baseline.error.is_none()
            && self.baseline.failed == 0
            && self.baseline.passed > 0
            && self.caught() == self.kills.len()
    }

    pub fn closing_line(&self) -> String {
        format!(
            "selftest: {}/{} faults caught, baseline {} ({} passed, {} failed), {:.0} s",
            self.caught(),
            self.kills.len(),
            if self.baseline.error.is_none() && self.baseline.failed == 0 && self.baseline.passed > 0 {
                "green"
            } else {
                "NOT GREEN"
            },
            self.baseline.passed,
            self.baseline.failed,
            self.seconds
        )
    }
}

/// The faults named in `only` (all when empty); an unknown name is an error.
pub fn select(only: &[String]) -> anyhow::Result<Vec<Fault>> {
    if only.is_empty() {
        return Ok(FAULTS.to_vec());
    }
    only.iter()
        .map(|name| {
            FAULTS.iter().find(|f| f.name == name).copied().ok_or_else(|| {
                anyhow::anyhow!(
                    "no seeded fault {name:?}; known: {}",
                    FAULTS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect()
}

/// Runs the baseline, then every fault, each on a fresh stack under `report_dir/<fault>`.
pub async fn run(base: Config, faults: &[Fault], report_dir: &Path) -> anyhow::Result<SelfTest> {
    let began = Instant::now();
    std::fs::create_dir_all(report_dir)?;
    let union = faults.iter().map(|f| format!("({})", f.tags)).collect::<Vec<_>>().join(" or ");
    let baseline_fault = Fault {
        name: "baseline",
        bug: "nothing seeded: the failpoint build must conform",
        family: "",
        tags: "",
        seeds: &[],
    };
    eprintln!("[selftest] baseline: {union}");
    let baseline = run_one(&base, &baseline_fault, &union, report_dir).await;
    let mut kills = Vec::new();
    for fault in faults {
        eprintln!(
            "[selftest {:>5.0}s] {} ({}): {}",
            began.elapsed().as_secs_f64(),
            fault.name,
            fault.family,
            fault.tags
        );
        let kill = run_one(&base, fault, fault.tags, report_dir).await;
        eprintln!(
            "[selftest {:>5.0}s] {} → {}",
            began.elapsed().as_secs_f64(),
            fault.name,
            if kill.caught { "caught" } else { "NOT CAUGHT" }
        );
        kills.push(kill);
    }
    let result = SelfTest { baseline, kills, seconds: began.elapsed().as_secs_f64() };
    std::fs::write(report_dir.join("selftest.json"), serde_json::to_string_pretty(&result)?)?;
    std::fs::write(report_dir.join("index.html"), html(&result))?;
    Ok(result)
}

async fn run_one(base: &Config, fault: &Fault, tags: &str, report_dir: &Path) -> Kill {
    let started = Instant::now();
    let mut config = base.clone();
    config.backend = BackendKind::Processes;
    config.report_dir = report_dir.join(fault.name);
    let mut env: std::collections::HashMap<Service, Vec<(String, String)>> =
        ALL.iter().map(|s| (*s, Vec::new())).collect();
    for (service, failpoints) in fault.seeds {
        env.entry(*service).or_default().push(("FAILPOINTS".into(), (*failpoints).into()));
    }
    config.service_variant = ServiceVariant { bin_suffix: "-failpoints".into(), env };
    let mut kill = Kill {
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
        report_dir: config.report_dir.clone(),
    };
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
    let baseline_ok = result.baseline.error.is_none() && result.baseline.failed == 0 && result.baseline.passed > 0;
    line(&result.baseline, if baseline_ok { "green" } else { "NOT GREEN" });
    for k in &result.kills {
        line(k, if k.caught { "caught" } else { "NOT CAUGHT" });
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
    let baseline_ok = result.baseline.error.is_none() && result.baseline.failed == 0 && result.baseline.passed > 0;
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
        let red_baseline = SelfTest { baseline: kill("", false, 2), kills: vec![kill("FLOW", true, 1)], seconds: 0.0 };
        assert!(!red_baseline.ok());
    }

    #[test]
    fn every_family_and_crash_window_has_a_fault_with_a_unique_name() {
        let mut names: Vec<&str> = FAULTS.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FAULTS.len(), "fault names must be unique (they name report directories)");
        for family in [
            "FLOW", "FAIL", "ORDER", "IDEMP", "TIME", "COUPLING", "WIRE", "INPUT", "STOCK", "LATE", "CRASH", "FIELDS",
            "PUSH",
        ] {
            assert!(FAULTS.iter().any(|f| f.family == family), "no seeded fault for {family}");
        }
        for f in FAULTS {
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
    fn unknown_fault_names_are_refused() {
        assert!(select(&["no-such-fault".into()]).is_err());
        assert_eq!(select(&["plain-avro".into()]).unwrap().len(), 1);
    }
}
