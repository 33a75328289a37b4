//! New features: parts of dates, text statistics and rewrites, regular expressions, JSON
//! fields, exploded lists, lags and rolling windows over each key's time order, and group
//! aggregates.

use std::collections::BTreeMap;

use arrow::datatypes::DataType;

use quiver_types::error::{Error, Result, quote};

use super::{comma, window};
use crate::compile::{Chain, ident, text, type_name};
use crate::recipe::{Aggregate, AggregateColumn, DatePart, TextOperation, TextStat};

pub fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn text_column(chain: &Chain<'_>, field: &str, name: &str) -> Result<()> {
    let column = chain.column(field, name)?;
    if is_text(column.data_type()) {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{field}: column {} is {}, not text (cast it to string first)",
            quote(name),
            type_name(column.data_type())
        )))
    }
}

/// A date part's SQL, and for a cyclic part its position in the cycle (0 to 1).
fn date_part(column: &str, part: DatePart) -> (String, Option<String>) {
    let c = ident(column);
    let of = |name: &str| format!("date_part('{name}', {c})");
    let value = match part {
        DatePart::Year => of("year"),
        DatePart::Quarter => of("quarter"),
        DatePart::Month => of("month"),
        DatePart::Week => of("week"),
        DatePart::Day => of("day"),
        // Monday is 0, as pandas' dayofweek (SQL's dow starts on Sunday).
        DatePart::DayOfWeek => format!("(({} + 6) % 7)", of("dow")),
        DatePart::DayOfYear => of("doy"),
        DatePart::Hour => of("hour"),
        DatePart::Minute => of("minute"),
        DatePart::Second => format!("floor({})", of("second")),
        DatePart::Epoch => return (of("epoch"), None),
    };
    let cycle = match part {
        DatePart::Quarter => Some((1.0, 4.0)),
        DatePart::Month => Some((1.0, 12.0)),
        DatePart::Week => Some((1.0, 53.0)),
        DatePart::Day => Some((1.0, 31.0)),
        DatePart::DayOfWeek => Some((0.0, 7.0)),
        DatePart::DayOfYear => Some((1.0, 366.0)),
        DatePart::Hour => Some((0.0, 24.0)),
        DatePart::Minute | DatePart::Second => Some((0.0, 60.0)),
        DatePart::Year | DatePart::Epoch => None,
    };
    let position = cycle.map(|(first, period)| format!("(({value}) - {first:?}) / {period:?}"));
    (format!("CAST({value} AS BIGINT)"), position)
}

pub async fn datetime(
    chain: &mut Chain<'_>,
    column: &str,
    parts: &[DatePart],
    cyclic: &[DatePart],
) -> Result<()> {
    let field = chain.column("column", column)?;
    if !field.data_type().is_temporal() {
        return Err(Error::validation(format!(
            "column: {} is {}, not a date or timestamp (cast it first)",
            quote(column),
            type_name(field.data_type())
        )));
    }
    let mut list = chain.all();
    for part in parts {
        let name = format!("{column}_{}", part.name());
        chain.free("parts", &name)?;
        list.push(format!(
            "{} AS {}",
            date_part(column, *part).0,
            ident(&name)
        ));
    }
    for part in cyclic {
        // Checked by the recipe: year and epoch are not cyclic.
        let Some(position) = date_part(column, *part).1 else {
            continue;
        };
        for (function, suffix) in [("sin", "sin"), ("cos", "cos")] {
            let name = format!("{column}_{}_{suffix}", part.name());
            chain.free("cyclic", &name)?;
            list.push(format!(
                "{function}(2 * pi() * {position}) AS {}",
                ident(&name)
            ));
        }
    }
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn text_stats(
    chain: &mut Chain<'_>,
    columns: &[String],
    stats: &[TextStat],
) -> Result<()> {
    chain.columns("columns", columns)?;
    let mut list = chain.all();
    for c in columns {
        text_column(chain, "columns", c)?;
        for stat in stats {
            let (suffix, sql) = match stat {
                TextStat::Length => ("length", format!("character_length({})", ident(c))),
                TextStat::Words => ("words", format!("regexp_count({}, '\\S+')", ident(c))),
            };
            let name = format!("{c}_{suffix}");
            chain.free("stats", &name)?;
            list.push(format!("CAST({sql} AS BIGINT) AS {}", ident(&name)));
        }
    }
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

/// Every column, with `columns` rewritten by `rewrite`.
async fn rewrite(
    chain: &mut Chain<'_>,
    columns: &[&str],
    rewrite: impl Fn(&str) -> String,
) -> Result<()> {
    let list: Vec<String> = chain
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if columns.contains(&f.name().as_str()) {
                format!("{} AS {}", rewrite(&ident(f.name())), ident(f.name()))
            } else {
                ident(f.name())
            }
        })
        .collect();
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn rewrite_text(
    chain: &mut Chain<'_>,
    columns: &[String],
    operation: TextOperation,
) -> Result<()> {
    chain.columns("columns", columns)?;
    for c in columns {
        text_column(chain, "columns", c)?;
    }
    let function = match operation {
        TextOperation::Lower => "lower",
        TextOperation::Upper => "upper",
        TextOperation::Trim => "btrim",
    };
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    rewrite(chain, &names, |c| format!("{function}({c})")).await
}

fn check_pattern(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern)
        .map_err(|e| Error::validation(format!("pattern: {}: {e}", quote(pattern))))
}

pub async fn regex_extract(
    chain: &mut Chain<'_>,
    column: &str,
    pattern: &str,
    group: usize,
    output: &str,
) -> Result<()> {
    text_column(chain, "column", column)?;
    let groups = check_pattern(pattern)?.captures_len() - 1;
    if group > groups {
        return Err(Error::validation(format!(
            "group: {group}, but the pattern has {groups} groups"
        )));
    }
    if output != column {
        chain.free("output", output)?;
    }
    // The whole pattern is made group 1, so that group 0 (the whole match) is one too.
    let extract = format!(
        "regexp_match({}, {})[{}]",
        ident(column),
        text(&format!("({pattern})")),
        group + 1
    );
    let mut list = chain.all_except(&[output]);
    list.push(format!("{extract} AS {}", ident(output)));
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn regex_replace(
    chain: &mut Chain<'_>,
    column: &str,
    pattern: &str,
    replacement: &str,
) -> Result<()> {
    text_column(chain, "column", column)?;
    check_pattern(pattern)?;
    let (pattern, replacement) = (text(pattern), text(replacement));
    rewrite(chain, &[column], |c| {
        format!("regexp_replace({c}, {pattern}, {replacement}, 'g')")
    })
    .await
}

pub async fn parse_json(
    chain: &mut Chain<'_>,
    column: &str,
    fields: &BTreeMap<String, String>,
) -> Result<()> {
    text_column(chain, "column", column)?;
    let mut list = chain.all();
    for (output, path) in fields {
        chain.free("fields", output)?;
        list.push(format!(
            "quiver_json_get(arrow_cast({}, 'Utf8'), {}) AS {}",
            ident(column),
            text(path),
            ident(output)
        ));
    }
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn explode(chain: &mut Chain<'_>, column: &str) -> Result<()> {
    let field = chain.column("column", column)?;
    if !matches!(
        field.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    ) {
        return Err(Error::validation(format!(
            "column: {} is {}, not a list",
            quote(column),
            type_name(field.data_type())
        )));
    }
    let list: Vec<String> = chain
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if f.name() == column {
                format!("unnest({0}) AS {0}", ident(column))
            } else {
                ident(f.name())
            }
        })
        .collect();
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

fn series(chain: &Chain<'_>, key: &[String], time: &str) -> Result<String> {
    chain.columns("key", key)?;
    chain.column("time", time)?;
    Ok(window(key, time))
}

pub async fn lag(
    chain: &mut Chain<'_>,
    columns: &[String],
    key: &[String],
    time: &str,
    lags: &[u32],
) -> Result<()> {
    chain.columns("columns", columns)?;
    let window = series(chain, key, time)?;
    let mut list = Vec::new();
    let mut added = Vec::new();
    for c in columns {
        for n in lags {
            let name = lag_name(c, *n);
            chain.free("lags", &name)?;
            list.push(format!(
                "lag({}, {n}) OVER ({window}) AS {}",
                ident(c),
                ident(&name)
            ));
            added.push(name);
        }
    }
    chain
        .push_windows(list, added, &uses(columns, key, time))
        .await
}

/// The column a lag step adds for `column` and `n` rows back.
pub(crate) fn lag_name(column: &str, n: u32) -> String {
    format!("{column}_lag_{n}")
}

/// The column a rolling step adds for `column`, `function` and a window of `rows`.
pub(crate) fn rolling_name(column: &str, function: Aggregate, rows: u32) -> String {
    format!("{column}_rolling_{}_{rows}", function.name())
}

/// The column a group aggregate makes.
pub(crate) fn aggregate_name(a: &AggregateColumn) -> String {
    a.output
        .clone()
        .unwrap_or_else(|| format!("{}_{}", a.column, a.function.name()))
}

/// An aggregate's SQL over `column`.
fn aggregate(function: Aggregate, column: &str) -> String {
    let c = ident(column);
    match function {
        Aggregate::Count => format!("count({c})"),
        Aggregate::Sum => format!("sum({c})"),
        Aggregate::Mean => format!("avg({c})"),
        Aggregate::Min => format!("min({c})"),
        Aggregate::Max => format!("max({c})"),
        Aggregate::StdDev => format!("stddev({c})"),
        Aggregate::Median => format!("median({c})"),
        Aggregate::CountDistinct => format!("count(DISTINCT {c})"),
    }
}

fn numeric_for(chain: &Chain<'_>, field: &str, function: Aggregate, column: &str) -> Result<()> {
    match function {
        Aggregate::Sum | Aggregate::Mean | Aggregate::StdDev | Aggregate::Median => {
            chain.numeric(field, column).map(|_| ())
        }
        _ => chain.column(field, column).map(|_| ()),
    }
}

pub async fn rolling(
    chain: &mut Chain<'_>,
    columns: &[String],
    key: &[String],
    time: &str,
    rows: u32,
    functions: &[Aggregate],
) -> Result<()> {
    chain.columns("columns", columns)?;
    let window = series(chain, key, time)?;
    let mut list = Vec::new();
    let mut added = Vec::new();
    for function in functions {
        if matches!(function, Aggregate::Median | Aggregate::CountDistinct) {
            return Err(Error::validation(format!(
                "functions: {} is not available over a rolling window (count, sum, mean, min, max, std_dev are)",
                function.name()
            )));
        }
        for c in columns {
            numeric_for(chain, "columns", *function, c)?;
            let name = rolling_name(c, *function, rows);
            chain.free("functions", &name)?;
            list.push(format!(
                "{} OVER ({window} ROWS BETWEEN {} PRECEDING AND CURRENT ROW) AS {}",
                aggregate(*function, c),
                rows - 1,
                ident(&name)
            ));
            added.push(name);
        }
    }
    chain
        .push_windows(list, added, &uses(columns, key, time))
        .await
}

/// The columns a series step reads.
fn uses(columns: &[String], key: &[String], time: &str) -> Vec<String> {
    let mut all: Vec<String> = columns.iter().chain(key).cloned().collect();
    all.push(time.to_string());
    all
}

pub async fn group_by(
    chain: &mut Chain<'_>,
    key: &[String],
    aggregates: &[AggregateColumn],
    append: bool,
) -> Result<()> {
    chain.columns("key", key)?;
    let keys: Vec<String> = key.iter().map(|k| ident(k)).collect();
    let mut outputs: Vec<String> = key.to_vec();
    let mut list = if append { Vec::new() } else { keys.clone() };
    for (i, a) in aggregates.iter().enumerate() {
        let field = format!("aggregates[{i}]");
        numeric_for(chain, &field, a.function, &a.column)?;
        let name = aggregate_name(a);
        if append {
            chain.free(&field, &name)?;
            if a.function == Aggregate::CountDistinct {
                return Err(Error::validation(format!(
                    "{field}: count_distinct is not available with append (group without append, then join)"
                )));
            }
        }
        if outputs.contains(&name) {
            return Err(Error::validation(format!(
                "{field}: the output {} is named twice",
                quote(&name)
            )));
        }
        outputs.push(name.clone());
        let sql = aggregate(a.function, &a.column);
        if append {
            list.push(format!(
                "{sql} OVER (PARTITION BY {}) AS {}",
                comma(&keys),
                ident(&name)
            ));
        } else {
            list.push(format!("{sql} AS {}", ident(&name)));
        }
    }
    if append {
        let mut read: Vec<String> = key.to_vec();
        read.extend(aggregates.iter().map(|a| a.column.clone()));
        return chain
            .push_windows(list, outputs[key.len()..].to_vec(), &read)
            .await;
    }
    let prev = chain.last();
    chain
        .push(format!(
            "SELECT {} FROM {prev} GROUP BY {}",
            comma(&list),
            comma(&keys)
        ))
        .await
}
