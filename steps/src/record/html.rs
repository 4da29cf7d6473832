//! The HTML report's header lines taken from the conformance record, so the page names the same
//! suite, implementation and declarations as `conformance.json`: kit version and revision,
//! features digest, the implementation's declared identity, the tags filter, and a table of
//! what was declared (capabilities, dead-letter topics, budgets, baseline).

use super::Record;
use crate::svg::esc;
use std::fmt::Write as _;

/// The identity line and the declarations table (collapsed).
pub fn header(record: &Record) -> String {
    let mut h = String::new();
    let d = &record.declarations;
    let _ = write!(
        h,
        "<p class=\"sub\">implementation <b>{} {}</b> · checked by saga-conformance {} ({}) · features {} ({}, {} files) · {}</p>",
        esc(&record.implementation.name),
        esc(&record.implementation.version),
        esc(&record.kit.version),
        esc(&record.kit.revision),
        esc(&record.features.digest),
        esc(&record.features.source),
        record.features.files,
        match &record.run.tags {
            Some(tags) => format!("<b>filtered with --tags {}</b>: not a conformance claim", esc(tags)),
            None => "full run, no tags filter".to_string(),
        }
    );
    let t = &d.timing;
    let join = |items: &[String]| if items.is_empty() { "none".to_string() } else { esc(&items.join(", ")) };
    let map = |m: &std::collections::BTreeMap<String, String>| {
        let items: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        join(&items)
    };
    let rows = [
        ("backend", esc(&record.run.backend)),
        (
            "instances, Kafka nodes",
            format!("{} instance(s) of each service, {} Kafka node(s)", d.instances, d.kafka_brokers),
        ),
        ("dead-letter topics", if d.dead_letter_topics { "declared".into() } else { "not declared".into() }),
        ("capabilities", join(&d.capabilities)),
        ("fault commands", join(&d.fault_commands)),
        ("consumer groups", map(&d.consumer_groups.iter().map(|(s, g)| (s.clone(), g.join(", "))).collect())),
        ("topic overrides", map(&d.topics)),
        (
            "timing budgets",
            format!(
                "p{} within intake {} ms, reservation {} ms, confirmation {} ms, payment {} ms, saga {} ms, × scale {}; {} samples after {} warm-up",
                t.percentile,
                t.intake_ms,
                t.reservation_ms,
                t.confirmation_ms,
                t.payment_ms,
                t.saga_ms,
                t.scale,
                t.samples,
                t.warmup
            ),
        ),
        (
            "deadlines, faults",
            format!(
                "outcome {} s, quiet {} ms; zombie pause {} s; clock skew {} ms; {} scenarios at once",
                d.deadlines.outcome_seconds,
                d.deadlines.quiet_ms,
                d.faults.zombie_pause_seconds,
                d.clock_skew_ms,
                d.concurrency
            ),
        ),
        ("capacity", format!("declared: {}", esc(&d.capacity.describe()))),
        ("baseline", map(&d.baseline)),
    ];
    h.push_str("<details><summary>What was declared (as in conformance.json)</summary><table>");
    for (what, value) in rows {
        let _ = write!(h, "<tr><th>{what}</th><td>{value}</td></tr>");
    }
    h.push_str("</table></details>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_suite_the_implementation_and_the_declarations() {
        let record = crate::record::build::tests::sample_record();
        let h = header(&record);
        assert!(h.contains(&format!(
            "implementation <b>{} {}</b>",
            crate::config::sections::REFERENCE_NAME,
            super::super::KIT_VERSION
        )));
        assert!(h.contains(&record.features.digest), "{h}");
        assert!(h.contains("full run, no tags filter"), "{h}");
        assert!(h.contains("<tr><th>baseline</th><td>FLOW-2 = not built yet</td></tr>"), "{h}");
        assert!(h.contains("kill-product"), "{h}");
        assert!(h.contains("declared: 25 orders/s (burst 100), settled within 120 s, recovery 30 s"), "{h}");
        let mut filtered = record;
        filtered.run.tags = Some("@FLOW & more".into());
        assert!(header(&filtered).contains("<b>filtered with --tags @FLOW &amp; more</b>"));
    }
}
