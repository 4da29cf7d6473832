//! Small readers used by the generated `from_value` code: each names the record and field
//! that did not match, so a contract violation reads as one.

use crate::ContractError;
use apache_avro::types::Value;

pub(crate) fn record_fields<'a>(value: &'a Value, record: &str) -> Result<&'a [(String, Value)], ContractError> {
    match value {
        Value::Record(fields) => Ok(fields),
        other => Err(ContractError::Shape(format!("{record}: expected a record, got {other:?}"))),
    }
}

pub(crate) fn field<'a>(fields: &'a [(String, Value)], record: &str, name: &str) -> Result<&'a Value, ContractError> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| ContractError::Shape(format!("{record}: missing field {name}")))
}

pub(crate) fn string(value: &Value, context: &str) -> Result<String, ContractError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(ContractError::Shape(format!("{context}: expected string, got {other:?}"))),
    }
}

pub(crate) fn int(value: &Value, context: &str) -> Result<i32, ContractError> {
    match value {
        Value::Int(i) => Ok(*i),
        other => Err(ContractError::Shape(format!("{context}: expected int, got {other:?}"))),
    }
}

pub(crate) fn long(value: &Value, context: &str) -> Result<i64, ContractError> {
    match value {
        Value::Long(l) => Ok(*l),
        // timestamp-millis is a long on the wire; accept the logical form too.
        Value::TimestampMillis(l) => Ok(*l),
        Value::Int(i) => Ok(i64::from(*i)),
        other => Err(ContractError::Shape(format!("{context}: expected long, got {other:?}"))),
    }
}

pub(crate) fn array<'a>(value: &'a Value, context: &str) -> Result<&'a [Value], ContractError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(ContractError::Shape(format!("{context}: expected array, got {other:?}"))),
    }
}

pub(crate) fn enum_symbol<'a>(value: &'a Value, context: &str) -> Result<&'a str, ContractError> {
    match value {
        Value::Enum(_, symbol) => Ok(symbol),
        other => Err(ContractError::Shape(format!("{context}: expected enum, got {other:?}"))),
    }
}
