//! `badge.svg`: a shields-style badge a team can commit or serve — `saga-conformance 0.1.0 |
//! CONFORMS 50/50 must` (green), `CONFORMS 49/50 must, 1 by baseline` (yellow-green),
//! `INCOMPLETE 46/50 must` (yellow), `DOES NOT CONFORM 49/50 must` (red). It is drawn only from
//! a [`Verified`] record, which only [`super::verify::verify`] makes, so a badge never shows a
//! filtered or edited run.

use super::Record;
use super::verify::Verified;
use crate::svg::esc;
use crate::verdict::Verdict;

/// The badge's two texts and the message's colour.
pub fn texts(record: &Record, verified: &Verified) -> (String, String, &'static str) {
    let label = format!("saga-conformance {}", record.kit.version);
    let counts = format!("{}/{} must", verified.must_passed, verified.must_total);
    let excused = verified.judgement.known_failures.len();
    let (message, colour) = match verified.verdict {
        Verdict::Conforms if excused == 0 => (format!("CONFORMS {counts}"), "#4c1"),
        Verdict::Conforms => (format!("CONFORMS {counts}, {excused} by baseline"), "#a4a61d"),
        Verdict::Incomplete => (format!("INCOMPLETE {counts}"), "#dfb317"),
        // A verified record is never a --tags subset; were it one, it would be no claim.
        Verdict::PassedSubset => (format!("SUBSET {counts}"), "#9f9f9f"),
        Verdict::DoesNotConform => (format!("DOES NOT CONFORM {counts}"), "#e05d44"),
    };
    (label, message, colour)
}

/// The badge as SVG (flat style: grey label, coloured message).
pub fn render(record: &Record, verified: &Verified) -> String {
    let (label, message, colour) = texts(record, verified);
    let (lw, mw) = (width(&label), width(&message));
    let total = lw + mw;
    let (label, message) = (esc(&label), esc(&message));
    let text = |x: f64, s: &str| {
        format!(
            r##"<text x="{x:.1}" y="15" fill="#010101" fill-opacity=".3">{s}</text><text x="{x:.1}" y="14">{s}</text>"##
        )
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total:.0}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{total:.0}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw:.0}" height="20" fill="#555"/><rect x="{lw:.0}" width="{mw:.0}" height="20" fill="{colour}"/><rect width="{total:.0}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">{}{}</g></svg>
"##,
        text(lw / 2.0, &label),
        text(lw + mw / 2.0, &message),
    )
}

/// A text's box at 11 px Verdana: about 7 px a character (6.1 for narrow ones), plus padding.
fn width(text: &str) -> f64 {
    let chars: f64 = text.chars().map(|c| if "il1.,:;|/ ()'".contains(c) { 4.0 } else { 7.2 }).sum();
    (chars + 12.0).round()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::verify::verify;

    #[test]
    fn the_badge_says_the_verified_verdict_in_its_colour() {
        // The sample record is no full run: it cannot make a badge.
        assert!(verify(&crate::record::build::tests::sample_record()).is_err());
        let record = crate::record::verify::tests::full_run(&[], &[], &Default::default(), None, 0);
        let verified = verify(&record).unwrap();
        let svg = render(&record, &verified);
        let n = verified.must_total;
        assert!(svg.contains(&format!(">CONFORMS {n}/{n} must</text>")), "{svg}");
        assert!(svg.contains(r##"fill="#4c1""##), "{svg}");
        assert!(svg.contains(&format!("saga-conformance {}", super::super::KIT_VERSION)));

        let failing = crate::record::verify::tests::full_run(&[], &["FLOW-1"], &Default::default(), None, 0);
        let (_, message, colour) = texts(&failing, &verify(&failing).unwrap());
        assert_eq!((message, colour), (format!("DOES NOT CONFORM {}/{n} must", n - 1), "#e05d44"));
        let incomplete = crate::record::verify::tests::full_run(&["FLOW-1"], &[], &Default::default(), None, 0);
        let (_, message, colour) = texts(&incomplete, &verify(&incomplete).unwrap());
        assert_eq!((message, colour), (format!("INCOMPLETE {}/{n} must", n - 1), "#dfb317"));
    }
}
