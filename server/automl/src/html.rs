//! A trained model's reports as one self-contained HTML page, for people: what Canvas shows
//! after a build. Charts are inline SVG; the page loads nothing (no script, no font, no
//! stylesheet from elsewhere), so it can be saved, mailed or served as it is.
//!
//! Sections: the model's quality (metrics; confusion matrix, ROC and precision-recall curves
//! for classification; predicted against actual and residuals for regression), feature
//! importance (mean |SHAP|), the leaderboard, the data (columns, their statistics and
//! histograms, the target, correlations, warnings) and the cleaning steps.

use std::fmt::Write;

use crate::metrics::Metric;
use crate::report::{Bin, DataReport, ModelReport};
use crate::search::{Candidate, CandidateStatus};
use crate::training::TrainedModel;

/// The page for the model of job `job`.
/// A data report alone as a self-contained page (data preparation's quality report), with
/// `extra` HTML (already escaped) after the summary.
pub fn data_page(title: &str, report: &DataReport, extra: &str) -> String {
    let mut html = String::new();
    let title = escape(title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    );
    html.push_str(extra);
    data(&mut html, report);
    html.push_str("</body></html>\n");
    html
}

/// Warnings as a list (nothing when there are none).
pub fn warnings(html: &mut String, warnings: &[crate::report::Warning]) {
    if warnings.is_empty() {
        return;
    }
    html.push_str("<ul>");
    for w in warnings {
        let _ = write!(
            html,
            "<li class=\"warn\"><b>{}</b>{}: {}</li>",
            escape(&w.kind),
            w.column
                .as_ref()
                .map_or(String::new(), |c| format!(" ({})", escape(c))),
            escape(&w.detail)
        );
    }
    html.push_str("</ul>\n");
}

/// Text for HTML, escaped.
pub fn escape_html(text: &str) -> String {
    escape(text)
}

pub fn page(job: &str, model: &TrainedModel) -> String {
    let mut html = String::new();
    let title = format!("AutoML report: {}", escape(job));
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    );
    let report = &model.model_report;
    let objective = report.metrics.get(&model.objective).copied();
    let _ = writeln!(
        html,
        "<p class=\"summary\">Predicts <b>{}</b> ({}) from {} rows. Objective {}: <b>{}</b>, \
         on out-of-fold predictions (rows no model saw in training).</p>",
        escape(&model.target),
        model.problem.name(),
        model.rows,
        model.objective.name(),
        objective.map_or("-".into(), number),
    );
    quality(&mut html, model, report);
    importance(&mut html, report);
    leaderboard(&mut html, &model.leaderboard);
    data(&mut html, &model.data_report);
    steps(&mut html, model);
    html.push_str("</body></html>\n");
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ddd;padding:0.25em 0.6em;\
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}.charts{display:flex;\
flex-wrap:wrap;gap:2em}figure{margin:0}figcaption{font-size:0.9em;color:#555}\
svg text{font-size:11px;fill:#444}.warn{color:#8a4b00}";

fn escape(text: &str) -> String {
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

/// A number as a report shows it: 4 significant digits, or an integer.
fn number(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v == v.trunc() && v.abs() < 1e12 {
        format!("{v:.0}")
    } else if v.abs() >= 1000.0 || v.abs() < 0.001 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn quality(html: &mut String, model: &TrainedModel, report: &ModelReport) {
    html.push_str(
        "<h2>Model quality</h2>\n<table><tr><th class=\"l\">Metric</th><th>Value</th></tr>\n",
    );
    for (metric, value) in &report.metrics {
        let mark = if *metric == model.objective {
            " (objective)"
        } else {
            ""
        };
        let _ = writeln!(
            html,
            "<tr><td class=\"l\">{}{mark}</td><td>{}</td></tr>",
            metric.name(),
            number(*value)
        );
    }
    let _ = writeln!(
        html,
        "</table><p>On {} rows' out-of-fold predictions.</p>",
        report.validated_rows
    );
    html.push_str("<div class=\"charts\">\n");
    if let Some(confusion) = &report.confusion {
        let mut table = String::from("<figure><table><tr><th class=\"l\">actual \\ predicted</th>");
        for class in &model.classes {
            let _ = write!(table, "<th>{}</th>", escape(class));
        }
        table.push_str("</tr>");
        let max = confusion
            .counts
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1);
        for (actual, row) in confusion.counts.iter().enumerate() {
            let name = model.classes.get(actual).map_or("?", String::as_str);
            let _ = write!(table, "<tr><th class=\"l\">{}</th>", escape(name));
            for (predicted, count) in row.iter().enumerate() {
                let strength = *count as f64 / max as f64;
                let hue = if actual == predicted { 210 } else { 10 };
                let _ = write!(
                    table,
                    "<td style=\"background:hsla({hue},70%,50%,{:.2})\">{count}</td>",
                    strength * 0.6
                );
            }
            table.push_str("</tr>");
        }
        table.push_str("</table><figcaption>Confusion matrix</figcaption></figure>\n");
        html.push_str(&table);
    }
    if !report.roc.is_empty() {
        let auc = report.metrics.get(&Metric::Auc).copied();
        let caption = format!(
            "ROC curve{}",
            auc.map_or(String::new(), |a| format!(" (AUC {})", number(a)))
        );
        html.push_str(&line_chart(
            &report.roc,
            "false positive rate",
            "true positive rate",
            &caption,
            true,
        ));
    }
    if !report.precision_recall.is_empty() {
        html.push_str(&line_chart(
            &report.precision_recall,
            "recall",
            "precision",
            "Precision-recall curve",
            false,
        ));
    }
    if !report.predicted_vs_actual.is_empty() {
        html.push_str(&scatter(
            &report.predicted_vs_actual,
            "actual",
            "predicted",
            "Predicted against actual",
        ));
    }
    if !report.residuals.is_empty() {
        html.push_str(&histogram(
            &report.residuals,
            320,
            160,
            "Residuals (actual - predicted)",
        ));
    }
    html.push_str("</div>\n");
}

fn importance(html: &mut String, report: &ModelReport) {
    if report.feature_importance.is_empty() {
        return;
    }
    html.push_str("<h2>Feature importance</h2>\n<p>Each feature's mean absolute SHAP value: how far, on average, it moves a prediction (in the model's margin: the value for regression, log-odds for classification).</p>\n");
    let shown: Vec<_> = report.feature_importance.iter().take(20).collect();
    let max = shown
        .iter()
        .map(|i| i.mean_abs_shap)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let (label_width, bar_width, row) = (200.0, 360.0, 20.0);
    let height = row * shown.len() as f64 + 10.0;
    let _ = write!(
        html,
        "<figure><svg width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"feature importance\">",
        label_width + bar_width + 120.0
    );
    for (i, item) in shown.iter().enumerate() {
        let y = row * i as f64 + 5.0;
        let width = bar_width * item.mean_abs_shap / max;
        let label = if item.feature == item.source {
            escape(&item.feature)
        } else {
            format!("{} ({})", escape(&item.feature), escape(&item.source))
        };
        let _ = write!(
            html,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{label_width}\" y=\"{y}\" width=\"{width:.1}\" height=\"{}\" fill=\"#3b7dd8\"/>\
             <text x=\"{:.1}\" y=\"{}\">{} ({:.1}%)</text>",
            label_width - 6.0,
            y + 13.0,
            row - 4.0,
            label_width + width + 4.0,
            y + 13.0,
            number(item.mean_abs_shap),
            item.share * 100.0
        );
    }
    html.push_str("</svg><figcaption>Mean |SHAP|, the 20 largest</figcaption></figure>\n");
}

fn leaderboard(html: &mut String, candidates: &[Candidate]) {
    html.push_str("<h2>Leaderboard</h2>\n<table><tr><th class=\"l\">Candidate</th><th class=\"l\">Status</th><th>Objective</th><th>Fit s</th><th>Predict s / 1,000 rows</th><th class=\"l\">Members / reason</th></tr>\n");
    for c in candidates {
        let status = match c.status {
            CandidateStatus::Completed => "Completed",
            CandidateStatus::Stopped => "Stopped",
            CandidateStatus::Failed => "Failed",
        };
        let detail = if c.members.is_empty() {
            c.reason.clone().unwrap_or_default()
        } else {
            c.members
                .iter()
                .map(|(name, w)| format!("{name} ({w:.2})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            html,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{status}</td><td>{}</td><td>{:.2}</td><td>{:.4}</td><td class=\"l\">{}</td></tr>",
            escape(&c.name),
            number(c.objective),
            c.fit_seconds,
            c.predict_seconds_per_1000,
            escape(&detail)
        );
    }
    html.push_str("</table>\n");
}

fn data(html: &mut String, report: &DataReport) {
    let _ = writeln!(
        html,
        "<h2>Data</h2>\n<p>{} rows, {} columns.</p>",
        report.rows, report.columns
    );
    warnings(html, &report.warnings);
    if let Some(target) = &report.target {
        let _ = write!(html, "<h3>Target: {}</h3>", escape(&target.name));
        if !target.classes.is_empty() {
            html.push_str("<table><tr><th class=\"l\">Class</th><th>Rows</th></tr>");
            for (class, count) in &target.classes {
                let _ = write!(
                    html,
                    "<tr><td class=\"l\">{}</td><td>{count}</td></tr>",
                    escape(class)
                );
            }
            html.push_str("</table>\n");
        }
        if let Some(s) = &target.statistics {
            let _ = writeln!(
                html,
                "<p>min {}, median {}, mean {}, max {}, standard deviation {}</p>",
                number(s.min),
                number(s.median),
                number(s.mean),
                number(s.max),
                number(s.std_dev)
            );
        }
    }
    html.push_str("<h3>Columns</h3>\n<table><tr><th class=\"l\">Column</th><th class=\"l\">Type</th><th>Missing</th><th>Distinct</th><th>Min</th><th>Median</th><th>Mean</th><th>Max</th><th>Prediction power alone</th><th class=\"l\">Distribution</th></tr>\n");
    for c in &report.column_summaries {
        let stat = |f: fn(&crate::report::Statistics) -> f64| {
            c.statistics.as_ref().map_or("".into(), |s| number(f(s)))
        };
        let distribution = if !c.histogram.is_empty() {
            histogram(&c.histogram, 120, 28, "")
        } else {
            escape(
                &c.top_levels
                    .iter()
                    .take(5)
                    .map(|(level, n)| format!("{level} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        let _ = writeln!(
            html,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{distribution}</td></tr>",
            escape(&c.name),
            c.kind,
            c.missing,
            c.distinct,
            stat(|s| s.min),
            stat(|s| s.median),
            stat(|s| s.mean),
            stat(|s| s.max),
            c.prediction_power.map_or("-".into(), number),
        );
    }
    html.push_str("</table>\n");
    if !report.correlations.is_empty() {
        html.push_str("<h3>Correlations</h3>\n<table><tr><th class=\"l\">Column</th><th class=\"l\">Column</th><th>Pearson</th></tr>\n");
        for c in &report.correlations {
            let _ = writeln!(
                html,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
                escape(&c.a),
                escape(&c.b),
                number(c.pearson)
            );
        }
        html.push_str("</table>\n");
    }
}

fn steps(html: &mut String, model: &TrainedModel) {
    html.push_str("<h2>Cleaning</h2>\n<ol>");
    for step in &model.steps {
        let _ = write!(
            html,
            "<li><b>{}</b>{}: {}</li>",
            escape(&step.step),
            step.column
                .as_ref()
                .map_or(String::new(), |c| format!(" ({})", escape(c))),
            escape(&step.detail)
        );
    }
    html.push_str("</ol>\n");
}

// --- charts ---------------------------------------------------------------------------------

const CHART: f64 = 240.0;
const MARGIN: f64 = 36.0;

fn axes(svg: &mut String, x_label: &str, y_label: &str, x: (f64, f64), y: (f64, f64)) {
    let (left, bottom) = (MARGIN, MARGIN / 2.0 + CHART);
    let _ = write!(
        svg,
        "<rect x=\"{left}\" y=\"{}\" width=\"{CHART}\" height=\"{CHART}\" fill=\"none\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>\
         <text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{y_label}</text>\
         <text x=\"{left}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{bottom}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        MARGIN / 2.0,
        left + CHART / 2.0,
        bottom + 28.0,
        MARGIN / 2.0 + CHART / 2.0,
        MARGIN / 2.0 + CHART / 2.0,
        bottom + 12.0,
        number(x.0),
        left + CHART,
        bottom + 12.0,
        number(x.1),
        left - 3.0,
        number(y.0),
        left - 3.0,
        MARGIN / 2.0 + 10.0,
        number(y.1),
    );
}

/// Maps (x, y) in the ranges to the plot's pixels.
fn place(point: (f64, f64), x: (f64, f64), y: (f64, f64)) -> (f64, f64) {
    let fx = if x.1 > x.0 {
        (point.0 - x.0) / (x.1 - x.0)
    } else {
        0.5
    };
    let fy = if y.1 > y.0 {
        (point.1 - y.0) / (y.1 - y.0)
    } else {
        0.5
    };
    (MARGIN + fx * CHART, MARGIN / 2.0 + (1.0 - fy) * CHART)
}

fn figure(svg: String, caption: &str) -> String {
    format!(
        "<figure><svg width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{}\">{svg}</svg><figcaption>{}</figcaption></figure>\n",
        CHART + MARGIN * 1.5,
        CHART + MARGIN * 1.5,
        escape(caption),
        escape(caption)
    )
}

/// A curve over [0, 1] x [0, 1]; `diagonal`: the chance line.
fn line_chart(
    points: &[(f64, f64)],
    x_label: &str,
    y_label: &str,
    caption: &str,
    diagonal: bool,
) -> String {
    let range = (0.0, 1.0);
    let mut svg = String::new();
    axes(&mut svg, x_label, y_label, range, range);
    if diagonal {
        let (a, b) = (
            place((0.0, 0.0), range, range),
            place((1.0, 1.0), range, range),
        );
        let _ = write!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#bbb\" stroke-dasharray=\"4\"/>",
            a.0, a.1, b.0, b.1
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|p| {
            let (x, y) = place(*p, range, range);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#3b7dd8\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    figure(svg, caption)
}

fn scatter(points: &[(f64, f64)], x_label: &str, y_label: &str, caption: &str) -> String {
    let low = points
        .iter()
        .flat_map(|p| [p.0, p.1])
        .fold(f64::INFINITY, f64::min);
    let high = points
        .iter()
        .flat_map(|p| [p.0, p.1])
        .fold(f64::NEG_INFINITY, f64::max);
    let range = (low, high);
    let mut svg = String::new();
    axes(&mut svg, x_label, y_label, range, range);
    let (a, b) = (
        place((low, low), range, range),
        place((high, high), range, range),
    );
    let _ = write!(
        svg,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#bbb\" stroke-dasharray=\"4\"/>",
        a.0, a.1, b.0, b.1
    );
    for p in points {
        let (x, y) = place(*p, range, range);
        let _ = write!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"#3b7dd8\" fill-opacity=\"0.6\"/>"
        );
    }
    figure(svg, caption)
}

/// Bars of a histogram, `width` x `height` pixels; with a caption, as a figure with axes'
/// extremes, else bare (a column's sparkline).
fn histogram(bins: &[Bin], width: usize, height: usize, caption: &str) -> String {
    let max = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let bar = width as f64 / bins.len().max(1) as f64;
    let mut svg = String::new();
    for (i, b) in bins.iter().enumerate() {
        let h = height as f64 * b.count as f64 / max;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3b7dd8\"><title>{} to {}: {}</title></rect>",
            i as f64 * bar,
            height as f64 - h,
            (bar - 1.0).max(1.0),
            number(b.low),
            number(b.high),
            b.count
        );
    }
    if caption.is_empty() {
        return format!("<svg width=\"{width}\" height=\"{height}\" role=\"img\">{svg}</svg>");
    }
    let (low, high) = (
        bins.first().map_or(0.0, |b| b.low),
        bins.last().map_or(0.0, |b| b.high),
    );
    format!(
        "<figure><svg width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"{}\">{svg}\
         <text x=\"0\" y=\"{}\">{}</text><text x=\"{width}\" y=\"{}\" text-anchor=\"end\">{}</text></svg>\
         <figcaption>{}</figcaption></figure>\n",
        height + 14,
        escape(caption),
        height + 12,
        number(low),
        height + 12,
        number(high),
        escape(caption)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Column, Frame};
    use crate::training::{TrainingSpec, train};

    #[test]
    fn the_page_holds_every_section_escaped_and_loads_nothing() {
        let rows = 300;
        let x: Vec<f64> = (0..rows).map(|i| (i % 17) as f64).collect();
        let noise: Vec<f64> = (0..rows).map(|i| ((i * 7) % 11) as f64).collect();
        let label: Vec<Option<&str>> = x
            .iter()
            .map(|v| Some(if *v > 8.0 { "yes" } else { "<no>" }))
            .collect();
        let frame = Frame::new(vec![
            Column::number("x", x),
            Column::number("noise & more", noise),
            Column::category("label", label),
        ])
        .unwrap();
        let model = train(
            &frame,
            &TrainingSpec::new("label", std::time::Duration::from_secs(20)),
            &|_| {},
        )
        .unwrap();
        let page = page("job<1>", &model);
        for section in [
            "Model quality",
            "Confusion matrix",
            "ROC curve",
            "Precision-recall curve",
            "Feature importance",
            "Leaderboard",
            "Columns",
            "Cleaning",
        ] {
            assert!(page.contains(section), "{section} missing");
        }
        assert!(page.contains("job&lt;1&gt;") && !page.contains("job<1>"));
        assert!(page.contains("&lt;no&gt;") && page.contains("noise &amp; more"));
        assert!(
            !page.contains("<script") && !page.contains("http://") && !page.contains("https://")
        );
        // x decides the label: it leads the importance chart.
        let importance = &model.model_report.feature_importance;
        assert_eq!(importance[0].feature, "x", "{importance:?}");
        assert!(importance[0].share > 0.5, "{importance:?}");
        let shares: f64 = importance.iter().map(|i| i.share).sum();
        assert!((shares - 1.0).abs() < 1e-9);
    }
}
