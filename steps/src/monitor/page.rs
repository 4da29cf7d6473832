//! The live page (`/`): sagas in flight and past their deadline, violations by requirement,
//! and the recent violations, newest first, each with its evidence — every record of the saga
//! with its topic, partition, offset, key and eventId. It reloads itself every 5 s.

use super::sagas::Found;
use crate::svg::esc;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the page shows.
pub struct View<'a> {
    pub watching: &'a str,
    pub in_flight: usize,
    pub past_deadline: usize,
    /// Violations counted since the start, by (requirement, checker).
    pub totals: &'a BTreeMap<(&'static str, &'static str), u64>,
    /// The most recent, newest first.
    pub recent: Vec<&'a Found>,
}

pub fn render(view: &View<'_>) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>saga monitor</title><style>body{font-family:sans-serif;margin:1.5em}\
         table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
         .bad{color:#b00}.ok{color:#070}code{font-size:90%}</style></head><body>",
    );
    let total: u64 = view.totals.values().sum();
    let _ = write!(
        html,
        "<h1>saga monitor</h1><p>{}</p><p>sagas in flight: <b>{}</b> · past their deadline: <b class=\"{}\">{}</b> · violations: <b class=\"{}\">{total}</b> (<a href=\"/metrics\">/metrics</a>)</p>",
        esc(view.watching),
        view.in_flight,
        if view.past_deadline > 0 { "bad" } else { "ok" },
        view.past_deadline,
        if total > 0 { "bad" } else { "ok" },
    );
    html.push_str("<table><tr><th>requirement</th><th>checker</th><th>sagas</th></tr>");
    for ((requirement, checker), n) in view.totals {
        let _ = write!(html, "<tr><td>{requirement}</td><td>{checker}</td><td>{n}</td></tr>");
    }
    html.push_str("</table><h2>Recent violations</h2>");
    if view.recent.is_empty() {
        html.push_str("<p class=\"ok\">none</p>");
    }
    for found in &view.recent {
        let _ = write!(
            html,
            "<h3 class=\"bad\">{} {} — order <code>{}</code> at {}</h3><p>{}</p>\
             <table><tr><th>topic</th><th>partition</th><th>offset</th><th>key</th><th>eventId</th><th>timestamp</th></tr>",
            found.requirement,
            found.checker,
            esc(&found.order_id),
            when(found.at_ms),
            esc(&found.detail),
        );
        for e in &found.evidence {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&e.topic),
                e.partition,
                e.offset,
                esc(e.key.as_deref().unwrap_or("<none>")),
                esc(e.event_id.as_deref().unwrap_or("-")),
                when(e.timestamp_ms),
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>");
    html
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |t| t.format("%H:%M:%S%.3f").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::sagas::Evidence;

    #[test]
    fn a_violation_is_listed_with_its_evidence_escaped() {
        let found = Found {
            at_ms: 1_790_000_000_000,
            requirement: "ORDER-1",
            checker: "key",
            order_id: "o1".into(),
            detail: "stock.reserved[0]@5 has key Some(\"<x>\")".into(),
            evidence: vec![Evidence {
                topic: "stock.reserved".into(),
                partition: 0,
                offset: 5,
                key: Some("<x>".into()),
                event_id: Some("e-1".into()),
                timestamp_ms: 1_790_000_000_000,
            }],
        };
        let totals = [(("ORDER-1", "key"), 1)].into();
        let html =
            render(&View { watching: "kafka", in_flight: 2, past_deadline: 1, totals: &totals, recent: vec![&found] });
        assert!(html.contains("ORDER-1 key — order <code>o1</code>"), "{html}");
        assert!(html.contains(
            "<td>stock.reserved</td><td>0</td><td>5</td><td><code>&lt;x&gt;</code></td><td><code>e-1</code>"
        ));
        assert!(!html.contains("<x>"));
    }
}
