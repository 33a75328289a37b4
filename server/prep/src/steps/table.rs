//! Steps over the table as a whole: joins and concatenation, columns chosen, renamed, cast and
//! reordered, rows filtered, sorted, deduplicated, sampled and split, and custom SQL.

use std::collections::{BTreeMap, BTreeSet};

use quiver_types::error::{Error, Result, quote};

use super::comma;
use crate::compile::{Chain, ORDER, check_query, ident, number, text, typed};
use crate::recipe::{JoinKind, Keep, OnError, SampleMethod, SortKey, SplitMethod};

/// Buckets of a row hash: shares are resolved to one in a billion.
const BUCKETS: u64 = 1_000_000_000;

pub async fn join(
    chain: &mut Chain<'_>,
    how: JoinKind,
    on: &[String],
    suffix: Option<&str>,
) -> Result<()> {
    let other = chain.other_source();
    let right = chain
        .plan_schema(&format!("SELECT * FROM {other}"))
        .await
        .map_err(|e| Error::validation(format!("with: {}", e.message())))?;
    chain.columns("on", on)?;
    for key in on {
        if right.field_with_name(key).is_err() {
            return Err(Error::validation(format!(
                "on: the other source has no column {}",
                quote(key)
            )));
        }
    }
    let condition: Vec<String> = on
        .iter()
        .map(|k| format!("l.{0} = r.{0}", ident(k)))
        .collect();
    let condition = condition.join(" AND ");
    let prev = chain.last();
    let select = match how {
        JoinKind::Semi | JoinKind::Anti => {
            let kind = if how == JoinKind::Semi {
                "SEMI"
            } else {
                "ANTI"
            };
            format!("SELECT l.* FROM {prev} l LEFT {kind} JOIN {other} r ON {condition}")
        }
        _ => {
            let suffix = suffix.unwrap_or("_right");
            let left_names: BTreeSet<String> = chain
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let mut columns: Vec<String> = chain
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    let name = f.name();
                    if !on.contains(name) {
                        return format!("l.{}", ident(name));
                    }
                    match how {
                        JoinKind::Right => format!("r.{0} AS {0}", ident(name)),
                        JoinKind::Full => format!("COALESCE(l.{0}, r.{0}) AS {0}", ident(name)),
                        _ => format!("l.{}", ident(name)),
                    }
                })
                .collect();
            let mut taken = left_names.clone();
            for field in right.fields().iter().filter(|f| !on.contains(f.name())) {
                let name = field.name();
                let output = if left_names.contains(name) {
                    format!("{name}{suffix}")
                } else {
                    name.clone()
                };
                if !taken.insert(output.clone()) {
                    return Err(Error::validation(format!(
                        "suffix: the other source's {} would be {}, which exists already",
                        quote(name),
                        quote(&output)
                    )));
                }
                columns.push(format!("r.{} AS {}", ident(name), ident(&output)));
            }
            let kind = match how {
                JoinKind::Inner => "INNER",
                JoinKind::Left => "LEFT",
                JoinKind::Right => "RIGHT",
                _ => "FULL",
            };
            format!(
                "SELECT {} FROM {prev} l {kind} JOIN {other} r ON {condition}",
                comma(&columns)
            )
        }
    };
    chain.push(select).await
}

pub async fn concat(chain: &mut Chain<'_>) -> Result<()> {
    let other = chain.other_source();
    let right = chain
        .plan_schema(&format!("SELECT * FROM {other}"))
        .await
        .map_err(|e| Error::validation(format!("with: {}", e.message())))?;
    let left = chain.schema().clone();
    let mut first = Vec::new();
    let mut second = Vec::new();
    for field in left.fields() {
        first.push(ident(field.name()));
        second.push(match right.field_with_name(field.name()) {
            Ok(r) if r.data_type() == field.data_type() => ident(field.name()),
            Ok(_) => format!(
                "arrow_cast({0}, {1}) AS {0}",
                ident(field.name()),
                text(&field.data_type().to_string())
            ),
            Err(_) => format!(
                "arrow_cast(NULL, {}) AS {}",
                text(&field.data_type().to_string()),
                ident(field.name())
            ),
        });
    }
    for field in right.fields() {
        if left.field_with_name(field.name()).is_err() {
            first.push(format!(
                "arrow_cast(NULL, {}) AS {}",
                text(&field.data_type().to_string()),
                ident(field.name())
            ));
            second.push(ident(field.name()));
        }
    }
    let prev = chain.last();
    chain
        .push(format!(
            "SELECT {} FROM {prev} UNION ALL SELECT {} FROM {other}",
            comma(&first),
            comma(&second)
        ))
        .await
}

pub async fn select(chain: &mut Chain<'_>, columns: &[String]) -> Result<()> {
    chain.columns("columns", columns)?;
    let mut list: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    list.extend(chain.carry());
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn drop(chain: &mut Chain<'_>, columns: &[String]) -> Result<()> {
    chain.columns("columns", columns)?;
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let rest = chain.all_except(&names);
    if chain.visible().len() == names.len() {
        return Err(Error::validation(
            "columns: dropping them all leaves no column",
        ));
    }
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&rest)))
        .await
}

pub async fn rename(chain: &mut Chain<'_>, columns: &BTreeMap<String, String>) -> Result<()> {
    let mut outputs = BTreeSet::new();
    for (old, new) in columns {
        chain.column("columns", old)?;
        if new.is_empty() {
            return Err(Error::validation(format!(
                "columns.{old}: the new name is empty"
            )));
        }
        let kept = chain.schema().field_with_name(new).is_ok() && !columns.contains_key(new);
        if kept || !outputs.insert(new.as_str()) {
            return Err(Error::validation(format!(
                "columns.{old}: {} is another column's name",
                quote(new)
            )));
        }
    }
    let list: Vec<String> = chain
        .schema()
        .fields()
        .iter()
        .map(|f| match columns.get(f.name()) {
            Some(new) => format!("{} AS {}", ident(f.name()), ident(new)),
            None => ident(f.name()),
        })
        .collect();
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

/// The types a cast names, as SQL types.
const CAST_TYPES: &[(&str, &str)] = &[
    ("string", "VARCHAR"),
    ("integer", "BIGINT"),
    ("int64", "BIGINT"),
    ("int32", "INT"),
    ("double", "DOUBLE"),
    ("float64", "DOUBLE"),
    ("float", "FLOAT"),
    ("float32", "FLOAT"),
    ("boolean", "BOOLEAN"),
    ("timestamp", "TIMESTAMP"),
    ("date", "DATE"),
];

pub async fn cast(
    chain: &mut Chain<'_>,
    columns: &BTreeMap<String, String>,
    on_error: OnError,
) -> Result<()> {
    let mut sql_types = BTreeMap::new();
    for (column, to) in columns {
        chain.column("columns", column)?;
        let Some((_, sql)) = CAST_TYPES
            .iter()
            .find(|(name, _)| *name == to.to_ascii_lowercase())
        else {
            let names: Vec<&str> = CAST_TYPES.iter().map(|(n, _)| *n).collect();
            return Err(Error::validation(format!(
                "columns.{column}: unknown type {} (one of {})",
                quote(to),
                names.join(", ")
            )));
        };
        sql_types.insert(column.as_str(), *sql);
    }
    let function = match on_error {
        OnError::Null => "TRY_CAST",
        OnError::Fail => "CAST",
    };
    let list: Vec<String> = chain
        .schema()
        .fields()
        .iter()
        .map(|f| match sql_types.get(f.name().as_str()) {
            Some(to) => format!("{function}({0} AS {to}) AS {0}", ident(f.name())),
            None => ident(f.name()),
        })
        .collect();
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn reorder(chain: &mut Chain<'_>, columns: &[String]) -> Result<()> {
    chain.columns("columns", columns)?;
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut list: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    list.extend(chain.all_except(&names));
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn filter(chain: &mut Chain<'_>, expression: &str) -> Result<()> {
    chain.check_expression("expression", expression)?;
    let prev = chain.last();
    chain
        .push(format!("SELECT * FROM {prev} WHERE ({expression})"))
        .await
        .map_err(|e| Error::validation(format!("expression: {}", e.message())))
}

/// Numbers the rows in the new order (ties kept in the earlier sort's order): the steps after
/// carry the number, and the recipe's output is sorted by it.
pub async fn sort(chain: &mut Chain<'_>, by: &[SortKey]) -> Result<()> {
    let mut keys = Vec::new();
    for key in by {
        chain.column("by", &key.column)?;
        let direction = if key.descending { "DESC" } else { "ASC" };
        keys.push(format!("{} {direction} NULLS LAST", ident(&key.column)));
    }
    keys.extend(chain.carry());
    let mut list = chain.all_except(&[ORDER]);
    list.push(format!(
        "row_number() OVER (ORDER BY {}) AS {}",
        comma(&keys),
        ident(ORDER)
    ));
    let prev = chain.last();
    chain
        .push(format!("SELECT {} FROM {prev}", comma(&list)))
        .await
}

pub async fn deduplicate(
    chain: &mut Chain<'_>,
    key: &[String],
    order_by: Option<&str>,
    keep: Keep,
) -> Result<()> {
    let prev = chain.last();
    if key.is_empty() {
        // Whole rows: which of two equal rows is kept makes no difference, but for its place
        // in a sort's order (the first is kept).
        let select = match chain.carry() {
            Some(order) => format!(
                "SELECT * FROM {prev} QUALIFY row_number() OVER (PARTITION BY {} ORDER BY {order}) = 1",
                comma(&chain.visible())
            ),
            None => format!("SELECT DISTINCT * FROM {prev}"),
        };
        return chain.push(select).await;
    }
    chain.columns("key", key)?;
    let keys: Vec<String> = key.iter().map(|k| ident(k)).collect();
    // Partitioned by the first key column only and ordered by the rest, then the order: a
    // row is its key's first where it is its partition's first or a later key column differs
    // from the row before. DataFusion's windows cost several microseconds per partition, so
    // one partition per whole key (often one per row) costs several times more.
    let mut order: Vec<String> = keys[1..]
        .iter()
        .map(|k| format!("{k} ASC NULLS LAST"))
        .collect();
    if let Some(column) = order_by {
        chain.column("order_by", column)?;
        order.push(match keep {
            Keep::First => format!("{} ASC NULLS LAST", ident(column)),
            Keep::Last => format!("{} DESC NULLS LAST", ident(column)),
        });
    }
    let window = if order.is_empty() {
        format!("PARTITION BY {}", keys[0])
    } else {
        format!("PARTITION BY {} ORDER BY {}", keys[0], comma(&order))
    };
    let mut first = vec![format!("row_number() OVER ({window}) = 1")];
    first.extend(
        keys[1..]
            .iter()
            // Parenthesized: `a IS DISTINCT FROM b OR c` parses as `a IS DISTINCT FROM (b OR c)`.
            .map(|k| format!("(lag({k}) OVER ({window}) IS DISTINCT FROM {k})")),
    );
    chain
        .push(format!(
            "SELECT * FROM {prev} QUALIFY {}",
            first.join(" OR ")
        ))
        .await
}

/// A seeded hash of each row's values (or of `columns`).
fn row_hash(seed: u64, columns: &[String]) -> String {
    format!("quiver_hash({}, {})", seed as i64, comma(columns))
}

pub async fn sample(
    chain: &mut Chain<'_>,
    method: SampleMethod,
    rows: Option<u64>,
    fraction: Option<f64>,
    column: Option<&str>,
    seed: u64,
) -> Result<()> {
    let prev = chain.last();
    let hash = row_hash(seed, &chain.visible());
    let select = match (method, rows, fraction) {
        (SampleMethod::First, Some(rows), _) => match chain.carry() {
            Some(order) => format!("SELECT * FROM {prev} ORDER BY {order} LIMIT {rows}"),
            None => format!("SELECT * FROM {prev} LIMIT {rows}"),
        },
        (SampleMethod::Random, _, Some(fraction)) => format!(
            "SELECT * FROM {prev} WHERE {hash} % {BUCKETS} < {}",
            (fraction * BUCKETS as f64).round() as u64
        ),
        (SampleMethod::Random, Some(rows), None) => {
            format!("SELECT * FROM {prev} ORDER BY {hash} LIMIT {rows}")
        }
        (SampleMethod::Stratified, _, Some(fraction)) => {
            // Checked by the recipe: a stratified sample names its column.
            let column = column.unwrap_or_default();
            chain.column("column", column)?;
            let column = ident(column);
            format!(
                "SELECT * FROM {prev} QUALIFY row_number() OVER (PARTITION BY {column} ORDER BY {hash}) \
                 <= ceil(count(*) OVER (PARTITION BY {column}) * {})",
                number(fraction)
            )
        }
        _ => return Err(Error::validation("rows, fraction: how much to keep")),
    };
    chain.push(select).await
}

pub async fn split(
    chain: &mut Chain<'_>,
    method: SplitMethod,
    splits: &[(String, f64)],
    column: Option<&str>,
    output: &str,
    seed: u64,
    learned: &mut Option<Vec<String>>,
) -> Result<()> {
    chain.free("output", output)?;
    let prev = chain.last();
    let mut cases = Vec::new();
    match method {
        SplitMethod::Random | SplitMethod::Key => {
            let hashed = match (method, column) {
                (SplitMethod::Key, Some(column)) => {
                    chain.column("column", column)?;
                    vec![ident(column)]
                }
                _ => chain.visible(),
            };
            let bucket = format!("{} % {BUCKETS}", row_hash(seed, &hashed));
            let mut cumulative = 0.0;
            for (name, share) in &splits[..splits.len() - 1] {
                cumulative += share;
                let cut = (cumulative * BUCKETS as f64).round() as u64;
                cases.push(format!("WHEN {bucket} < {cut} THEN {}", text(name)));
            }
        }
        SplitMethod::Time => {
            let column = column.unwrap_or_default();
            let data_type = chain.column("column", column)?.data_type().clone();
            if learned.is_none() {
                *learned = Some(time_cuts(chain, column, splits).await?);
            }
            let cuts = learned.as_deref().unwrap_or_default();
            if cuts.len() + 1 != splits.len() {
                return Err(Error::validation(format!(
                    "learned: {} cut times for {} splits",
                    cuts.len(),
                    splits.len()
                )));
            }
            for ((name, _), cut) in splits.iter().zip(cuts) {
                cases.push(format!(
                    "WHEN {} < {} THEN {}",
                    ident(column),
                    typed(cut, &data_type),
                    text(name)
                ));
            }
        }
    }
    let last = &splits[splits.len() - 1].0;
    chain
        .push(format!(
            "SELECT *, CASE {} ELSE {} END AS {} FROM {prev}",
            cases.join(" "),
            text(last),
            ident(output)
        ))
        .await
}

/// The values of `column` where each split but the last ends: the first row (in time order)
/// of the next split.
async fn time_cuts(
    chain: &mut Chain<'_>,
    column: &str,
    splits: &[(String, f64)],
) -> Result<Vec<String>> {
    let prev = chain.last();
    let column = ident(column);
    let counted = chain
        .fetch_numbers(&format!("SELECT count({column}) FROM {prev}"))
        .await?;
    let rows = counted.first().copied().flatten().unwrap_or(0.0) as u64;
    if rows == 0 {
        return Err(Error::validation(
            "column: no values to split by (the table is empty or the column all null)",
        ));
    }
    let mut cuts = Vec::new();
    let mut cumulative = 0.0;
    for (_, share) in &splits[..splits.len() - 1] {
        cumulative += share;
        let offset = ((cumulative * rows as f64).round() as u64).min(rows - 1);
        let value = chain
            .fetch_texts(&format!(
                "SELECT {column} FROM {prev} WHERE {column} IS NOT NULL ORDER BY {column} LIMIT 1 OFFSET {offset}"
            ))
            .await?;
        cuts.push(value.into_iter().next().flatten().unwrap_or_default());
    }
    Ok(cuts)
}

pub async fn sql(chain: &mut Chain<'_>, query: &str) -> Result<()> {
    check_query("query", query)?;
    let prev = chain.last();
    chain
        .push(format!(
            "WITH input AS (SELECT {} FROM {prev}) {query}",
            comma(&chain.visible())
        ))
        .await
        .map_err(|e| Error::validation(format!("query: {}", e.message())))
}
