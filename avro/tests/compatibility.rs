//! Our contract against the published one: same record full names, and schema resolution works
//! in both directions (published writer → our reader, our writer → published reader), so an
//! implementation built on either interoperates on the wire.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::writer::datum::GenericDatumWriter;
use saga_contract::{Event, Money, OrderCreated, all_schemas, events::OrderItem};
use std::path::PathBuf;

fn published(record_name: &str) -> Schema {
    let short = record_name.rsplit('.').next().unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract-hub").join(format!("{short}.avsc"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Schema::parse_str(&text).unwrap()
}

#[test]
fn every_schema_resolves_both_ways_with_the_published_one() {
    for (full_name, json) in all_schemas() {
        let ours = Schema::parse_str(json).unwrap();
        let theirs = published(full_name);
        if let Err(e) = SchemaCompatibility::can_read(&theirs, &ours) {
            panic!("{full_name}: our schema cannot read records written with the published one: {e}");
        }
        if let Err(e) = SchemaCompatibility::can_read(&ours, &theirs) {
            panic!("{full_name}: the published schema cannot read records written with ours: {e}");
        }
    }
}

#[test]
fn parsing_canonical_forms_are_identical() {
    // The canonical form keeps only what defines the wire (names, types, order, symbols), so
    // equality means byte-identical encodings.
    for (full_name, json) in all_schemas() {
        let ours = Schema::parse_str(json).unwrap();
        assert_eq!(ours.canonical_form(), published(full_name).canonical_form(), "{full_name}");
    }
}

#[test]
fn a_record_written_with_ours_reads_back_through_the_published_schema() {
    let event = OrderCreated {
        event_id: "e-1".into(),
        event_timestamp: 1_700_000_000_000,
        order_id: "o-1".into(),
        user_id: "u-1".into(),
        store_id: "s-1".into(),
        items: vec![OrderItem { product_id: "p-1".into(), quantity: 2, unit_price: Money(1_500_000) }],
        total_amount: Money(3_000_000),
        created_at: 1_700_000_000_001,
    };
    let ours = Schema::parse_str(OrderCreated::SCHEMA_JSON).unwrap();
    let theirs = published(OrderCreated::FULL_NAME);
    let bytes =
        GenericDatumWriter::builder(&ours).build().unwrap().write_value_to_vec(event.clone().into_value()).unwrap();
    let read = GenericDatumReader::builder(&ours)
        .reader_schema(&theirs)
        .build()
        .unwrap()
        .read_value(&mut bytes.as_slice())
        .unwrap();
    assert_eq!(OrderCreated::from_value(&read).unwrap(), event);
}
