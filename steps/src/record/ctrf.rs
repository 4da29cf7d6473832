//! `ctrf.json`: the run in the Common Test Report Format (ctrf.io, spec version
//! [`SPEC_VERSION`]), which CI report tools read beside JUnit. Written from the conformance
//! record, so it agrees with the verdict the way `junit.xml` does: a scenario the backend could
//! not run is `skipped` with the reason as its message; a failure the baseline expects is
//! `skipped` too, `rawStatus` `expected-failure`, the reason as its message and the failure as
//! its trace; every other failure is `failed`. A result this kit does not know is `other`.
//! Each test carries its requirement and level as labels and its tags.

use super::{Entry, Record};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The CTRF specification version the document follows.
pub const SPEC_VERSION: &str = "0.0.0";
/// The file name in the report directory.
pub const FILE_NAME: &str = "ctrf.json";
/// CTRF's JSON Schema for [`SPEC_VERSION`], from the `ctrf` npm package 0.3.0 (MIT, `docs/ctrf/`).
pub const SCHEMA: &str = include_str!("../../../docs/ctrf/ctrf-schema-0.0.json");

/// The CTRF document of a record.
pub fn render(record: &Record) -> Value {
    let tests: Vec<Value> = record.results.iter().map(test).collect();
    let count = |status: &str| tests.iter().filter(|t| t["status"] == status).count();
    let suites: BTreeSet<&str> = record.results.iter().map(|e| e.feature.as_str()).collect();
    let (start, stop) = (record.run.started_ms, record.run.stopped_ms);
    json!({
        "reportFormat": "CTRF",
        "specVersion": SPEC_VERSION,
        "timestamp": record.run.started_at,
        "generatedBy": format!("saga-conformance {}", record.kit.version),
        "results": {
            "tool": {"name": "saga-conformance", "version": record.kit.version},
            "summary": {
                "tests": tests.len(),
                "passed": count("passed"),
                "failed": count("failed"),
                "skipped": count("skipped"),
                "pending": count("pending"),
                "other": count("other"),
                "suites": suites.len(),
                "start": start,
                "stop": stop,
                "duration": (stop - start).max(0),
            },
            "tests": tests,
            "environment": {
                "reportName": "saga-conformance",
                "appName": record.implementation.name,
                "appVersion": record.implementation.version,
                "testEnvironment": record.run.backend,
                "extra": {
                    "verdict": record.verdict.verdict,
                    "kitRevision": record.kit.revision,
                    "featuresDigest": record.features.digest,
                    "tags": record.run.tags,
                    "record": super::FILE_NAME,
                },
            },
        },
    })
}

fn test(e: &Entry) -> Value {
    let (status, raw, message, trace) = match (e.result.as_str(), &e.expected_failure) {
        ("passed", _) => ("passed", "passed", None, None),
        ("skipped", _) => ("skipped", "skipped", e.reason.clone(), None),
        (_, Some(expected)) => (
            "skipped",
            "expected-failure",
            Some(format!("expected failure (baseline): {}", expected.reason)),
            e.message.clone(),
        ),
        ("failed" | "incomplete", None) => (
            "failed",
            e.result.as_str(),
            Some(e.failed_step.clone().unwrap_or_else(|| format!("scenario {}", e.result))),
            e.message.clone(),
        ),
        (_, None) => ("other", e.result.as_str(), e.failed_step.clone(), e.message.clone()),
    };
    let mut test = json!({
        "name": crate::junit::case_name(&e.tags, &e.scenario),
        "status": status,
        "rawStatus": raw,
        "duration": e.duration_ms.round() as u64,
        "suite": [e.feature],
        "tags": e.tags,
        "labels": {"requirement": e.requirement, "level": e.level},
    });
    if let Some(message) = message {
        test["message"] = message.into();
    }
    if let Some(trace) = trace {
        test["trace"] = trace.into();
    }
    test
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::build::tests::sample_record;

    #[test]
    fn statuses_follow_the_verdict_and_the_summary_adds_up() {
        let mut record = sample_record();
        record.results.push(Entry { result: "not-judged".into(), ..record.results[0].clone() });
        let doc = render(&record);
        assert_eq!(doc["reportFormat"], "CTRF");
        let summary = &doc["results"]["summary"];
        assert_eq!(
            [&summary["tests"], &summary["passed"], &summary["failed"], &summary["skipped"], &summary["other"]],
            [5, 2, 0, 2, 1]
        );
        assert_eq!(summary["start"], 1_796_000_000_000_i64);
        let tests = doc["results"]["tests"].as_array().unwrap();
        let by_name = |name: &str| tests.iter().find(|t| t["name"].as_str().unwrap().starts_with(name)).unwrap();
        let expected = by_name("FLOW-2");
        assert_eq!(expected["status"], "skipped");
        assert_eq!(expected["rawStatus"], "expected-failure");
        assert_eq!(expected["message"], "expected failure (baseline): not built yet");
        assert_eq!(expected["trace"], "boom");
        let skipped = by_name("SCALE-1");
        assert_eq!((&skipped["status"], &skipped["message"]), (&json!("skipped"), &json!("needs 2 instances")));
        assert_eq!(by_name("FLOW-1")["duration"], 1251);
        assert_eq!(by_name("FLOW-1")["labels"]["level"], "must");
        assert_eq!(doc["results"]["environment"]["appName"], crate::config::sections::REFERENCE_NAME);
    }

    #[test]
    fn the_document_matches_the_ctrf_schema() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let mut record = sample_record();
        record.run.tags = Some("@FLOW".into());
        for doc in [render(&sample_record()), render(&record)] {
            assert_eq!(crate::record::schema::validate_against(&schema, &doc), Vec::<String>::new());
        }
        // The check can fail: CTRF knows no status "excused".
        let mut doc = render(&sample_record());
        doc["results"]["tests"][0]["status"] = "excused".into();
        assert!(!crate::record::schema::validate_against(&schema, &doc).is_empty());
    }

    #[test]
    fn an_unexcused_failure_is_failed_with_its_step() {
        let mut record = sample_record();
        let flow2 = record.results.iter_mut().find(|e| e.requirement == "FLOW-2").unwrap();
        flow2.expected_failure = None;
        let doc = render(&record);
        let tests = doc["results"]["tests"].as_array().unwrap();
        let failed = tests.iter().find(|t| t["status"] == "failed").unwrap();
        assert_eq!((&failed["message"], &failed["trace"]), (&json!("Then it breaks"), &json!("boom")));
        assert_eq!(doc["results"]["summary"]["failed"], 1);
    }
}
