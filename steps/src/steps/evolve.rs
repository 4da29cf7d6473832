//! Evolving schemas (`features/wire.feature`, WIRE-3/4): the suite writes events with a
//! compatible newer version of their contract schema — an optional field with a default,
//! [`NEW_FIELD`], added *between* existing fields — registered under the topic's subject as
//! its next version, as a producer upgraded before its consumers would. A consumer that
//! resolves the writer's schema by the frame's schema id reads them as usual; one that decodes
//! with its own schema misreads every field after the new one. The suite's own reading (the
//! tap) resolves by id and reads fields by name, so it accepts any version the subject allows.

use super::SagaWorld;
use super::orders::lines;
use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use cucumber::when;
use saga_contract::events::{OrderItem, ReservedItem};
use saga_contract::{Event, Money, OrderCreated, SagaTopic, StockReserved, now_millis};
use serde_json::json;
use uuid::Uuid;

/// The field the next version adds, right after `orderId`: `["null", "string"]`, default null.
pub const NEW_FIELD: &str = "salesChannel";
/// What the suite writes into it (not null, so the bytes of every later field move).
const CHANNEL: &str = "conformance-kit";

/// The contract schema's next version: [`NEW_FIELD`] inserted after `orderId`.
pub fn next_version(schema_json: &str) -> String {
    let mut schema: serde_json::Value = serde_json::from_str(schema_json).expect("a contract schema is JSON");
    let fields = schema["fields"].as_array_mut().expect("a contract schema is a record");
    let at = fields.iter().position(|f| f["name"] == "orderId").expect("every saga record has an orderId") + 1;
    let doc = "Added by the conformance kit's next version (optional, default null).";
    fields.insert(at, json!({"name": NEW_FIELD, "type": ["null", "string"], "default": null, "doc": doc}));
    schema.to_string()
}

/// The contract value written with the next version: [`NEW_FIELD`] filled in at its place.
fn with_new_field(value: Value) -> Value {
    let Value::Record(mut fields) = value else { panic!("a contract value is a record") };
    let at = fields.iter().position(|(name, _)| name == "orderId").expect("every saga record has an orderId") + 1;
    fields.insert(at, (NEW_FIELD.to_string(), Value::Union(1, Box::new(Value::String(CHANNEL.into())))));
    Value::Record(fields)
}

/// `event` as Avro binary written with the next version of its schema (no frame).
fn datum_of_next_version<E: Event>(event: E) -> (String, Vec<u8>) {
    let schema_json = next_version(E::SCHEMA_JSON);
    let schema = Schema::parse_str(&schema_json).expect("the next version parses");
    let datum = GenericDatumWriter::builder(&schema)
        .build()
        .and_then(|writer| writer.write_value_to_vec(with_new_field(event.into_value())))
        .unwrap_or_else(|e| panic!("writing a {} with its next version: {e}", E::FULL_NAME));
    (schema_json, datum)
}

impl SagaWorld {
    /// Registers the next version of `topic`'s schema under `<topic>-value` (the registry
    /// answers the same id when it is already there) and frames `event` with it.
    async fn frame_next_version<E: Event>(&self, topic: SagaTopic, event: E) -> Vec<u8> {
        let subject = format!("{}-value", self.env.topics.name(topic));
        let (schema_json, datum) = datum_of_next_version(event);
        let url = format!("{}/subjects/{subject}/versions", self.env.endpoints.registry_url.trim_end_matches('/'));
        let response = self
            .env
            .http
            .post(&url)
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&json!({ "schema": schema_json }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let id = body["id"].as_u64().and_then(|id| u32::try_from(id).ok()).unwrap_or_else(|| {
            panic!(
                "the registry did not register the next version of {subject} (a compatible change: an optional field with a default): {status} {body}"
            )
        });
        let mut framed = vec![0];
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(&datum);
        framed
    }
}

#[when(regex = r#"^an "order.created" for (.+) is published, written with the next version of its schema$"#)]
async fn order_created_next_version(world: &mut SagaWorld, spec: String) {
    let items = lines(world, &spec);
    let order_id = Uuid::new_v4().to_string();
    let total = items.iter().map(|l| l.unit_price.0 * l.quantity).sum();
    let now = now_millis();
    let event = OrderCreated {
        event_id: Uuid::new_v4().to_string(),
        event_timestamp: now,
        order_id: order_id.clone(),
        user_id: world.user("U1"),
        store_id: format!("S1-{}", world.tag),
        items: items
            .iter()
            .map(|l| OrderItem {
                product_id: l.product_id.clone(),
                quantity: i32::try_from(l.quantity).expect("a quantity fits an int"),
                unit_price: l.unit_price,
            })
            .collect(),
        total_amount: Money(total),
        created_at: now,
    };
    world.request_items = items;
    world.order = Some(order_id.clone());
    let framed = world.frame_next_version(SagaTopic::OrderCreated, event).await;
    world.inject(SagaTopic::OrderCreated, &order_id, framed, None).await;
}

#[when(regex = r#"^a "stock.reserved" for the order is published, written with the next version of its schema$"#)]
async fn stock_reserved_next_version(world: &mut SagaWorld) {
    let order_id = world.order_id();
    let now = now_millis();
    let event = StockReserved {
        event_id: Uuid::new_v4().to_string(),
        event_timestamp: now,
        order_id: order_id.clone(),
        reserved_items: world
            .request_items
            .iter()
            .map(|l| ReservedItem {
                product_id: l.product_id.clone(),
                quantity: i32::try_from(l.quantity).expect("a quantity fits an int"),
                reserved_stock: 0,
            })
            .collect(),
        reserved_at: now,
    };
    let framed = world.frame_next_version(SagaTopic::StockReserved, event).await;
    world.inject(SagaTopic::StockReserved, &order_id, framed, None).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::schema_compatibility::SchemaCompatibility;

    fn event() -> OrderCreated {
        OrderCreated {
            event_id: "e-1".into(),
            event_timestamp: 1_790_000_000_000,
            order_id: "o-1".into(),
            user_id: "u-1".into(),
            store_id: "s-1".into(),
            items: vec![OrderItem { product_id: "p-1".into(), quantity: 2, unit_price: Money(1999) }],
            total_amount: Money(3998),
            created_at: 1_790_000_000_001,
        }
    }

    #[test]
    fn the_next_version_adds_a_field_between_others_and_is_compatible_both_ways() {
        for topic in SagaTopic::ALL {
            let next = Schema::parse_str(&next_version(topic.schema_json())).unwrap();
            let contract = Schema::parse_str(topic.schema_json()).unwrap();
            SchemaCompatibility::can_read(&next, &contract).expect("the contract reads the next version");
            SchemaCompatibility::can_read(&contract, &next).expect("the next version reads the contract");
            let Schema::Record(record) = &next else { panic!("a record") };
            let at = record.fields.iter().position(|f| f.name == NEW_FIELD).unwrap();
            assert!(at > 0 && at + 1 < record.fields.len(), "{topic:?}: {NEW_FIELD} is not between fields");
        }
    }

    fn read(schema: &Schema, datum: &[u8]) -> apache_avro::AvroResult<Value> {
        apache_avro::reader::datum::GenericDatumReader::builder(schema).build()?.read_value(&mut &*datum)
    }

    #[test]
    fn read_with_the_writers_schema_it_is_the_event_and_with_the_contracts_alone_it_is_not() {
        let (schema_json, datum) = datum_of_next_version(event());
        let writer = Schema::parse_str(&schema_json).unwrap();
        let value = read(&writer, &datum).unwrap();
        assert_eq!(OrderCreated::from_value(&value).unwrap(), event(), "read by name, the extra field ignored");
        // What the tap does with such a record: the contract check reads it by name too.
        let decoded = saga_contract::Decoded {
            schema_id: 2,
            record_name: Some(OrderCreated::FULL_NAME.into()),
            value: value.clone(),
        };
        crate::tap::validate(SagaTopic::OrderCreated, &decoded).expect("the tap accepts the next version");
        let contract = Schema::parse_str(OrderCreated::SCHEMA_JSON).unwrap();
        let misread = read(&contract, &datum);
        assert!(
            misread.ok().and_then(|v| OrderCreated::from_value(&v).ok()) != Some(event()),
            "decoding with the contract's schema alone should misread the next version"
        );
    }
}
