//! The record's JSON Schema (`docs/conformance-record.schema.json`, built into the kit) and a
//! checker of the draft-07 keywords it and CTRF's schema (`docs/ctrf/`, from the `ctrf` npm
//! package, MIT) use — `type`, `properties`, `required`, `additionalProperties`, `items`,
//! `minItems`, `enum`, `const`, `minimum`, `minLength`, `pattern`, `anyOf`, `$ref` within the
//! document — so unit tests hold what the kit writes to both schemas without a JSON Schema crate
//! or the network. `format` is an annotation in draft-07 and is not checked. A keyword the
//! checker does not know is an error, never skipped, so a schema cannot outgrow the check
//! unnoticed. (Both files validate with any draft-07 validator; docs/conformance-record.md
//! shows one.)

use serde_json::Value;

/// The schema of record version 1.
pub const SCHEMA: &str = include_str!("../../../docs/conformance-record.schema.json");

/// Keywords that describe and do not constrain (`definitions` holds what `$ref` points at).
const ANNOTATIONS: [&str; 6] = ["$schema", "$id", "title", "description", "format", "definitions"];

/// Every way `instance` breaks the record schema, as `path: what` lines; empty when it holds.
pub fn validate(instance: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the built-in record schema is JSON");
    validate_against(&schema, instance)
}

/// Every way `instance` breaks `schema`, as `path: what` lines; empty when it holds.
pub fn validate_against(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, instance, "$", &mut errors);
    errors
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let check =
        |schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>| check(root, schema, value, path, errors);
    let Some(keywords) = schema.as_object() else {
        errors.push(format!("{path}: the schema here is not an object"));
        return;
    };
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "type" => {
                let allowed: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if !allowed.iter().any(|t| is_type(value, t)) {
                    errors.push(format!("{path}: expected {}, found {}", allowed.join(" or "), short(value)));
                }
            }
            "const" if value != rule => errors.push(format!("{path}: expected {rule}, found {}", short(value))),
            "enum" if !rule.as_array().is_some_and(|options| options.contains(value)) => {
                errors.push(format!("{path}: {} is not one of {rule}", short(value)))
            }
            "const" | "enum" => {}
            "minimum" => {
                if let (Some(v), Some(min)) = (value.as_f64(), rule.as_f64())
                    && v < min
                {
                    errors.push(format!("{path}: {v} is below the minimum {min}"));
                }
            }
            "minLength" => {
                if let (Some(s), Some(min)) = (value.as_str(), rule.as_u64())
                    && (s.chars().count() as u64) < min
                {
                    errors.push(format!("{path}: shorter than {min} character(s)"));
                }
            }
            "pattern" => {
                if let (Some(s), Some(pattern)) = (value.as_str(), rule.as_str()) {
                    match regex::Regex::new(pattern) {
                        Ok(re) if re.is_match(s) => {}
                        Ok(_) => errors.push(format!("{path}: {s:?} does not match {pattern}")),
                        Err(e) => errors.push(format!("{path}: the schema's pattern {pattern} is not a regex: {e}")),
                    }
                }
            }
            "required" => {
                if let (Some(object), Some(names)) = (value.as_object(), rule.as_array()) {
                    for name in names.iter().filter_map(Value::as_str).filter(|n| !object.contains_key(*n)) {
                        errors.push(format!("{path}: {name} is missing"));
                    }
                }
            }
            "properties" => {
                if let (Some(object), Some(properties)) = (value.as_object(), rule.as_object()) {
                    for (name, sub) in properties {
                        if let Some(v) = object.get(name) {
                            check(sub, v, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                let Some(object) = value.as_object() else { continue };
                let declared = keywords.get("properties").and_then(Value::as_object);
                for (name, v) in object.iter().filter(|(n, _)| !declared.is_some_and(|d| d.contains_key(*n))) {
                    match rule {
                        Value::Bool(false) => errors.push(format!("{path}: {name} is not a declared field")),
                        Value::Bool(true) => {}
                        sub => check(sub, v, &format!("{path}.{name}"), errors),
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        check(rule, item, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            "minItems" => {
                if let (Some(items), Some(min)) = (value.as_array(), rule.as_u64())
                    && (items.len() as u64) < min
                {
                    errors.push(format!("{path}: fewer than {min} item(s)"));
                }
            }
            "anyOf" => {
                let options = rule.as_array().map(Vec::as_slice).unwrap_or_default();
                if !options.iter().any(|option| {
                    let mut option_errors = Vec::new();
                    check(option, value, path, &mut option_errors);
                    option_errors.is_empty()
                }) {
                    errors.push(format!("{path}: {} matches none of anyOf", short(value)));
                }
            }
            "$ref" => match rule.as_str().and_then(|r| r.strip_prefix('#')).and_then(|p| root.pointer(p)) {
                Some(target) => check(target, value, path, errors),
                None => errors.push(format!("{path}: $ref {rule} points at nothing in the schema")),
            },
            other => errors.push(format!("{path}: the schema uses {other}, which this checker does not know")),
        }
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::build::tests::sample_record;

    #[test]
    fn a_record_the_kit_writes_matches_the_published_schema() {
        let record = serde_json::to_value(sample_record()).unwrap();
        assert_eq!(validate(&record), Vec::<String>::new());
    }

    #[test]
    fn a_record_that_breaks_the_schema_is_caught_with_where() {
        let mut record = serde_json::to_value(sample_record()).unwrap();
        record["verdict"]["verdict"] = "ALMOST".into();
        record["results"][0]["level"] = "may".into();
        record["results"][1]["duration_ms"] = (-1.0).into();
        record["features"]["digest"] = "md5:abc".into();
        record["run"]["extra"] = true.into();
        record["kit"].as_object_mut().unwrap().remove("revision");
        record["record_version"] = 2.into();
        let errors = validate(&record).join("\n");
        for expected in [
            "$.verdict.verdict: \"ALMOST\" is not one of",
            "$.results[0].level: \"may\" is not one of",
            "$.results[1].duration_ms: -1 is below the minimum 0",
            "$.features.digest: \"md5:abc\" does not match",
            "$.run: extra is not a declared field",
            "$.kit: revision is missing",
            "$.record_version: expected 1, found 2",
        ] {
            assert!(errors.contains(expected), "{expected} not in:\n{errors}");
        }
    }

    #[test]
    fn an_unknown_schema_keyword_is_an_error_not_a_pass() {
        let errors = validate_against(&serde_json::json!({"oneOf": []}), &serde_json::json!(1));
        assert_eq!(errors, vec!["$: the schema uses oneOf, which this checker does not know".to_string()]);
    }

    #[test]
    fn refs_any_of_and_min_items_are_checked() {
        let schema = serde_json::json!({
            "definitions": {"n": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]}},
            "type": "array",
            "minItems": 2,
            "items": {"$ref": "#/definitions/n"}
        });
        assert!(validate_against(&schema, &serde_json::json!(["a", 1])).is_empty());
        let errors = validate_against(&schema, &serde_json::json!([-1])).join("\n");
        assert!(errors.contains("$: fewer than 2 item(s)"), "{errors}");
        assert!(errors.contains("$[0]: -1 matches none of anyOf"), "{errors}");
        let dangling = validate_against(&serde_json::json!({"$ref": "#/definitions/x"}), &serde_json::json!(1));
        assert_eq!(dangling, vec!["$: $ref \"#/definitions/x\" points at nothing in the schema".to_string()]);
    }
}
