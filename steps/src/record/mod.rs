//! The conformance record, `conformance.json`, written beside every report: which suite (kit
//! version, git revision, a digest of the features that ran), which implementation (the name
//! and version it declares), what it declared (backend, capabilities, budgets, baseline, tags
//! filter) and, per scenario, its requirement, level, result, duration, why it was skipped or
//! excused, and the figures it measured. Two records can be compared, and `saga-conformance
//! verify` ([`verify`]) checks that one is a full, unfiltered run of this kit's features.
//!
//! The format is versioned ([`RECORD_VERSION`]) and documented in `docs/conformance-record.md`,
//! its JSON Schema in `docs/conformance-record.schema.json` ([`schema`] checks records against
//! it). Beside it the runner writes `ctrf.json` ([`ctrf`]); `saga-conformance badge` draws an
//! SVG from a verified record ([`badge`]).

pub mod badge;
mod build;
pub mod ctrf;
pub mod html;
pub mod schema;
pub mod verify;

pub use build::{Figures, RunFacts};

use crate::config::sections::{Deadlines, FaultTimings, Timing};
use crate::results::Status;
use crate::verdict::{Level, Verdict};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The version of the record's format; a change that a reader of version 1 cannot read bumps it.
pub const RECORD_VERSION: u32 = 1;
/// The record's file name in the report directory.
pub const FILE_NAME: &str = "conformance.json";
/// The kit's version, as Cargo knows it.
pub const KIT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the kit was built from (`steps/build.rs`), or `unknown`.
pub const KIT_REVISION: &str = env!("SAGA_GIT_REVISION");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub record_version: u32,
    pub kit: Kit,
    pub features: Features,
    pub implementation: Implementation,
    pub run: Run,
    pub declarations: Declarations,
    pub verdict: RecordedVerdict,
    pub results: Vec<Entry>,
    /// `sha256:<hex>` of the canonical JSON of every other field: an edit after the run shows.
    pub content_digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kit {
    pub name: String,
    pub version: String,
    pub revision: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// `built-in`, or the directory the features were read from.
    pub source: String,
    pub files: usize,
    /// [`features_digest`] of the files that ran.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Implementation {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// RFC 3339, UTC.
    pub started_at: String,
    pub started_ms: i64,
    pub stopped_ms: i64,
    pub backend: String,
    /// The `--tags` expression, if one filtered the run.
    pub tags: Option<String>,
    /// Scenarios the tags filter left out.
    pub not_selected: usize,
}

/// What the implementation (or the backend running it) declared, and the budgets it was held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declarations {
    pub instances: usize,
    pub kafka_brokers: usize,
    pub dead_letter_topics: bool,
    /// The capabilities the backend has (`@needs-…` tags it satisfies).
    pub capabilities: Vec<String>,
    /// The `[external.commands]` keys declared (the commands themselves stay private).
    pub fault_commands: Vec<String>,
    pub consumer_groups: BTreeMap<String, Vec<String>>,
    pub topics: BTreeMap<String, String>,
    pub concurrency: usize,
    pub timing: Timing,
    pub deadlines: Deadlines,
    pub faults: FaultTimings,
    /// `[capacity]`: the rate, burst, settle bound and recovery budget the implementation declares.
    pub capacity: crate::config::sections::Capacity,
    pub clock_skew_ms: i64,
    /// The baseline's expected failures: requirement id → reason.
    pub baseline: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedVerdict {
    /// [`Verdict::banner`]: `CONFORMS`, `PASSED (subset)`, `DOES NOT CONFORM`, `INCOMPLETE`.
    pub verdict: String,
    pub passed: usize,
    pub failed: usize,
    pub known_failures: usize,
    pub skipped_must: usize,
    pub skipped_should: usize,
    pub not_selected: usize,
    /// `@must` scenarios in the record, and how many of them passed.
    pub must_total: usize,
    pub must_passed: usize,
}

/// One scenario: a requirement's check (an outline row is one entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The requirement ids among its tags (`FLOW-1`), space-separated.
    pub requirement: String,
    pub feature: String,
    pub scenario: String,
    pub tags: Vec<String>,
    /// `must` or `should`.
    pub level: String,
    /// `passed`, `failed`, `incomplete` or `skipped` (see [`result_name`]); a reader meeting
    /// another value counts it as not passed.
    pub result: String,
    pub duration_ms: f64,
    /// Why it was skipped (`result` = `skipped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The baseline entry that excuses its failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_failure: Option<ExpectedFailure>,
    /// What the scenario measured, by name (`latency_ms` per stage for `@TIME-1`, `load` for
    /// the crash scenarios' steady load).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    pub requirement: String,
    pub reason: String,
}

/// A result's name in the record.
pub fn result_name(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Incomplete => "incomplete",
        Status::NotJudged => "not-judged",
    }
}

/// The result a record's name stands for: `skipped` is `None` (not a run result); a name this
/// kit does not know counts as [`Status::Incomplete`] — never as a pass.
pub fn parse_result(name: &str) -> Option<Status> {
    match name {
        "passed" => Some(Status::Passed),
        "failed" => Some(Status::Failed),
        "not-judged" => Some(Status::NotJudged),
        "skipped" => None,
        _ => Some(Status::Incomplete),
    }
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Must => "must",
        Level::Should => "should",
    }
}

/// The verdict whose banner is `banner`.
pub fn parse_verdict(banner: &str) -> Option<Verdict> {
    [Verdict::Conforms, Verdict::PassedSubset, Verdict::DoesNotConform, Verdict::Incomplete]
        .into_iter()
        .find(|v| v.banner() == banner)
}

/// `sha256:<hex>` over the files sorted by name, each as `name`, NUL, `text`, NUL.
pub fn features_digest<N: AsRef<str>, T: AsRef<str>>(files: &[(N, T)]) -> String {
    let mut sorted: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_ref(), t.as_ref())).collect();
    sorted.sort();
    let mut hash = Sha256::new();
    for (name, text) in sorted {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    format!("sha256:{}", hex(&hash.finalize()))
}

/// The digest of the features built into this kit.
pub fn built_in_digest() -> String {
    features_digest(crate::backend::paths::built_in_features())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with every object's keys sorted and no whitespace: the same record always gives the
/// same text, whichever order its fields were written in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&map[*k]))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

impl Record {
    /// `sha256:<hex>` of the canonical JSON of the record with `content_digest` empty.
    pub fn compute_content_digest(&self) -> anyhow::Result<String> {
        let mut value = serde_json::to_value(self)?;
        value["content_digest"] = Value::String(String::new());
        Ok(format!("sha256:{}", hex(&Sha256::digest(canonical(&value).as_bytes()))))
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a record; a file that is not one says what is wrong with it.
    pub fn load(path: &Path) -> anyhow::Result<Record> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        if let Some(version) = value.get("record_version").and_then(Value::as_u64)
            && version != u64::from(RECORD_VERSION)
        {
            anyhow::bail!(
                "{} is a conformance record of version {version}; this saga-conformance {KIT_VERSION} reads version {RECORD_VERSION}: verify it with the kit that wrote it",
                path.display()
            );
        }
        serde_json::from_value(value)
            .with_context(|| format!("{} is not a conformance record (docs/conformance-record.md)", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use build::tests::sample_record;

    #[test]
    fn a_record_reads_back_as_written_and_its_digest_shows_an_edit() {
        let record = sample_record();
        let dir = tempfile::tempdir().unwrap();
        record.write(dir.path()).unwrap();
        let read = Record::load(&dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(read.compute_content_digest().unwrap(), record.content_digest);
        let mut edited = read.clone();
        edited.results[0].duration_ms += 1.0;
        assert_ne!(edited.compute_content_digest().unwrap(), record.content_digest);
        std::fs::write(dir.path().join("v2.json"), r#"{"record_version": 2}"#).unwrap();
        let err = Record::load(&dir.path().join("v2.json")).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
    }

    /// CI once refused a genuine record: serde_json's default float parser is off by one ulp
    /// for ~8 % of f64s (1271.7055921705467 read back as …469), so a duration written exactly
    /// digested differently when read. The workspace enables `float_roundtrip`; this fails without it.
    #[test]
    fn a_record_of_awkward_floats_digests_the_same_after_reading_back() {
        let mut record = sample_record();
        let awkward = [1271.7055921705467, 9140.220331021943, 0.1 + 0.2, 1e-7 / 3.0, 123456.789012345];
        for (entry, value) in record.results.iter_mut().zip(awkward.iter().cycle()) {
            entry.duration_ms = *value;
        }
        record.content_digest = record.compute_content_digest().unwrap();
        let dir = tempfile::tempdir().unwrap();
        record.write(dir.path()).unwrap();
        let read = Record::load(&dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(read.compute_content_digest().unwrap(), record.content_digest);
    }

    #[test]
    fn the_features_digest_is_over_sorted_names_and_texts() {
        let a = features_digest(&[("b.feature", "B"), ("a.feature", "A")]);
        assert_eq!(a, features_digest(&[("a.feature", "A"), ("b.feature", "B")]));
        assert_ne!(a, features_digest(&[("a.feature", "A"), ("b.feature", "B ")]));
        // The separators keep a name from running into its text.
        assert_ne!(features_digest(&[("ab", "c")]), features_digest(&[("a", "bc")]));
        assert_eq!(
            features_digest::<&str, &str>(&[]),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn unknown_result_names_never_count_as_passed() {
        assert_eq!(parse_result("passed"), Some(Status::Passed));
        assert_eq!(parse_result("skipped"), None);
        assert_eq!(parse_result("not-judged"), Some(Status::NotJudged));
        assert_eq!(parse_result("frobbed"), Some(Status::Incomplete));
        for v in [Verdict::Conforms, Verdict::PassedSubset, Verdict::DoesNotConform, Verdict::Incomplete] {
            assert_eq!(parse_verdict(v.banner()), Some(v));
        }
        assert_eq!(parse_verdict("CONFORMZ"), None);
    }
}
