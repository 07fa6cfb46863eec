//! `report.html`: one self-contained page, charts as inline SVG, no scripts, no network.

use std::fmt::Write;

use crate::report::{Marker, Report};

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 240.0;
const PAD: f64 = 48.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of per-second series, with fault spans and instants marked.
pub fn chart(title: &str, unit: &str, series: &[(&str, &[f64])], markers: &[Marker]) -> String {
    let seconds = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |s: f64| PAD + s / (seconds - 1) as f64 * (WIDTH - 2.0 * PAD);
    let y = |v: f64| HEIGHT - PAD + -(v / top) * (HEIGHT - 1.5 * PAD);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"11\">\
         <text x=\"{PAD}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    for m in markers {
        let (a, b) = (x(m.at_s), x(m.until_s.unwrap_or(m.at_s)));
        if b > a {
            let _ = write!(
                svg,
                "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f5c6c6\" opacity=\"0.5\"/>",
                PAD * 0.5,
                b - a,
                HEIGHT - 1.5 * PAD
            );
        } else {
            let _ = write!(
                svg,
                "<line x1=\"{a:.1}\" x2=\"{a:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>",
                PAD * 0.5,
                HEIGHT - PAD
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#a33\">{}</text>",
            a + 2.0,
            PAD * 0.5 + 10.0,
            esc(&m.label)
        );
    }
    // Axes, with the top value and the time span.
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" x2=\"{:.1}\" y1=\"{b:.1}\" y2=\"{b:.1}\" stroke=\"#333\"/>\
         <line x1=\"{PAD}\" x2=\"{PAD}\" y1=\"{:.1}\" y2=\"{b:.1}\" stroke=\"#333\"/>\
         <text x=\"4\" y=\"{:.1}\">{:.0} {}</text><text x=\"4\" y=\"{b:.1}\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\">{} s</text>",
        WIDTH - PAD,
        PAD * 0.5,
        PAD * 0.5 + 10.0,
        top / 1.1,
        esc(unit),
        WIDTH - PAD - 20.0,
        HEIGHT - PAD + 16.0,
        seconds - 1,
        b = HEIGHT - PAD,
    );
    for (i, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(s, v)| format!("{:.1},{:.1}", x(s as f64), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            PAD + 130.0 * i as f64,
            HEIGHT - 8.0,
            esc(name)
        );
    }
    svg + "</svg>"
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let t = &report.timeline;
    let carriers: Vec<&str> = t.carriers.iter().map(String::as_str).collect();
    let per_carrier = |data: &[Vec<f64>]| -> Vec<(String, Vec<f64>)> {
        carriers
            .iter()
            .zip(data)
            .map(|(c, v)| (c.to_string(), v.clone()))
            .collect()
    };
    let submits = per_carrier(&t.submits);
    let p99 = per_carrier(&t.p99_ms);
    let mut markers = t.markers.clone();
    for (s, n) in t.failovers.iter().enumerate() {
        if *n > 0.0 && (s == 0 || t.failovers[s - 1] == 0.0) {
            markers.push(Marker::at(s as f64, "failovers".into()));
        }
    }
    let draw = |title: &str, unit: &str, series: Vec<(String, Vec<f64>)>| {
        let borrowed: Vec<(&str, &[f64])> = series
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        chart(title, unit, &borrowed, &markers)
    };
    let outcome_names = <smsroute_delivery::Outcome as smsroute_delivery::Label>::LABELS;
    let outcomes: Vec<(String, Vec<f64>)> = outcome_names
        .iter()
        .zip(&t.outcomes)
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>smsroute load test: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}\
         pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>\
         <h1>smsroute load test: {name}</h1><pre>{summary}</pre>",
        name = esc(&report.scenario),
        summary = esc(&report.summary()),
    );
    for svg in [
        draw("Submits per second, by carrier", "/s", submits),
        draw("p99 accept → terminal, by carrier (ms)", "ms", p99),
        draw("Terminal statuses per second", "/s", outcomes),
        draw(
            "Accepted and refused per second",
            "/s",
            vec![
                ("accepted".into(), t.accepted.clone()),
                ("rejected".into(), t.rejected.clone()),
            ],
        ),
        draw(
            "Resident memory (MiB)",
            "MiB",
            vec![("rss".into(), t.rss_mb.clone())],
        ),
    ] {
        page += "<p>";
        page += &svg;
        page += "</p>";
    }
    let _ = writeln!(
        page,
        "<h2>report.json</h2><pre>{}</pre></body></html>",
        esc(&json)
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_self_contained_svg_with_every_series_and_marker() {
        let a = [1.0, 5.0, 3.0];
        let b = [0.0, 2.0, 9.0];
        let svg = chart(
            "T <1>",
            "/s",
            &[("alpha", &a), ("beta", &b)],
            &[Marker {
                at_s: 1.0,
                until_s: Some(2.0),
                label: "outage beta".into(),
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("outage beta") && svg.contains("<rect"));
        assert!(svg.contains("T &lt;1&gt;"), "titles are escaped");
        assert_eq!(
            svg.matches("http://").count(),
            1,
            "only the SVG namespace, no links"
        );
    }
}
