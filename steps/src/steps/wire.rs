//! Wire format: Confluent framing, schema ids the registry resolves, subjects compatible with
//! the contract.

use super::SagaWorld;
use crate::observed::TapRecord;
use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use cucumber::then;
use saga_contract::SagaTopic;
use serde_json::Value;

async fn registry_get(world: &SagaWorld, path: &str) -> Result<Value, String> {
    let url = format!("{}{path}", world.env.endpoints.registry_url.trim_end_matches('/'));
    let response = world.env.http.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("GET {url}: {e}"))?;
    if status.is_success() { Ok(body) } else { Err(format!("GET {url} answered {status}: {body}")) }
}

#[then("every record of the order is Confluent-framed with a schema id the registry resolves")]
async fn framed(world: &mut SagaWorld) {
    let id = world.order_id();
    // The saga's three records (created, reserved or failed, confirmed or cancelled): the tap may
    // still be reading the last one when the outcome already shows over HTTP, so wait for it.
    let of_order = |log: &[TapRecord]| -> Vec<TapRecord> {
        log.iter().filter(|r| r.order_id.as_deref() == Some(id.as_str()) && !r.dead_letter).cloned().collect()
    };
    let records = world
        .env
        .tap
        .wait_until(world.deadline(), |log| {
            let records = of_order(log);
            if records.len() >= 3 { Ok(records) } else { Err(records.len()) }
        })
        .await
        .unwrap_or_else(|seen| {
            panic!("expected the saga's 3 records within {:?}, got {seen}{}", world.deadline(), world.evidence(&id))
        });
    for r in &records {
        assert!(r.raw.len() > 5 && r.raw[0] == 0, "{} is not Confluent-framed (magic byte 0 + 4-byte id)", r.summary());
        let schema_id = u32::from_be_bytes([r.raw[1], r.raw[2], r.raw[3], r.raw[4]]);
        let found = registry_get(world, &format!("/schemas/ids/{schema_id}"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", r.summary()));
        let schema = Schema::parse_str(found["schema"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("schema {schema_id} does not parse: {e}"));
        let full_name = schema.name().map(|n| n.fullname(None));
        assert_eq!(full_name.as_deref(), r.saga_topic.map(SagaTopic::record_full_name), "{}", r.summary());
    }
}

#[then("every record of the order matches its contract schema")]
async fn matches_contract(world: &mut SagaWorld) {
    let id = world.order_id();
    let orders = [id.clone()].into();
    let violations = crate::checkers::contract_violations(&world.env.tap.records(), &orders);
    assert!(violations.is_empty(), "{violations:?}");
}

#[then(
    regex = r#"^for each saga topic the registry subject "<topic>-value" holds a schema compatible with the contract$"#
)]
async fn subjects_compatible(world: &mut SagaWorld) {
    for topic in SagaTopic::ALL {
        let subject = format!("{}-value", world.env.topics.name(topic));
        let latest = registry_get(world, &format!("/subjects/{subject}/versions/latest"))
            .await
            .unwrap_or_else(|e| panic!("subject {subject}: {e}"));
        let registered = Schema::parse_str(latest["schema"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{subject}: {e}"));
        let contract = Schema::parse_str(topic.schema_json()).expect("contract schema");
        SchemaCompatibility::can_read(&registered, &contract)
            .unwrap_or_else(|e| panic!("{subject}: the contract cannot read what the registered schema writes: {e}"));
        SchemaCompatibility::can_read(&contract, &registered)
            .unwrap_or_else(|e| panic!("{subject}: the registered schema cannot read what the contract writes: {e}"));
    }
}
