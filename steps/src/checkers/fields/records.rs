//! The field meanings every saga record holds to: its `eventId` a UUID naming one event only,
//! its `eventTimestamp` and every `*At` epoch milliseconds within the run.

use super::{RunWindow, violation};
use crate::checkers::Violation;
use crate::observed::TapRecord;
use serde_json::Value;
use std::collections::HashMap;

fn is_uuid(text: &str) -> bool {
    // The canonical 8-4-4-4-12 form: other spellings of the same UUID would defeat a
    // consumer's dedupe on the string.
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
}

/// Each eventId is a UUID and belongs to one event: the same id on two topics, or on two
/// different records of one topic, is a violation; the same record again is a redelivery.
pub(super) fn event_ids(records: &[&TapRecord]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut first: HashMap<&str, &TapRecord> = HashMap::new();
    for r in records {
        let Some(id) = r.event_id.as_deref() else {
            violations.push(violation("event-id", r, "the record has no eventId".into()));
            continue;
        };
        if !is_uuid(id) {
            violations.push(violation("event-id", r, format!("eventId {id:?} is not a UUID (8-4-4-4-12 hex)")));
        }
        match first.get(id) {
            None => {
                first.insert(id, r);
            }
            Some(earlier) if earlier.topic != r.topic => violations.push(violation(
                "event-id",
                r,
                format!(
                    "eventId {id} is already the id of a {} record ({}[{}]@{}): an effect must have an id of its own",
                    earlier.topic, earlier.topic, earlier.partition, earlier.offset
                ),
            )),
            Some(earlier) if earlier.value != r.value => violations.push(violation(
                "event-id",
                r,
                format!(
                    "eventId {id} names two different {} records: {} and {}",
                    r.topic,
                    earlier.value.as_ref().map(Value::to_string).unwrap_or_default(),
                    r.value.as_ref().map(Value::to_string).unwrap_or_default()
                ),
            )),
            Some(_) => {}
        }
    }
    violations
}

/// `eventTimestamp` and every `*At` field, at any depth, is an integer of epoch ms in the window.
pub(super) fn timestamps(records: &[&TapRecord], window: RunWindow) -> Vec<Violation> {
    let mut violations = Vec::new();
    for r in records {
        let mut fields = Vec::new();
        time_fields(r.value.as_ref().unwrap_or(&Value::Null), "", &mut fields);
        for (path, value) in fields {
            let detail = match value.as_i64() {
                None => Some(format!("{path} is {value}, not epoch milliseconds")),
                Some(ms) if !window.contains(ms) => Some(format!(
                    "{path} = {ms} is outside the run ({}..{} ms ± {} ms){}",
                    window.start_ms,
                    window.end_ms,
                    window.tolerance_ms,
                    unit_hint(ms, window)
                )),
                Some(_) => None,
            };
            violations.extend(detail.map(|d| violation("timestamp", r, d)));
        }
    }
    violations
}

fn time_fields<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if k == "eventTimestamp" || (k.len() > 2 && k.ends_with("At")) {
                    out.push((here, v));
                } else {
                    time_fields(v, &here, out);
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| time_fields(v, &format!("{path}[{i}]"), out)),
        _ => {}
    }
}

/// Names the unit a timestamp outside the window looks like it is in.
fn unit_hint(ms: i64, window: RunWindow) -> &'static str {
    let near = |v: i64| window.contains(v);
    if near(ms.saturating_mul(1000)) {
        " — it looks like seconds"
    } else if near(ms / 1000) {
        " — it looks like microseconds"
    } else if near(ms / 1_000_000) {
        " — it looks like nanoseconds"
    } else {
        ""
    }
}
