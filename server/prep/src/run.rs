//! Running a recipe: its sources resolved into a context of its own, then a preview (the first
//! rows after any step, on a sample of each source) or a run over the whole data into a file.

use std::path::Path;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

use quiver_types::error::{Error, Result, quote};

use crate::compile::{
    Compiled, SOURCE_TABLE, compile, context, other_source_table, query_only, run_error, sql_error,
};
use crate::recipe::{FileFormat, Recipe, Source};

/// Resolves a recipe's sources into tables, authorizing each for the caller.
#[async_trait]
pub trait Sources: Send + Sync {
    /// `source` as a table of `ctx` (the recipe's own context, which shares the host's
    /// runtime: object stores and memory pool).
    async fn table(&self, ctx: &SessionContext, source: &Source) -> Result<Arc<dyn TableProvider>>;
}

/// Reads a file source: CSV (with a header), Parquet or newline-delimited JSON, by its
/// extension unless `format` names it; a folder is read as one table of its files.
pub async fn read_file(
    ctx: &SessionContext,
    uri: &str,
    format: Option<FileFormat>,
) -> Result<Arc<dyn TableProvider>> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let local = !path.contains("://");
    if local && !Path::new(path).exists() {
        return Err(Error::validation(format!(
            "uri {}: no such file or folder on the server",
            quote(uri)
        )));
    }
    let Some(format) = format.or_else(|| FileFormat::of_path(path)) else {
        return Err(Error::validation(format!(
            "uri {}: say its format (csv, parquet or json); the name does not",
            quote(uri)
        )));
    };
    let frame = match format {
        FileFormat::Csv => ctx.read_csv(path, CsvReadOptions::new()).await,
        FileFormat::Parquet => ctx.read_parquet(path, ParquetReadOptions::default()).await,
        FileFormat::Json => {
            let extension = Path::new(path)
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| format!(".{e}"))
                .unwrap_or_default();
            let options = JsonReadOptions::default().file_extension(&extension);
            ctx.read_json(path, options).await
        }
    }
    .map_err(|e| Error::validation(format!("uri {}: {e}", quote(uri))))?;
    Ok(frame.into_view())
}

/// Resolves file sources only (tests, and the CLI's local previews).
pub struct FileSources;

#[async_trait]
impl Sources for FileSources {
    async fn table(&self, ctx: &SessionContext, source: &Source) -> Result<Arc<dyn TableProvider>> {
        match source {
            Source::File { uri, format } => read_file(ctx, uri, *format).await,
            _ => Err(Error::validation(
                "source: only files can be read here (feature groups and queries need the server)",
            )),
        }
    }
}

/// A context holding the recipe's sources, each cut to its first `sample` rows if given.
pub async fn prepare(
    base: Option<&SessionContext>,
    sources: &dyn Sources,
    recipe: &Recipe,
    sample: Option<usize>,
) -> Result<SessionContext> {
    let ctx = context(base);
    let mut tables = vec![(SOURCE_TABLE.to_string(), "source", &recipe.source)];
    for (i, step) in recipe.steps.iter().enumerate() {
        if let Some(other) = step.other_source() {
            tables.push((other_source_table(i), "with", other));
        }
    }
    for (name, field, source) in tables {
        let table = sources.table(&ctx, source).await.map_err(|e| {
            let at = if field == "source" {
                "source".to_string()
            } else {
                format!("steps[{}].with", name.trim_start_matches("source_"))
            };
            Error::new(e.kind(), format!("{at}: {}", e.message()))
        })?;
        let table = match sample {
            Some(rows) => ctx
                .read_table(table)
                .and_then(|df| df.limit(0, Some(rows)))
                .map_err(sql_error)?
                .into_view(),
            None => table,
        };
        ctx.register_table(name.as_str(), table)
            .map_err(sql_error)?;
    }
    Ok(ctx)
}

/// The first rows after a step.
#[derive(Debug)]
pub struct Preview {
    /// The recipe as fitted on the sample (what its learning steps learned there).
    pub compiled: Compiled,
    pub batches: Vec<RecordBatch>,
}

/// Previews `recipe` after its first `upto` steps (all when `None`): `rows` rows, from the
/// first `sample` rows of each source (the learning steps fit on those).
pub async fn preview(
    base: Option<&SessionContext>,
    sources: &dyn Sources,
    recipe: &Recipe,
    upto: Option<usize>,
    rows: usize,
    sample: usize,
) -> Result<Preview> {
    recipe.check()?;
    let ctx = prepare(base, sources, recipe, Some(sample)).await?;
    let compiled = compile(&ctx, recipe, upto).await?;
    let df = ctx
        .sql_with_options(&compiled.run_sql, query_only())
        .await
        .map_err(sql_error)?
        .limit(0, Some(rows))
        .map_err(sql_error)?;
    let batches = df.collect().await.map_err(run_error)?;
    Ok(Preview { compiled, batches })
}

/// Compiles `recipe` over its whole sources (fitting what has not been fitted) and starts it.
pub async fn start(
    base: Option<&SessionContext>,
    sources: &dyn Sources,
    recipe: &Recipe,
) -> Result<(Compiled, SendableRecordBatchStream)> {
    recipe.check()?;
    let ctx = prepare(base, sources, recipe, None).await?;
    let compiled = compile(&ctx, recipe, None).await?;
    let stream = ctx
        .sql_with_options(&compiled.run_sql, query_only())
        .await
        .map_err(sql_error)?
        .execute_stream()
        .await
        .map_err(run_error)?;
    Ok((compiled, stream))
}

/// How a run's Parquet output is compressed: Snappy, as pandas, Spark and SageMaker write it
/// (fast to write and read; DataFusion's own default, zstd, costs a run several times more).
pub const PARQUET_COMPRESSION: &str = "snappy";

/// The properties a run's Parquet writer uses.
pub fn parquet_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build()
}

/// Runs `recipe` over its whole sources into one file (Parquet or CSV with a header), and
/// returns the recipe as fitted and the rows written.
pub async fn run_to_file(
    base: Option<&SessionContext>,
    sources: &dyn Sources,
    recipe: &Recipe,
    output: &Path,
    format: FileFormat,
) -> Result<(Compiled, u64)> {
    recipe.check()?;
    let ctx = prepare(base, sources, recipe, None).await?;
    let compiled = compile(&ctx, recipe, None).await?;
    let df = ctx
        .sql_with_options(&compiled.run_sql, query_only())
        .await
        .map_err(sql_error)?;
    let path = output
        .to_str()
        .ok_or_else(|| Error::validation("output: the path is not UTF-8"))?;
    let options = DataFrameWriteOptions::new().with_single_file_output(true);
    let written = match format {
        FileFormat::Parquet => {
            let mut parquet = TableParquetOptions::default();
            parquet.global.compression = Some(PARQUET_COMPRESSION.to_string());
            df.write_parquet(path, options, Some(parquet)).await
        }
        FileFormat::Csv => df.write_csv(path, options, None).await,
        FileFormat::Json => df.write_json(path, options, None).await,
    }
    .map_err(run_error)?;
    let rows = written
        .first()
        .and_then(|b| {
            arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::UInt64)
                .ok()
                .map(|c| {
                    use arrow::array::AsArray;
                    c.as_primitive::<arrow::datatypes::UInt64Type>().value(0)
                })
        })
        .unwrap_or(0);
    Ok((compiled, rows))
}
