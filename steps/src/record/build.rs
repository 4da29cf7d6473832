//! Building the conformance record from a finished run ([`RunFacts`] → [`Record`]): the
//! identity, declarations and verdict counts, and one [`Entry`] per scenario that ran or was
//! skipped, with what it measured.

use super::*;
use crate::backend::Capabilities;
use crate::backend::paths::FeaturesDir;
use crate::config::Config;
use crate::results::{ScenarioResult, Skipped};
use crate::verdict::{Baseline, Judgement};

/// How much of a failure's message the record keeps (the HTML report has all of it).
const MESSAGE_LIMIT: usize = 4000;

/// What scenarios measured: by (feature name, scenario name), figure name → value.
pub type Figures = BTreeMap<(String, String), BTreeMap<String, Value>>;

/// What the runner knows at the end of a run, for the record.
pub struct RunFacts<'a> {
    pub config: &'a Config,
    pub features: &'a FeaturesDir,
    pub capabilities: &'a Capabilities,
    pub tags: Option<&'a str>,
    pub baseline: &'a Baseline,
    pub results: &'a [ScenarioResult],
    pub skipped: &'a [Skipped],
    pub judgement: &'a Judgement,
    /// What scenarios measured, by (feature, scenario) name.
    pub figures: Figures,
    pub started_ms: i64,
    pub stopped_ms: i64,
}

impl Record {
    /// The record of a finished run.
    pub fn from_run(facts: &RunFacts<'_>) -> anyhow::Result<Record> {
        let config = facts.config;
        let files = facts.features.files()?;
        let (name, version) = config.implementation_identity();
        let entries: Vec<Entry> =
            facts.results.iter().map(|r| ran_entry(r, facts)).chain(facts.skipped.iter().map(skipped_entry)).collect();
        let j = facts.judgement;
        let must: Vec<&Entry> = entries.iter().filter(|e| e.level == "must").collect();
        let mut record = Record {
            record_version: RECORD_VERSION,
            kit: Kit { name: "saga-conformance".into(), version: KIT_VERSION.into(), revision: KIT_REVISION.into() },
            features: Features {
                source: if facts.features.is_built_in() {
                    "built-in".into()
                } else {
                    facts.features.path().display().to_string()
                },
                files: files.len(),
                digest: features_digest(&files),
            },
            implementation: Implementation { name, version },
            run: Run {
                started_at: chrono::DateTime::from_timestamp_millis(facts.started_ms)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                started_ms: facts.started_ms,
                stopped_ms: facts.stopped_ms,
                backend: format!("{:?}", config.backend).to_ascii_lowercase(),
                tags: facts.tags.map(str::to_string),
                not_selected: j.not_selected,
            },
            declarations: Declarations {
                instances: config.instances,
                kafka_brokers: config.kafka_brokers,
                dead_letter_topics: facts.capabilities.has("dead-letters"),
                capabilities: facts.capabilities.names().map(str::to_string).collect(),
                fault_commands: {
                    let mut keys: Vec<String> = match config.backend {
                        crate::config::BackendKind::External => config.external.commands.keys().cloned().collect(),
                        _ => Vec::new(),
                    };
                    keys.sort();
                    keys
                },
                consumer_groups: config
                    .consumer_groups()?
                    .into_iter()
                    .map(|(service, group)| (service.binary().trim_end_matches("-service").to_string(), group))
                    .collect(),
                topics: config.topics.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                concurrency: config.concurrency,
                timing: config.timing.clone(),
                deadlines: config.deadlines.clone(),
                faults: config.faults.clone(),
                capacity: config.capacity.clone(),
                clock_skew_ms: config.fields.clock_skew_ms,
                baseline: facts.baseline.expected_failures.clone(),
            },
            verdict: RecordedVerdict {
                verdict: j.verdict.banner().into(),
                passed: j.passed,
                failed: j.failed.len(),
                known_failures: j.known_failures.len(),
                skipped_must: j.skipped_must,
                skipped_should: j.skipped_should,
                not_selected: j.not_selected,
                must_total: must.len(),
                must_passed: must.iter().filter(|e| e.result == "passed").count(),
            },
            results: entries,
            content_digest: String::new(),
        };
        record.content_digest = record.compute_content_digest()?;
        Ok(record)
    }
}

fn ran_entry(r: &ScenarioResult, facts: &RunFacts<'_>) -> Entry {
    let expected = facts.judgement.is_known_failure(r).then(|| {
        let k = facts.judgement.known_failures.iter().find(|k| r.requirements().contains(&k.requirement.as_str()));
        ExpectedFailure {
            requirement: k.map(|k| k.requirement.clone()).unwrap_or_default(),
            reason: k.map(|k| k.reason.clone()).unwrap_or_default(),
        }
    });
    let figures = facts.figures.get(&(r.feature.clone(), r.scenario.clone())).cloned().unwrap_or_default();
    Entry {
        requirement: r.requirements().join(" "),
        feature: r.feature.clone(),
        scenario: r.scenario.clone(),
        tags: r.tags.clone(),
        level: level_name(Level::of(&r.tags)).into(),
        result: result_name(r.status).into(),
        duration_ms: r.duration_ms,
        reason: None,
        failed_step: r.failed_step.clone(),
        message: r.error.as_deref().map(truncate),
        expected_failure: expected,
        figures,
    }
}

fn skipped_entry(s: &Skipped) -> Entry {
    let as_result = ScenarioResult {
        feature: s.feature.clone(),
        scenario: s.scenario.clone(),
        tags: s.tags.clone(),
        status: Status::Incomplete,
        failed_step: None,
        error: None,
        duration_ms: 0.0,
    };
    Entry {
        requirement: as_result.requirements().join(" "),
        feature: s.feature.clone(),
        scenario: s.scenario.clone(),
        tags: s.tags.clone(),
        level: level_name(Level::of(&s.tags)).into(),
        result: "skipped".into(),
        duration_ms: 0.0,
        reason: Some(s.reason.clone()),
        failed_step: None,
        message: None,
        expected_failure: None,
        figures: BTreeMap::new(),
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}… (cut; the whole message is in index.html)", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::verdict::judge;

    pub(crate) fn result(id: &str, level: &str, status: Status) -> ScenarioResult {
        ScenarioResult {
            feature: "Flow".into(),
            scenario: format!("scenario {id}"),
            tags: vec!["FAM".into(), id.into(), level.into()],
            status,
            failed_step: (status != Status::Passed).then(|| "Then it breaks".to_string()),
            error: (status != Status::Passed).then(|| "boom".to_string()),
            duration_ms: 1250.5,
        }
    }

    /// The record of a run with these results on the processes backend, built-in features.
    pub(crate) fn record_of(
        results: &[ScenarioResult],
        skipped: &[Skipped],
        baseline: &Baseline,
        tags: Option<&str>,
        not_selected: usize,
    ) -> Record {
        let judgement = judge(results, skipped, baseline, not_selected);
        let config = Config::default();
        let features = FeaturesDir::new(None).unwrap();
        let capabilities = Capabilities::all(crate::types::Scale::default());
        Record::from_run(&RunFacts {
            config: &config,
            features: &features,
            capabilities: &capabilities,
            tags,
            baseline,
            results,
            skipped,
            judgement: &judgement,
            figures: [(
                ("Flow".to_string(), "scenario TIME-1".to_string()),
                [("latency_ms".to_string(), serde_json::json!([{"stage": "intake", "p50": 3.5, "p99": f64::NAN}]))]
                    .into(),
            )]
            .into(),
            started_ms: 1_796_000_000_000,
            stopped_ms: 1_796_000_090_000,
        })
        .unwrap()
    }

    /// A record of a small run: two passes (one `@TIME`), a baseline failure, a skipped `@should`.
    pub(crate) fn sample_record() -> Record {
        let mut timed = result("TIME-1", "must", Status::Passed);
        timed.tags.insert(0, "TIME".into());
        let results = vec![result("FLOW-1", "must", Status::Passed), timed, result("FLOW-2", "must", Status::Failed)];
        let skipped = vec![Skipped {
            feature: "Scale".into(),
            scenario: "more instances".into(),
            tags: vec!["SCALE-1".into(), "should".into()],
            reason: "needs 2 instances".into(),
        }];
        let baseline = Baseline { expected_failures: [("FLOW-2".to_string(), "not built yet".to_string())].into() };
        record_of(&results, &skipped, &baseline, None, 0)
    }

    #[test]
    fn a_run_is_recorded_with_its_identity_declarations_and_results() {
        let record = sample_record();
        assert_eq!(record.kit.version, KIT_VERSION);
        assert!(!record.kit.revision.is_empty());
        assert_eq!(record.features.source, "built-in");
        assert_eq!(record.features.digest, built_in_digest());
        assert_eq!(record.implementation.name, crate::config::sections::REFERENCE_NAME);
        assert_eq!(record.run.backend, "processes");
        assert!(record.declarations.capabilities.contains(&"kill-product".to_string()));
        assert!(record.declarations.dead_letter_topics);
        assert_eq!(record.verdict.verdict, "CONFORMS");
        assert_eq!((record.verdict.must_total, record.verdict.must_passed), (3, 2));
        let flow2 = record.results.iter().find(|e| e.requirement == "FLOW-2").unwrap();
        assert_eq!(flow2.result, "failed");
        assert_eq!(flow2.expected_failure.as_ref().unwrap().reason, "not built yet");
        let scale = record.results.iter().find(|e| e.requirement == "SCALE-1").unwrap();
        assert_eq!((scale.result.as_str(), scale.level.as_str()), ("skipped", "should"));
        assert_eq!(scale.reason.as_deref(), Some("needs 2 instances"));
        let time = record.results.iter().find(|e| e.requirement == "TIME-1").unwrap();
        assert_eq!(time.figures["latency_ms"][0]["p50"], 3.5);
        assert!(record.results.iter().find(|e| e.requirement == "FLOW-1").unwrap().figures.is_empty());
    }
}
