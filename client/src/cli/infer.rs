//! Infers feature definitions from a table, as the SageMaker SDK's `load_feature_definitions`
//! does from a DataFrame's dtypes: integers -> Integral, floats -> Fractional, text -> String;
//! lists become List collections. CSV columns are typed by their values: all integers ->
//! Integral, all numbers -> Fractional, otherwise String. An Integral event-time column becomes
//! Fractional (epoch seconds), the type SageMaker accepts for event times.

use anyhow::{Result, bail};
use quiver_client::pb;

use super::rows::{Cell, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Inferred {
    Unknown,
    Integral,
    Fractional,
    String,
}

fn of_scalar(cell: &Cell) -> Inferred {
    match cell {
        Cell::Null | Cell::List(_) => Inferred::Unknown,
        Cell::Int(_) => Inferred::Integral,
        Cell::Float(_) => Inferred::Fractional,
        Cell::Text(t) if t.trim().parse::<i64>().is_ok() => Inferred::Integral,
        Cell::Text(t) if t.trim().parse::<f64>().is_ok_and(f64::is_finite) => Inferred::Fractional,
        Cell::Text(_) => Inferred::String,
    }
}

pub fn definitions(table: &Table, event_time_column: &str) -> Result<Vec<pb::FeatureDefinition>> {
    let mut definitions = Vec::with_capacity(table.columns.len());
    for (index, column) in table.columns.iter().enumerate() {
        let mut kind = Inferred::Unknown;
        let mut is_list = false;
        for row in table.rows.iter().flatten() {
            match row.get(index) {
                Some(Cell::List(items)) => {
                    is_list = true;
                    for item in items {
                        kind = kind.max(of_scalar(item));
                    }
                }
                Some(cell) => kind = kind.max(of_scalar(cell)),
                None => {}
            }
        }
        let feature_type = match kind {
            Inferred::Unknown => bail!(
                "column '{column}' has no values to infer a type from; define the group with --spec"
            ),
            Inferred::Integral if column == event_time_column => pb::FeatureType::Fractional,
            Inferred::Integral => pb::FeatureType::Integral,
            Inferred::Fractional => pb::FeatureType::Fractional,
            Inferred::String => pb::FeatureType::String,
        };
        definitions.push(pb::FeatureDefinition {
            feature_name: column.clone(),
            feature_type: feature_type as i32,
            collection_type: if is_list {
                pb::CollectionType::List
            } else {
                pb::CollectionType::None
            } as i32,
            vector_dimension: 0,
        });
    }
    Ok(definitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_like_the_sagemaker_sdk() {
        let text = |s: &str| Cell::Text(s.to_string());
        let table = Table {
            columns: vec![
                "id".into(),
                "ts".into(),
                "score".into(),
                "name".into(),
                "tags".into(),
            ],
            rows: vec![
                Ok(vec![
                    text("1"),
                    text("1700000000"),
                    text("0.5"),
                    text("a"),
                    Cell::List(vec![text("x")]),
                ]),
                Ok(vec![
                    text("2"),
                    text("1700000001"),
                    text("2"),
                    Cell::Null,
                    Cell::Null,
                ]),
            ],
        };
        let defs = definitions(&table, "ts").unwrap();
        let types: Vec<i32> = defs.iter().map(|d| d.feature_type).collect();
        assert_eq!(
            types,
            vec![
                pb::FeatureType::Integral as i32,
                pb::FeatureType::Fractional as i32,
                pb::FeatureType::Fractional as i32,
                pb::FeatureType::String as i32,
                pb::FeatureType::String as i32,
            ]
        );
        assert_eq!(defs[4].collection_type, pb::CollectionType::List as i32);
    }
}
