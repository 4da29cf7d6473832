//! `docs/contract/asyncapi.yaml` and `openapi.yaml` are written by hand; this test fails when
//! they drift from the code that is the contract's source of truth:
//!
//! - AsyncAPI: every topic of the topic map (`avro/src/topics.rs`) has a channel and a `.dlt`
//!   channel with 3 partitions; each message references the right `.avsc` file, whose record full
//!   name and content are the contract crate's; Confluent framing, subject `<topic>-value` and
//!   key = orderId are stated; the services' consumer topics (read from their `service::run`
//!   calls) and produced topics (their outbox `enqueue` calls) have operations; the dead-letter
//!   headers the service kit writes are all described.
//! - OpenAPI: every route the services serve (their axum `.route(..)` calls) is a path with its
//!   method, and its responses are exactly the status codes its handler can answer with (read
//!   from the handler: `Problem::*` constructors, the JSON extractor, `?` on the database);
//!   the push webhook's body has the fields of `saga_contract::PushNotification`.
//! - Coverage: every rule of `docs/contract.md` (its `[C-…]` ids) and every answer of
//!   `openapi.yaml` has a row in `docs/requirements.md`'s clause table naming a requirement a
//!   scenario carries, or saying why it is not checked.
//!
//! The checks are functions over the parsed documents, so the last tests show each one failing
//! on a doctored copy.

use regex::Regex;
use saga_contract::{PushNotification, SagaTopic, Topics};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("steps/ has a parent").to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn load_yaml(relative: &str) -> Value {
    serde_norway::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
}

/// Follows a local `#/a/b/c` reference; anything else is returned as it is.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => doc.pointer(&format!("/{pointer}")).map(|n| resolve(doc, n)).unwrap_or(&Value::Null),
        None => node,
    }
}

fn str_at<'a>(node: &'a Value, pointer: &str) -> Option<&'a str> {
    node.pointer(pointer).and_then(Value::as_str)
}

fn saga_topic(variant: &str) -> SagaTopic {
    SagaTopic::ALL
        .into_iter()
        .find(|t| format!("{t:?}") == variant)
        .unwrap_or_else(|| panic!("no SagaTopic::{variant}"))
}

/// What the services' code says about topics: (service, consumed, produced).
fn services_topics() -> Vec<(&'static str, BTreeSet<SagaTopic>, BTreeSet<SagaTopic>)> {
    let consumed = Regex::new(r"service::run\(\s*started,\s*vec!\[([^\]]*)\]").unwrap();
    let variant = Regex::new(r"SagaTopic::(\w+)").unwrap();
    let produced = Regex::new(r"(?:enqueue\(&mut tx, |let topic = [^;]*)SagaTopic::(\w+)").unwrap();
    ["order", "product", "payment"]
        .into_iter()
        .map(|service| {
            let mut consumes = BTreeSet::new();
            let mut produces = BTreeSet::new();
            for entry in std::fs::read_dir(root().join("services").join(service).join("src")).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                for list in consumed.captures_iter(&text) {
                    consumes.extend(variant.captures_iter(&list[1]).map(|c| saga_topic(&c[1])));
                }
                produces.extend(produced.captures_iter(&text).map(|c| saga_topic(&c[1])));
            }
            (service, consumes, produces)
        })
        .collect()
}

/// Header names the service kit writes on dead letters.
fn dead_letter_headers() -> BTreeSet<String> {
    let key = Regex::new(r#"key: "(dlt\.[a-z.]+)""#).unwrap();
    key.captures_iter(&read("services/kit/src/consumer/dead_letters.rs")).map(|c| c[1].to_string()).collect()
}

/// Everything wrong with the AsyncAPI document; empty = it matches the code.
fn asyncapi_problems(doc: &Value, contract_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let topics = Topics::default();
    let channels: Vec<&Value> =
        doc.get("channels").and_then(Value::as_object).map(|c| c.values().collect()).unwrap_or_default();
    let channel = |address: &str| channels.iter().copied().find(|c| str_at(c, "/address") == Some(address));
    let operations: Vec<&Value> =
        doc.get("operations").and_then(Value::as_object).map(|o| o.values().collect()).unwrap_or_default();
    let operation = |action: &str, address: &str, service: &str| {
        operations.iter().any(|o| {
            str_at(o, "/action") == Some(action)
                && str_at(resolve(doc, &o["channel"]), "/address") == Some(address)
                && o.get("tags")
                    .and_then(Value::as_array)
                    .is_some_and(|tags| tags.iter().any(|t| str_at(t, "/name") == Some(service)))
        })
    };
    let mut referenced = BTreeSet::new();
    for topic in SagaTopic::ALL {
        let name = topics.name(topic);
        let dlt = topics.dead_letter(topic);
        for address in [name, dlt.as_str()] {
            match channel(address) {
                None => problems.push(format!("no channel with address {address}")),
                Some(c) => {
                    if str_at(c, "/bindings/kafka/topic") != Some(address)
                        || c.pointer("/bindings/kafka/partitions").and_then(Value::as_u64) != Some(3)
                    {
                        problems
                            .push(format!("channel {address}: its kafka binding must name the topic and 3 partitions"));
                    }
                    let messages: Vec<&Value> = c
                        .get("messages")
                        .and_then(Value::as_object)
                        .map(|m| m.values().map(|m| resolve(doc, m)).collect())
                        .unwrap_or_default();
                    if messages.len() != 1 {
                        problems.push(format!("channel {address}: expected one message, found {}", messages.len()));
                        continue;
                    }
                    let message = messages[0];
                    if str_at(resolve(doc, &message["bindings"]["kafka"]["key"]), "/x-key-field") != Some("orderId") {
                        problems.push(format!("channel {address}: the message key is not stated as the orderId"));
                    }
                    if address == name {
                        check_event_message(topic, name, message, contract_dir, &mut referenced, &mut problems);
                    } else {
                        let headers = resolve(doc, &message["headers"]);
                        for header in dead_letter_headers() {
                            if headers.pointer(&format!("/properties/{}", header.replace('/', "~1"))).is_none() {
                                problems.push(format!("channel {address}: dead-letter header {header} (written by services/kit) is not described"));
                            }
                        }
                    }
                }
            }
        }
    }
    for (service, consumes, produces) in services_topics() {
        let group = format!("{service}-service");
        for topic in consumes {
            if !operation("receive", topics.name(topic), &group) {
                problems.push(format!(
                    "{group} consumes {} but no receive operation tagged {group} says so",
                    topics.name(topic)
                ));
            }
            if !operation("send", &topics.dead_letter(topic), &group) {
                problems.push(format!(
                    "{group} dead-letters {} but no send operation on that channel says so",
                    topics.dead_letter(topic)
                ));
            }
        }
        for topic in produces {
            if !operation("send", topics.name(topic), &group) {
                problems.push(format!(
                    "{group} produces {} but no send operation tagged {group} says so",
                    topics.name(topic)
                ));
            }
        }
    }
    for file in avsc_files(&root().join("avro/schemas")) {
        if !referenced.contains(&file) {
            problems.push(format!("{} is part of the contract but no message references it", file.display()));
        }
    }
    problems
}

fn check_event_message(
    topic: SagaTopic,
    name: &str,
    message: &Value,
    contract_dir: &Path,
    referenced: &mut BTreeSet<PathBuf>,
    problems: &mut Vec<String>,
) {
    let full_name = topic.record_full_name();
    if !str_at(message, "/payload/schemaFormat").is_some_and(|f| f.starts_with("application/vnd.apache.avro")) {
        problems.push(format!("{name}: the payload's schemaFormat is not Avro"));
    }
    if str_at(message, "/x-avro-record") != Some(full_name) {
        problems.push(format!("{name}: x-avro-record must be {full_name}"));
    }
    if str_at(message, "/x-schema-subject") != Some(format!("{name}-value").as_str()) {
        problems.push(format!("{name}: x-schema-subject must be {name}-value (TopicNameStrategy)"));
    }
    let kafka = &message["bindings"]["kafka"];
    if str_at(kafka, "/schemaIdLocation") != Some("payload")
        || str_at(kafka, "/schemaIdPayloadEncoding") != Some("confluent")
        || str_at(kafka, "/schemaLookupStrategy") != Some("TopicNameStrategy")
    {
        problems.push(format!(
            "{name}: the kafka message binding must state the Confluent framing (payload, confluent, TopicNameStrategy)"
        ));
    }
    let Some(reference) = str_at(message, "/payload/schema/$ref") else {
        problems.push(format!("{name}: the payload does not reference an .avsc file"));
        return;
    };
    let path = contract_dir.join(reference);
    let Ok(text) = std::fs::read_to_string(&path) else {
        problems.push(format!("{name}: {reference} does not exist"));
        return;
    };
    let schema: Value = serde_json::from_str(&text).unwrap_or_default();
    let named =
        format!("{}.{}", schema["namespace"].as_str().unwrap_or_default(), schema["name"].as_str().unwrap_or_default());
    if named != full_name {
        problems.push(format!("{name}: {reference} is {named}, the topic carries {full_name}"));
    }
    if serde_json::from_str::<Value>(topic.schema_json()).ok() != Some(schema) {
        problems.push(format!("{name}: {reference} is not the schema the contract crate was built from"));
    }
    referenced.insert(path.canonicalize().unwrap_or(path));
}

fn avsc_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(avsc_files(&path));
        } else if path.extension().is_some_and(|e| e == "avsc") {
            files.push(path.canonicalize().unwrap());
        }
    }
    files
}

/// One route a service serves, with the status codes its handler can answer with.
#[derive(Debug)]
struct Route {
    file: &'static str,
    path: String,
    method: String,
    codes: BTreeSet<u16>,
    needs_user_id: bool,
}

/// `{order_id}` and `{orderId}` are the same path.
fn normalise(path: &str) -> String {
    Regex::new(r"\{[^}]*\}").unwrap().replace_all(path, "{}").into_owned()
}

/// The routes in the services' sources and, from each handler's body, its status codes.
fn routes() -> Vec<Route> {
    let route = Regex::new(r#"\.route\(\s*"([^"]+)",\s*"#).unwrap();
    // `get(handler)` names a handler; `get(|| …)` / `get(move || …)` is a closure.
    let method = Regex::new(r"\b(get|post|put|delete|patch)\((?:(\w+)\)|[^)])").unwrap();
    let mut found = Vec::new();
    for file in [
        "services/order/src/api.rs",
        "services/product/src/api.rs",
        "services/payment/src/api.rs",
        "services/kit/src/http.rs",
    ] {
        let text = read(file);
        // Routes built in the file's own unit tests are not served.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let starts: Vec<_> = route.captures_iter(text).map(|c| (c.get(0).unwrap().end(), c[1].to_string())).collect();
        for (i, (start, path)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map(|s| s.0).unwrap_or(text.len());
            let segment = &text[*start..end];
            // One route call's methods: up to the route call's closing `)`.
            let segment = &segment[..closing_paren(segment)];
            for m in method.captures_iter(segment) {
                let handler = handler_body(text, m.get(2).map_or("", |h| h.as_str()));
                found.push(Route {
                    file,
                    path: path.clone(),
                    method: m[1].to_string(),
                    codes: status_codes(handler),
                    needs_user_id: handler.contains("user_id(&headers)"),
                });
            }
        }
    }
    found
}

/// Index of the `)` closing a call whose `(` precedes `text`.
fn closing_paren(text: &str) -> usize {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// `async fn NAME(..) { .. }` up to the next top-level item; empty for a closure handler.
fn handler_body<'a>(text: &'a str, name: &str) -> &'a str {
    if name.is_empty() {
        return "";
    }
    let start = text.find(&format!("async fn {name}(")).unwrap_or_else(|| panic!("handler {name} not found"));
    let rest = &text[start..];
    &rest[..rest.find("\n}\n").unwrap_or(rest.len())]
}

/// Status codes a handler can answer with, from what its body uses.
fn status_codes(handler: &str) -> BTreeSet<u16> {
    let mut codes = BTreeSet::from([if handler.contains("StatusCode::CREATED") { 201 } else { 200 }]);
    let uses = |needle: &str| handler.contains(needle);
    if uses("Problem::bad_request") || uses("user_id(&headers)") {
        codes.insert(400);
    }
    if uses("Problem::not_found") {
        codes.insert(404);
    }
    if uses("Problem::unprocessable") {
        codes.insert(422);
    }
    if uses("ProblemJson(") {
        // The JSON extractor: malformed 400, wrong content type 415, bad content 422; the kit's
        // body limit answers 413 before it.
        codes.extend([400, 413, 415, 422]);
    }
    if uses("Problem::unavailable") || uses(".await?") {
        // `?` on sqlx errors converts to a 503 problem.
        codes.insert(503);
    }
    codes
}

/// Everything wrong with the OpenAPI document; empty = it matches the code.
fn openapi_problems(doc: &Value, routes: &[Route]) -> Vec<String> {
    let mut problems = Vec::new();
    let paths = doc.get("paths").and_then(Value::as_object).cloned().unwrap_or_default();
    let served: BTreeSet<(String, String)> = routes.iter().map(|r| (normalise(&r.path), r.method.clone())).collect();
    for route in routes {
        let Some((_, item)) = paths.iter().find(|(p, _)| normalise(p) == normalise(&route.path)) else {
            problems.push(format!(
                "{} serves {} {} but openapi.yaml has no such path",
                route.file,
                route.method.to_uppercase(),
                route.path
            ));
            continue;
        };
        let Some(operation) = item.get(&route.method) else {
            problems.push(format!(
                "{} serves {} {} but its path in openapi.yaml has no {} operation",
                route.file,
                route.method.to_uppercase(),
                route.path,
                route.method
            ));
            continue;
        };
        let documented: BTreeSet<u16> = operation
            .get("responses")
            .and_then(Value::as_object)
            .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default();
        if documented != route.codes {
            problems.push(format!(
                "{} {}: the handler answers {:?}, openapi.yaml documents {:?}",
                route.method.to_uppercase(),
                route.path,
                route.codes,
                documented
            ));
        }
        for code in route.codes.iter().filter(|c| **c >= 400) {
            let response = resolve(doc, &operation["responses"][code.to_string()]);
            if response.pointer("/content/application~1problem+json").is_none() {
                problems.push(format!(
                    "{} {}: the {code} response is not an application/problem+json problem",
                    route.method.to_uppercase(),
                    route.path
                ));
            }
        }
        let has_user_id = operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().any(|p| str_at(resolve(doc, p), "/name") == Some("X-User-Id")));
        if has_user_id != route.needs_user_id {
            problems.push(format!(
                "{} {}: X-User-Id is {} by the handler but {} in openapi.yaml",
                route.method.to_uppercase(),
                route.path,
                if route.needs_user_id { "required" } else { "not read" },
                if has_user_id { "declared" } else { "not declared" }
            ));
        }
        if route.codes.contains(&201) && operation.pointer("/responses/201/headers/Location").is_none() {
            problems.push(format!("POST {}: the 201 must declare its Location header", route.path));
        }
    }
    for (path, item) in &paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() && !served.contains(&(normalise(path), method.to_string())) {
                problems
                    .push(format!("openapi.yaml documents {} {path}, which no service serves", method.to_uppercase()));
            }
        }
    }
    let push = resolve(
        doc,
        &doc["webhooks"]["pushNotification"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    );
    let sample = serde_json::to_value(PushNotification {
        user_id: "u".into(),
        order_id: "o".into(),
        kind: saga_contract::PushKind::PaymentWait,
        message: "m".into(),
        event_id: "e".into(),
    })
    .unwrap();
    let fields: BTreeSet<String> = sample.as_object().unwrap().keys().cloned().collect();
    let documented: BTreeSet<String> =
        push.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default();
    if fields != documented {
        problems.push(format!(
            "the pushNotification webhook documents {documented:?}; saga_contract::PushNotification has {fields:?}"
        ));
    }
    problems
}

fn contract_dir() -> PathBuf {
    root().join("docs/contract")
}

#[test]
fn asyncapi_matches_the_topic_map_and_schemas() {
    let problems = asyncapi_problems(&load_yaml("docs/contract/asyncapi.yaml"), &contract_dir());
    assert!(problems.is_empty(), "docs/contract/asyncapi.yaml drifted from the code:\n  {}", problems.join("\n  "));
}

#[test]
fn openapi_matches_the_services_routes() {
    let routes = routes();
    assert!(routes.len() >= 7, "the route scan found only {routes:?}: has the services' routing changed shape?");
    let problems = openapi_problems(&load_yaml("docs/contract/openapi.yaml"), &routes);
    assert!(problems.is_empty(), "docs/contract/openapi.yaml drifted from the code:\n  {}", problems.join("\n  "));
}

#[test]
fn the_route_scan_reads_status_codes_from_handlers() {
    let routes = routes();
    let create = routes.iter().find(|r| r.method == "post" && r.path == "/api/v1/orders").expect("POST /api/v1/orders");
    assert_eq!(create.codes, BTreeSet::from([201, 400, 413, 415, 422, 503]));
    assert!(create.needs_user_id);
    let health = routes.iter().find(|r| r.path == "/health").expect("/health");
    assert_eq!(health.codes, BTreeSet::from([200]));
}

#[test]
fn a_doctored_asyncapi_document_fails() {
    let original = load_yaml("docs/contract/asyncapi.yaml");
    let dir = contract_dir();

    let mut no_dlt = original.clone();
    no_dlt["channels"].as_object_mut().unwrap().remove("orderCancelledDeadLetter");
    assert!(asyncapi_problems(&no_dlt, &dir).iter().any(|p| p == "no channel with address order.cancelled.dlt"));

    let mut wrong_schema = original.clone();
    wrong_schema["components"]["messages"]["StockReserved"]["payload"]["schema"]["$ref"] =
        "../../avro/schemas/order/OrderCreated.avsc".into();
    let problems = asyncapi_problems(&wrong_schema, &dir);
    assert!(problems.iter().any(|p| p.contains("stock.reserved: ../../avro/schemas/order/OrderCreated.avsc is com.groom.ecommerce.order.event.avro.OrderCreated")), "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("StockReserved.avsc is part of the contract but no message references it")),
        "{problems:?}"
    );

    let mut wrong_key = original.clone();
    wrong_key["components"]["schemas"]["OrderIdKey"]["x-key-field"] = "eventId".into();
    assert_eq!(asyncapi_problems(&wrong_key, &dir).len(), 10, "every channel's key is wrong now");

    let mut no_consumer = original.clone();
    no_consumer["operations"].as_object_mut().unwrap().remove("receiveOrderConfirmed");
    assert!(
        asyncapi_problems(&no_consumer, &dir).iter().any(|p| p.starts_with("payment-service consumes order.confirmed"))
    );

    let mut no_header = original;
    no_header["components"]["schemas"]["DeadLetterHeaders"]["properties"].as_object_mut().unwrap().remove("dlt.error");
    assert_eq!(asyncapi_problems(&no_header, &dir).len(), 5, "each dead-letter channel lacks dlt.error");
}

#[test]
fn a_doctored_openapi_document_fails() {
    let original = load_yaml("docs/contract/openapi.yaml");
    let routes = routes();

    let mut no_path = original.clone();
    no_path["paths"].as_object_mut().unwrap().remove("/api/v1/payments");
    assert!(
        openapi_problems(&no_path, &routes)
            .iter()
            .any(|p| p.contains("serves GET /api/v1/payments but openapi.yaml has no such path"))
    );

    let mut no_413 = original.clone();
    no_413["paths"]["/api/v1/products/{productId}"]["put"]["responses"].as_object_mut().unwrap().remove("413");
    let problems = openapi_problems(&no_413, &routes);
    assert!(
        problems.iter().any(|p| p.starts_with("PUT /api/v1/products/{product_id}: the handler answers")),
        "{problems:?}"
    );

    let mut extra = original.clone();
    extra["paths"]["/api/v1/orders/{orderId}"]["delete"] =
        serde_json::json!({"responses": {"204": {"description": "gone"}}});
    assert!(
        openapi_problems(&extra, &routes)
            .iter()
            .any(|p| p.contains("documents DELETE /api/v1/orders/{orderId}, which no service serves"))
    );

    let mut no_user = original.clone();
    no_user["paths"]["/api/v1/orders"]["post"]["parameters"] = serde_json::json!([]);
    assert!(
        openapi_problems(&no_user, &routes)
            .iter()
            .any(|p| p.contains("X-User-Id is required by the handler but not declared"))
    );

    let mut push = original;
    push["components"]["schemas"]["PushNotification"]["properties"].as_object_mut().unwrap().remove("eventId");
    assert!(openapi_problems(&push, &routes).iter().any(|p| p.starts_with("the pushNotification webhook documents")));
}

/// The rule ids of `docs/contract.md` (`[C-HTTP-1]`, …).
fn contract_rules(text: &str) -> BTreeSet<String> {
    let id = Regex::new(r"\[(C-[A-Z]+-\d+)\]").unwrap();
    id.captures_iter(text).map(|c| c[1].to_string()).collect()
}

/// Every answer `openapi.yaml` documents, as `METHOD path status` (a webhook as `POST <name>`).
fn openapi_answers(doc: &Value) -> BTreeSet<String> {
    let mut answers = BTreeSet::new();
    let operations = |node: &Value| -> Vec<(String, Vec<String>)> {
        let Some(methods) = node.as_object() else { return Vec::new() };
        methods
            .iter()
            .filter(|(method, _)| ["get", "put", "post", "delete", "patch"].contains(&method.as_str()))
            .map(|(method, op)| {
                let codes = op["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default();
                (method.to_uppercase(), codes)
            })
            .collect()
    };
    for section in ["paths", "webhooks"] {
        for (name, node) in doc[section].as_object().into_iter().flatten() {
            for (method, codes) in operations(node) {
                answers.extend(codes.into_iter().map(|code| format!("{method} {name} {code}")));
            }
        }
    }
    answers
}

/// The requirement ids the features carry (`@FLOW-1`, …), and `FIELDS-1` (the whole-run check).
fn feature_requirements() -> BTreeSet<String> {
    let tag = Regex::new(r"@([A-Z]+-\d+)\b").unwrap();
    let mut ids = BTreeSet::from(["FIELDS-1".to_string()]);
    for entry in std::fs::read_dir(root().join("features")).expect("features/") {
        let path = entry.expect("a features/ entry").path();
        if path.extension().is_some_and(|e| e == "feature") {
            let text = std::fs::read_to_string(&path).expect("a feature file");
            ids.extend(tag.captures_iter(&text).map(|c| c[1].to_string()));
        }
    }
    ids
}

/// The rows of requirements.md's clause table: (rule or answer, what checks it).
fn coverage_table(text: &str) -> Vec<(String, String)> {
    let section = text.split("## Every clause and what checks it").nth(1).unwrap_or_default();
    let section = section.split("\n## ").next().unwrap_or_default();
    let row = Regex::new(r"(?m)^\| `([^`]+)` \|[^|]*\| (.+) \|$").unwrap();
    row.captures_iter(section).map(|c| (c[1].to_string(), c[2].trim().to_string())).collect()
}

/// What is wrong with the clause table: a rule or an answer without a row, a row for nothing,
/// a row naming no requirement (or one no scenario carries), "not checked" without a reason.
fn coverage_problems(
    rules: &BTreeSet<String>,
    answers: &BTreeSet<String>,
    table: &[(String, String)],
    requirements: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let rows: BTreeSet<&str> = table.iter().map(|(id, _)| id.as_str()).collect();
    for missing in rules.iter().chain(answers).filter(|id| !rows.contains(id.as_str())) {
        problems.push(format!("{missing} has no row in requirements.md's clause table: which requirement checks it?"));
    }
    let requirement = Regex::new(r"\b([A-Z]+-\d+)\b").unwrap();
    for (id, checked_by) in table {
        if !rules.contains(id) && !answers.contains(id) {
            problems.push(format!("row {id} names no rule of contract.md and no answer of openapi.yaml"));
        }
        if let Some(reason) = checked_by.strip_prefix("not checked:") {
            if reason.trim().len() < 10 {
                problems.push(format!("row {id} is not checked and does not say why"));
            }
            continue;
        }
        let named: Vec<&str> = requirement.captures_iter(checked_by).map(|c| c.get(1).unwrap().as_str()).collect();
        if named.is_empty() {
            problems.push(format!("row {id} names no requirement: {checked_by:?}"));
        }
        for unknown in named.into_iter().filter(|r| !requirements.contains(*r)) {
            problems.push(format!("row {id}: {unknown} is no scenario's requirement tag"));
        }
    }
    problems
}

#[test]
fn every_clause_of_the_contract_has_a_requirement() {
    let rules = contract_rules(&read("docs/contract.md"));
    assert!(rules.len() >= 30, "found only {} rule ids in docs/contract.md: {rules:?}", rules.len());
    let answers = openapi_answers(&load_yaml("docs/contract/openapi.yaml"));
    assert!(answers.contains("POST /api/v1/orders 415"), "{answers:?}");
    assert!(answers.contains("POST pushNotification 200"), "{answers:?}");
    let table = coverage_table(&read("docs/requirements.md"));
    let problems = coverage_problems(&rules, &answers, &table, &feature_requirements());
    assert!(problems.is_empty(), "docs/requirements.md's clause table:\n  {}", problems.join("\n  "));
}

#[test]
fn a_clause_without_a_requirement_fails() {
    let rules = contract_rules("a rule [C-X-1] and another [C-X-2]");
    let answers = BTreeSet::from(["GET /a 200".to_string()]);
    let requirements = BTreeSet::from(["FLOW-1".to_string()]);
    let row = |id: &str, by: &str| (id.to_string(), by.to_string());
    let good =
        vec![row("C-X-1", "FLOW-1"), row("C-X-2", "not checked: the reason is given"), row("GET /a 200", "FLOW-1")];
    assert!(coverage_problems(&rules, &answers, &good, &requirements).is_empty());
    let problems_of = |table: Vec<(String, String)>| coverage_problems(&rules, &answers, &table, &requirements);
    assert!(problems_of(good[1..].to_vec()).iter().any(|p| p.starts_with("C-X-1 has no row")));
    assert!(problems_of(good[..2].to_vec()).iter().any(|p| p.starts_with("GET /a 200 has no row")));
    let mut unknown = good.clone();
    unknown[0].1 = "FLOW-9".into();
    assert!(problems_of(unknown).iter().any(|p| p.contains("FLOW-9 is no scenario's requirement tag")));
    let mut no_reason = good.clone();
    no_reason[1].1 = "not checked:".into();
    assert!(problems_of(no_reason).iter().any(|p| p.contains("does not say why")));
    let mut stale = good;
    stale.push(row("C-X-3", "FLOW-1"));
    assert!(problems_of(stale).iter().any(|p| p.contains("row C-X-3 names no rule")));
    // The table is read from its section, row by row.
    let text = "## Every clause and what checks it\n\n| Rule | Clause | Checked by |\n|---|---|---|\n| `C-X-1` | c | FLOW-1 |\n\n## Next\n| `C-X-2` | c | FLOW-1 |\n";
    assert_eq!(coverage_table(text), vec![row("C-X-1", "FLOW-1")]);
}
