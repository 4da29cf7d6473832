//! `saga-conformance verify conformance.json`: whether a record is what it claims — a full,
//! unfiltered run of this kit's built-in features. It recomputes the verdict from the record's
//! results with the run's own rules ([`crate::verdict::judge`]), checks the features digest
//! against the features built into this kit, and refuses the record, with every reason, when:
//! it was written by another kit version, it was edited after the run (its content digest),
//! the features differ, a tags filter was used, the results do not add up to the recorded
//! verdict (a result flipped by hand), a scenario's level disagrees with the kit's features, or
//! a `@must` requirement of the kit is missing.
//!
//! The content digest shows a hand edit; it cannot stop someone who recomputes it with this
//! code. What makes a record trustworthy is that anyone can rerun the kit it names.

use super::{Entry, KIT_REVISION, KIT_VERSION, Record};
use crate::results::{ScenarioResult, Skipped};
use crate::verdict::{Baseline, Judgement, Level, Verdict};
use cucumber::gherkin::{Feature, GherkinEnv};
use std::collections::BTreeMap;

/// A record that holds up, and what it shows. Outside this crate only [`verify`] makes one (a
/// badge needs one).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    pub verdict: Verdict,
    pub judgement: Judgement,
    pub must_total: usize,
    pub must_passed: usize,
    /// "this record is a full, unfiltered run of …: CONFORMS".
    pub statement: String,
    /// Things worth knowing that do not refuse the record.
    pub notes: Vec<String>,
}

/// Verifies `record` against this kit: `Err` holds every reason it is refused.
pub fn verify(record: &Record) -> Result<Verified, Vec<String>> {
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    if record.kit.version != KIT_VERSION {
        refusals.push(format!(
            "the record was written by saga-conformance {}; this is {KIT_VERSION}: verify it with the kit that wrote it",
            record.kit.version
        ));
    }
    if record.kit.revision != KIT_REVISION {
        notes.push(format!(
            "recorded by revision {}, verified by revision {KIT_REVISION} (same version; the features digest decides)",
            record.kit.revision
        ));
    }
    match record.compute_content_digest() {
        Ok(digest) if digest == record.content_digest => {}
        Ok(_) => refusals
            .push("the record was edited after the run: its content_digest does not match its content".to_string()),
        Err(e) => refusals.push(format!("the record cannot be digested: {e}")),
    }
    let built_in = super::built_in_digest();
    if record.features.digest != built_in {
        refusals.push(format!(
            "the features that ran (digest {}, from {}) are not this kit's built-in features ({built_in}): features changed",
            record.features.digest, record.features.source
        ));
    }
    if let Some(tags) = &record.run.tags {
        refusals.push(format!(
            "the run was filtered with --tags {tags:?} ({} scenario(s) not selected): only a full run is a conformance claim",
            record.run.not_selected
        ));
    } else if record.run.not_selected > 0 {
        refusals.push(format!("{} scenario(s) were not selected: not a full run", record.run.not_selected));
    }
    let kit_levels = kit_requirements();
    check_levels(record, &kit_levels, &mut refusals);
    let (results, skipped, unknown) = split(&record.results);
    for entry in unknown {
        notes.push(format!(
            "{} has result {:?}, which this kit does not know: counted as not passed",
            entry.requirement, entry.result
        ));
    }
    let baseline = Baseline { expected_failures: record.declarations.baseline.clone() };
    let judgement = crate::verdict::judge(&results, &skipped, &baseline, record.run.not_selected);
    let must: Vec<&Entry> = record.results.iter().filter(|e| e.level == "must").collect();
    let must_passed = must.iter().filter(|e| e.result == "passed").count();
    let recorded = &record.verdict;
    let recounted = [
        ("verdict", recorded.verdict.clone(), judgement.verdict.banner().to_string()),
        ("passed", recorded.passed.to_string(), judgement.passed.to_string()),
        ("failed", recorded.failed.to_string(), judgement.failed.len().to_string()),
        ("known failures", recorded.known_failures.to_string(), judgement.known_failures.len().to_string()),
        ("skipped @must", recorded.skipped_must.to_string(), judgement.skipped_must.to_string()),
        ("skipped @should", recorded.skipped_should.to_string(), judgement.skipped_should.to_string()),
        ("@must scenarios", recorded.must_total.to_string(), must.len().to_string()),
        ("@must passed", recorded.must_passed.to_string(), must_passed.to_string()),
    ];
    for (what, said, counted) in recounted {
        if said != counted {
            refusals.push(format!(
                "the results do not add up to the recorded verdict: it says {what} {said}, the results give {counted} (a result changed by hand?)"
            ));
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    let mut statement = format!(
        "this record is a full, unfiltered run of saga-conformance {} ({}) against {} {}: {}",
        record.kit.version,
        record.kit.revision,
        record.implementation.name,
        record.implementation.version,
        judgement.verdict.banner()
    );
    if !judgement.known_failures.is_empty() {
        let excused: Vec<String> =
            judgement.known_failures.iter().map(|k| format!("{} ({})", k.requirement, k.reason)).collect();
        statement.push_str(&format!(
            " — with {} failure(s) excused by its baseline: {}",
            excused.len(),
            excused.join(", ")
        ));
    }
    Ok(Verified { verdict: judgement.verdict, judgement, must_total: must.len(), must_passed, statement, notes })
}

/// The record's entries as the verdict reads them: results that ran, skipped scenarios, and the
/// entries whose result this kit does not know (counted among the results, as not passed).
fn split(entries: &[Entry]) -> (Vec<ScenarioResult>, Vec<Skipped>, Vec<&Entry>) {
    let (mut results, mut skipped, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for e in entries {
        match super::parse_result(&e.result) {
            Some(status) => {
                if !matches!(e.result.as_str(), "passed" | "failed" | "incomplete") {
                    unknown.push(e);
                }
                results.push(ScenarioResult {
                    feature: e.feature.clone(),
                    scenario: e.scenario.clone(),
                    tags: e.tags.clone(),
                    status,
                    failed_step: e.failed_step.clone(),
                    error: e.message.clone(),
                    duration_ms: e.duration_ms,
                });
            }
            None => skipped.push(Skipped {
                feature: e.feature.clone(),
                scenario: e.scenario.clone(),
                tags: e.tags.clone(),
                reason: e.reason.clone().unwrap_or_default(),
            }),
        }
    }
    (results, skipped, unknown)
}

/// Each entry's level agrees with its tags and with the kit's features; every `@must`
/// requirement of the kit has an entry.
fn check_levels(record: &Record, kit: &BTreeMap<String, Level>, refusals: &mut Vec<String>) {
    for e in &record.results {
        let by_tags = super::level_name(Level::of(&e.tags));
        if e.level != by_tags {
            refusals.push(format!("{}: level {:?} but its tags make it {by_tags}", e.requirement, e.level));
        }
        for id in e.tags.iter().filter(|t| crate::results::is_requirement_id(t)) {
            match kit.get(id) {
                Some(level) if super::level_name(*level) != by_tags => refusals.push(format!(
                    "{id} is @{} in the kit's features but @{by_tags} in the record",
                    super::level_name(*level)
                )),
                Some(_) => {}
                None => refusals.push(format!("{id} is no requirement of the kit's features")),
            }
        }
    }
    let missing: Vec<&str> = kit
        .iter()
        .filter(|(id, level)| **level == Level::Must && !record.results.iter().any(|e| e.tags.contains(id)))
        .map(|(id, _)| id.as_str())
        .collect();
    if !missing.is_empty() {
        refusals.push(format!(
            "{} @must requirement(s) of the kit missing from the record: {}",
            missing.len(),
            missing.join(", ")
        ));
    }
}

/// The requirement ids of the kit's built-in features and the run-level checks, with their
/// level (`@must` if any of its scenarios is).
pub fn kit_requirements() -> BTreeMap<String, Level> {
    let mut ids: BTreeMap<String, Level> = BTreeMap::new();
    let mut add = |tags: Vec<String>| {
        let level = Level::of(&tags);
        for id in tags.into_iter().filter(|t| crate::results::is_requirement_id(t)) {
            let entry = ids.entry(id).or_insert(level);
            if level == Level::Must {
                *entry = Level::Must;
            }
        }
    };
    add(crate::results::FIELDS_TAGS.iter().map(|t| t.to_string()).collect());
    for (name, text) in crate::backend::paths::built_in_features() {
        let feature = Feature::parse(text, GherkinEnv::default())
            .unwrap_or_else(|e| panic!("the built-in feature {name} does not parse: {e}"));
        let rules = feature.rules.iter().flat_map(|r| r.scenarios.iter().map(move |s| (&r.tags, s)));
        let no_tags = Vec::new();
        for (rule_tags, scenario) in feature.scenarios.iter().map(|s| (&no_tags, s)).chain(rules) {
            let examples = scenario.examples.iter().flat_map(|x| &x.tags);
            add(feature.tags.iter().chain(rule_tags).chain(&scenario.tags).chain(examples).cloned().collect());
        }
    }
    ids
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::build::tests::record_of;
    use crate::results::Status;

    /// One passing scenario per requirement of the kit, at its level; `skip` lists ids that were
    /// skipped instead, `fail` ids that failed.
    pub(crate) fn full_run(
        skip: &[&str],
        fail: &[&str],
        baseline: &Baseline,
        tags: Option<&str>,
        not_selected: usize,
    ) -> Record {
        let (mut results, mut skipped) = (Vec::new(), Vec::new());
        for (id, level) in kit_requirements() {
            let tags =
                vec![id.split('-').next().unwrap().to_string(), id.clone(), super::super::level_name(level).into()];
            if skip.contains(&id.as_str()) {
                skipped.push(Skipped { feature: "F".into(), scenario: id.clone(), tags, reason: "needs more".into() });
                continue;
            }
            let status = if fail.contains(&id.as_str()) { Status::Failed } else { Status::Passed };
            results.push(ScenarioResult {
                feature: "F".into(),
                scenario: id.clone(),
                tags,
                status,
                failed_step: None,
                error: None,
                duration_ms: 10.0,
            });
        }
        record_of(&results, &skipped, baseline, tags, not_selected)
    }

    fn redigest(mut record: Record) -> Record {
        record.content_digest = record.compute_content_digest().unwrap();
        record
    }

    fn refusals(record: &Record) -> String {
        verify(record).expect_err("the record should be refused").join("\n")
    }

    #[test]
    fn a_full_run_is_accepted_and_says_what_it_is() {
        let verified = verify(&full_run(&[], &[], &Baseline::default(), None, 0)).unwrap();
        assert_eq!(verified.verdict, Verdict::Conforms);
        assert_eq!(verified.must_passed, verified.must_total);
        assert!(verified.must_total > 30, "{}", verified.must_total);
        assert!(
            verified.statement.starts_with(&format!(
                "this record is a full, unfiltered run of saga-conformance {KIT_VERSION} ({KIT_REVISION}) against saga-conformance reference {KIT_VERSION}: CONFORMS"
            )),
            "{}",
            verified.statement
        );
        // An honest record of a run that does not conform holds up too (a badge says so).
        let failing = verify(&full_run(&[], &["FLOW-1"], &Baseline::default(), None, 0)).unwrap();
        assert_eq!(failing.verdict, Verdict::DoesNotConform);
    }

    #[test]
    fn a_baseline_is_named_in_the_statement() {
        let baseline = Baseline { expected_failures: [("FLOW-1".to_string(), "TICKET-1".to_string())].into() };
        let verified = verify(&full_run(&[], &["FLOW-1"], &baseline, None, 0)).unwrap();
        assert_eq!(verified.verdict, Verdict::Conforms);
        assert!(verified.statement.ends_with("with 1 failure(s) excused by its baseline: FLOW-1 (TICKET-1)"));
    }

    #[test]
    fn a_tags_run_is_refused() {
        let why = refusals(&full_run(&[], &[], &Baseline::default(), Some("@FLOW"), 40));
        assert!(why.contains("filtered with --tags \"@FLOW\" (40 scenario(s) not selected)"), "{why}");
    }

    #[test]
    fn a_flipped_result_is_refused_even_with_a_recomputed_digest() {
        let mut record = full_run(&[], &["FLOW-1"], &Baseline::default(), None, 0);
        let flow1 = record.results.iter_mut().find(|e| e.requirement == "FLOW-1").unwrap();
        flow1.result = "passed".into();
        let why = refusals(&record);
        assert!(why.contains("edited after the run"), "{why}");
        assert!(why.contains("it says verdict DOES NOT CONFORM, the results give CONFORMS"), "{why}");
        let why = refusals(&redigest(record));
        assert!(!why.contains("edited after the run"), "{why}");
        assert!(why.contains("it says passed"), "{why}");
    }

    #[test]
    fn changed_features_are_refused() {
        let mut record = full_run(&[], &[], &Baseline::default(), None, 0);
        record.features.digest = crate::record::features_digest(&[("flow.feature", "Feature: easier")]);
        let why = refusals(&redigest(record));
        assert!(why.contains("features changed"), "{why}");
    }

    #[test]
    fn a_missing_must_requirement_or_a_level_edited_is_refused() {
        let mut record = full_run(&[], &[], &Baseline::default(), None, 0);
        record.results.retain(|e| e.requirement != "FLOW-1");
        let why = refusals(&redigest(record));
        assert!(why.contains("1 @must requirement(s) of the kit missing from the record: FLOW-1"), "{why}");

        // A skipped @must turned @should by hand would make an INCOMPLETE run CONFORM.
        let mut record = full_run(&["FLOW-2"], &[], &Baseline::default(), None, 0);
        assert_eq!(record.verdict.verdict, "INCOMPLETE");
        let flow2 = record.results.iter_mut().find(|e| e.requirement == "FLOW-2").unwrap();
        flow2.tags = vec!["FLOW-2".into(), "should".into()];
        flow2.level = "should".into();
        record.verdict.verdict = "CONFORMS".into();
        record.verdict.skipped_must = 0;
        record.verdict.skipped_should += 1;
        record.verdict.must_total -= 1;
        let why = refusals(&redigest(record));
        assert!(why.contains("FLOW-2 is @must in the kit's features but @should in the record"), "{why}");
    }

    #[test]
    fn an_unknown_result_counts_as_not_passed() {
        let mut record = full_run(&[], &[], &Baseline::default(), None, 0);
        record.results.iter_mut().find(|e| e.requirement == "FLOW-1").unwrap().result = "frobbed".into();
        let why = refusals(&redigest(record));
        assert!(why.contains("the results give DOES NOT CONFORM"), "{why}");
    }

    #[test]
    fn another_kit_version_is_refused() {
        let mut record = full_run(&[], &[], &Baseline::default(), None, 0);
        record.kit.version = "0.0.1".into();
        assert!(refusals(&redigest(record)).contains("written by saga-conformance 0.0.1"));
    }

    #[test]
    fn the_kit_requirements_come_from_the_features() {
        let kit = kit_requirements();
        assert_eq!(kit.get("FLOW-1"), Some(&Level::Must));
        assert_eq!(kit.get("FIELDS-1"), Some(&Level::Must));
        assert!(kit.values().any(|l| *l == Level::Should), "{kit:?}");
    }
}
