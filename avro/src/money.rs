//! Money as the contract carries it: Avro `decimal(10, 2)`, held here as an exact count of
//! hundredths so no arithmetic ever goes through floating point.

use crate::ContractError;
use apache_avro::types::Value;
use std::fmt;

/// An amount with two decimal places, stored as hundredths (`Money(1050)` is 10.50).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub i64);

impl Money {
    /// decimal(10, 2): at most 10 digits, i.e. below 10^10 hundredths.
    pub const MAX_HUNDREDTHS: i64 = 9_999_999_999;

    /// Parses a decimal literal such as `15000`, `12.5` or `12.50` (at most two decimals,
    /// not negative, within decimal(10, 2)).
    pub fn parse(text: &str) -> Option<Money> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || fraction.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = whole.parse().ok()?;
        let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
        let hundredths = whole.checked_mul(100)?.checked_add(fraction)?;
        (hundredths <= Self::MAX_HUNDREDTHS).then_some(Money(hundredths))
    }

    /// `self × quantity`, `None` when it leaves decimal(10, 2).
    pub fn times(self, quantity: i64) -> Option<Money> {
        self.0.checked_mul(quantity).filter(|v| *v <= Self::MAX_HUNDREDTHS).map(Money)
    }

    /// Sum that stays within decimal(10, 2).
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).filter(|v| *v <= Self::MAX_HUNDREDTHS).map(Money)
    }

    /// Bytes of the unscaled value on the wire: 5 holds any decimal(10, 2) (2^39 > 10^10).
    pub const WIRE_BYTES: usize = 5;

    /// The Avro decimal value: two's-complement big-endian unscaled integer, sign-extended to
    /// [`Self::WIRE_BYTES`]. Any length is valid Avro (Java writes the minimal one), but
    /// apache-avro refuses, when resolving against a reader schema, a value whose length could
    /// not hold the declared precision — so we always write enough bytes for precision 10.
    pub fn to_avro(self) -> Value {
        let bytes = self.0.to_be_bytes();
        Value::Decimal(apache_avro::Decimal::from(&bytes[8 - Self::WIRE_BYTES..]))
    }

    /// Reads an Avro decimal (or its raw bytes form) of scale 2.
    pub fn from_avro(value: &Value, context: &str) -> Result<Money, ContractError> {
        let bytes: Vec<u8> = match value {
            Value::Decimal(d) => Vec::<u8>::try_from(d)?,
            Value::Bytes(b) => b.clone(),
            other => return Err(ContractError::Shape(format!("{context}: expected decimal, got {other:?}"))),
        };
        if bytes.is_empty() || bytes.len() > 8 {
            return Err(ContractError::Shape(format!("{context}: decimal of {} bytes does not fit", bytes.len())));
        }
        let fill = if bytes[0] & 0x80 != 0 { 0xFF } else { 0x00 };
        let mut full = [fill; 8];
        full[8 - bytes.len()..].copy_from_slice(&bytes);
        Ok(Money(i64::from_be_bytes(full)))
    }

    /// Reads an amount from JSON: a number or a string, at most two decimals, compared by
    /// value — `15000`, `15000.0`, `15000.00` and `"15000.00"` are all `Money(1_500_000)`.
    /// A number carries no literal, so it is read from its shortest round-trip form: an amount
    /// computed in binary floating point (`120.07999999999998`) has more than two decimals and
    /// is refused, which is the point.
    pub fn from_json(value: &serde_json::Value) -> Option<Money> {
        match value {
            serde_json::Value::Number(n) => Self::parse_exact(&n.to_string()),
            serde_json::Value::String(s) => Self::parse_exact(s.trim()),
            _ => None,
        }
    }

    /// [`Self::parse`], also accepting trailing zeros beyond the second decimal (`15000.000`,
    /// as a number is written when it went through a wider decimal type).
    fn parse_exact(text: &str) -> Option<Money> {
        match text.split_once('.') {
            Some((whole, fraction)) if fraction.len() > 2 && fraction[2..].bytes().all(|b| b == b'0') => {
                Self::parse(&format!("{whole}.{}", &fraction[..2]))
            }
            _ => Self::parse(text),
        }
    }

    /// The amount as a JSON number (e.g. `12.5`), for HTTP bodies.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::from_str(&self.to_string()).unwrap_or(serde_json::Value::Null)
    }
}

/// As a JSON number ([`Money::to_json`]), the spelling of amounts in HTTP bodies.
impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_literals() {
        assert_eq!(Money::parse("15000"), Some(Money(1_500_000)));
        assert_eq!(Money::parse("12.5"), Some(Money(1250)));
        assert_eq!(Money::parse("0.07"), Some(Money(7)));
        assert_eq!(Money::parse("1.234"), None);
        assert_eq!(Money::parse("-1"), None);
        assert_eq!(Money::parse("1e3"), None);
        assert_eq!(Money::parse("100000000.00"), None, "beyond decimal(10,2)");
    }

    #[test]
    fn json_amounts_compare_as_decimals() {
        use serde_json::json;
        for v in [
            json!(15000),
            json!(15000.0),
            json!("15000"),
            json!("15000.00"),
            serde_json::from_str("15000.00").unwrap(),
            serde_json::from_str("15000.000").unwrap(),
        ] {
            assert_eq!(Money::from_json(&v), Some(Money(1_500_000)), "{v}");
        }
        assert_eq!(Money::from_json(&json!(19.99)), Some(Money(1999)));
        assert_eq!(Money::from_json(&json!(0.1)), Some(Money(10)));
        assert_eq!(Money::from_json(&json!("99.99")), Some(Money(9999)));
    }

    #[test]
    fn json_amounts_from_float_arithmetic_or_of_other_shapes_are_refused() {
        use serde_json::json;
        // 3 × 33.33 + 0.10 + 19.99 in f64 is 120.07999999999998: float money shows up as
        // extra decimals.
        assert_eq!(Money::from_json(&json!(3.0 * 33.33 + 0.1 + 19.99)), None);
        assert_eq!(Money::from_json(&json!(0.1 + 0.2)), None);
        assert_eq!(Money::from_json(&json!("12.345")), None);
        assert_eq!(Money::from_json(&json!(-5)), None);
        assert_eq!(Money::from_json(&json!("abc")), None);
        assert_eq!(Money::from_json(&json!(null)), None);
        assert_eq!(Money::from_json(&json!(["1"])), None);
        assert_eq!(Money::from_json(&json!(1e12)), None, "beyond decimal(10,2)");
    }

    #[test]
    fn avro_round_trip_keeps_value_and_sign() {
        for v in [0, 1, 127, 128, 255, 256, 1_500_000, -1, -128, -129, Money::MAX_HUNDREDTHS] {
            let value = Money(v).to_avro();
            assert_eq!(Money::from_avro(&value, "t").unwrap(), Money(v), "{v}");
        }
    }

    #[test]
    fn avro_bytes_are_sign_extended_twos_complement_of_five_bytes() {
        let Value::Decimal(d) = Money(128).to_avro() else { panic!() };
        assert_eq!(Vec::<u8>::try_from(&d).unwrap(), vec![0, 0, 0, 0, 0x80]);
        let Value::Decimal(d) = Money(-1).to_avro() else { panic!() };
        assert_eq!(Vec::<u8>::try_from(&d).unwrap(), vec![0xFF; 5]);
    }

    #[test]
    fn minimal_length_decimals_from_other_writers_are_read() {
        // Java's BigDecimal conversion writes the shortest form, e.g. 3 bytes for 30000.00.
        let value = Value::Decimal(apache_avro::Decimal::from([0x2D, 0xC6, 0xC0]));
        assert_eq!(Money::from_avro(&value, "t").unwrap(), Money(3_000_000));
    }
}
