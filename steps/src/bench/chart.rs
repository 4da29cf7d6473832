//! `e2e-latency.svg`: e2e p50 and p99 per 1-second bucket of send time (find-max steps laid
//! end to end), the share of each second's orders that never completed, and the targets.

use super::report::{Report, TARGET_E2E_P50_MS, TARGET_E2E_P99_MS, TARGET_SUSTAINED_P99_MS};
use crate::svg::{self, esc};
use std::fmt::Write as _;

impl Report {
    /// e2e p50/p99 per 1-second bucket of send time; find-max steps are laid end to end.
    pub fn chart(&self) -> String {
        let mut points = Vec::new();
        let mut markers = Vec::new();
        let mut offset = 0.0;
        for s in &self.steps {
            markers.push((offset, format!("{:.0}/s", s.plan.rate)));
            for b in &s.timeline {
                let incomplete = if b.sent > 0 { 1.0 - b.e2e.n as f64 / b.sent as f64 } else { 0.0 };
                points.push((offset + b.second as f64 + 0.5, b.e2e.p50, b.e2e.p99, incomplete));
            }
            offset += s.plan.duration_s.ceil().max(s.timeline.last().map(|b| b.second as f64 + 1.0).unwrap_or(0.0));
        }
        let title = if self.args.find_max {
            format!("saga e2e latency (request → PAYMENT_WAIT push), find-max steps ×{}", self.args.step_factor)
        } else {
            format!("saga e2e latency (request → PAYMENT_WAIT push) at {:.0} orders/s", self.steps[0].plan.rate)
        };
        svg_chart(&title, &points, &markers, offset.max(1.0))
    }
}

/// A self-contained SVG line chart: `points` are `(x seconds, p50, p99, share of the bucket's
/// orders that never completed)` — that share is drawn as a red band hanging from the top, so
/// an overloaded run (few completions) does not look like an empty chart; the y axis is
/// logarithmic when the values span more than 20×, linear otherwise. Dashed lines mark the
/// targets (p50, p99, and the sustained-rate p99 limit) that fall inside the range.
fn svg_chart(title: &str, points: &[(f64, f64, f64, f64)], markers: &[(f64, String)], x_max: f64) -> String {
    let (w, h, left, right, top, bottom) = (960.0, 440.0, 70.0, 20.0, 44.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let values: Vec<f64> = points.iter().flat_map(|p| [p.1, p.2]).filter(|v| v.is_finite() && *v > 0.0).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let log = values.len() > 1 && hi / lo.max(0.1) > 20.0;
    let (y_lo, y_hi, ticks): (f64, f64, Vec<f64>) = if values.is_empty() {
        (0.0, 1.0, vec![0.0, 1.0])
    } else if log {
        let a = 10f64.powf(lo.max(0.1).log10().floor());
        let b = 10f64.powf(hi.log10().ceil());
        let mut ticks = Vec::new();
        let mut decade = a;
        while decade <= b * 1.0001 {
            for m in [1.0, 2.0, 5.0] {
                let t = decade * m;
                if t >= a * 0.999 && t <= b * 1.001 {
                    ticks.push(t);
                }
            }
            decade *= 10.0;
        }
        (a, b, ticks)
    } else {
        let raw = hi * 1.1 / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
        let top_v = (hi * 1.1 / step).ceil() * step;
        ((0.0), top_v, (0..=((top_v / step).round() as usize)).map(|i| i as f64 * step).collect())
    };
    let y = |v: f64| -> f64 {
        let f = if log {
            (v.max(y_lo).log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10())
        } else {
            (v - y_lo) / (y_hi - y_lo)
        };
        top + ph * (1.0 - f.clamp(0.0, 1.0))
    };
    let x = |t: f64| left + pw * (t / x_max).clamp(0.0, 1.0);
    let mut s = svg::open(w, h);
    s.push('\n');
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#, w / 2.0, esc(title));
    for t in &ticks {
        let yy = y(*t);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            yy + 4.0,
            svg::tick_label(*t)
        );
    }
    let x_step =
        [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0].into_iter().find(|s| x_max / s <= 12.0).unwrap_or(300.0);
    let mut t = 0.0;
    while t <= x_max + 1e-9 {
        let xx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{}" stroke="#f0f0f0"/><text x="{xx:.1}" y="{}" text-anchor="middle">{t:.0}</text>"##,
            top + ph,
            top + ph + 16.0
        );
        t += x_step;
    }
    let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the measured window (orders bucketed by send time)</text>"#,
        left + pw / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">ms{}</text>"#,
        top + ph / 2.0,
        if log { " (log scale)" } else { "" }
    );
    let mut last_label_y = f64::INFINITY;
    for (limit, label) in [
        (TARGET_E2E_P50_MS, format!("p50 target {TARGET_E2E_P50_MS} ms")),
        (TARGET_E2E_P99_MS, format!("p99 target {TARGET_E2E_P99_MS} ms")),
        (TARGET_SUSTAINED_P99_MS, format!("find-max limit {TARGET_SUSTAINED_P99_MS} ms")),
    ] {
        if limit >= y_lo && limit <= y_hi {
            let yy = y(limit);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#999" stroke-dasharray="5,4"/>"##,
                left + pw
            );
            // Label only lines far enough apart to read (y grows downwards; limits ascend).
            if last_label_y - yy >= 14.0 {
                let _ = writeln!(
                    s,
                    r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#777">{label}</text>"##,
                    left + pw - 4.0,
                    yy - 4.0
                );
                last_label_y = yy;
            }
        }
    }
    let mut any_incomplete = false;
    for p in points.iter().filter(|p| p.3 > 0.0) {
        any_incomplete = true;
        let (x0, x1) = (x(p.0 - 0.5), x(p.0 + 0.5));
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="#d62728" fill-opacity="0.15"/>"##,
            (x1 - x0).max(0.5),
            ph * p.3.clamp(0.0, 1.0)
        );
    }
    if any_incomplete {
        let ly = top + 48.0;
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="24" height="10" fill="#d62728" fill-opacity="0.15"/><text x="{}" y="{}">share of the second's orders not completed (band height)</text>"##,
            left + 10.0,
            ly - 5.0,
            left + 40.0,
            ly + 4.0
        );
    }
    for (mx, label) in markers.iter().filter(|_| markers.len() > 1) {
        let xx = x(*mx);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{}" stroke="#bbb"/><text x="{:.1}" y="{}" fill="#555">{}</text>"##,
            top + ph,
            xx + 3.0,
            top + 14.0,
            esc(label)
        );
    }
    for (series, colour, name) in [(1usize, "#1f77b4", "e2e p50"), (2, "#d62728", "e2e p99")] {
        // Break the line where a bucket has no value.
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, s: &mut String| {
            if segment.len() > 1 {
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                    segment.join(" ")
                );
            } else if let Some(p) = segment.first() {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="2" fill="{colour}"/>"#);
            }
            segment.clear();
        };
        for p in points {
            let v = if series == 1 { p.1 } else { p.2 };
            if v.is_finite() {
                segment.push(format!("{:.1},{:.1}", x(p.0), y(v)));
            } else {
                flush(&mut segment, &mut s);
            }
        }
        flush(&mut segment, &mut s);
        let ly = top + 16.0 + if series == 1 { 0.0 } else { 16.0 };
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
            left + 10.0,
            left + 34.0,
            left + 40.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_well_formed_for_linear_and_log_ranges() {
        let linear = svg_chart(
            "t & t",
            &[(0.5, 10.0, 20.0, 0.0), (1.5, f64::NAN, f64::NAN, 1.0), (2.5, 12.0, 30.0, 0.0)],
            &[],
            3.0,
        );
        assert!(
            linear.starts_with("<svg")
                && linear.ends_with("</svg>\n")
                && linear.contains("t &amp; t")
                && linear.contains("not completed")
        );
        let log = svg_chart(
            "log",
            &[(0.5, 5.0, 20.0, 0.0), (1.5, 50.0, 5000.0, 0.5)],
            &[(0.0, "100/s".into()), (1.0, "150/s".into())],
            2.0,
        );
        assert!(log.contains("log scale") && log.contains("150/s"));
        assert!(!svg_chart("empty", &[], &[], 1.0).contains("NaN"));
    }
}
