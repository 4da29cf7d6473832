//! The HTML report: from the run's results ([`crate::results`]), `index.html` — one
//! self-contained page with the suite, implementation and declarations of the conformance record
//! in its header, the verdict per requirement, what was skipped and why, the latency percentiles
//! per stage with a chart, and for every failure the step that failed with its evidence.

use crate::config::Config;
use crate::results::{ScenarioResult, Skipped, Status};
use crate::svg::{self, esc};
use crate::timing::{Sample, StageSummary, summarize};
use crate::verdict::{Judgement, Level, Verdict};
use std::fmt::Write as _;
use std::time::Duration;

/// Writes `index.html` and `timing.json` into the report directory.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, in the runner; the report inputs become one struct when the report moves to its own module (issue 12)"
)]
pub fn write_html(
    config: &Config,
    record: &crate::record::Record,
    results: &[ScenarioResult],
    skipped: &[Skipped],
    judgement: &Judgement,
    notes: &[String],
    samples: &[Sample],
    total: Duration,
    scenarios: Duration,
) -> anyhow::Result<()> {
    let stages = summarize(samples, &config.timing);
    std::fs::write(
        config.report_dir.join("timing.json"),
        serde_json::to_string_pretty(&serde_json::json!({"summary": stages, "samples": samples}))?,
    )?;

    let class = match judgement.verdict {
        Verdict::Conforms | Verdict::PassedSubset => "ok",
        Verdict::DoesNotConform => "bad",
        Verdict::Incomplete => "skip",
    };
    let mut h = String::new();
    write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Saga conformance report</title><style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}}
h1{{margin-bottom:.2rem}} .sub{{color:#666;margin-top:0}}
.verdict{{display:inline-block;padding:.3rem .8rem;border-radius:4px;font-weight:600;color:#fff}}
.ok{{background:#2e7d32}} .bad{{background:#c62828}} .skip{{background:#8d6e00}}
table{{border-collapse:collapse;width:100%;margin:1rem 0}} th,td{{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}}
th{{background:#f4f4f4}} td.num{{text-align:right;font-variant-numeric:tabular-nums}}
.pill{{padding:.05rem .45rem;border-radius:3px;color:#fff;font-size:.85em}}
pre{{background:#f7f7f7;padding:.6rem;overflow:auto;max-height:28rem;font-size:.82em;white-space:pre-wrap}}
details summary{{cursor:pointer;color:#444}}
</style></head><body>
<h1>Order-creation saga — conformance report</h1>
<p class="sub">backend <b>{backend:?}</b> · {n} scenarios · {total:.0} s in all, {scen:.0} s running scenarios · generated {when}</p>
<p><span class="verdict {cls}">{word}</span> &nbsp; {passed} passed, {failed} failed, {known} known failure(s), {not_judged} not judged, {skipped} skipped ({skipped_must} required), {not_selected} not selected</p>
<p class="sub">{meaning}</p>
{identity}
"#,
        backend = config.backend,
        n = results.len(),
        total = total.as_secs_f64(),
        scen = scenarios.as_secs_f64(),
        when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        cls = class,
        word = judgement.verdict.banner(),
        passed = judgement.passed,
        failed = judgement.failed.len(),
        known = judgement.known_failures.len(),
        not_judged = judgement.not_judged.len(),
        skipped = skipped.len(),
        skipped_must = judgement.skipped_must,
        not_selected = judgement.not_selected,
        identity = crate::record::html::header(record),
        meaning = match judgement.verdict {
            Verdict::Conforms => "Every required (@must) scenario ran and passed.",
            Verdict::PassedSubset =>
                "Every selected scenario passed; --tags left others out, so this is no claim of conformance.",
            Verdict::DoesNotConform => "At least one scenario failed that the baseline does not list.",
            Verdict::Incomplete =>
                "Nothing failed, but required (@must) scenarios could not run on this backend (give it the capabilities listed under Skipped), or some ran without a verdict (not judged: their reason says what did not hold).",
        },
    )?;

    h.push_str("<h2>Requirements</h2><table><tr><th>Requirement</th><th>Feature</th><th>Scenario</th><th>Result</th><th class=\"num\">Time</th></tr>");
    let mut sorted: Vec<&ScenarioResult> = results.iter().collect();
    sorted.sort_by_key(|r| (r.status == Status::Passed, r.requirements().join(",")));
    for r in &sorted {
        let (label, cls) = match r.status {
            Status::Passed => ("passed", "ok"),
            _ if judgement.is_known_failure(r) => ("known failure", "skip"),
            Status::NotJudged => (Status::NotJudged.as_str(), "skip"),
            Status::Failed | Status::Incomplete => (r.status.as_str(), "bad"),
        };
        write!(
            h,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}",
            esc(&r.requirements().join(" ")),
            esc(&r.feature),
            esc(&r.scenario)
        )?;
        if let (Some(step), Some(error)) = (&r.failed_step, &r.error) {
            write!(h, "<details><summary>{}</summary><pre>{}</pre></details>", esc(step), esc(error))?;
        }
        write!(
            h,
            "</td><td><span class=\"pill {cls}\">{label}</span></td><td class=\"num\">{:.1} s</td></tr>",
            r.duration_ms / 1000.0
        )?;
    }
    h.push_str("</table>");

    if !skipped.is_empty() {
        h.push_str("<h2>Skipped (not run on this backend)</h2><table><tr><th>Tags</th><th>Level</th><th>Scenario</th><th>Why</th></tr>");
        for s in skipped {
            let level = match Level::of(&s.tags) {
                Level::Must => "<span class=\"pill bad\">must</span>",
                Level::Should => "<span class=\"pill skip\">should</span>",
            };
            write!(
                h,
                "<tr><td>{}</td><td>{level}</td><td>{} — {}</td><td>{}</td></tr>",
                esc(&s.tags.join(" ")),
                esc(&s.feature),
                esc(&s.scenario),
                esc(&s.reason)
            )?;
        }
        h.push_str("</table>");
    }
    if !judgement.known_failures.is_empty()
        || !judgement.fixed_known_failures.is_empty()
        || !judgement.unmatched_baseline.is_empty()
    {
        h.push_str("<h2>Baseline of expected failures</h2><table><tr><th>Requirement</th><th>Scenario</th><th>Reason given</th></tr>");
        for k in &judgement.known_failures {
            write!(
                h,
                "<tr><td><b>{}</b></td><td>{}</td><td>{}</td></tr>",
                esc(&k.requirement),
                esc(&k.scenario),
                esc(&k.reason)
            )?;
        }
        h.push_str("</table>");
        for id in &judgement.fixed_known_failures {
            write!(
                h,
                "<p><span class=\"pill ok\">passes now</span> {} is listed in the baseline but passed: remove it from the baseline.</p>",
                esc(id)
            )?;
        }
        for id in &judgement.unmatched_baseline {
            write!(
                h,
                "<p><span class=\"pill skip\">unknown</span> {} is listed in the baseline but no scenario of this run has that id.</p>",
                esc(id)
            )?;
        }
    }

    if !notes.is_empty() {
        h.push_str("<h2>Notes on how this run was judged</h2><ul>");
        for note in notes {
            write!(h, "<li>{}</li>", esc(note))?;
        }
        h.push_str("</ul>");
    }

    h.push_str("<h2>Latency per stage</h2>");
    if samples.is_empty() {
        h.push_str("<p>No timing samples in this run (the @TIME scenario did not run).</p>");
    } else {
        write!(
            h,
            "<p>{} orders after {} warm-up, placed one after another; budgets are the seed's table × scale {}; the p{} is held to the budget.</p>",
            samples.len(),
            config.timing.warmup,
            config.timing.scale,
            config.timing.percentile
        )?;
        h.push_str("<table><tr><th>Stage</th><th class=\"num\">p50</th><th class=\"num\">p95</th><th class=\"num\">p99</th><th class=\"num\">max</th><th class=\"num\">budget</th><th>Result</th></tr>");
        for s in &stages {
            write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.0} ms</td><td><span class=\"pill {}\">{}</span></td></tr>",
                s.stage,
                s.p50,
                s.p95,
                s.p99,
                s.max,
                s.budget_ms,
                if s.within_budget { "ok" } else { "bad" },
                if s.within_budget { "within" } else { "over" }
            )?;
        }
        h.push_str("</table>");
        h.push_str(&chart(&stages));
    }
    write!(
        h,
        "<p class=\"sub\">Raw results: <a href=\"conformance.json\">conformance.json</a> (the record: <code>saga-conformance verify</code>) · <a href=\"ctrf.json\">ctrf.json</a> · <a href=\"cucumber.json\">cucumber.json</a> · <a href=\"junit.xml\">junit.xml</a> · <a href=\"timing.json\">timing.json</a> · process logs in <code>logs/</code> (processes backend).</p></body></html>"
    )?;
    std::fs::write(config.report_dir.join("index.html"), h)?;
    Ok(())
}

/// Horizontal bars (log scale) of p50/p95/p99 per stage, with the budget marked.
fn chart(stages: &[StageSummary]) -> String {
    let (width, row, left) = (900.0, 46.0, 110.0);
    let (lo, hi) = (0.1f64.log10(), stages.iter().map(|s| s.budget_ms.max(s.p99)).fold(1.0, f64::max).log10() + 0.2);
    let x = |ms: f64| left + (ms.max(0.1).log10() - lo) / (hi - lo) * (width - left - 20.0);
    let height = row * stages.len() as f64 + 40.0;
    let mut svg = svg::open(width, height);
    let mut tick: f64 = 0.1;
    while tick.log10() <= hi {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="10" y2="{1:.1}" stroke="#eee"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" fill="#777">{3}</text>"##,
            x(tick),
            height - 25.0,
            height - 10.0,
            svg::tick_label(tick) + " ms"
        );
        tick *= 10.0;
    }
    for (i, s) in stages.iter().enumerate() {
        let y = 15.0 + i as f64 * row;
        let _ = write!(svg, r##"<text x="0" y="{:.1}">{}</text>"##, y + 18.0, s.stage);
        for (value, color, offset) in [(s.p99, "#90caf9", 0.0), (s.p95, "#42a5f5", 8.0), (s.p50, "#1565c0", 16.0)] {
            if value.is_finite() {
                let _ = write!(
                    svg,
                    r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="8" fill="{color}"/>"#,
                    y + offset,
                    (x(value) - left).max(1.0)
                );
            }
        }
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="#c62828" stroke-width="2"/><text x="{3:.1}" y="{1:.1}" fill="#c62828" font-size="10">budget</text>"##,
            x(s.budget_ms),
            y - 4.0,
            y + 28.0,
            x(s.budget_ms) + 3.0
        );
    }
    svg.push_str(r##"<text x="110" y="12" fill="#555" font-size="11">bars: p50 (dark), p95, p99 (light) — log scale</text></svg>"##);
    svg
}
