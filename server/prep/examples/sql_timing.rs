//! Times SQL over the data preparation benchmark's files (a tuning aid for bench/prep.sh):
//! `events` and `users` are registered from DATA_DIR; each query in QUERIES.sql (separated by
//! lines holding only `;`) is run to completion and its seconds printed; with `EXPLAIN=1`, its
//! EXPLAIN ANALYZE too. DataFusion's options can be set as `DATAFUSION_*` variables.
//!
//!   cargo run --release -p quiver-prep --example sql_timing -- DATA_DIR QUERIES.sql

use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data, queries] = args.as_slice() else {
        return Err("usage: sql_timing DATA_DIR QUERIES.sql".into());
    };
    // DATAFUSION_* variables set options (DATAFUSION_EXECUTION_BATCH_SIZE=65536).
    let ctx = SessionContext::new_with_config(datafusion::prelude::SessionConfig::from_env()?);
    quiver_prep::udf::register(&ctx);
    for table in ["events", "users"] {
        ctx.register_parquet(
            table,
            format!("{data}/{table}.parquet"),
            ParquetReadOptions::default(),
        )
        .await?;
    }
    let text = std::fs::read_to_string(queries)?;
    for query in text.split("\n;\n").map(str::trim).filter(|q| !q.is_empty()) {
        let started = Instant::now();
        let mut stream = ctx.sql(query).await?.execute_stream().await?;
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            rows += batch?.num_rows();
        }
        let first = query.lines().next().unwrap_or_default();
        println!(
            "{:.3} s, {rows} rows: {first}",
            started.elapsed().as_secs_f64()
        );
        if std::env::var_os("EXPLAIN").is_some() {
            let explained = ctx
                .sql(&format!("EXPLAIN ANALYZE {query}"))
                .await?
                .collect()
                .await?;
            println!(
                "{}",
                arrow::util::pretty::pretty_format_batches(&explained)?
            );
        }
    }
    Ok(())
}
