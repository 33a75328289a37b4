//! A table as the learners see it: one column per source column, numbers as `f64` (NaN where a
//! value is missing), text as category codes into the column's levels, times as epoch seconds.
//! Built from Arrow record batches, whatever they came from (a feature group's records, a
//! training set, a query, a file), so that training and prediction read data one way.

use std::collections::HashMap;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result, quote};

/// What a column holds, which decides how it is cleaned and learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    /// Floating-point numbers.
    Number,
    /// Whole numbers.
    Integer,
    /// true / false, as 1 / 0.
    Boolean,
    /// Text: each distinct value is a level.
    Category,
    /// Dates and timestamps, as epoch seconds.
    Time,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// One per row: the number, the category's code (an index into `levels`) or the time;
    /// NaN where the value is missing.
    pub values: Vec<f64>,
    /// A category's distinct values, by code, in order of first appearance.
    pub levels: Vec<String>,
}

impl Column {
    pub fn number(name: &str, values: Vec<f64>) -> Self {
        Self {
            name: name.to_string(),
            kind: ColumnKind::Number,
            values,
            levels: Vec::new(),
        }
    }

    /// A category column from text values (`None`: missing).
    pub fn category<'a>(name: &str, values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut codes = HashMap::new();
        let mut levels = Vec::new();
        let values = values
            .into_iter()
            .map(|v| match v {
                None => f64::NAN,
                Some(text) => *codes.entry(text.to_string()).or_insert_with(|| {
                    levels.push(text.to_string());
                    (levels.len() - 1) as f64
                }),
            })
            .collect();
        Self {
            name: name.to_string(),
            kind: ColumnKind::Category,
            values,
            levels,
        }
    }

    /// How many values are missing.
    pub fn missing(&self) -> usize {
        self.values.iter().filter(|v| v.is_nan()).count()
    }

    /// The value of `row` as text, as a user would read it.
    pub fn display(&self, row: usize) -> String {
        let v = self.values[row];
        if v.is_nan() {
            return String::new();
        }
        match self.kind {
            ColumnKind::Category => self.levels[v as usize].clone(),
            ColumnKind::Boolean => (v != 0.0).to_string(),
            ColumnKind::Integer | ColumnKind::Time => format!("{}", v as i64),
            ColumnKind::Number => format!("{v}"),
        }
    }
}

/// Rows of named columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub rows: usize,
    pub columns: Vec<Column>,
}

impl Frame {
    pub fn new(columns: Vec<Column>) -> Result<Self> {
        let rows = columns.first().map_or(0, |c| c.values.len());
        if let Some(c) = columns.iter().find(|c| c.values.len() != rows) {
            return Err(Error::internal(format!(
                "column {} has {} values, not {rows}",
                quote(&c.name),
                c.values.len()
            )));
        }
        Ok(Self { rows, columns })
    }

    /// Reads record batches of `schema`. Columns of types nothing can be learned from (binary,
    /// nested) are refused, naming the column.
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<Self> {
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let arrays: Vec<&ArrayRef> = batches.iter().map(|b| b.column(i)).collect();
            columns.push(read_column(field.name(), field.data_type(), &arrays)?);
        }
        let mut frame = Self::new(columns)?;
        if schema.fields().is_empty() {
            frame.rows = batches.iter().map(RecordBatch::num_rows).sum();
        }
        Ok(frame)
    }

    /// Rows given as JSON objects (a prediction's input): a column per key seen, numbers as
    /// numbers, booleans as booleans, text as categories; a key a row lacks, or `null`, is a
    /// missing value. A value that is neither is refused, naming the row and column.
    pub fn from_json_rows(rows: &[serde_json::Map<String, serde_json::Value>]) -> Result<Self> {
        use serde_json::Value;
        let mut names: Vec<&str> = Vec::new();
        for row in rows {
            for key in row.keys() {
                if !names.contains(&key.as_str()) {
                    names.push(key);
                }
            }
        }
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let values: Vec<Option<&Value>> = rows
                .iter()
                .map(|r| r.get(name).filter(|v| !v.is_null()))
                .collect();
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v
                    && !(v.is_number() || v.is_string() || v.is_boolean())
                {
                    return Err(Error::validation(format!(
                        "rows[{i}].{name}: {v} is not a number, text or a boolean"
                    )));
                }
            }
            let column = if values.iter().flatten().all(|v| v.is_number()) {
                Column::number(
                    name,
                    values
                        .iter()
                        .map(|v| v.and_then(Value::as_f64).unwrap_or(f64::NAN))
                        .collect(),
                )
            } else if values.iter().flatten().all(|v| v.is_boolean()) {
                Column {
                    kind: ColumnKind::Boolean,
                    ..Column::number(
                        name,
                        values
                            .iter()
                            .map(|v| {
                                v.and_then(Value::as_bool)
                                    .map_or(f64::NAN, |b| if b { 1.0 } else { 0.0 })
                            })
                            .collect(),
                    )
                }
            } else {
                let texts: Vec<Option<String>> = values
                    .iter()
                    .map(|v| {
                        v.map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                    })
                    .collect();
                Column::category(name, texts.iter().map(|t| t.as_deref()))
            };
            columns.push(column);
        }
        let mut frame = Self::new(columns)?;
        frame.rows = rows.len();
        Ok(frame)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column named `name`, or a validation error naming `field` and the columns there are.
    pub fn require(&self, field: &str, name: &str) -> Result<&Column> {
        self.column(name).ok_or_else(|| {
            let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
            Error::validation(format!(
                "{field} {} is not a column of the data (its columns: {})",
                quote(name),
                truncate_list(&names, 20)
            ))
        })
    }

    /// The rows at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Self {
        Self {
            rows: rows.len(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    values: rows.iter().map(|&r| c.values[r]).collect(),
                    ..c.clone()
                })
                .collect(),
        }
    }
}

fn read_column(name: &str, data_type: &DataType, arrays: &[&ArrayRef]) -> Result<Column> {
    let kind = match data_type {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnKind::Number,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => ColumnKind::Number,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ColumnKind::Integer,
        DataType::Boolean => ColumnKind::Boolean,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnKind::Category,
        DataType::Dictionary(_, value) if value.is_primitive() => ColumnKind::Number,
        DataType::Dictionary(..) => ColumnKind::Category,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => ColumnKind::Time,
        other => {
            return Err(Error::validation(format!(
                "column {} has type {other}, which AutoML cannot learn from (numbers, \
                 booleans, text, dates and timestamps can be used); drop it from the columns",
                quote(name)
            )));
        }
    };
    let convert = |array: &ArrayRef, to: &DataType| {
        cast(array, to).map_err(|e| {
            Error::validation(format!(
                "column {}: its values cannot be read as {to}: {e}",
                quote(name)
            ))
        })
    };
    match kind {
        ColumnKind::Category => {
            let mut texts = Vec::new();
            for array in arrays {
                texts.push(convert(array, &DataType::Utf8)?);
            }
            Ok(Column::category(
                name,
                texts.iter().flat_map(|a| a.as_string::<i32>().iter()),
            ))
        }
        ColumnKind::Time => {
            let mut values = Vec::new();
            for array in arrays {
                let seconds = convert(array, &DataType::Timestamp(TimeUnit::Second, None))?;
                let seconds = convert(&seconds, &DataType::Int64)?;
                values.extend(
                    seconds
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.map_or(f64::NAN, |s| s as f64)),
                );
            }
            Ok(Column {
                name: name.to_string(),
                kind,
                values,
                levels: Vec::new(),
            })
        }
        _ => {
            let mut values = Vec::new();
            for array in arrays {
                let numbers = convert(array, &DataType::Float64)?;
                values.extend(
                    numbers
                        .as_primitive::<Float64Type>()
                        .iter()
                        .map(|v| v.filter(|x| x.is_finite()).unwrap_or(f64::NAN)),
                );
            }
            Ok(Column {
                name: name.to_string(),
                kind,
                values,
                levels: Vec::new(),
            })
        }
    }
}

/// `a, b, c and 17 more`.
pub fn truncate_list(names: &[&str], most: usize) -> String {
    if names.len() <= most {
        names.join(", ")
    } else {
        format!(
            "{} and {} more",
            names[..most].join(", "),
            names.len() - most
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Float64Array, Int32Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn batches_become_numbers_codes_and_seconds() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("age", DataType::Int32, true),
            Field::new("spend", DataType::Float64, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("vip", DataType::Boolean, true),
            Field::new(
                "seen",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
        ]));
        let batch = |ages: Vec<Option<i32>>, cities: Vec<Option<&str>>| {
            let n = ages.len();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int32Array::from(ages)),
                    Arc::new(Float64Array::from(vec![Some(1.5); n])),
                    Arc::new(StringArray::from(cities)),
                    Arc::new(BooleanArray::from(vec![Some(true); n])),
                    Arc::new(TimestampMillisecondArray::from(vec![Some(86_400_000); n])),
                ],
            )
            .unwrap()
        };
        let frame = Frame::from_batches(
            &schema,
            &[
                batch(vec![Some(30), None], vec![Some("Lima"), Some("Oslo")]),
                batch(vec![Some(41)], vec![Some("Lima")]),
            ],
        )
        .unwrap();
        assert_eq!(frame.rows, 3);
        let age = frame.column("age").unwrap();
        assert_eq!(age.kind, ColumnKind::Integer);
        assert!(age.values[1].is_nan());
        let city = frame.column("city").unwrap();
        assert_eq!(city.values, [0.0, 1.0, 0.0]);
        assert_eq!(city.levels, ["Lima", "Oslo"]);
        assert_eq!(frame.column("vip").unwrap().values, [1.0; 3]);
        assert_eq!(frame.column("seen").unwrap().values, [86_400.0; 3]);
        let err = frame.require("TargetAttributeName", "churn").unwrap_err();
        assert!(
            err.message().starts_with("TargetAttributeName 'churn'"),
            "{}",
            err.message()
        );
    }
}
