//! The services' own view, from their Prometheus `/metrics`: mean handler time per stage
//! (`saga_stage_seconds`) over a step, and the text after the run kept in `metrics/`. An
//! implementation without these metrics simply has no handler times in the report.

use crate::Service;
use crate::client::SagaClient;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long one scrape may take.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(5);

/// `"<service> <stage>"` → (sum of seconds, records), as the histograms count them.
pub(super) type HandlerTotals = BTreeMap<String, (f64, f64)>;

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
        let (metric, is_sum) = if let Some(rest) = line.strip_prefix("saga_stage_seconds_sum{") {
            (rest, true)
        } else if let Some(rest) = line.strip_prefix("saga_stage_seconds_count{") {
            (rest, false)
        } else {
            continue;
        };
        let Some((labels, value)) = metric.rsplit_once("} ") else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let stage =
            labels.split(',').find_map(|l| l.strip_prefix("stage=")).unwrap_or("?").trim_matches('"').to_string();
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
}
