//! Missing values and outliers. "Missing" is null, and NaN in a column of floats (as pandas
//! sees it); filled numbers become doubles (a mean is rarely an integer).

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use serde_json::Value;

use quiver_types::error::{Error, Result, quote};

use super::{comma, window};
use crate::compile::{Chain, ident, number, present, text, type_name, typed};
use crate::recipe::{MissingAction, OutlierAction, OutlierMethod};

pub async fn missing(
    chain: &mut Chain<'_>,
    columns: &[String],
    action: MissingAction,
    value: Option<&Value>,
    key: &[String],
    time: Option<&str>,
    learned: &mut Option<BTreeMap<String, Value>>,
) -> Result<()> {
    chain.columns("columns", columns)?;
    let prev = chain.last();
    let types: BTreeMap<&str, DataType> = columns
        .iter()
        .map(|c| Ok((c.as_str(), chain.column("columns", c)?.data_type().clone())))
        .collect::<Result<_>>()?;
    let present_of = |c: &str| present(&ident(c), &types[c]);
    // Each column's new expression; the others pass through.
    let mut replaced: BTreeMap<&str, String> = BTreeMap::new();
    let mut added: Vec<String> = Vec::new();
    match action {
        MissingAction::Drop => {
            let tests: Vec<String> = columns
                .iter()
                .map(|c| format!("{} IS NOT NULL", present_of(c)))
                .collect();
            return chain
                .push(format!(
                    "SELECT * FROM {prev} WHERE {}",
                    tests.join(" AND ")
                ))
                .await;
        }
        MissingAction::FillConstant => {
            // Checked by the recipe: fill_constant has a scalar value.
            let value = value.cloned().unwrap_or(Value::Null);
            for c in columns {
                let literal = constant(chain, c, &types[c.as_str()], &value).await?;
                replaced.insert(c, format!("COALESCE({}, {literal})", present_of(c)));
            }
        }
        MissingAction::FillMean | MissingAction::FillMedian => {
            for c in columns {
                chain.numeric("columns", c)?;
            }
            if learned.is_none() {
                let function = if action == MissingAction::FillMean {
                    "avg"
                } else {
                    "median"
                };
                let aggregates: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{function}({})", present_of(c)))
                    .collect();
                let values = chain
                    .fetch_numbers(&format!("SELECT {} FROM {prev}", comma(&aggregates)))
                    .await?;
                *learned = Some(
                    columns
                        .iter()
                        .zip(values.into_iter().chain(std::iter::repeat(None)))
                        .map(|(c, v)| (c.clone(), v.map_or(Value::Null, Value::from)))
                        .collect(),
                );
            }
            for c in columns {
                let fill = match learned_value(learned, c)? {
                    Value::Number(n) => number(n.as_f64().unwrap_or(f64::NAN)),
                    Value::Null => "CAST(NULL AS DOUBLE)".to_string(),
                    other => {
                        return Err(Error::validation(format!(
                            "learned.{c}: {other} is not a number"
                        )));
                    }
                };
                replaced.insert(
                    c,
                    format!("COALESCE(CAST({} AS DOUBLE), {fill})", present_of(c)),
                );
            }
        }
        MissingAction::FillMode => {
            if learned.is_none() {
                let mut modes = BTreeMap::new();
                for c in columns {
                    let p = present_of(c);
                    let mode = chain
                        .fetch_texts(&format!(
                            "SELECT v FROM (SELECT {p} AS v, count(*) AS n FROM {prev} WHERE {p} IS NOT NULL \
                             GROUP BY 1 ORDER BY n DESC, v ASC LIMIT 1)"
                        ))
                        .await?;
                    let mode = mode.into_iter().next().flatten();
                    modes.insert(c.clone(), mode.map_or(Value::Null, Value::String));
                }
                *learned = Some(modes);
            }
            for c in columns {
                let fill = match learned_value(learned, c)? {
                    Value::String(s) => typed(&s, &types[c.as_str()]),
                    Value::Null => "NULL".to_string(),
                    other => typed(&other.to_string(), &types[c.as_str()]),
                };
                replaced.insert(c, format!("COALESCE({}, {fill})", present_of(c)));
            }
        }
        MissingAction::ForwardFill => {
            chain.columns("key", key)?;
            // Checked by the recipe: forward_fill names its time column.
            let time = time.unwrap_or_default();
            chain.column("time", time)?;
            let window = window(key, time);
            for c in columns {
                replaced.insert(
                    c,
                    format!(
                        "last_value({} IGNORE NULLS) OVER ({window} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
                        present_of(c)
                    ),
                );
            }
        }
        MissingAction::Indicator => {
            for c in columns {
                let name = format!("{c}_missing");
                chain.free("columns", &name)?;
                added.push(format!("({} IS NULL) AS {}", present_of(c), ident(&name)));
            }
        }
    }
    let mut list: Vec<String> = chain
        .schema()
        .fields()
        .iter()
        .map(|f| match replaced.get(f.name().as_str()) {
            Some(expression) => format!("{expression} AS {}", ident(f.name())),
            None => ident(f.name()),
        })
        .collect();
    list.extend(added);
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

fn learned_value(learned: &Option<BTreeMap<String, Value>>, column: &str) -> Result<Value> {
    learned
        .as_ref()
        .and_then(|l| l.get(column))
        .cloned()
        .ok_or_else(|| {
            Error::validation(format!(
                "learned: no value for column {} (forget what the step learned to fit it again)",
                quote(column)
            ))
        })
}

/// A fill value as a literal of the column's type, refused when it is not one.
async fn constant(
    chain: &Chain<'_>,
    column: &str,
    data_type: &DataType,
    value: &Value,
) -> Result<String> {
    let wrong = || {
        Error::validation(format!(
            "value: {value} does not fit column {}, which is {}",
            quote(column),
            type_name(data_type)
        ))
    };
    match (value, data_type) {
        (Value::Number(n), t) if t.is_numeric() => {
            let v = n.as_f64().ok_or_else(wrong)?;
            if t.is_integer() && v.fract() != 0.0 {
                return Err(wrong());
            }
            Ok(format!(
                "arrow_cast({}, {})",
                number(v),
                text(&t.to_string())
            ))
        }
        (Value::Bool(b), DataType::Boolean) => Ok(b.to_string()),
        (Value::String(s), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            Ok(typed(s, &DataType::Utf8))
        }
        (Value::Number(n), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            Ok(text(&n.to_string()))
        }
        (Value::String(s), t) if t.is_temporal() => {
            let literal = typed(s, t);
            chain
                .evaluate(&format!("SELECT {literal}"))
                .await
                .map_err(|_| wrong())?;
            Ok(literal)
        }
        _ => Err(wrong()),
    }
}

/// How an outlier step finds its bounds.
pub struct OutlierBounds {
    pub method: OutlierMethod,
    pub threshold: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

pub async fn outliers(
    chain: &mut Chain<'_>,
    columns: &[String],
    bounds: OutlierBounds,
    action: OutlierAction,
    learned: &mut Option<BTreeMap<String, [f64; 2]>>,
) -> Result<()> {
    chain.columns("columns", columns)?;
    let mut types = BTreeMap::new();
    for c in columns {
        types.insert(c.as_str(), chain.numeric("columns", c)?.data_type().clone());
    }
    let present_of = |c: &str| present(&ident(c), &types[c]);
    if learned.is_none() {
        let mut fitted = BTreeMap::new();
        for c in columns {
            fitted.insert(c.clone(), fit_bounds(chain, &present_of(c), &bounds).await?);
        }
        *learned = Some(fitted);
    }
    let bounds_of = |c: &str| {
        learned.as_ref().and_then(|l| l.get(c)).copied().ok_or_else(|| {
            Error::validation(format!(
                "learned: no bounds for column {} (forget what the step learned to fit it again)",
                quote(c)
            ))
        })
    };
    let prev = chain.last();
    match action {
        OutlierAction::Remove => {
            let mut tests = Vec::new();
            for c in columns {
                let [low, high] = bounds_of(c)?;
                let p = present_of(c);
                tests.push(format!(
                    "({p} IS NULL OR {p} BETWEEN {} AND {})",
                    number(low),
                    number(high)
                ));
            }
            chain
                .push(format!(
                    "SELECT * FROM {prev} WHERE {}",
                    tests.join(" AND ")
                ))
                .await
        }
        OutlierAction::Clip => {
            let mut list = Vec::new();
            for f in chain.schema().fields() {
                let name = f.name();
                if columns.contains(name) {
                    let [low, high] = bounds_of(name)?;
                    let p = present_of(name);
                    list.push(format!(
                        "CASE WHEN {p} IS NULL THEN CAST({0} AS DOUBLE) \
                         ELSE least(greatest(CAST({0} AS DOUBLE), {1}), {2}) END AS {0}",
                        ident(name),
                        number(low),
                        number(high)
                    ));
                } else {
                    list.push(ident(name));
                }
            }
            chain
                .push(format!("SELECT {} FROM {prev}", comma(&list)))
                .await
        }
    }
}

/// A column's bounds ([`f64::MIN`, `f64::MAX`] when it has no values).
async fn fit_bounds(chain: &mut Chain<'_>, p: &str, bounds: &OutlierBounds) -> Result<[f64; 2]> {
    let prev = chain.last();
    let quantile = |q: f64| format!("percentile_cont({}) WITHIN GROUP (ORDER BY {p})", number(q));
    let fitted = match bounds.method {
        OutlierMethod::StdDev => {
            let t = bounds.threshold.unwrap_or(3.0);
            let v = chain
                .fetch_numbers(&format!("SELECT avg({p}), stddev({p}) FROM {prev}"))
                .await?;
            match v.as_slice() {
                [Some(mean), Some(std)] => Some([mean - t * std, mean + t * std]),
                [Some(mean), None] => Some([*mean, *mean]),
                _ => None,
            }
        }
        OutlierMethod::Robust => {
            let t = bounds.threshold.unwrap_or(5.0);
            let v = chain
                .fetch_numbers(&format!(
                    "SELECT {}, {}, median({p}) FROM {prev}",
                    quantile(0.05),
                    quantile(0.95)
                ))
                .await?;
            match v.as_slice() {
                [Some(p5), Some(p95), Some(median)] => {
                    let s = chain
                        .fetch_numbers(&format!(
                            "SELECT stddev(CASE WHEN {p} IS NULL THEN NULL ELSE least(greatest({p}, {}), {}) END) FROM {prev}",
                            number(*p5),
                            number(*p95)
                        ))
                        .await?;
                    let rstd = s.first().copied().flatten().unwrap_or(0.0);
                    Some([median - t * rstd, median + t * rstd])
                }
                _ => None,
            }
        }
        OutlierMethod::Quantile => {
            let v = chain
                .fetch_numbers(&format!(
                    "SELECT {}, {} FROM {prev}",
                    quantile(bounds.lower.unwrap_or(0.01)),
                    quantile(bounds.upper.unwrap_or(0.99))
                ))
                .await?;
            match v.as_slice() {
                [Some(low), Some(high)] => Some([*low, *high]),
                _ => None,
            }
        }
    };
    Ok(fitted.unwrap_or([f64::MIN, f64::MAX]))
}
