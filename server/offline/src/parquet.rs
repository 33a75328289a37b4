//! Staged rows to Parquet: the Arrow schema of a group's offline files and the file encoder.
//!
//! Columns: the group's features in definition order (Integral -> Int64, Fractional -> Float64,
//! String -> Utf8, List/Set -> List of those, Vector -> FixedSizeList<Float64>(dimension)), then
//! `write_time` and `api_invocation_time` (timestamp, ms, UTC) and `is_deleted` (boolean). A
//! feature added later is a column of later files only; readers of the whole group see nulls.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeListBuilder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::properties::WriterProperties;

use quiver_storage::staging::StagedRow;
use quiver_types::error::{Error, Result};
use quiver_types::model::{Collection, Feature, FeatureGroup, FeatureType, Value};
use quiver_types::time::EpochMillis;

pub const WRITE_TIME: &str = "write_time";
pub const API_INVOCATION_TIME: &str = "api_invocation_time";
pub const IS_DELETED: &str = "is_deleted";

/// Rows per Parquet row group: large enough for efficient scans, small enough to bound the
/// memory a reader needs per group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

fn element_type(feature_type: FeatureType) -> DataType {
    match feature_type {
        FeatureType::Integral => DataType::Int64,
        FeatureType::Fractional => DataType::Float64,
        FeatureType::String => DataType::Utf8,
    }
}

pub fn feature_type(feature: &Feature) -> DataType {
    let element = element_type(feature.feature_type);
    match feature.collection {
        Collection::Scalar => element,
        Collection::List | Collection::Set => {
            DataType::List(Arc::new(Field::new("item", element, true)))
        }
        Collection::Vector { dimension } => DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float64, true)),
            dimension as i32,
        ),
    }
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The schema of the group's offline files.
pub fn schema(group: &FeatureGroup) -> SchemaRef {
    schema_with(group, false)
}

/// The schema of the group's history as queries see it: the files' columns, with `write_time`
/// nullable, since rows acknowledged but not yet in a file have none.
pub fn history_schema(group: &FeatureGroup) -> SchemaRef {
    schema_with(group, true)
}

fn schema_with(group: &FeatureGroup, unwritten_rows: bool) -> SchemaRef {
    let mut fields: Vec<Field> = group
        .features
        .iter()
        .map(|f| Field::new(&f.name, feature_type(f), true))
        .collect();
    fields.push(Field::new(WRITE_TIME, timestamp(), unwritten_rows));
    fields.push(Field::new(API_INVOCATION_TIME, timestamp(), false));
    fields.push(Field::new(IS_DELETED, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// One column being built.
enum Column {
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    IntList(ListBuilder<Int64Builder>),
    FloatList(ListBuilder<Float64Builder>),
    StrList(ListBuilder<StringBuilder>),
    Vector(FixedSizeListBuilder<Float64Builder>, usize),
}

impl Column {
    fn new(feature: &Feature, rows: usize) -> Self {
        match (feature.collection, feature.feature_type) {
            (Collection::Scalar, FeatureType::Integral) => {
                Column::Int(Int64Builder::with_capacity(rows))
            }
            (Collection::Scalar, FeatureType::Fractional) => {
                Column::Float(Float64Builder::with_capacity(rows))
            }
            (Collection::Scalar, FeatureType::String) => Column::Str(StringBuilder::new()),
            (Collection::Vector { dimension }, _) => Column::Vector(
                FixedSizeListBuilder::new(Float64Builder::new(), dimension as i32),
                dimension as usize,
            ),
            (_, FeatureType::Integral) => Column::IntList(ListBuilder::new(Int64Builder::new())),
            (_, FeatureType::Fractional) => {
                Column::FloatList(ListBuilder::new(Float64Builder::new()))
            }
            (_, FeatureType::String) => Column::StrList(ListBuilder::new(StringBuilder::new())),
        }
    }

    /// Appends `value`, or null when it is absent or (never expected: rows are validated
    /// against the same definition) of another type.
    fn append(&mut self, value: Option<&Value>) {
        match (self, value) {
            (Column::Int(b), Some(Value::Integral(v))) => b.append_value(*v),
            (Column::Int(b), _) => b.append_null(),
            (Column::Float(b), Some(Value::Fractional(v))) => b.append_value(*v),
            (Column::Float(b), _) => b.append_null(),
            (Column::Str(b), Some(Value::String(v))) => b.append_value(v),
            (Column::Str(b), _) => b.append_null(),
            (Column::IntList(b), Some(Value::IntegralList(v))) => {
                b.values().append_slice(v);
                b.append(true);
            }
            (Column::IntList(b), _) => b.append(false),
            (Column::FloatList(b), Some(Value::FractionalList(v))) => {
                b.values().append_slice(v);
                b.append(true);
            }
            (Column::FloatList(b), _) => b.append(false),
            (Column::StrList(b), Some(Value::StringList(v))) => {
                for s in v {
                    b.values().append_value(s);
                }
                b.append(true);
            }
            (Column::StrList(b), _) => b.append(false),
            (Column::Vector(b, dimension), Some(Value::FractionalList(v)))
                if v.len() == *dimension =>
            {
                b.values().append_slice(v);
                b.append(true);
            }
            (Column::Vector(b, dimension), _) => {
                // A null fixed-size list still occupies `dimension` child slots.
                b.values().append_nulls(*dimension);
                b.append(false);
            }
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Float(mut b) => Arc::new(b.finish()),
            Column::Str(mut b) => Arc::new(b.finish()),
            Column::IntList(mut b) => Arc::new(b.finish()),
            Column::FloatList(mut b) => Arc::new(b.finish()),
            Column::StrList(mut b) => Arc::new(b.finish()),
            Column::Vector(mut b, _) => Arc::new(b.finish()),
        }
    }
}

/// The rows as one Arrow batch in the group's current schema: written at `write_time_ms`, or
/// not yet written (`None`: null `write_time`, in [`history_schema`]).
pub fn record_batch(
    group: &FeatureGroup,
    rows: &[&StagedRow],
    write_time_ms: Option<EpochMillis>,
) -> Result<RecordBatch> {
    let mut columns: Vec<Column> = group
        .features
        .iter()
        .map(|f| Column::new(f, rows.len()))
        .collect();
    let mut write_time = TimestampMillisecondBuilder::with_capacity(rows.len());
    let mut invocation = TimestampMillisecondBuilder::with_capacity(rows.len());
    let mut deleted = BooleanBuilder::with_capacity(rows.len());
    for row in rows {
        // Values are sorted by ordinal; walk them alongside the columns.
        let mut values = row.values.iter().peekable();
        for (ordinal, column) in columns.iter_mut().enumerate() {
            while values.next_if(|(o, _)| usize::from(*o) < ordinal).is_some() {}
            let value = values
                .next_if(|(o, _)| usize::from(*o) == ordinal)
                .map(|(_, v)| v);
            column.append(value);
        }
        write_time.append_option(write_time_ms);
        invocation.append_value(row.api_invocation_time_ms);
        deleted.append_value(row.is_deleted);
    }
    let mut arrays: Vec<ArrayRef> = columns.into_iter().map(Column::finish).collect();
    arrays.push(Arc::new(write_time.finish().with_timezone("UTC")));
    arrays.push(Arc::new(invocation.finish().with_timezone("UTC")));
    arrays.push(Arc::new(deleted.finish()));
    let schema = match write_time_ms {
        Some(_) => schema(group),
        None => history_schema(group),
    };
    RecordBatch::try_new(schema, arrays)
        .map_err(|e| Error::internal(format!("building offline rows for '{}': {e}", group.name)))
}

/// Encodes the rows as one Parquet file (Snappy, row groups of up to 128Ki rows), encrypted
/// with `encryption` when given (see `offline/encryption.rs`).
pub fn encode_file(
    group: &FeatureGroup,
    rows: &[&StagedRow],
    write_time_ms: EpochMillis,
    encryption: Option<Arc<FileEncryptionProperties>>,
) -> Result<Vec<u8>> {
    let batch = record_batch(group, rows, Some(write_time_ms))?;
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("quiver-server {}", env!("CARGO_PKG_VERSION")));
    if let Some(encryption) = encryption {
        properties = properties.with_file_encryption_properties(encryption);
    }
    let properties = properties.build();
    let fail = |e: parquet::errors::ParquetError| {
        Error::internal(format!("encoding a Parquet file for '{}': {e}", group.name))
    };
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(properties)).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(out)
}
