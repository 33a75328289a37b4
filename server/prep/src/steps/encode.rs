//! Categorical encodings, scaling and binning: each learns from the table it first sees (the
//! levels and their values, centers and scales, bin edges) and applies what it learned on every
//! run after, so that serving data is transformed as the training data was.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};

use quiver_types::error::{Error, Result, quote};

use super::comma;
use crate::compile::{Chain, ident, number, present, text};
use crate::recipe::{BinMethod, EncodeMethod, Encoding, ScaleMethod};

/// The levels a one-hot encoding keeps unless told; the other encodings keep this many more.
const ONE_HOT_LEVELS: usize = 20;
const OTHER_ENCODING_LEVELS: usize = 1000;
/// The levels past the cap, as one level (a text no value is: it starts with a control character).
const OTHER_LEVELS: &str = "\u{1}other";

pub struct EncodeOptions<'a> {
    pub method: EncodeMethod,
    pub max_levels: Option<usize>,
    pub target: Option<&'a str>,
    pub folds: u32,
    pub smoothing: f64,
    pub keep_original: bool,
}

/// A column's values as text (levels are compared as text whatever the column's type).
fn level(column: &str, data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => ident(column),
        _ => format!("CAST({} AS VARCHAR)", ident(column)),
    }
}

/// One level's rows, and its target's sum and count of values.
struct LevelCount {
    level: String,
    rows: f64,
    target_sum: f64,
    target_rows: f64,
}

async fn count_levels(
    chain: &mut Chain<'_>,
    level: &str,
    column: &str,
    target: Option<&str>,
) -> Result<Vec<LevelCount>> {
    let prev = chain.last();
    let target_columns = match target {
        Some(t) => format!(", sum(CAST({0} AS DOUBLE)), count({0})", ident(t)),
        None => ", 0.0, 0".to_string(),
    };
    let batches = chain
        .fetch(&format!(
            "SELECT {level} AS level, count(*) AS n{target_columns} FROM {prev} \
             WHERE {} IS NOT NULL GROUP BY 1 ORDER BY n DESC, level ASC",
            ident(column)
        ))
        .await?;
    let mut out = Vec::new();
    let read = |e: arrow::error::ArrowError| Error::internal(format!("reading levels: {e}"));
    for batch in batches {
        let levels = cast(batch.column(0), &DataType::Utf8).map_err(read)?;
        let levels = levels.as_string::<i32>();
        let rows = cast(batch.column(1), &DataType::Float64).map_err(read)?;
        let sums = cast(batch.column(2), &DataType::Float64).map_err(read)?;
        let counts = cast(batch.column(3), &DataType::Float64).map_err(read)?;
        let (rows, sums, counts) = (
            rows.as_primitive::<Float64Type>(),
            sums.as_primitive::<Float64Type>(),
            counts.as_primitive::<Float64Type>(),
        );
        for i in 0..batch.num_rows() {
            out.push(LevelCount {
                level: levels.value(i).to_string(),
                rows: rows.value(i),
                target_sum: if sums.is_null(i) { 0.0 } else { sums.value(i) },
                target_rows: counts.value(i),
            });
        }
    }
    Ok(out)
}

fn fit_encoding(counts: &[LevelCount], options: &EncodeOptions<'_>, global: f64) -> Encoding {
    let cap = options.max_levels.unwrap_or(match options.method {
        EncodeMethod::OneHot => ONE_HOT_LEVELS,
        _ => OTHER_ENCODING_LEVELS,
    });
    let (kept, rest) = counts.split_at(cap.min(counts.len()));
    let levels: Vec<String> = kept.iter().map(|c| c.level.clone()).collect();
    let other = !rest.is_empty();
    let total: f64 = counts.iter().map(|c| c.rows).sum();
    let m = options.smoothing;
    let smoothed = |sum: f64, n: f64| {
        if n + m > 0.0 {
            (sum + m * global) / (n + m)
        } else {
            global
        }
    };
    let (values, unseen) = match options.method {
        EncodeMethod::Ordinal | EncodeMethod::OneHot => (Vec::new(), None),
        EncodeMethod::Frequency => {
            let values = kept.iter().map(|c| c.rows / total).collect();
            let unseen = if other {
                rest.iter().map(|c| c.rows).sum::<f64>() / rest.len() as f64 / total
            } else {
                0.0
            };
            (values, Some(unseen))
        }
        EncodeMethod::TargetMean => {
            let values = kept
                .iter()
                .map(|c| smoothed(c.target_sum, c.target_rows))
                .collect();
            let unseen = if other {
                smoothed(
                    rest.iter().map(|c| c.target_sum).sum(),
                    rest.iter().map(|c| c.target_rows).sum(),
                )
            } else {
                global
            };
            (values, Some(unseen))
        }
    };
    Encoding {
        levels,
        values,
        unseen,
        other,
    }
}

/// `CASE level WHEN 'a' THEN v ... ELSE unseen END`, null for a null value.
fn lookup(
    column: &str,
    level: &str,
    cases: impl Iterator<Item = (String, String)>,
    unseen: &str,
) -> String {
    let whens: Vec<String> = cases
        .map(|(l, v)| format!("WHEN {} THEN {v}", text(&l)))
        .collect();
    if whens.is_empty() {
        return format!(
            "CASE WHEN {} IS NULL THEN NULL ELSE {unseen} END",
            ident(column)
        );
    }
    format!(
        "CASE WHEN {} IS NULL THEN NULL ELSE CASE {level} {} ELSE {unseen} END END",
        ident(column),
        whens.join(" ")
    )
}

pub async fn encode(
    chain: &mut Chain<'_>,
    columns: &[String],
    options: &EncodeOptions<'_>,
    learned: &mut Option<BTreeMap<String, Encoding>>,
) -> Result<()> {
    chain.columns("columns", columns)?;
    if let Some(target) = options.target {
        let t = chain.column("target", target)?;
        if !(t.data_type().is_numeric() || t.data_type() == &DataType::Boolean) {
            return Err(Error::validation(format!(
                "target: {} is {}; a target mean needs numbers or booleans (encode the target first)",
                quote(target),
                crate::compile::type_name(t.data_type())
            )));
        }
        if columns.iter().any(|c| c == target) {
            return Err(Error::validation(format!(
                "columns: {} is the target",
                quote(target)
            )));
        }
    }
    let types: BTreeMap<String, DataType> = columns
        .iter()
        .map(|c| Ok((c.clone(), chain.column("columns", c)?.data_type().clone())))
        .collect::<Result<_>>()?;
    let fresh = learned.is_none();
    let mut global = 0.0;
    if let (EncodeMethod::TargetMean, Some(target)) = (options.method, options.target) {
        let prev = chain.last();
        let mean = chain
            .fetch_numbers(&format!(
                "SELECT avg(CAST({} AS DOUBLE)) FROM {prev}",
                ident(target)
            ))
            .await?;
        global = mean.first().copied().flatten().unwrap_or(0.0);
    }
    if fresh {
        let mut fitted = BTreeMap::new();
        for c in columns {
            let counts = count_levels(chain, &level(c, &types[c]), c, options.target).await?;
            fitted.insert(c.clone(), fit_encoding(&counts, options, global));
        }
        *learned = Some(fitted);
    }
    let encodings = learned.as_ref().map(|l| l.clone()).unwrap_or_default();
    for c in columns {
        let Some(e) = encodings.get(c) else {
            return Err(Error::validation(format!(
                "learned: no encoding for column {} (forget what the step learned to fit it again)",
                quote(c)
            )));
        };
        if !e.values.is_empty() && e.values.len() != e.levels.len() {
            return Err(Error::validation(format!(
                "learned.{c}: {} values for {} levels",
                e.values.len(),
                e.levels.len()
            )));
        }
    }
    // A target mean fitted in this run is computed out of fold: each row's fold from a hash
    // of the row, and each level's mean from the other folds.
    let out_of_fold = fresh && options.method == EncodeMethod::TargetMean;
    if out_of_fold {
        let prev = chain.last();
        let hash = format!("quiver_hash(0, {})", comma(&chain.visible()));
        chain
            .push(format!(
                "SELECT *, {hash} % {} AS \"__quiver_fold\" FROM {prev}",
                options.folds
            ))
            .await?;
    }
    let mut list = Vec::new();
    for field in chain.schema().fields() {
        let name = field.name();
        if name == "__quiver_fold" {
            continue;
        }
        let Some(e) = encodings.get(name) else {
            list.push(ident(name));
            continue;
        };
        if options.keep_original {
            list.push(ident(name));
        }
        let level = level(name, &types[name]);
        let output = if options.keep_original {
            let suffix = match options.method {
                EncodeMethod::Ordinal => "ordinal",
                EncodeMethod::Frequency => "frequency",
                EncodeMethod::TargetMean => "target_mean",
                EncodeMethod::OneHot => "",
            };
            format!("{name}_{suffix}")
        } else {
            name.clone()
        };
        match options.method {
            EncodeMethod::Ordinal => {
                let unseen = if e.other { e.levels.len() as i64 } else { -1 };
                let cases = e
                    .levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), i.to_string()));
                list.push(format!(
                    "CAST({} AS BIGINT) AS {}",
                    lookup(name, &level, cases, &unseen.to_string()),
                    ident(&output)
                ));
            }
            EncodeMethod::Frequency | EncodeMethod::TargetMean if !out_of_fold => {
                let cases = e
                    .levels
                    .iter()
                    .zip(&e.values)
                    .map(|(l, v)| (l.clone(), number(*v)));
                let unseen = number(e.unseen.unwrap_or(0.0));
                list.push(format!(
                    "CAST({} AS DOUBLE) AS {}",
                    lookup(name, &level, cases, &unseen),
                    ident(&output)
                ));
            }
            EncodeMethod::Frequency | EncodeMethod::TargetMean => {
                let target = ident(options.target.unwrap_or_default());
                let grouped = if e.other {
                    let kept: Vec<String> = e.levels.iter().map(|l| text(l)).collect();
                    format!(
                        "CASE WHEN {level} IN ({}) THEN {level} ELSE {} END",
                        comma(&kept),
                        text(OTHER_LEVELS)
                    )
                } else {
                    level.clone()
                };
                let t = format!("CAST({target} AS DOUBLE)");
                let all = format!("PARTITION BY {grouped}");
                let fold = format!("PARTITION BY {grouped}, \"__quiver_fold\"");
                let m = number(options.smoothing);
                let g = number(global);
                list.push(format!(
                    "CASE WHEN {0} IS NULL THEN NULL ELSE COALESCE(\
                     (sum({t}) OVER ({all}) - COALESCE(sum({t}) OVER ({fold}), 0) + {m} * {g}) \
                     / NULLIF(count({t}) OVER ({all}) - count({t}) OVER ({fold}) + {m}, 0), {g}) END AS {1}",
                    ident(name),
                    ident(&output)
                ));
            }
            EncodeMethod::OneHot => {
                for l in &e.levels {
                    let column = format!("{name}_{l}");
                    chain.free("columns", &column)?;
                    list.push(format!(
                        "CAST(CASE WHEN {level} = {} THEN 1 ELSE 0 END AS INT) AS {}",
                        text(l),
                        ident(&column)
                    ));
                }
                if e.other {
                    let column = format!("{name}_other");
                    chain.free("columns", &column)?;
                    let kept: Vec<String> = e.levels.iter().map(|l| text(l)).collect();
                    list.push(format!(
                        "CAST(CASE WHEN {} IS NOT NULL AND {level} NOT IN ({}) THEN 1 ELSE 0 END AS INT) AS {}",
                        ident(name),
                        comma(&kept),
                        ident(&column)
                    ));
                }
            }
        }
        if options.keep_original && options.method != EncodeMethod::OneHot {
            chain.free("keep_original", &output)?;
        }
    }
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn scale(
    chain: &mut Chain<'_>,
    columns: &[String],
    method: ScaleMethod,
    learned: &mut Option<BTreeMap<String, [f64; 2]>>,
) -> Result<()> {
    chain.columns("columns", columns)?;
    let mut types = BTreeMap::new();
    for c in columns {
        types.insert(c.clone(), chain.numeric("columns", c)?.data_type().clone());
    }
    let prev = chain.last();
    if learned.is_none() {
        let mut fitted = BTreeMap::new();
        for c in columns {
            let p = present(&ident(c), &types[c]);
            let quantile =
                |q: f64| format!("percentile_cont({}) WITHIN GROUP (ORDER BY {p})", number(q));
            let select = match method {
                // Population standard deviation, as scikit-learn's StandardScaler.
                ScaleMethod::Standard => format!("SELECT avg({p}), stddev_pop({p}) FROM {prev}"),
                ScaleMethod::MinMax => format!("SELECT min({p}), max({p}) - min({p}) FROM {prev}"),
                ScaleMethod::Robust => format!(
                    "SELECT median({p}), {} - {} FROM {prev}",
                    quantile(0.75),
                    quantile(0.25)
                ),
            };
            let v = chain.fetch_numbers(&select).await?;
            let center = v.first().copied().flatten().unwrap_or(0.0);
            // A constant column is centred, not divided by zero (as scikit-learn does).
            let scale = v
                .get(1)
                .copied()
                .flatten()
                .filter(|s| *s != 0.0)
                .unwrap_or(1.0);
            fitted.insert(c.clone(), [center, scale]);
        }
        *learned = Some(fitted);
    }
    let mut list = Vec::new();
    for f in chain.schema().fields() {
        let name = f.name();
        if !columns.contains(name) {
            list.push(ident(name));
            continue;
        }
        let [center, scale] = learned.as_ref().and_then(|l| l.get(name)).copied().ok_or_else(|| {
            Error::validation(format!(
                "learned: no scale for column {} (forget what the step learned to fit it again)",
                quote(name)
            ))
        })?;
        list.push(format!(
            "(CAST({0} AS DOUBLE) - {1}) / {2} AS {0}",
            ident(name),
            number(center),
            number(scale)
        ));
    }
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn bin(
    chain: &mut Chain<'_>,
    columns: &[String],
    method: BinMethod,
    bins: usize,
    learned: &mut Option<BTreeMap<String, Vec<f64>>>,
) -> Result<()> {
    chain.columns("columns", columns)?;
    let mut types = BTreeMap::new();
    for c in columns {
        types.insert(c.clone(), chain.numeric("columns", c)?.data_type().clone());
        chain.free("columns", &format!("{c}_bin"))?;
    }
    let prev = chain.last();
    if learned.is_none() {
        let mut fitted = BTreeMap::new();
        for c in columns {
            let p = present(&ident(c), &types[c]);
            let edges = match method {
                BinMethod::EqualWidth => {
                    let v = chain
                        .fetch_numbers(&format!("SELECT min({p}), max({p}) FROM {prev}"))
                        .await?;
                    match v.as_slice() {
                        [Some(low), Some(high)] => (1..bins)
                            .map(|i| low + (high - low) * i as f64 / bins as f64)
                            .collect(),
                        _ => Vec::new(),
                    }
                }
                BinMethod::Quantile => {
                    let quantiles: Vec<String> = (1..bins)
                        .map(|i| {
                            format!(
                                "percentile_cont({}) WITHIN GROUP (ORDER BY {p})",
                                number(i as f64 / bins as f64)
                            )
                        })
                        .collect();
                    let v = chain
                        .fetch_numbers(&format!("SELECT {} FROM {prev}", comma(&quantiles)))
                        .await?;
                    let mut edges: Vec<f64> = v.into_iter().flatten().collect();
                    // Equal quantiles make one bin (pandas' qcut with duplicates="drop").
                    edges.dedup();
                    edges
                }
            };
            fitted.insert(c.clone(), edges);
        }
        *learned = Some(fitted);
    }
    let mut added = Vec::new();
    for c in columns {
        let edges = learned.as_ref().and_then(|l| l.get(c)).ok_or_else(|| {
            Error::validation(format!(
                "learned: no edges for column {} (forget what the step learned to fit it again)",
                quote(c)
            ))
        })?;
        let p = present(&ident(c), &types[c]);
        // Right-closed bins, as pandas' cut: a value on an edge is in the bin below it.
        let whens: Vec<String> = edges
            .iter()
            .enumerate()
            .map(|(i, e)| format!("WHEN {p} <= {} THEN {i}", number(*e)))
            .collect();
        added.push(format!(
            "CAST(CASE WHEN {p} IS NULL THEN NULL {} ELSE {} END AS BIGINT) AS {}",
            whens.join(" "),
            edges.len(),
            ident(&format!("{c}_bin"))
        ));
    }
    let mut list = chain.all();
    list.extend(added);
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}
