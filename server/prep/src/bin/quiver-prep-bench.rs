//! Runs a recipe file over local files the way a run does, for bench/prep.sh: first a preview of
//! every step (20 rows from a 100,000-row sample of each source), then the whole recipe into a
//! Parquet file, and the fitted recipe once more (a replay, without fitting); prints one JSON
//! line with the run's seconds, the rows written, the preview's and the replay's seconds and
//! the process's peak RSS.
//!
//!   quiver-prep-bench RECIPE.json DATA_DIR OUT.parquet
//!
//! `@DATA` in the recipe stands for DATA_DIR.

use std::time::Instant;

use quiver_prep::recipe::{FileFormat, Recipe};
use quiver_prep::{FileSources, preview, run_to_file};

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, recipe, data, out] = args.as_slice() else {
        return Err("usage: quiver-prep-bench RECIPE.json DATA_DIR OUT.parquet".into());
    };
    let text = std::fs::read_to_string(recipe)?.replace("@DATA", data);
    let recipe = Recipe::from_json(&text)?;
    let started = Instant::now();
    let shown = preview(None, &FileSources, &recipe, None, 20, 100_000).await?;
    let preview_seconds = started.elapsed().as_secs_f64();
    assert!(!shown.batches.is_empty());
    let started = Instant::now();
    let path = std::path::Path::new(out);
    let (compiled, rows) =
        run_to_file(None, &FileSources, &recipe, path, FileFormat::Parquet).await?;
    let seconds = started.elapsed().as_secs_f64();
    // The fitted recipe again: the same output without the fitting passes.
    let replayed = std::path::PathBuf::from(format!("{out}.replay"));
    let started = Instant::now();
    run_to_file(
        None,
        &FileSources,
        &compiled.recipe,
        &replayed,
        FileFormat::Parquet,
    )
    .await?;
    let replay_seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&replayed);
    if std::env::var_os("QUIVER_PREP_EXPLAIN").is_some() {
        // Where the replay's time goes, operator by operator.
        let ctx = quiver_prep::run::prepare(None, &FileSources, &compiled.recipe, None).await?;
        let plan = quiver_prep::compile(&ctx, &compiled.recipe, None).await?;
        let explained = ctx
            .sql(&format!("EXPLAIN ANALYZE {}", plan.run_sql))
            .await?
            .collect()
            .await?;
        eprintln!(
            "{}",
            arrow::util::pretty::pretty_format_batches(&explained)?
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "system": "quiver",
            "seconds": seconds,
            "rows": rows,
            "peak_rss_bytes": peak_rss_bytes(),
            "preview_seconds": preview_seconds,
            "replay_seconds": replay_seconds,
        })
    );
    Ok(())
}
