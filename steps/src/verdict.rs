//! The verdict of a run, in the manner of the Reactive Streams TCK and Pact: every scenario
//! carries a level (RFC 2119) — `@must` (required) or `@should` (optional: an implementation
//! may lack the capability, and the scenario is then skipped; when it runs, it must pass).
//! A run where a `@must` scenario could not run is INCOMPLETE, never CONFORMS. An
//! expected-failures baseline (`--baseline known.toml`) lets a team adopt the gate before it
//! conforms fully: the failures it lists are reported but do not fail the run, and a listed
//! requirement that passes is flagged so the baseline gets tightened.
//!
//! A scenario whose experiment did not hold (its precondition could not be made true, or the
//! implementation had not recovered from an earlier scenario) is *not judged*: neither a pass
//! nor a failure of the implementation, and the run is INCOMPLETE at best. A step ends its
//! scenario that way with [`crate::results::not_judged`].
//!
//! Exit codes: 0 conforms, 1 does not conform, 2 could not run, 3 incomplete.

use crate::results::{ScenarioResult, Skipped, Status};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A scenario's level: its `@must` / `@should` tag (`@must` when it has neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Level {
    Must,
    Should,
}

impl Level {
    pub fn of(tags: &[String]) -> Level {
        if tags.iter().any(|t| t == "should") { Level::Should } else { Level::Must }
    }
}

/// `known.toml`: requirement ids expected to fail, each with the reason.
///
/// ```toml
/// [expected_failures]
/// FLOW-4 = "confirmation push not implemented yet (TICKET-12)"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    #[serde(default)]
    pub expected_failures: BTreeMap<String, String>,
}

impl Baseline {
    pub fn load(path: &Path) -> anyhow::Result<Baseline> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the baseline {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!("{} is not a baseline: expected [expected_failures] with REQ-ID = \"reason\" lines", path.display())
        })
    }

    /// The reason a result is expected to fail, if the baseline lists one of its requirements.
    fn reason_for(&self, result: &ScenarioResult) -> Option<(String, String)> {
        result
            .requirements()
            .into_iter()
            .find_map(|id| self.expected_failures.get(id).map(|why| (id.to_string(), why.clone())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every required scenario ran and passed (known failures aside).
    Conforms,
    /// Every selected scenario passed, but `--tags` left some out: no claim about the rest.
    PassedSubset,
    /// A scenario failed that the baseline does not list.
    DoesNotConform,
    /// Nothing failed, but a `@must` scenario could not run, a scenario ran without a verdict
    /// (not judged), or nothing ran at all.
    Incomplete,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Conforms | Verdict::PassedSubset => 0,
            Verdict::DoesNotConform => 1,
            Verdict::Incomplete => 3,
        }
    }

    pub fn banner(self) -> &'static str {
        match self {
            Verdict::Conforms => "CONFORMS",
            Verdict::PassedSubset => "PASSED (subset)",
            Verdict::DoesNotConform => "DOES NOT CONFORM",
            Verdict::Incomplete => "INCOMPLETE",
        }
    }
}

/// A failure the baseline expected.
#[derive(Debug, Clone, Serialize)]
pub struct KnownFailure {
    pub requirement: String,
    pub scenario: String,
    pub reason: String,
}

/// The verdict and what it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub passed: usize,
    /// Failed scenarios the baseline does not list (feature — scenario).
    pub failed: Vec<String>,
    /// Scenarios that ran without a verdict (feature — scenario: reason).
    pub not_judged: Vec<String>,
    pub known_failures: Vec<KnownFailure>,
    /// Baseline entries whose scenarios all passed: the baseline can be tightened.
    pub fixed_known_failures: Vec<String>,
    /// Baseline entries that name no scenario of this run (a typo, or not selected).
    pub unmatched_baseline: Vec<String>,
    pub skipped_must: usize,
    pub skipped_should: usize,
    /// Scenarios `--tags` left out.
    pub not_selected: usize,
}

impl Judgement {
    /// Whether a scenario's failure is one the baseline expects.
    pub fn is_known_failure(&self, result: &ScenarioResult) -> bool {
        result.status.is_failure()
            && self
                .known_failures
                .iter()
                .any(|k| k.scenario == label(result) && result.requirements().contains(&k.requirement.as_str()))
    }

    /// The one line CI and people read last.
    pub fn closing_line(&self) -> String {
        let mut line =
            format!("conformance: {} — {} passed, {} failed", self.verdict.banner(), self.passed, self.failed.len());
        if !self.known_failures.is_empty() {
            line.push_str(&format!(", {} known failure(s)", self.known_failures.len()));
        }
        if !self.not_judged.is_empty() {
            line.push_str(&format!(", {} not judged", self.not_judged.len()));
        }
        let skipped = self.skipped_must + self.skipped_should;
        if skipped > 0 {
            line.push_str(&format!(", {skipped} skipped ({} required)", self.skipped_must));
        }
        if self.not_selected > 0 {
            line.push_str(&format!(", {} not selected", self.not_selected));
        }
        line
    }
}

fn label(result: &ScenarioResult) -> String {
    format!("{} — {}", result.feature, result.scenario)
}

/// Judges a run: `results` are the scenarios that ran, `skipped` those the backend could not
/// run, `not_selected` how many `--tags` left out.
pub fn judge(results: &[ScenarioResult], skipped: &[Skipped], baseline: &Baseline, not_selected: usize) -> Judgement {
    let mut failed = Vec::new();
    let mut known_failures = Vec::new();
    for r in results.iter().filter(|r| r.status.is_failure()) {
        match baseline.reason_for(r) {
            Some((requirement, reason)) => {
                known_failures.push(KnownFailure { requirement, scenario: label(r), reason })
            }
            None => failed.push(label(r)),
        }
    }
    let mut fixed_known_failures = Vec::new();
    let mut unmatched_baseline = Vec::new();
    for id in baseline.expected_failures.keys() {
        let of_id: Vec<&ScenarioResult> = results.iter().filter(|r| r.requirements().contains(&id.as_str())).collect();
        if of_id.is_empty() {
            unmatched_baseline.push(id.clone());
        } else if of_id.iter().all(|r| r.status == Status::Passed) {
            fixed_known_failures.push(id.clone());
        }
    }
    let not_judged: Vec<String> = results
        .iter()
        .filter(|r| r.status == Status::NotJudged)
        .map(|r| format!("{}: {}", label(r), r.error.as_deref().unwrap_or("not judged")))
        .collect();
    let skipped_must = skipped.iter().filter(|s| Level::of(&s.tags) == Level::Must).count();
    let passed = results.iter().filter(|r| r.status == Status::Passed).count();
    let verdict = if !failed.is_empty() {
        Verdict::DoesNotConform
    } else if skipped_must > 0 || !not_judged.is_empty() || results.is_empty() {
        Verdict::Incomplete
    } else if not_selected > 0 {
        Verdict::PassedSubset
    } else {
        Verdict::Conforms
    };
    Judgement {
        verdict,
        passed,
        failed,
        not_judged,
        known_failures,
        fixed_known_failures,
        unmatched_baseline,
        skipped_must,
        skipped_should: skipped.len() - skipped_must,
        not_selected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, level: &str, status: Status) -> ScenarioResult {
        ScenarioResult {
            feature: "F".into(),
            scenario: format!("scenario {id}"),
            tags: vec!["FAM".into(), id.into(), level.into()],
            status,
            failed_step: None,
            error: None,
            duration_ms: 1.0,
        }
    }

    fn skipped(id: &str, level: &str) -> Skipped {
        Skipped {
            feature: "F".into(),
            scenario: format!("scenario {id}"),
            tags: vec![id.into(), level.into()],
            reason: "needs kill-product".into(),
        }
    }

    fn baseline(entries: &[(&str, &str)]) -> Baseline {
        Baseline { expected_failures: entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn all_passed_and_nothing_skipped_conforms() {
        let j = judge(
            &[result("A-1", "must", Status::Passed), result("A-2", "should", Status::Passed)],
            &[],
            &Baseline::default(),
            0,
        );
        assert_eq!(j.verdict, Verdict::Conforms);
        assert_eq!(j.verdict.exit_code(), 0);
    }

    #[test]
    fn a_skipped_must_makes_the_run_incomplete_but_a_skipped_should_does_not() {
        let ran = [result("A-1", "must", Status::Passed)];
        let j = judge(&ran, &[skipped("B-1", "must")], &Baseline::default(), 0);
        assert_eq!(j.verdict, Verdict::Incomplete);
        assert_eq!(j.verdict.exit_code(), 3);
        assert!(j.closing_line().contains("1 skipped (1 required)"), "{}", j.closing_line());
        let j = judge(&ran, &[skipped("B-1", "should")], &Baseline::default(), 0);
        assert_eq!(j.verdict, Verdict::Conforms);
    }

    #[test]
    fn a_failure_outweighs_skips_and_nothing_run_is_incomplete() {
        let j = judge(&[result("A-1", "should", Status::Failed)], &[skipped("B-1", "must")], &Baseline::default(), 0);
        assert_eq!(j.verdict, Verdict::DoesNotConform);
        assert_eq!(j.verdict.exit_code(), 1);
        assert_eq!(judge(&[], &[], &Baseline::default(), 0).verdict, Verdict::Incomplete);
        let incomplete_step = result("A-1", "must", Status::Incomplete);
        assert_eq!(judge(&[incomplete_step], &[], &Baseline::default(), 0).verdict, Verdict::DoesNotConform);
    }

    #[test]
    fn a_scenario_not_judged_is_neither_a_pass_nor_a_failure_and_never_conforms() {
        let mut unjudged = result("CRASH-1", "must", Status::NotJudged);
        unjudged.error = Some("not judged: only 11 orders open".into());
        let ran = [result("A-1", "must", Status::Passed), unjudged.clone()];
        let j = judge(&ran, &[], &Baseline::default(), 0);
        assert_eq!(j.verdict, Verdict::Incomplete);
        assert_eq!(j.verdict.exit_code(), 3);
        assert_eq!((j.passed, j.failed.len()), (1, 0));
        assert!(j.not_judged[0].contains("only 11 orders open"), "{:?}", j.not_judged);
        assert!(j.closing_line().contains("1 not judged"), "{}", j.closing_line());
        // Not even a tag subset passes with it, and a baseline cannot list it away.
        assert_eq!(judge(&ran, &[], &Baseline::default(), 5).verdict, Verdict::Incomplete);
        let j = judge(&ran, &[], &baseline(&[("CRASH-1", "flaky")]), 0);
        assert_eq!(j.verdict, Verdict::Incomplete);
        assert!(!j.is_known_failure(&unjudged));
        // A real failure still outweighs it.
        let failing = [result("A-1", "must", Status::Failed), unjudged];
        assert_eq!(judge(&failing, &[], &Baseline::default(), 0).verdict, Verdict::DoesNotConform);
    }

    #[test]
    fn the_baseline_excuses_listed_failures_and_flags_fixed_and_unknown_entries() {
        let ran = [result("A-1", "must", Status::Failed), result("A-2", "must", Status::Passed)];
        let j = judge(&ran, &[], &baseline(&[("A-1", "not built yet"), ("A-2", "flaky"), ("Z-9", "typo")]), 0);
        assert_eq!(j.verdict, Verdict::Conforms, "{j:?}");
        assert_eq!(j.known_failures.len(), 1);
        assert_eq!(j.known_failures[0].reason, "not built yet");
        assert!(j.is_known_failure(&ran[0]));
        assert!(!j.is_known_failure(&ran[1]));
        assert_eq!(j.fixed_known_failures, vec!["A-2".to_string()]);
        assert_eq!(j.unmatched_baseline, vec!["Z-9".to_string()]);
        // An unlisted failure still fails the run.
        let j = judge(&ran, &[], &baseline(&[("A-2", "flaky")]), 0);
        assert_eq!(j.verdict, Verdict::DoesNotConform);
    }

    #[test]
    fn a_tag_subset_passes_without_claiming_conformance() {
        let j = judge(&[result("A-1", "must", Status::Passed)], &[], &Baseline::default(), 12);
        assert_eq!(j.verdict, Verdict::PassedSubset);
        assert_eq!(j.verdict.exit_code(), 0);
        assert!(j.closing_line().contains("12 not selected"));
    }

    #[test]
    fn a_baseline_file_is_read_and_a_wrong_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("known.toml");
        std::fs::write(&good, "[expected_failures]\nFLOW-4 = \"push missing\"\n").unwrap();
        assert_eq!(Baseline::load(&good).unwrap().expected_failures["FLOW-4"], "push missing");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[expected]\nFLOW-4 = 1\n").unwrap();
        assert!(Baseline::load(&bad).is_err());
    }
}
