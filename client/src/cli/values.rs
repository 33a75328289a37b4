//! Converts input cells (CSV text, Parquet values, JSON) to typed feature values, per the
//! feature's definition. Text is parsed as the feature's type; lists may be given as JSON arrays.

use quiver_client::pb;
use quiver_client::value;

use super::rows::Cell;

/// A JSON value as a cell.
pub fn json_cell(value: &serde_json::Value) -> Result<Cell, String> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Cell::Null,
        J::Bool(b) => {
            return Err(format!(
                "{b} is a boolean; features are Integral, Fractional or String"
            ));
        }
        J::Number(n) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => Cell::Float(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?),
        },
        J::String(s) => Cell::Text(s.clone()),
        J::Array(items) => Cell::List(items.iter().map(json_cell).collect::<Result<_, _>>()?),
        J::Object(_) => return Err("a JSON object is not a feature value".to_string()),
    })
}

/// The typed value of `cell` for feature `def`; `None` for a null cell (the feature is omitted).
pub fn feature_value(
    def: &pb::FeatureDefinition,
    cell: &Cell,
) -> Result<Option<pb::FeatureValue>, String> {
    let name = def.feature_name.as_str();
    let feature_type =
        pb::FeatureType::try_from(def.feature_type).unwrap_or(pb::FeatureType::Unspecified);
    let is_collection = def.collection_type != pb::CollectionType::None as i32;
    if matches!(cell, Cell::Null) {
        return Ok(None);
    }
    if !is_collection {
        return scalar(name, feature_type, cell).map(Some);
    }
    let items = match cell {
        Cell::List(items) => items.clone(),
        Cell::Text(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(items)) => items
                .iter()
                .map(json_cell)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("feature '{name}': {e}"))?,
            _ => {
                return Err(format!(
                    "feature '{name}' is a collection; '{}' is not a JSON array",
                    truncate(text)
                ));
            }
        },
        _ => {
            return Err(format!(
                "feature '{name}' is a collection; got a single value"
            ));
        }
    };
    Ok(Some(match feature_type {
        pb::FeatureType::Integral => {
            value::integral_list(name, collect(&items, |c| as_i64(name, c))?)
        }
        pb::FeatureType::Fractional => {
            value::fractional_list(name, collect(&items, |c| as_f64(name, c))?)
        }
        _ => value::string_list(name, collect(&items, |c| as_string(name, c))?),
    }))
}

fn collect<T>(items: &[Cell], f: impl Fn(&Cell) -> Result<T, String>) -> Result<Vec<T>, String> {
    items.iter().map(f).collect()
}

fn scalar(
    name: &str,
    feature_type: pb::FeatureType,
    cell: &Cell,
) -> Result<pb::FeatureValue, String> {
    match feature_type {
        pb::FeatureType::Integral => as_i64(name, cell).map(|n| value::integral(name, n)),
        pb::FeatureType::Fractional => as_f64(name, cell).map(|f| value::fractional(name, f)),
        pb::FeatureType::String => as_string(name, cell).map(|s| value::string(name, s)),
        pb::FeatureType::Unspecified => Err(format!("feature '{name}' has no type")),
    }
}

fn as_i64(name: &str, cell: &Cell) -> Result<i64, String> {
    match cell {
        Cell::Int(n) => Ok(*n),
        Cell::Text(t) => t.trim().parse().map_err(|_| {
            format!(
                "feature '{name}' is Integral; '{}' is not an integer",
                truncate(t)
            )
        }),
        Cell::Float(f) => Err(format!(
            "feature '{name}' is Integral; {f} is not an integer"
        )),
        other => Err(not_scalar(name, other)),
    }
}

fn as_f64(name: &str, cell: &Cell) -> Result<f64, String> {
    match cell {
        Cell::Int(n) => Ok(*n as f64),
        Cell::Float(f) => Ok(*f),
        Cell::Text(t) => t.trim().parse().map_err(|_| {
            format!(
                "feature '{name}' is Fractional; '{}' is not a number",
                truncate(t)
            )
        }),
        other => Err(not_scalar(name, other)),
    }
}

fn as_string(name: &str, cell: &Cell) -> Result<String, String> {
    match cell {
        Cell::Text(t) => Ok(t.clone()),
        Cell::Int(n) => Ok(n.to_string()),
        Cell::Float(f) => Ok(f.to_string()),
        other => Err(not_scalar(name, other)),
    }
}

fn not_scalar(name: &str, cell: &Cell) -> String {
    match cell {
        Cell::List(_) => format!("feature '{name}' is a scalar; got a list"),
        _ => format!("feature '{name}': a list element is null"),
    }
}

fn truncate(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

/// The record for one input row: every non-null cell whose column is a feature of the group.
/// Columns that are not features are an error (the SageMaker SDK's ingest rejects them too).
pub fn record(
    definitions: &[pb::FeatureDefinition],
    columns: &[String],
    cells: &[Cell],
) -> Result<Vec<pb::FeatureValue>, String> {
    let mut record = Vec::with_capacity(cells.len());
    for (column, cell) in columns.iter().zip(cells) {
        let def = definitions
            .iter()
            .find(|d| &d.feature_name == column)
            .ok_or_else(|| format!("column '{column}' is not a feature of the group"))?;
        if let Some(value) = feature_value(def, cell)? {
            record.push(value);
        }
    }
    Ok(record)
}
