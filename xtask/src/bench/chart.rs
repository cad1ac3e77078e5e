//! The SVG chart writer: a line chart with categorical x positions and a
//! log-scaled y axis, written as text with no charting crate (a chart is a
//! few dozen elements; a dependency would cost more than it saves).
//!
//! Its neighbour `report.rs` builds the series (one per implementation, one
//! point per x position, `None` where a bench did not run) and `mod.rs`
//! writes the result next to `REPORT.md`. Invariant: the output is one
//! well-formed `<svg>` document whatever the input: missing and non-positive
//! points are skipped, every text is escaped, and an empty chart says so.

use std::fmt::Write as _;

const COLORS: [&str; 6] = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// A line chart with categorical x positions and a log-scaled y axis
/// (the figures span three orders of magnitude). Missing points are skipped.
pub(super) fn chart(title: &str, x_title: &str, xs: &[&str], series: &[(String, Vec<Option<f64>>)]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 80.0, 220.0, 40.0, 50.0);
    let values: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).filter(|v| *v > 0.0).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo_exp, hi_exp) = if values.is_empty() {
        (3.0, 7.0)
    } else {
        (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0))
    };
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let x_at = |i: usize| left + plot_w * (i as f64 + 0.5) / xs.len() as f64;
    let y_at = |v: f64| top + plot_h * (1.0 - (v.log10() - lo_exp) / (hi_exp - lo_exp));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        left + plot_w / 2.0,
        escape(title)
    );
    let mut e = lo_exp;
    while e <= hi_exp {
        let y = y_at(10f64.powf(e));
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            tick(10f64.powf(e))
        );
        e += 1.0;
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x_at(i),
            top + plot_h + 18.0,
            escape(x)
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#444\"/>\n\
         <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">per second (log scale)</text>",
        left + plot_w / 2.0,
        h - 10.0,
        escape(x_title),
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let coords: Vec<(f64, f64)> =
            pts.iter().enumerate().filter_map(|(i, v)| v.filter(|v| *v > 0.0).map(|v| (x_at(i), y_at(v)))).collect();
        if coords.len() > 1 {
            let path: Vec<String> = coords.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
        }
        for (x, y) in &coords {
            let _ = writeln!(s, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{color}\"/>");
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let lx = left + plot_w + 12.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{}</text>",
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(name)
        );
    }
    if values.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no results in this run</text>",
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// An axis label for a power of ten: `100`, `1k`, `10k`, `1M`.
fn tick(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{}G", v / 1e9),
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number of times `needle` occurs in `haystack`.
    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    #[test]
    fn tiny_series() {
        let series = vec![
            ("ours <fast> & co".to_string(), vec![Some(1e3), Some(1e4), Some(1e5)]),
            ("peer".to_string(), vec![Some(2e3), None, Some(0.0)]),
        ];
        let svg = chart("a & b", "x", &["1", "2", "3"], &series);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(count(&svg, "<svg"), 1);
        assert_eq!(count(&svg, "</svg>"), 1);
        // Every element is self-closed except the texts, which are closed once each.
        assert_eq!(count(&svg, "<text"), count(&svg, "</text>"));
        assert!(svg.lines().skip(1).filter(|l| !l.contains("<text") && *l != "</svg>").all(|l| l.ends_with("/>")));
        // One point per present, positive value: 3 for ours, 1 for the peer (a gap and a zero skipped).
        assert_eq!(count(&svg, "<circle"), 4);
        // A line only through a series with two points or more.
        assert_eq!(count(&svg, "<polyline"), 1);
        let points = svg.split("points=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
        assert_eq!(points.split(' ').count(), 3);
        // Texts are escaped; raw `&`, `<` or `>` never appear inside one.
        assert!(svg.contains("ours &lt;fast&gt; &amp; co") && svg.contains("a &amp; b"));
        // Decades from 1k to 100k: three grid lines and their labels.
        for label in [">1k<", ">10k<", ">100k<"] {
            assert_eq!(count(&svg, label), 1, "{label}");
        }
        assert!(!svg.contains("no results"));
    }

    #[test]
    fn empty_chart_says_so() {
        let svg = chart("t", "x", &["1"], &[("a".to_string(), vec![None])]);
        assert!(svg.contains("no results in this run") && svg.ends_with("</svg>\n"));
        assert_eq!(count(&svg, "<circle"), 0);
    }
}
