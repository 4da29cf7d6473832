"""The reference stack's schema registry (Apicurio Registry, through its Confluent-compatible
API) against Confluent's own Python client.

Nothing here is ours but the configuration under test: the schema registry client, the Avro
serializer/deserializer (Confluent wire format: magic byte 0, 4-byte big-endian schema id,
Avro binary) and the Kafka consumer are confluent-kafka's. If these pass, any Confluent client
can share the registry with the saga's services, and decode what they produced.

Environment (set by steps/tests/reference_stack.rs, which starts the stack):
  SCHEMA_REGISTRY_URL      the registry, e.g. http://127.0.0.1:PORT/apis/ccompat/v7
  KAFKA_BOOTSTRAP_SERVERS  the stack's Kafka
  SAGA_ORDER_ID            an order the services have taken to ORDER_CONFIRMED
  TOPIC_ORDER_CREATED, TOPIC_STOCK_RESERVED, TOPIC_ORDER_CONFIRMED  (optional topic names)

Run: python -m pytest -q steps/tests/confluent_client
"""

import decimal
import json
import os
import struct
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

# Confluent's error codes.
INCOMPATIBLE = 409
SCHEMA_NOT_FOUND = 40403
SUBJECT_NOT_FOUND = 40401

RECORD_DEADLINE_S = 20.0


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"environment variable {name} is not set; run these tests through "
                    "`cargo test --release -p saga-conformance --test reference_stack`, "
                    "which starts the stack and sets it")
    return value


@pytest.fixture(scope="session")
def registry_url():
    return env("SCHEMA_REGISTRY_URL")


@pytest.fixture()
def new_client(registry_url):
    """Makes clients with empty caches, so every check is a real round trip to the registry."""
    return lambda: SchemaRegistryClient({"url": registry_url})


def fresh_subject(prefix="conformance"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}-value"


def record_schema(extra_fields=()):
    fields = [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    ]
    fields.extend(extra_fields)
    return Schema(json.dumps({
        "type": "record",
        "name": "Probe",
        "namespace": "saga.conformance.registry",
        "fields": fields,
    }), "AVRO")


def same_schema(a: str, b: str) -> bool:
    return json.loads(a) == json.loads(b)


# (a) register, get by id, get latest, look up ------------------------------------------------

def test_register_then_get_by_id_latest_and_lookup(new_client):
    subject = fresh_subject()
    schema = record_schema()

    schema_id = new_client().register_schema(subject, schema)
    assert isinstance(schema_id, int) and schema_id > 0

    # Registering the same schema again is idempotent.
    assert new_client().register_schema(subject, schema) == schema_id

    by_id = new_client().get_schema(schema_id)
    assert by_id.schema_type == "AVRO"
    assert same_schema(by_id.schema_str, schema.schema_str)

    latest = new_client().get_latest_version(subject)
    assert latest.schema_id == schema_id
    assert latest.subject == subject
    assert latest.version == 1
    assert same_schema(latest.schema.schema_str, schema.schema_str)

    assert new_client().get_version(subject, 1).schema_id == schema_id
    assert new_client().get_versions(subject) == [1]
    assert subject in new_client().get_subjects()

    found = new_client().lookup_schema(subject, schema)
    assert (found.schema_id, found.subject, found.version) == (schema_id, subject, 1)
    assert same_schema(found.schema.schema_str, schema.schema_str)

    # The same schema under another subject shares the id (ids are global, as in Confluent's).
    other = fresh_subject()
    assert new_client().register_schema(other, schema) == schema_id
    pairs = {(v.subject, v.version) for v in new_client().get_schema_versions(schema_id)}
    assert pairs == {(subject, 1), (other, 1)}

    # Not registered: Confluent's error codes.
    with pytest.raises(SchemaRegistryError) as unknown_schema:
        new_client().lookup_schema(subject, record_schema([{"name": "x", "type": "int"}]))
    assert unknown_schema.value.http_status_code == 404
    assert unknown_schema.value.error_code == SCHEMA_NOT_FOUND
    with pytest.raises(SchemaRegistryError) as unknown_subject:
        new_client().get_latest_version(fresh_subject("never-registered"))
    assert unknown_subject.value.http_status_code == 404
    assert unknown_subject.value.error_code == SUBJECT_NOT_FOUND


# (b) evolution under BACKWARD, refusal, compatibility check, NONE ----------------------------

def test_backward_evolution_refusal_and_compatibility_none(new_client):
    subject = fresh_subject()
    v1 = record_schema()
    with_default = record_schema([{"name": "note", "type": "string", "default": ""}])
    without_default = record_schema([{"name": "note", "type": "string", "default": ""},
                                     {"name": "required", "type": "int"}])

    id1 = new_client().register_schema(subject, v1)
    assert new_client().get_compatibility(subject) == "BACKWARD"

    assert new_client().test_compatibility(subject, with_default) is True
    id2 = new_client().register_schema(subject, with_default)
    assert id2 != id1
    latest = new_client().get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, id2)

    assert new_client().test_compatibility(subject, without_default) is False
    assert new_client().test_compatibility(subject, without_default, version=2) is False
    with pytest.raises(SchemaRegistryError) as refused:
        new_client().register_schema(subject, without_default)
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == INCOMPATIBLE
    assert new_client().get_versions(subject) == [1, 2]

    new_client().set_compatibility(subject_name=subject, level="NONE")
    assert new_client().get_compatibility(subject) == "NONE"
    assert new_client().test_compatibility(subject, without_default) is True
    id3 = new_client().register_schema(subject, without_default)
    latest = new_client().get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (3, id3)
    assert new_client().get_versions(subject) == [1, 2, 3]


# (c) AvroSerializer -> AvroDeserializer through the registry ---------------------------------

def test_avro_serializer_round_trip_with_confluent_framing(new_client):
    topic = f"conformance-roundtrip-{uuid.uuid4().hex[:12]}"
    schema = json.dumps({
        "type": "record",
        "name": "RoundTrip",
        "namespace": "saga.conformance.registry",
        "fields": [
            {"name": "orderId", "type": "string"},
            {"name": "quantity", "type": "int"},
            {"name": "at", "type": "long"},
            {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["CREATED", "CONFIRMED"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    })
    record = {
        "orderId": str(uuid.uuid4()),
        "quantity": 3,
        "at": 1_700_000_000_123,
        "total": decimal.Decimal("45000.50"),
        "status": "CONFIRMED",
        "tags": ["a", "b"],
        "note": "주문이 확정되었습니다",
    }
    ctx = SerializationContext(topic, MessageField.VALUE)

    serializer = AvroSerializer(new_client(), schema, conf={"auto.register.schemas": True})
    data = serializer(record, ctx)

    registered = new_client().get_latest_version(f"{topic}-value")
    assert registered.version == 1
    assert data[0:1] == b"\x00", "Confluent framing starts with magic byte 0"
    (framed_id,) = struct.unpack(">I", data[1:5])
    assert framed_id == registered.schema_id

    decoded = AvroDeserializer(new_client())(data, ctx)
    assert decoded == record
    assert isinstance(decoded["total"], decimal.Decimal)


# (d) what OUR services wrote to Kafka, read with Confluent's consumer and deserializer --------

def topic_name(env_var, default):
    return os.environ.get(env_var) or default


def consume_record_of(topic, order_id):
    """The first record keyed `order_id` on `topic`, read from the beginning (no group: partitions
    are assigned directly, so there is no rebalance to wait for)."""
    consumer = Consumer({
        "bootstrap.servers": env("KAFKA_BOOTSTRAP_SERVERS"),
        "group.id": f"registry-confluent-client-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    deadline = time.monotonic() + RECORD_DEADLINE_S
    try:
        partitions = []
        while not partitions:
            metadata = consumer.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
            t = metadata.topics.get(topic)
            if t is not None and t.error is None:
                partitions = sorted(t.partitions)
            elif time.monotonic() > deadline:
                pytest.fail(f"topic {topic} did not appear within {RECORD_DEADLINE_S}s")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        seen = 0
        while time.monotonic() < deadline:
            message = consumer.poll(timeout=0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                pytest.fail(f"consuming {topic}: {message.error()}")
            seen += 1
            if message.key() is not None and message.key().decode("utf-8") == order_id:
                return message
        pytest.fail(f"no record keyed {order_id} on {topic} within {RECORD_DEADLINE_S}s ({seen} records read)")
    finally:
        consumer.close()


def decode(client, topic, message):
    value = message.value()
    assert value[0:1] == b"\x00", f"{topic}: not Confluent-framed (first byte {value[0:1]!r})"
    (schema_id,) = struct.unpack(">I", value[1:5])
    # The framed id is one the registry holds under the topic's value subject.
    pairs = {(v.subject, v.version) for v in client.get_schema_versions(schema_id)}
    assert any(s == f"{topic}-value" for s, _ in pairs), f"schema id {schema_id} is registered as {pairs}"
    return AvroDeserializer(client)(value, SerializationContext(topic, MessageField.VALUE))


@pytest.fixture(scope="module")
def order_id():
    return env("SAGA_ORDER_ID")


@pytest.fixture(scope="module")
def order_created(registry_url, order_id):
    topic = topic_name("TOPIC_ORDER_CREATED", "order.created")
    return decode(SchemaRegistryClient({"url": registry_url}), topic, consume_record_of(topic, order_id))


def test_order_created_from_our_services_decodes(order_created, order_id):
    record = order_created
    assert record["orderId"] == order_id
    assert record["items"], "order.created has no items"
    for item in record["items"]:
        assert set(item) == {"productId", "quantity", "unitPrice"}
        assert isinstance(item["quantity"], int) and item["quantity"] > 0
        assert isinstance(item["unitPrice"], decimal.Decimal)
    assert isinstance(record["totalAmount"], decimal.Decimal)
    assert record["totalAmount"] == sum(i["quantity"] * i["unitPrice"] for i in record["items"])
    assert record["totalAmount"].as_tuple().exponent == -2, "scale 2"
    assert isinstance(record["createdAt"], int) and isinstance(record["eventTimestamp"], int)
    uuid.UUID(record["eventId"])


def test_stock_reserved_from_our_services_decodes(registry_url, order_id, order_created):
    topic = topic_name("TOPIC_STOCK_RESERVED", "stock.reserved")
    record = decode(SchemaRegistryClient({"url": registry_url}), topic, consume_record_of(topic, order_id))
    assert record["orderId"] == order_id
    reserved = {(i["productId"], i["quantity"]) for i in record["reservedItems"]}
    assert reserved == {(i["productId"], i["quantity"]) for i in order_created["items"]}


def test_order_confirmed_from_our_services_decodes(registry_url, order_id, order_created):
    topic = topic_name("TOPIC_ORDER_CONFIRMED", "order.confirmed")
    record = decode(SchemaRegistryClient({"url": registry_url}), topic, consume_record_of(topic, order_id))
    assert record["orderId"] == order_id
    assert record["userId"] == order_created["userId"]
    assert isinstance(record["totalAmount"], decimal.Decimal)
    assert record["totalAmount"] == order_created["totalAmount"]
    assert isinstance(record["confirmedAt"], int)
    uuid.UUID(record["eventId"])
