//! The data quality and insights report (Data Wrangler's), on a sample of a recipe's output:
//! rows and columns, each column's type, missing and invalid values, outliers (beyond median
//! ± 5·RSTD, RSTD the standard deviation of the values clipped to their 5th and 95th
//! percentiles), duplicate rows; the per-column statistics, histograms, correlations,
//! prediction power and warnings of AutoML's data exploration (`quiver_automl::report`), which
//! this reuses; and, when a target is named, a quick model's metrics from AutoML itself.

use std::collections::HashSet;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::row::{RowConverter, SortField};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use quiver_automl::frame::Frame;
use quiver_automl::problem::Target;
use quiver_automl::report::{DataReport, Warning, profile};
use quiver_automl::training::{TrainingSpec, train};
use quiver_types::error::{Error, Result, quote};

use crate::recipe::Recipe;
use crate::run::{Sources, preview};

/// A quick model's time: enough for a first gradient boosting and a linear model.
const QUICK_MODEL_BUDGET: Duration = Duration::from_secs(20);
/// A categorical column with more distinct values than this share of the rows.
const HIGH_CARDINALITY_SHARE: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// The rows the report was computed on (a sample of the output).
    pub rows: usize,
    pub duplicate_rows: usize,
    /// Per column: its type, missing, invalid and outlying values.
    pub columns: Vec<ColumnQuality>,
    /// Statistics, histograms, correlations, prediction power, warnings.
    pub data: DataReport,
    /// Warnings of this report's own (constant columns, high cardinality, duplicates).
    pub warnings: Vec<Warning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick_model: Option<QuickModel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnQuality {
    pub name: String,
    pub data_type: String,
    pub missing: usize,
    /// Numbers: NaN and infinities; text: empty or blank.
    pub invalid: usize,
    pub outliers: usize,
    pub distinct: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuickModel {
    pub problem: String,
    pub objective: String,
    /// Metrics on out-of-fold predictions.
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub model: String,
}

/// The report on the first `sample` rows of `recipe`'s output (its sources cut to `sample`
/// rows each, as in a preview).
pub async fn report(
    base: Option<&SessionContext>,
    sources: &dyn Sources,
    recipe: &Recipe,
    target: Option<&str>,
    sample: usize,
) -> Result<QualityReport> {
    let shown = preview(base, sources, recipe, None, sample, sample).await?;
    let schema = shown.compiled.schema.clone();
    let batches = shown.batches;
    if let Some(t) = target
        && schema.field_with_name(t).is_err()
    {
        return Err(Error::validation(format!(
            "target: the output has no column {}",
            quote(t)
        )));
    }
    let target = target.map(str::to_string);
    tokio::task::spawn_blocking(move || build(&schema, &batches, target.as_deref()))
        .await
        .map_err(|e| Error::internal(format!("the report task failed: {e}")))?
}

fn build(
    schema: &arrow::datatypes::Schema,
    batches: &[RecordBatch],
    target: Option<&str>,
) -> Result<QualityReport> {
    let frame = Frame::from_batches(schema, batches)?;
    let target_column = target
        .map(|t| Target::from_frame(&frame, t, None))
        .transpose()?;
    let data = profile(&frame, target_column.as_ref());
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut columns = Vec::new();
    let mut warnings = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let (missing, invalid) = missing_and_invalid(batches, i);
        let summary = data
            .column_summaries
            .iter()
            .find(|c| &c.name == field.name());
        let distinct = summary.map_or(0, |s| s.distinct);
        let outliers = frame
            .column(field.name())
            .map_or(0, |c| outliers(&c.values, field.data_type()));
        if distinct <= 1 && rows > 0 {
            warnings.push(Warning {
                kind: "Constant".into(),
                column: Some(field.name().clone()),
                detail: "one value (or none) in every row: it carries no information".into(),
            });
        }
        let text = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        if text && rows >= 100 && distinct as f64 > HIGH_CARDINALITY_SHARE * rows as f64 {
            warnings.push(Warning {
                kind: "HighCardinality".into(),
                column: Some(field.name().clone()),
                detail: format!(
                    "{distinct} distinct values in {rows} rows: an identifier, or text to featurize, rather than a category"
                ),
            });
        }
        columns.push(ColumnQuality {
            name: field.name().clone(),
            data_type: field.data_type().to_string(),
            missing,
            invalid,
            outliers,
            distinct,
        });
    }
    let duplicate_rows = duplicates(schema, batches)?;
    if duplicate_rows > 0 {
        warnings.push(Warning {
            kind: "DuplicateRows".into(),
            column: None,
            detail: format!(
                "{duplicate_rows} of {rows} rows repeat an earlier row (deduplicate them)"
            ),
        });
    }
    let quick_model = match target {
        Some(t) if rows > 0 => Some(quick_model(&frame, t)?),
        _ => None,
    };
    Ok(QualityReport {
        rows,
        duplicate_rows,
        columns,
        data,
        warnings,
        quick_model,
    })
}

fn missing_and_invalid(batches: &[RecordBatch], column: usize) -> (usize, usize) {
    let mut missing = 0;
    let mut invalid = 0;
    for batch in batches {
        let a = batch.column(column);
        missing += a.null_count();
        match a.data_type() {
            DataType::Float64 => {
                let a = a.as_primitive::<Float64Type>();
                invalid += (0..a.len())
                    .filter(|&i| a.is_valid(i) && !a.value(i).is_finite())
                    .count();
            }
            DataType::Float32 => {
                let a = a.as_primitive::<Float32Type>();
                invalid += (0..a.len())
                    .filter(|&i| a.is_valid(i) && !a.value(i).is_finite())
                    .count();
            }
            DataType::Utf8 => {
                let a = a.as_string::<i32>();
                invalid += (0..a.len())
                    .filter(|&i| a.is_valid(i) && a.value(i).trim().is_empty())
                    .count();
            }
            DataType::Utf8View => {
                let a = a.as_string_view();
                invalid += (0..a.len())
                    .filter(|&i| a.is_valid(i) && a.value(i).trim().is_empty())
                    .count();
            }
            _ => {}
        }
    }
    (missing, invalid)
}

/// Values beyond median ± 5·RSTD (Data Wrangler's definition); numbers only.
fn outliers(values: &[f64], data_type: &DataType) -> usize {
    if !data_type.is_numeric() {
        return 0;
    }
    let mut present: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if present.len() < 3 {
        return 0;
    }
    present.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let position = q * (present.len() - 1) as f64;
        let (low, high) = (position.floor() as usize, position.ceil() as usize);
        present[low] + (present[high] - present[low]) * (position - low as f64)
    };
    let (p5, p95, median) = (quantile(0.05), quantile(0.95), quantile(0.5));
    let clipped: Vec<f64> = present.iter().map(|v| v.clamp(p5, p95)).collect();
    let mean = clipped.iter().sum::<f64>() / clipped.len() as f64;
    let rstd = (clipped.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
        / (clipped.len() - 1) as f64)
        .sqrt();
    present
        .iter()
        .filter(|v| (**v - median).abs() > 5.0 * rstd)
        .count()
}

/// Rows equal to an earlier row.
fn duplicates(schema: &arrow::datatypes::Schema, batches: &[RecordBatch]) -> Result<usize> {
    let fields: Vec<SortField> = schema
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter =
        RowConverter::new(fields).map_err(|e| Error::internal(format!("comparing rows: {e}")))?;
    let mut seen = HashSet::new();
    let mut repeated = 0;
    for batch in batches {
        let rows = converter
            .convert_columns(batch.columns())
            .map_err(|e| Error::internal(format!("comparing rows: {e}")))?;
        for row in rows.iter() {
            if !seen.insert(row.as_ref().to_vec()) {
                repeated += 1;
            }
        }
    }
    Ok(repeated)
}

fn quick_model(frame: &Frame, target: &str) -> Result<QuickModel> {
    let mut spec = TrainingSpec::new(target, QUICK_MODEL_BUDGET);
    spec.folds = 3;
    spec.max_candidates = Some(2);
    let model = train(frame, &spec, &|_| {})?;
    let best = model
        .leaderboard
        .first()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    Ok(QuickModel {
        problem: model.problem.name().to_string(),
        objective: model.objective.name().to_string(),
        metrics: model
            .model_report
            .metrics
            .iter()
            .map(|(k, v)| (k.name().to_string(), *v))
            .collect(),
        model: best,
    })
}

/// The report as one self-contained HTML page (inline SVG charts, no script).
pub fn html(title: &str, report: &QualityReport) -> String {
    use quiver_automl::html::{data_page, escape_html as escape, warnings};
    let mut extra = format!(
        "<p class=\"summary\">{} rows profiled; {} duplicate rows.</p>\n",
        report.rows, report.duplicate_rows
    );
    warnings(&mut extra, &report.warnings);
    extra.push_str("<h2>Quality</h2>\n<table><tr><th class=\"l\">Column</th><th class=\"l\">Type</th><th>Missing</th><th>Invalid</th><th>Outliers</th><th>Distinct</th></tr>\n");
    for c in &report.columns {
        extra.push_str(&format!(
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&c.name),
            escape(&c.data_type),
            c.missing,
            c.invalid,
            c.outliers,
            c.distinct
        ));
    }
    extra.push_str("</table>\n");
    if let Some(q) = &report.quick_model {
        extra.push_str(&format!(
            "<h2>Quick model</h2>\n<p>{} ({}), {}: out-of-fold metrics.</p><table><tr><th class=\"l\">Metric</th><th>Value</th></tr>",
            escape(&q.model),
            escape(&q.problem),
            escape(&q.objective)
        ));
        for (name, value) in &q.metrics {
            extra.push_str(&format!(
                "<tr><td class=\"l\">{}</td><td>{value:.4}</td></tr>",
                escape(name)
            ));
        }
        extra.push_str("</table>\n");
    }
    data_page(title, &report.data, &extra)
}
