//! Reads CSV and Parquet files as rows of [`Cell`]s, whatever the file's own types.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// One cell of an input row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    /// Text, to be parsed per the feature's type (CSV cells are all text).
    Text(String),
    List(Vec<Cell>),
}

/// The file's kind, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Csv,
    Parquet,
}

pub fn file_kind(path: &Path) -> Result<FileKind> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(FileKind::Csv),
        Some("parquet") | Some("pq") => Ok(FileKind::Parquet),
        _ => bail!("{}: expected a .csv or .parquet file", path.display()),
    }
}

/// The column names and every row of the file. Rows are numbered from 1 (the first data row).
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Result<Vec<Cell>, String>>,
}

pub fn read_table(path: &Path) -> Result<Table> {
    match file_kind(path)? {
        FileKind::Csv => read_csv(path),
        FileKind::Parquet => read_parquet(path),
    }
}

fn read_csv(path: &Path) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let columns: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let rows = reader
        .records()
        .map(|record| match record {
            Err(e) => Err(format!("unreadable CSV row: {e}")),
            Ok(r) if r.len() != columns.len() => Err(format!(
                "row has {} fields; the header has {}",
                r.len(),
                columns.len()
            )),
            Ok(r) => Ok(r
                .iter()
                .map(|field| {
                    if field.is_empty() {
                        Cell::Null
                    } else {
                        Cell::Text(field.to_string())
                    }
                })
                .collect()),
        })
        .collect();
    Ok(Table { columns, rows })
}

fn read_parquet(path: &Path) -> Result<Table> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let columns: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in builder.build()? {
        let batch =
            batch.with_context(|| format!("{}: cannot read a row group", path.display()))?;
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| cell(column, row))
                    .collect::<Result<Vec<_>, String>>(),
            );
        }
    }
    Ok(Table { columns, rows })
}

/// The cell at `row` of an Arrow array.
pub fn cell(array: &ArrayRef, row: usize) -> Result<Cell, String> {
    if array.is_null(row) {
        return Ok(Cell::Null);
    }
    Ok(match array.data_type() {
        DataType::Int8 => Cell::Int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Cell::Int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Cell::Int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Cell::Int(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Cell::Int(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Cell::Int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            Cell::Int(
                i64::try_from(v)
                    .map_err(|_| format!("{v} does not fit a signed 64-bit Integral"))?,
            )
        }
        DataType::Float32 => Cell::Float(array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Cell::Text(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Cell::Text(array.as_string_view().value(row).to_string()),
        DataType::Timestamp(unit, _) => {
            let raw = arrow::compute::cast(array, &DataType::Int64)
                .map_err(|e| e.to_string())?
                .as_primitive::<Int64Type>()
                .value(row);
            let millis = match unit {
                TimeUnit::Second => raw.saturating_mul(1000),
                TimeUnit::Millisecond => raw,
                TimeUnit::Microsecond => raw.div_euclid(1000),
                TimeUnit::Nanosecond => raw.div_euclid(1_000_000),
            };
            Cell::Text(crate::cli::output::format_iso8601_millis(millis))
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            Cell::List(
                (0..list.len())
                    .map(|i| cell(&list, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>().value(row);
            Cell::List(
                (0..list.len())
                    .map(|i| cell(&list, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list().value(row);
            Cell::List(
                (0..list.len())
                    .map(|i| cell(&list, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        other => return Err(format!("Parquet type {other} has no feature type")),
    })
}
