//! A run's results, the model every report is written from: each scenario's [`Status`] and
//! [`ScenarioResult`], the scenarios a backend could not run ([`Skipped`]), requirement ids, and
//! a step's way of ending its scenario as not judged ([`not_judged`]). Cucumber writes
//! `cucumber.json`; [`read_cucumber_json`] reads it back into results.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The tags of the run-level field check (FIELDS-1), which the runner adds to the results as one
/// more required scenario.
pub const FIELDS_TAGS: [&str; 3] = ["FIELDS", "FIELDS-1", "must"];

/// What a step's panic message carries when it ends its scenario as not judged.
const NOT_JUDGED_MARK: &str = "[NOT JUDGED] ";

/// Ends the running scenario as not judged, for `reason` — what did not hold, with the figures
/// seen. The step's panic carries a mark the results reader ([`crate::report`]) recognises.
pub fn not_judged(reason: impl std::fmt::Display) -> ! {
    panic!("{NOT_JUDGED_MARK}{reason}")
}

/// The reason of a step that ended its scenario with [`not_judged`], from its error message.
pub fn not_judged_reason(error: &str) -> Option<String> {
    error.split_once(NOT_JUDGED_MARK).map(|(_, reason)| reason.trim_end().to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Passed,
    Failed,
    /// A step was skipped or undefined (a defect of the run; counted as a failure).
    Incomplete,
    /// The scenario ran, but its experiment did not hold — its precondition could not be made
    /// true, or the implementation had not recovered from an earlier scenario — so it says
    /// nothing about the requirement either way. Its reason, with the figures seen, is the
    /// result's `error`. Never a pass: the run is INCOMPLETE at best (see `verdict`).
    NotJudged,
}

impl Status {
    /// The word reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Incomplete => "incomplete",
            Status::NotJudged => "not judged",
        }
    }

    /// A failure of the implementation (or of a step): what fails a run.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::Incomplete)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub feature: String,
    pub scenario: String,
    pub tags: Vec<String>,
    pub status: Status,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

impl ScenarioResult {
    /// Requirement ids (`FLOW-1`) among the tags, else the family tag.
    pub fn requirements(&self) -> Vec<&str> {
        let ids: Vec<&str> = self.tags.iter().map(String::as_str).filter(|t| is_requirement_id(t)).collect();
        if ids.is_empty() {
            self.tags.iter().map(String::as_str).filter(|t| t.chars().all(|c| c.is_ascii_uppercase())).collect()
        } else {
            ids
        }
    }
}

/// `FLOW-1`, `CRASH-3`: an upper-case family, a dash, a number.
pub fn is_requirement_id(tag: &str) -> bool {
    tag.split_once('-').is_some_and(|(family, n)| {
        !family.is_empty()
            && family.chars().all(|c| c.is_ascii_uppercase())
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub feature: String,
    pub scenario: String,
    pub tags: Vec<String>,
    pub reason: String,
}

#[derive(Deserialize)]
struct JsonFeature {
    name: String,
    #[serde(default)]
    tags: Vec<JsonTag>,
    #[serde(default)]
    elements: Vec<JsonElement>,
}

#[derive(Deserialize)]
struct JsonTag {
    name: String,
}

#[derive(Deserialize)]
struct JsonElement {
    r#type: String,
    #[serde(default)]
    keyword: String,
    name: String,
    #[serde(default)]
    tags: Vec<JsonTag>,
    #[serde(default)]
    steps: Vec<JsonStep>,
    /// Before hooks (the check after a failed scenario, steps/src/steps/recovery.rs).
    #[serde(default)]
    before: Vec<JsonHook>,
}

#[derive(Deserialize)]
struct JsonHook {
    result: JsonResult,
}

#[derive(Deserialize)]
struct JsonStep {
    keyword: String,
    name: String,
    result: JsonResult,
}

#[derive(Deserialize)]
struct JsonResult {
    status: String,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    duration: Option<u64>,
}

/// Scenarios from cucumber's JSON; a background's steps count towards the scenario after it.
pub fn read_cucumber_json(path: &Path) -> anyhow::Result<Vec<ScenarioResult>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let features: Vec<JsonFeature> =
        serde_json::from_str(&text).with_context(|| format!("{} is not cucumber JSON", path.display()))?;
    let mut results = Vec::new();
    for feature in features {
        let feature_tags: Vec<String> =
            feature.tags.iter().map(|t| t.name.trim_start_matches('@').to_string()).collect();
        let mut background: Vec<JsonStep> = Vec::new();
        for element in feature.elements {
            if element.r#type == "background" {
                background = element.steps;
                continue;
            }
            let steps: Vec<&JsonStep> = background.iter().chain(&element.steps).collect();
            let failed = steps.iter().find(|s| s.result.status == "failed");
            let incomplete = steps.iter().find(|s| s.result.status != "passed");
            let status = match (failed, incomplete) {
                (Some(_), _) => Status::Failed,
                (None, Some(_)) => Status::Incomplete,
                (None, None) if steps.is_empty() => Status::Incomplete,
                _ => Status::Passed,
            };
            let culprit = failed.or(incomplete);
            // A failed before hook: the scenario's steps did not run.
            let hook = element.before.iter().find(|h| h.result.status == "failed").map(|h| &h.result);
            let not_judged = match hook {
                Some(hook) => hook.error_message.as_deref().and_then(not_judged_reason),
                None => failed.and_then(|s| not_judged_reason(s.result.error_message.as_deref()?)),
            };
            let status = match (&not_judged, hook) {
                (Some(_), _) => Status::NotJudged,
                (None, Some(_)) => Status::Failed,
                (None, None) => status,
            };
            let mut tags = feature_tags.clone();
            tags.extend(element.tags.iter().map(|t| t.name.trim_start_matches('@').to_string()));
            // Every row of an outline carries the outline's name: its first step (with the
            // row's values filled in) tells the rows apart.
            let scenario = match (element.keyword.as_str(), element.steps.first()) {
                ("Scenario Outline", Some(first)) => format!("{} — {}", element.name, first.name),
                _ => element.name,
            };
            results.push(ScenarioResult {
                feature: feature.name.clone(),
                scenario,
                tags,
                status,
                failed_step: match hook {
                    Some(_) => Some("Before the scenario (the check after a failed one)".into()),
                    None => culprit.map(|s| format!("{}{}", s.keyword, s.name)),
                },
                error: not_judged.map(|why| format!("not judged: {why}")).or_else(|| {
                    hook.map(|h| h.error_message.clone().unwrap_or_default()).or_else(|| {
                        culprit.map(|s| {
                            s.result.error_message.clone().unwrap_or_else(|| format!("step {}", s.result.status))
                        })
                    })
                }),
                duration_ms: steps.iter().filter_map(|s| s.result.duration).sum::<u64>() as f64 / 1e6,
            });
            background = Vec::new();
        }
    }
    Ok(results)
}

/// Adds the scenarios the backend could not run to cucumber's JSON, each as a scenario whose
/// one step is skipped with the reason, so tools reading the JSON see them too.
pub fn append_skipped(path: &Path, skipped: &[Skipped]) -> anyhow::Result<()> {
    if skipped.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut features: Vec<serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("{} is not cucumber JSON", path.display()))?;
    for s in skipped {
        let element = serde_json::json!({
            "type": "scenario",
            "keyword": "Scenario",
            "name": s.scenario,
            "id": format!("skipped;{}", s.scenario),
            "tags": s.tags.iter().map(|t| serde_json::json!({"name": format!("@{t}")})).collect::<Vec<_>>(),
            "steps": [{"keyword": "Given ", "name": format!("skipped: {}", s.reason), "result": {"status": "skipped"}}],
        });
        match features.iter_mut().find(|f| f["name"] == serde_json::json!(s.feature)) {
            Some(feature) => {
                if let Some(elements) = feature["elements"].as_array_mut() {
                    elements.push(element);
                }
            }
            None => features
                .push(serde_json::json!({"keyword": "Feature", "name": s.feature, "uri": "", "elements": [element]})),
        }
    }
    std::fs::write(path, serde_json::to_string_pretty(&features)?)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, status: &str, error: Option<&str>) -> serde_json::Value {
        serde_json::json!({"keyword": "Then ", "name": name, "result": {"status": status, "error_message": error, "duration": 1000}})
    }

    #[test]
    fn a_step_ended_as_not_judged_makes_its_scenario_not_judged_and_a_plain_failure_does_not() {
        let panic = std::panic::catch_unwind(|| not_judged("intake accepted 0 of 443 orders")).unwrap_err();
        let mark = panic.downcast_ref::<String>().unwrap().clone();
        let scenario = |steps: Vec<serde_json::Value>| serde_json::json!({"type": "scenario", "keyword": "Scenario", "name": "s", "tags": [{"name": "@CRASH-1"}], "steps": steps});
        let mut after_a_failure = scenario(vec![step("a", "skipped", None)]);
        let unrecovered = mark.replace("intake accepted 0 of 443 orders", "not recovered since \"s\"");
        let error = format!("Step panicked. Captured output: {unrecovered}");
        after_a_failure["before"] = serde_json::json!([{"result": {"status": "failed", "error_message": error}}]);
        let json = serde_json::json!([{"name": "Crash", "elements": [
            scenario(vec![step("a", "passed", None), step("b", "failed", Some(&format!("Step panicked. Captured output: {mark}")))]),
            scenario(vec![step("a", "failed", Some("only 11 orders were open"))]),
            after_a_failure,
        ]}]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cucumber.json");
        std::fs::write(&path, json.to_string()).unwrap();
        let results = read_cucumber_json(&path).unwrap();
        assert_eq!(results[0].status, Status::NotJudged);
        assert_eq!(results[0].error.as_deref(), Some("not judged: intake accepted 0 of 443 orders"));
        assert_eq!(results[0].failed_step.as_deref(), Some("Then b"));
        assert_eq!(results[1].status, Status::Failed);
        assert_eq!(results[2].status, Status::NotJudged);
        assert_eq!(results[2].error.as_deref(), Some("not judged: not recovered since \"s\""));
    }

    #[test]
    fn a_not_judged_step_is_recognised_by_its_mark_and_nothing_else_is() {
        let panic = std::panic::catch_unwind(|| not_judged("only 11 of 20 orders open")).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        let captured = format!("Step panicked. Captured output: {message}\n");
        assert_eq!(not_judged_reason(&captured).as_deref(), Some("only 11 of 20 orders open"));
        assert_eq!(not_judged_reason("assertion failed: not judged: by whom?"), None);
    }
}
