//! The services' own view, from their Prometheus `/metrics`: mean handler time per stage
//! (`saga_stage_seconds`, each record counting the time of the batch it was handled in) and
//! the batches themselves (`saga_batch_seconds`, one observation per transaction) over a step,
//! and the text after the run kept in `metrics/`. An implementation without these metrics
//! simply has no handler times in the report.

use super::stats::r2;
use crate::Service;
use crate::client::SagaClient;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long one scrape may take.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(5);

/// `"<service> <stage>"` → (sum of seconds, records), as the histograms count them; the
/// batches under `"<service> (batches)"` → (sum of seconds, batches).
pub(super) type HandlerTotals = BTreeMap<String, (f64, f64)>;

/// The stage name the batch histogram is filed under.
const BATCHES: &str = "(batches)";

/// One service's batches over a step: how many transactions, how full, how long. With batches
/// the per-record stage time is the batch's and says nothing about capacity; the workers'
/// busy time per record does.
#[derive(Debug, PartialEq, serde::Serialize)]
pub(super) struct BatchUse {
    pub batches: f64,
    #[serde(serialize_with = "r2")]
    pub records_per_batch: f64,
    #[serde(serialize_with = "r2")]
    pub ms_per_batch: f64,
    #[serde(serialize_with = "r2")]
    pub busy_ms_per_record: f64,
}

/// Whether a [`HandlerTotals`] key is a service's batches rather than one of its stages.
pub(super) fn is_batches(key: &str) -> bool {
    key.ends_with(BATCHES)
}

/// The batch use of each service that reports `saga_batch_seconds`, from [`handler_means`].
pub(super) fn batch_use(means: &BTreeMap<String, (f64, f64)>) -> BTreeMap<String, BatchUse> {
    let mut out = BTreeMap::new();
    for (key, (ms_per_batch, batches)) in means {
        let Some(service) = key.strip_suffix(BATCHES).map(str::trim_end) else { continue };
        let records: f64 = means
            .iter()
            .filter(|(k, _)| k.strip_prefix(service).is_some_and(|s| s.starts_with(' ') && !is_batches(s)))
            .map(|(_, (_, n))| n)
            .sum();
        if *batches > 0.0 && records > 0.0 {
            out.insert(
                service.to_string(),
                BatchUse {
                    batches: *batches,
                    records_per_batch: records / batches,
                    ms_per_batch: *ms_per_batch,
                    busy_ms_per_record: ms_per_batch * batches / records,
                },
            );
        }
    }
    out
}

/// The handler totals of every service that answers.
pub(super) async fn scrape_handlers(client: &SagaClient) -> HandlerTotals {
    let client = client.with_timeout(SCRAPE_DEADLINE);
    let mut all = BTreeMap::new();
    for service in Service::ALL {
        if let Ok(text) = client.metrics(service).await {
            for (stage, v) in handler_totals(&text) {
                all.insert(format!("{} {stage}", service.binary()), v);
            }
        }
    }
    all
}

/// Mean ms and records per handler between two scrapes.
pub(super) fn handler_means(before: &HandlerTotals, after: &HandlerTotals) -> BTreeMap<String, (f64, f64)> {
    after
        .iter()
        .map(|(k, (sum, count))| {
            let (s0, c0) = before.get(k).copied().unwrap_or((0.0, 0.0));
            let (ds, dc) = (sum - s0, count - c0);
            (k.clone(), (if dc > 0.0 { 1000.0 * ds / dc } else { f64::NAN }, dc))
        })
        .collect()
}

/// Writes each answering service's metrics text to `dir/<service>.prom`.
pub(super) async fn save(client: &SagaClient, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let client = client.with_timeout(SCRAPE_DEADLINE);
    for service in Service::ALL {
        if let Ok(text) = client.metrics(service).await {
            std::fs::write(dir.join(format!("{}.prom", service.binary())), text)?;
        }
    }
    Ok(())
}

/// Sum and count per stage from the `saga_stage_seconds` histograms of one service.
fn handler_totals(text: &str) -> HandlerTotals {
    let mut sums: HandlerTotals = BTreeMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once('{') else { continue };
        let (histogram, is_sum) = match name.rsplit_once('_') {
            Some((histogram, "sum")) => (histogram, true),
            Some((histogram, "count")) => (histogram, false),
            _ => continue,
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let stage = match histogram {
            "saga_stage_seconds" => {
                labels.split(',').find_map(|l| l.strip_prefix("stage=")).unwrap_or("?").trim_matches('"').to_string()
            }
            "saga_batch_seconds" => BATCHES.to_string(),
            _ => continue,
        };
        let entry = sums.entry(stage).or_insert((0.0, 0.0));
        if is_sum { entry.0 += value } else { entry.1 += value }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_totals_read_prometheus_text() {
        let text = "# HELP x\nsaga_stage_seconds_sum{service=\"product\",stage=\"order.created\"} 0.5\nsaga_stage_seconds_count{service=\"product\",stage=\"order.created\"} 100\nsaga_stage_seconds_bucket{le=\"0.001\"} 3\n";
        let m = handler_totals(text);
        assert_eq!(m["order.created"], (0.5, 100.0));
        let before: HandlerTotals = [("s x".to_string(), (0.1, 50.0))].into();
        let after: HandlerTotals = [("s x".to_string(), (0.6, 150.0))].into();
        assert_eq!(handler_means(&before, &after)["s x"], (5.0, 100.0));
    }

    #[test]
    fn batches_are_read_apart_from_the_stages_and_give_the_busy_time_per_record() {
        let text = "saga_stage_seconds_sum{service=\"order\",stage=\"stock.reserved\"} 4.0\n\
                    saga_stage_seconds_count{service=\"order\",stage=\"stock.reserved\"} 100\n\
                    saga_batch_seconds_sum{service=\"order\"} 0.5\n\
                    saga_batch_seconds_count{service=\"order\"} 25\n\
                    saga_batch_seconds_bucket{service=\"order\",le=\"0.001\"} 3\n";
        let totals: HandlerTotals =
            handler_totals(text).into_iter().map(|(stage, v)| (format!("order-service {stage}"), v)).collect();
        let means = handler_means(&HandlerTotals::new(), &totals);
        assert_eq!(means["order-service stock.reserved"], (40.0, 100.0));
        assert_eq!(means["order-service (batches)"], (20.0, 25.0));
        let batches = batch_use(&means);
        assert_eq!(
            batches["order-service"],
            BatchUse { batches: 25.0, records_per_batch: 4.0, ms_per_batch: 20.0, busy_ms_per_record: 5.0 }
        );
    }

    #[test]
    fn no_batch_histogram_means_no_batch_use() {
        let means: BTreeMap<String, (f64, f64)> = [("order-service stock.reserved".to_string(), (4.0, 10.0))].into();
        assert!(batch_use(&means).is_empty());
    }
}
