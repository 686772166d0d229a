//! The dashboard's charts, drawn as SVG on the server.
//!
//! The panel's CSP allows no script, so the charts cannot be drawn in the browser; an
//! inline `<svg>` needs nothing but the page itself. Colours come from classes styled in
//! `panel.css` (so the dark theme applies to them too); the only presentation attributes
//! are geometry, which CSP does not govern. Every piece of text is escaped here, because
//! the templates insert the SVG as it is.

use std::fmt::Write as _;

/// The drawing's own coordinate system; the browser scales it to the card's width.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 200.0;
/// Room on the left for the largest value's label and below for the date labels.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// A bar's share of its slot; the rest is the gap that keeps neighbours apart.
const BAR_FILL: f64 = 0.8;

/// Escapes text for SVG content and attribute values alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bar chart of one value per day: one `rect.bar` per point, each with a `<title>`
/// "date: value" that the browser shows as a tooltip, the largest value on the y axis,
/// and the first and last dates under the x axis.
///
/// `id` becomes the `<svg>`'s id (`chart-messages`, `chart-commands`) and `label` its
/// accessible name. An empty series still draws the axes, with "no data" in the middle,
/// so the page keeps its layout and the id is always there.
pub(crate) fn bar_chart(id: &str, label: &str, series: &[(&str, u64)]) -> String {
    let mut svg = String::with_capacity(256 + series.len() * 160);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        svg,
        r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" preserveAspectRatio="xMidYMid meet"><title>{label}</title>"#,
        id = escape(id),
        label = escape(label),
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}"/><line class="axis" x1="{LEFT}" y1="{base}" x2="{right}" y2="{base}"/>"#,
        right = WIDTH - RIGHT,
    );
    if series.is_empty() {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{x}" y="{y}" text-anchor="middle">no data</text></svg>"#,
            x = LEFT + plot_w / 2.0,
            y = TOP + plot_h / 2.0,
        );
        return svg;
    }
    let max = series.iter().map(|&(_, v)| v).max().unwrap_or(0);
    let _ = write!(
        svg,
        r#"<text class="tick" x="{x}" y="{y}" text-anchor="end">{max}</text><text class="tick" x="{x}" y="{base}" text-anchor="end">0</text>"#,
        x = LEFT - 4.0,
        y = TOP + 4.0,
    );
    let slot = plot_w / series.len() as f64;
    let bar_w = slot * BAR_FILL;
    for (i, &(date, value)) in series.iter().enumerate() {
        // All zeros would divide by zero; they are drawn as bars of no height instead.
        let h = if max == 0 {
            0.0
        } else {
            plot_h * value as f64 / max as f64
        };
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.2}" y="{y:.2}" width="{bar_w:.2}" height="{h:.2}"><title>{date}: {value}</title></rect>"#,
            y = base - h,
            date = escape(date),
        );
    }
    let label_y = base + 16.0;
    let first = series.first().map_or("", |&(d, _)| d);
    let _ = write!(
        svg,
        r#"<text class="tick" x="{LEFT}" y="{label_y}" text-anchor="start">{}</text>"#,
        escape(first),
    );
    if series.len() > 1 {
        let last = series.last().map_or("", |&(d, _)| d);
        let _ = write!(
            svg,
            r#"<text class="tick" x="{x}" y="{label_y}" text-anchor="end">{}</text>"#,
            escape(last),
            x = WIDTH - RIGHT,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One horizontal bar split into a segment per sentiment, each as wide as its share,
/// with a `<title>` "label: count (share %)". The counts themselves go in the table
/// beside it (the template's), since a tooltip is no use on a phone.
///
/// Segments cycle through eight classes (`seg-0` … `seg-7`) so the stylesheet decides
/// the colours. Labels with a count of zero draw nothing; all zero draws "no data".
pub(crate) fn stacked_bar(id: &str, label: &str, parts: &[(&str, u64)]) -> String {
    const BAR_H: f64 = 28.0;
    let total: u64 = parts.iter().map(|&(_, n)| n).sum();
    let mut svg = String::with_capacity(256 + parts.len() * 160);
    let _ = write!(
        svg,
        r#"<svg id="{id}" class="chart stacked" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {BAR_H}" role="img" aria-label="{label}" preserveAspectRatio="none"><title>{label}</title>"#,
        id = escape(id),
        label = escape(label),
    );
    if total == 0 {
        let _ = write!(
            svg,
            r#"<rect class="track" x="0" y="0" width="{WIDTH}" height="{BAR_H}"/><text class="empty" x="{x}" y="{y}" text-anchor="middle">no data</text></svg>"#,
            x = WIDTH / 2.0,
            y = BAR_H / 2.0 + 5.0,
        );
        return svg;
    }
    let mut x = 0.0;
    for (i, &(name, n)) in parts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let w = WIDTH * n as f64 / total as f64;
        let pct = 100.0 * n as f64 / total as f64;
        let _ = write!(
            svg,
            r#"<rect class="seg seg-{class}" x="{x:.2}" y="0" width="{w:.2}" height="{BAR_H}"><title>{name}: {n} ({pct:.0} %)</title></rect>"#,
            class = i % 8,
            name = escape(name),
        );
        x += w;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heights(svg: &str) -> Vec<f64> {
        svg.split("<rect class=\"bar\"")
            .skip(1)
            .map(|rest| {
                let at = rest.find("height=\"").expect("a bar has a height") + 8;
                let end = rest[at..].find('"').expect("the height is quoted");
                rest[at..at + end].parse().expect("the height is a number")
            })
            .collect()
    }

    #[test]
    fn one_bar_per_day_with_a_tooltip_each() {
        let days: Vec<(String, u64)> = (1..=30).map(|d| (format!("05-{d:02}"), d)).collect();
        let series: Vec<(&str, u64)> = days.iter().map(|(d, v)| (d.as_str(), *v)).collect();
        let svg = bar_chart("chart-messages", "Messages per day", &series);
        assert!(svg.starts_with("<svg id=\"chart-messages\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 30);
        assert_eq!(
            svg.matches("<title>").count(),
            31,
            "the chart's and one per bar"
        );
        assert!(svg.contains("<title>05-07: 7</title>"));
        assert!(svg.contains(">30</text>"), "the max labels the y axis");
        assert!(svg.contains(">05-01</text>") && svg.contains(">05-30</text>"));
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn the_largest_value_fills_the_plot_and_the_rest_scale_to_it() {
        let svg = bar_chart("c", "c", &[("a", 10), ("b", 5), ("c", 0), ("d", 1000)]);
        let h = heights(&svg);
        let full = HEIGHT - TOP - BOTTOM;
        assert_eq!(h.len(), 4);
        assert!((h[3] - full).abs() < 0.01, "{h:?}");
        assert!((h[0] - full * 0.01).abs() < 0.01, "{h:?}");
        assert!((h[1] - full * 0.005).abs() < 0.01, "{h:?}");
        assert_eq!(h[2], 0.0);
    }

    #[test]
    fn all_zero_days_draw_flat_bars_without_dividing_by_zero() {
        let svg = bar_chart("c", "c", &[("a", 0), ("b", 0)]);
        assert_eq!(heights(&svg), vec![0.0, 0.0]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn an_empty_series_says_so_and_keeps_its_id() {
        let svg = bar_chart("chart-commands", "Commands per day", &[]);
        assert!(svg.contains("id=\"chart-commands\""));
        assert!(svg.contains(">no data</text>"));
        assert!(!svg.contains("<rect"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn every_text_is_escaped() {
        let svg = bar_chart(
            "x\"><script>",
            "<b>&'",
            &[("<script>alert(1)</script>", 3), ("a&b", 1)],
        );
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;: 3"));
        assert!(svg.contains("a&amp;b"));
        assert!(svg.contains("id=\"x&quot;&gt;&lt;script&gt;\""));
        assert!(svg.contains("&lt;b&gt;&amp;&#39;"));
    }

    #[test]
    fn the_stacked_bar_splits_the_width_by_share() {
        let svg = stacked_bar(
            "sentiment-bar",
            "Sentiment",
            &[("positive", 3), ("neutral", 0), ("<neg>", 1)],
        );
        assert_eq!(
            svg.matches("<rect class=\"seg").count(),
            2,
            "zero draws nothing"
        );
        assert!(svg.contains("width=\"450.00\""), "{svg}");
        assert!(svg.contains("width=\"150.00\""), "{svg}");
        assert!(svg.contains("<title>positive: 3 (75 %)</title>"));
        assert!(svg.contains("&lt;neg&gt;: 1 (25 %)"));
        assert!(!svg.contains("<neg>"));
    }

    #[test]
    fn an_empty_mix_says_so() {
        for parts in [&[][..], &[("positive", 0)][..]] {
            let svg = stacked_bar("s", "s", parts);
            assert!(svg.contains(">no data</text>"));
            assert!(!svg.contains("class=\"seg"));
        }
    }
}
