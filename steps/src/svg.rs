//! Text helpers for the kit's hand-written XML: escaping (HTML report, JUnit, SVG) and the
//! pieces the two SVG charts share — the suite report's stage bars and the bench's latency
//! over time.

/// HTML/XML escaping of text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The opening tag of a standalone `width`×`height` chart with 12 px sans-serif text (close
/// it with `</svg>`).
pub fn open(width: f64, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui,sans-serif" font-size="12">"#
    )
}

/// An axis tick's label: whole numbers from 10 up (a computed tick may carry float noise),
/// below that as few digits as the value needs (0.1, 2, 5).
pub fn tick_label(v: f64) -> String {
    if v >= 10.0 { format!("{v:.0}") } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_labels() {
        assert_eq!(esc(r#"<a href="x">&</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
        assert_eq!(tick_label(0.1), "0.1");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(250.00000000000003), "250");
        assert!(open(10.0, 20.0).contains(r#"viewBox="0 0 10 20""#));
    }
}
