//! Percentiles of one series, and the rounding and formatting every output of the bench
//! shares (JSON figures to two decimals, `-` in the table where there is no value).

use crate::timing::percentile;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// Percentiles of one series, in ms (NaN when empty; serialised as null).
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Pct {
    #[serde(serialize_with = "r2")]
    pub p50: f64,
    #[serde(serialize_with = "r2")]
    pub p90: f64,
    #[serde(serialize_with = "r2")]
    pub p99: f64,
    #[serde(serialize_with = "r2")]
    pub max: f64,
    #[serde(serialize_with = "r2")]
    pub mean: f64,
    #[serde(rename = "samples")]
    pub n: usize,
}

impl Pct {
    pub fn of(values: &[f64]) -> Pct {
        let mean = if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 };
        Pct {
            n: values.len(),
            p50: percentile(values, 50.0),
            p90: percentile(values, 90.0),
            p99: percentile(values, 99.0),
            max: values.iter().copied().fold(f64::NAN, f64::max),
            mean,
        }
    }
}

/// What `bench.json` and the table say where a figure needs the implementation's processes or
/// database, which the bench does not know for an external implementation.
pub(super) const NOT_MEASURED_EXTERNAL: &str = "not measured (external)";

/// A figure, or why there is none (serialised as the figure, or as the reason's text).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(super) enum Measured<T> {
    Value(T),
    Not(&'static str),
}

/// `None` is a figure the bench cannot take against an external implementation.
impl<T> From<Option<T>> for Measured<T> {
    fn from(value: Option<T>) -> Measured<T> {
        value.map_or(Measured::Not(NOT_MEASURED_EXTERNAL), Measured::Value)
    }
}

pub(super) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Serialises a figure to two decimals (serde_json writes NaN as null).
pub(super) fn r2<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round2(*v))
}

/// [`r2`] for every value of a map (cores per process, MB per process).
pub(super) fn r2_map<S: Serializer>(map: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(map.iter().map(|(k, v)| (k, round2(*v))))
}

/// Now, epoch ms with sub-ms precision: the instant an order leaves, comparable with the push
/// sink's arrival times and the records' timestamps.
pub(super) fn epoch_ms_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// A value for the table: `-` when there is none.
pub(super) fn ms(v: f64) -> String {
    if v.is_finite() { format!("{v:.1}") } else { "-".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_serialise_rounded_and_empty_as_null() {
        let json = serde_json::to_value(Pct::of(&[1.0, 2.0, 3.004])).unwrap();
        assert_eq!(json["p99"], 3.0);
        assert_eq!(json["samples"], 3);
        let empty = serde_json::to_value(Pct::of(&[])).unwrap();
        assert!(empty["p50"].is_null() && empty["max"].is_null());
    }
}
