//! `quiver sql`: a SQL statement over the offline store, printed or written to a file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use quiver_client::Client;

use super::output::Output;

/// Runs `statement` and prints the result, or writes it to `file` (Parquet or CSV).
pub async fn run(
    client: &Client,
    out: Output,
    statement: String,
    file: Option<PathBuf>,
) -> Result<()> {
    let (schema, batches) = client.query(&statement).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match file {
        Some(path) => {
            write_result(&path, &schema, &batches)?;
            eprintln!("{rows} rows written to {}", path.display());
        }
        None => match out {
            Output::Json => print_json_rows(&batches)?,
            Output::Table => {
                println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
                eprintln!("{rows} rows");
            }
        },
    }
    Ok(())
}

/// A query result to a file, in the format its extension names.
fn write_result(
    path: &std::path::Path,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::record_batch::RecordBatch],
) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => {
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
        Some("csv") => {
            let mut writer = arrow::csv::Writer::new(file);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        _ => bail!(
            "--out {}: the file name must end in .parquet or .csv",
            path.display()
        ),
    }
    Ok(())
}

/// Rows as a JSON array of objects.
fn print_json_rows(batches: &[arrow::record_batch::RecordBatch]) -> Result<()> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let text = writer.into_inner();
    if text.is_empty() {
        println!("[]");
    } else {
        println!("{}", String::from_utf8(text)?);
    }
    Ok(())
}
