//! SQL over the offline store (the query engine of `quiver sql`, gRPC Query and Flight SQL,
//! authorized by the same rule: `quiver:Query` on every group a statement reads). Results are
//! shown a page at a time, and downloaded whole as CSV or Parquet, streamed as the query runs.
//! A query is a read, so it is a link (`?sql=`): it can be bookmarked and shared.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use parking_lot::Mutex;

use super::param;
use crate::Console;
use crate::gate::User;
use crate::layout::{self, Section};
use quiver_types::error::{Error, Result};

/// Rows per page.
pub const PAGE_ROWS: usize = 100;

/// A page of a result, formatted.
pub struct ResultPage {
    pub columns: Vec<String>,
    /// Each cell's text; `None` for SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Whether rows follow this page.
    pub more: bool,
    pub elapsed_ms: u128,
}

fn authorize(console: &Console, user: &User, sql: &str) -> Result<()> {
    let store = console.queries.store();
    console.api.access.authorize_query(
        &user.caller(),
        console.queries.referenced_groups(sql),
        |g| store.feature_names(g),
    )
}

/// Runs `sql` as `user` and formats rows `page * PAGE_ROWS ..` of its result; the query is
/// cancelled once the page is full.
pub async fn run_page(
    console: &Console,
    user: &User,
    sql: &str,
    page: usize,
) -> Result<ResultPage> {
    authorize(console, user, sql)?;
    let started = Instant::now();
    let (schema, mut batches) = console.queries.execute(sql, Ok).await?;
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let options = FormatOptions::default();
    let mut skip = page.saturating_mul(PAGE_ROWS);
    let mut rows = Vec::new();
    while let Some(batch) = batches.recv().await {
        let batch = batch?;
        if skip >= batch.num_rows() {
            skip -= batch.num_rows();
            continue;
        }
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::internal(format!("formatting the result: {e}")))?;
        for row in skip..batch.num_rows() {
            if rows.len() > PAGE_ROWS {
                break;
            }
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, f)| (!column.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
        skip = 0;
        if rows.len() > PAGE_ROWS {
            break;
        }
    }
    // Dropping the receiver cancels what is left of the query.
    drop(batches);
    let more = rows.len() > PAGE_ROWS;
    rows.truncate(PAGE_ROWS);
    Ok(ResultPage {
        columns,
        rows,
        more,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// `GET /console/query[?sql=&page=]`.
pub async fn show(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    RawQuery(query): RawQuery,
) -> Response {
    let sql = param(query.as_deref(), "sql").unwrap_or_default();
    let page = param(query.as_deref(), "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0);
    let result = if sql.trim().is_empty() {
        None
    } else {
        Some(run_page(&console, &user, &sql, page).await)
    };
    let status = result.as_ref().map_or(StatusCode::OK, layout::status);
    let body = html! {
        p.lead { "SQL over the offline store: each feature group is a table of its history (DataFusion's dialect; reads only)." }
        (form(&console, &sql))
        @match &result {
            None => {}
            Some(Err(e)) => { (layout::error_block(e)) }
            Some(Ok(result)) => { (results(&sql, page, result)) }
        }
    };
    (status, layout::page(&user, Section::Query, "Query", body)).into_response()
}

fn form(console: &Console, sql: &str) -> Markup {
    let mut tables: Vec<String> = console
        .api
        .store
        .registry()
        .all()
        .iter()
        .filter(|g| g.offline.is_some())
        .map(|g| g.name.clone())
        .collect();
    tables.sort();
    let example = tables
        .first()
        .map(|t| format!("SELECT * FROM \"{t}\" LIMIT 100"))
        .unwrap_or_else(|| "SELECT 1".to_string());
    html! {
        form method="get" action="/console/query" {
            label for="sql" { "SQL" }
            textarea #sql name="sql" rows="6" spellcheck="false" placeholder=(example) { (sql) }
            p {
                button type="submit" { "Run" }
                " "
                span.muted { "Results show " (PAGE_ROWS) " rows at a time; download them all as CSV or Parquet." }
            }
        }
        @if !tables.is_empty() {
            details {
                summary { "Tables (" (tables.len()) ")" }
                p.muted { "Also " code { "\"<group>_latest\"" } ": the latest record per identifier." }
                ul { @for t in &tables { li { code { (t) } } } }
            }
        }
    }
}

fn results(sql: &str, page: usize, result: &ResultPage) -> Markup {
    let link = |extra: &str| {
        format!(
            "/console/query?sql={}{extra}",
            form_urlencoded::byte_serialize(sql.as_bytes()).collect::<String>()
        )
    };
    let download = |format: &str| {
        format!(
            "/console/query/download?format={format}&sql={}",
            form_urlencoded::byte_serialize(sql.as_bytes()).collect::<String>()
        )
    };
    let first = page * PAGE_ROWS;
    html! {
        p role="status" {
            @if result.rows.is_empty() { "No rows" } @else { "Rows " (first + 1) "–" (first + result.rows.len()) }
            " · " (result.elapsed_ms) " ms · "
            a href=(download("csv")) download { "Download CSV" } " · "
            a href=(download("parquet")) download { "Download Parquet" }
        }
        div.table-wrap {
            table {
                thead { tr { @for c in &result.columns { th scope="col" { (c) } } } }
                tbody {
                    @for row in &result.rows {
                        tr { @for cell in row {
                            @match cell {
                                None => { td.null { "null" } }
                                Some(text) => { td.mono { (text) } }
                            }
                        } }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if page > 0 { a.button.secondary href=(link(&format!("&page={}", page - 1))) { "Previous" } }
            @if result.more { a.button.secondary href=(link(&format!("&page={}", page + 1))) { "Next" } }
        }
    }
}

/// A `Write` into a buffer the handler empties after each batch.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock()))
    }
}

type ParquetWriter = parquet::arrow::ArrowWriter<Shared>;

/// How each batch is encoded, and what ends the file.
enum Encoder {
    Csv {
        header: bool,
    },
    Parquet {
        writer: Arc<Mutex<Option<ParquetWriter>>>,
        buffer: Shared,
    },
}

impl Encoder {
    fn new(format: &str, schema: &SchemaRef) -> Result<Self> {
        Ok(match format {
            "csv" => Encoder::Csv { header: true },
            "parquet" => {
                let buffer = Shared::default();
                let writer = ParquetWriter::try_new(buffer.clone(), schema.clone(), None)
                    .map_err(|e| Error::internal(format!("starting the Parquet file: {e}")))?;
                Encoder::Parquet {
                    writer: Arc::new(Mutex::new(Some(writer))),
                    buffer,
                }
            }
            other => {
                return Err(Error::validation(format!(
                    "format: {other:?} is not csv or parquet"
                )));
            }
        })
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Bytes> {
        let fail = |e: &dyn std::fmt::Display| Error::internal(format!("encoding the result: {e}"));
        match self {
            Encoder::Csv { header } => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(*header)
                    .build(Vec::new());
                *header = false;
                writer.write(batch).map_err(|e| fail(&e))?;
                Ok(Bytes::from(writer.into_inner()))
            }
            Encoder::Parquet { writer, buffer } => {
                let mut guard = writer.lock();
                let writer = guard.as_mut().ok_or_else(|| fail(&"the file is closed"))?;
                writer.write(batch).map_err(|e| fail(&e))?;
                // Each batch ends a row group, so the file streams out as it is written.
                writer.flush().map_err(|e| fail(&e))?;
                Ok(buffer.take())
            }
        }
    }

    /// What ends the file: a CSV with no rows still has its header; Parquet its footer.
    fn finish(self, schema: &SchemaRef, wrote_any: bool) -> Result<Bytes> {
        match self {
            Encoder::Csv { .. } if wrote_any => Ok(Bytes::new()),
            Encoder::Csv { .. } => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Ok(Bytes::from(format!("{}\n", names.join(","))))
            }
            Encoder::Parquet { writer, buffer } => {
                if let Some(writer) = writer.lock().take() {
                    writer
                        .close()
                        .map_err(|e| Error::internal(format!("ending the Parquet file: {e}")))?;
                }
                Ok(buffer.take())
            }
        }
    }
}

/// `GET /console/query/download?format=csv|parquet&sql=`: the whole result, streamed.
pub async fn download(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    RawQuery(query): RawQuery,
) -> Response {
    let sql = param(query.as_deref(), "sql").unwrap_or_default();
    let format = param(query.as_deref(), "format").unwrap_or_else(|| "csv".into());
    match start_download(&console, &user, &sql, &format).await {
        Ok(response) => response,
        Err(e) => layout::error_page(&user, Section::Query, "Download", &e),
    }
}

async fn start_download(
    console: &Console,
    user: &User,
    sql: &str,
    format: &str,
) -> Result<Response> {
    if sql.trim().is_empty() {
        return Err(Error::validation(
            "sql: enter a statement to download its result",
        ));
    }
    // Checked before anything runs.
    Encoder::new(format, &Arc::new(arrow::datatypes::Schema::empty()))?;
    authorize(console, user, sql)?;
    let (schema, batches) = console.queries.execute(sql, Ok).await?;
    let encoder = Encoder::new(format, &schema)?;
    let (content_type, file) = match format {
        "parquet" => ("application/vnd.apache.parquet", "query.parquet"),
        _ => ("text/csv; charset=utf-8", "query.csv"),
    };
    let stream = futures::stream::unfold(
        Download {
            batches,
            encoder: Some(encoder),
            schema,
            wrote_any: false,
        },
        Download::next,
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A download in progress: the query's batches, encoded as they come. A failure part way
/// ends the response with an error, so the client sees a broken transfer, never a file that
/// looks whole.
struct Download {
    batches: tokio::sync::mpsc::Receiver<Result<RecordBatch>>,
    /// `None` once the file is ended.
    encoder: Option<Encoder>,
    schema: SchemaRef,
    wrote_any: bool,
}

impl Download {
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        let failed = |e: Error| std::io::Error::other(e.message().to_string());
        loop {
            let encoder = self.encoder.as_mut()?;
            match self.batches.recv().await {
                Some(Ok(batch)) if batch.num_rows() == 0 => continue,
                Some(Ok(batch)) => {
                    let chunk = encoder.batch(&batch).map_err(failed);
                    self.wrote_any = true;
                    return Some((chunk, self));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a console download failed part way");
                    self.encoder = None;
                    return Some((Err(failed(e)), self));
                }
                None => {
                    let encoder = self.encoder.take()?;
                    let last = encoder.finish(&self.schema, self.wrote_any).map_err(failed);
                    return Some((last, self));
                }
            }
        }
    }
}
