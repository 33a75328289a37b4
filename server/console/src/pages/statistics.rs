//! A feature group's statistics, computed over its offline store (its whole history, with
//! rows not yet in files) by the query engine: per feature, how complete it is, its distinct
//! count (approximate, HyperLogLog), min / max / mean / standard deviation, and a 20-bin
//! histogram of numeric features; the latest event time and how stale it is. Loaded into the
//! group's page after it is shown (each is a scan of the history), authorized as a query of
//! the group (`quiver:Query`).

use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::Console;
use crate::gate::User;
use crate::layout::{self, Section};
use quiver_types::error::{Error, Result};
use quiver_types::model::{Collection, FeatureGroup, FeatureType};

/// Bins of a histogram.
pub const BINS: usize = 20;

/// One feature's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    pub name: String,
    pub numeric: bool,
    pub present: u64,
    pub distinct: u64,
    /// As the query shows them; `None` when the feature has no value.
    pub min: Option<String>,
    pub max: Option<String>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Counts of [`BINS`] equal-width bins between min and max (numeric features).
    pub histogram: Vec<u64>,
}

pub struct Statistics {
    pub rows: u64,
    pub features: Vec<FeatureStats>,
    /// The event time feature's latest value, as epoch milliseconds.
    pub latest_event_ms: Option<i64>,
    pub elapsed_ms: u128,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn is_numeric(group: &FeatureGroup, index: usize) -> bool {
    let feature = &group.features[index];
    matches!(feature.collection, Collection::Scalar)
        && matches!(
            feature.feature_type,
            FeatureType::Integral | FeatureType::Fractional
        )
}

/// The one-scan aggregate statement: `rows`, then per scalar feature `present`, `distinct`,
/// `min`, `max`, and for numeric ones `mean` and `std`, named `<i>_<figure>`.
pub fn aggregate_sql(group: &FeatureGroup) -> String {
    let mut columns = vec!["count(*) AS rows".to_string()];
    for (i, feature) in group.features.iter().enumerate() {
        let column = quoted(&feature.name);
        columns.push(format!("count({column}) AS f{i}_present"));
        if !matches!(feature.collection, Collection::Scalar) {
            continue;
        }
        // HyperLogLog takes integers and text, not floating point: fractions count as text.
        let distinct = match feature.feature_type {
            FeatureType::Fractional => format!("approx_distinct(CAST({column} AS VARCHAR))"),
            _ => format!("approx_distinct({column})"),
        };
        columns.push(format!("{distinct} AS f{i}_distinct"));
        columns.push(format!("min({column}) AS f{i}_min"));
        columns.push(format!("max({column}) AS f{i}_max"));
        if is_numeric(group, i) {
            columns.push(format!("avg({column}) AS f{i}_mean"));
            columns.push(format!("stddev({column}) AS f{i}_std"));
        }
    }
    format!("SELECT {} FROM {}", columns.join(", "), quoted(&group.name))
}

/// The histogram statement of numeric features `(index, min, max)`: per feature and bin, the
/// rows in it (the maximum goes in the last bin).
pub fn histogram_sql(group: &FeatureGroup, ranges: &[(usize, f64, f64)]) -> Option<String> {
    let parts: Vec<String> = ranges
        .iter()
        .filter(|(_, min, max)| min.is_finite() && max.is_finite() && max > min)
        .map(|&(i, min, max)| {
            let column = quoted(&group.features[i].name);
            let width = (max - min) / BINS as f64;
            format!(
                "SELECT {i} AS feature, CASE WHEN {column} >= {max:?} THEN {last} \
                 ELSE CAST(floor(({column} - {min:?}) / {width:?}) AS BIGINT) END AS bin, \
                 count(*) AS n FROM {table} WHERE {column} IS NOT NULL GROUP BY 1, 2",
                last = BINS - 1,
                table = quoted(&group.name),
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
}

async fn collect(console: &Console, sql: &str) -> Result<Vec<RecordBatch>> {
    let (_, mut batches) = console.queries.execute(sql, Ok).await?;
    let mut out = Vec::new();
    while let Some(batch) = batches.recv().await {
        out.push(batch?);
    }
    Ok(out)
}

fn number(batch: &RecordBatch, column: &str) -> Option<f64> {
    let array = batch.column_by_name(column)?;
    if array.is_null(0) {
        return None;
    }
    let array = cast(array, &DataType::Float64).ok()?;
    Some(array.as_primitive::<Float64Type>().value(0))
}

fn shown(batch: &RecordBatch, column: &str) -> Option<String> {
    let array = batch.column_by_name(column)?;
    if array.is_null(0) {
        return None;
    }
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).ok()?;
    Some(formatter.value(0).to_string())
}

/// The group's statistics, computed now.
pub async fn compute(console: &Console, group: &FeatureGroup) -> Result<Statistics> {
    let started = Instant::now();
    let batches = collect(console, &aggregate_sql(group)).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::internal("the statistics query returned no row"))?;
    let rows = number(batch, "rows").unwrap_or(0.0) as u64;
    let mut features: Vec<FeatureStats> = group
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| FeatureStats {
            name: f.name.clone(),
            numeric: is_numeric(group, i),
            present: number(batch, &format!("f{i}_present")).unwrap_or(0.0) as u64,
            distinct: number(batch, &format!("f{i}_distinct")).unwrap_or(0.0) as u64,
            min: shown(batch, &format!("f{i}_min")),
            max: shown(batch, &format!("f{i}_max")),
            mean: number(batch, &format!("f{i}_mean")),
            std: number(batch, &format!("f{i}_std")),
            histogram: Vec::new(),
        })
        .collect();
    let ranges: Vec<(usize, f64, f64)> = (0..features.len())
        .filter(|&i| features[i].numeric)
        .filter_map(|i| {
            Some((
                i,
                number(batch, &format!("f{i}_min"))?,
                number(batch, &format!("f{i}_max"))?,
            ))
        })
        .collect();
    if let Some(sql) = histogram_sql(group, &ranges) {
        for batch in collect(console, &sql).await? {
            let column = |name: &str| -> Result<Vec<f64>> {
                let array = batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::internal(format!("the histogram has no {name}")))?;
                let array = cast(array, &DataType::Float64)
                    .map_err(|e| Error::internal(format!("the histogram's {name}: {e}")))?;
                Ok(array.as_primitive::<Float64Type>().values().to_vec())
            };
            let (feature, bin, n) = (column("feature")?, column("bin")?, column("n")?);
            for row in 0..batch.num_rows() {
                let stats = &mut features[feature[row] as usize];
                if stats.histogram.is_empty() {
                    stats.histogram = vec![0; BINS];
                }
                let bin = (bin[row].max(0.0) as usize).min(BINS - 1);
                stats.histogram[bin] += n[row] as u64;
            }
        }
    }
    let event_time = group
        .features
        .iter()
        .position(|f| f.name == group.event_time_feature_name);
    let latest_event_ms = event_time.and_then(|i| {
        let text = features[i].max.as_deref()?;
        quiver_types::time::parse_any(text).ok()
    });
    Ok(Statistics {
        rows,
        features,
        latest_event_ms,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// `GET /console/groups/{name}/statistics`: the panel (to htmx) or a page of its own.
pub async fn show(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = statistics(&console, &user, &name).await;
    let status = layout::status(&result);
    // Staleness is measured against the wall clock, as the person reading it does.
    let now_ms = quiver_types::time::Clock::now_ms(&quiver_types::time::SystemClock);
    let panel = match &result {
        Ok(stats) => panel(stats, now_ms),
        Err(e) => layout::error_block(e),
    };
    if headers.contains_key("hx-request") {
        return (status, panel).into_response();
    }
    let body = html! {
        (panel)
        p { a href={ "/console/groups/" (layout::segment(&name)) } { "Back to " (name) } }
    };
    (
        status,
        layout::page(&user, Section::None, &format!("{name}: statistics"), body),
    )
        .into_response()
}

async fn statistics(console: &Console, user: &User, name: &str) -> Result<Statistics> {
    let store = console.queries.store();
    console
        .api
        .access
        .authorize_query(&user.caller(), Ok(vec![name.to_string()]), |g| {
            store.feature_names(g)
        })?;
    let group = console.api.store.describe_feature_group(name)?;
    if group.offline.is_none() {
        return Err(Error::validation(format!(
            "feature group {name} has no offline store: statistics are computed over the \
             offline store's history"
        )));
    }
    compute(console, &group).await
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn figure(value: Option<f64>) -> String {
    match value {
        None => String::new(),
        Some(v) if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-3) => format!("{v:.4e}"),
        Some(v) => format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
    }
}

/// A histogram as an inline SVG of [`BINS`] bars.
pub fn histogram(counts: &[u64], label: &str) -> Markup {
    let (width, height) = (200.0, 40.0);
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bar = width / counts.len().max(1) as f64;
    html! {
        svg width="200" height="40" viewBox="0 0 200 40" role="img" aria-label=(label) {
            title { (label) }
            @for (i, n) in counts.iter().enumerate() {
                @let h = (*n as f64 / top * height).max(if *n > 0 { 1.0 } else { 0.0 });
                rect x=(format!("{:.1}", i as f64 * bar + 0.5)) y=(format!("{:.1}", height - h))
                    width=(format!("{:.1}", bar - 1.0)) height=(format!("{h:.1}")) fill="#0b5cad" {}
            }
        }
    }
}

pub fn panel(stats: &Statistics, now_ms: i64) -> Markup {
    html! {
        p role="status" {
            (layout::count(stats.rows)) " rows in the offline store"
            @if let Some(latest) = stats.latest_event_ms {
                " · latest event time " (layout::time(latest)) " (" (layout::age(now_ms, latest)) ")"
            }
            " · computed in " (stats.elapsed_ms) " ms"
        }
        div.table-wrap { table {
            thead { tr {
                th scope="col" { "Feature" } th scope="col" class="num" { "Complete" }
                th scope="col" class="num" { "Distinct (≈)" } th scope="col" { "Min" }
                th scope="col" { "Max" } th scope="col" class="num" { "Mean" }
                th scope="col" class="num" { "Std" } th scope="col" { "Histogram" }
            } }
            tbody { @for f in &stats.features {
                tr {
                    td { code { (f.name) } }
                    td.num { (percent(f.present, stats.rows)) }
                    td.num { (layout::count(f.distinct)) }
                    td.mono { (f.min.clone().unwrap_or_default()) }
                    td.mono { (f.max.clone().unwrap_or_default()) }
                    td.num { (figure(f.mean)) }
                    td.num { (figure(f.std)) }
                    td { @if !f.histogram.is_empty() {
                        (histogram(&f.histogram, &format!(
                            "{} from {} to {}: {}", f.name,
                            f.min.clone().unwrap_or_default(), f.max.clone().unwrap_or_default(),
                            f.histogram.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                        )))
                    } }
                }
            } }
        } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(figure(Some(2.5)), "2.5");
        assert_eq!(figure(Some(3.0)), "3");
        assert_eq!(figure(Some(1_700_000_000.0)), "1.7000e9");
        assert_eq!(figure(None), "");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "–");
    }

    #[test]
    fn a_histogram_has_one_bar_per_bin() {
        let svg = histogram(&[0, 5, 10], "h").into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(
            svg.contains("height=\"40.0\""),
            "the tallest bar is full height: {svg}"
        );
    }
}
