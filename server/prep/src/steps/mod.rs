//! Each step as SQL over the table before it. A step checks its fields against that table's
//! columns and, if it learns from data and has not yet, fits itself there.
//!
//! - `table.rs`: columns and rows as a whole (join, concatenate, select, drop, rename, cast,
//!   reorder, filter, sort, deduplicate, sample, split, custom SQL);
//! - `clean.rs`: missing values and outliers;
//! - `encode.rs`: categorical encodings, scaling, binning;
//! - `derive.rs`: new features from dates, text, JSON, lists, time series and groups.

mod clean;
mod derive;
mod encode;
mod table;

use quiver_types::error::Result;

pub(crate) use derive::{aggregate_name, lag_name, rolling_name};

use crate::compile::{Chain, ident};
use crate::recipe::Step;

/// Adds `step` to the chain.
pub async fn compile(chain: &mut Chain<'_>, step: &mut Step) -> Result<()> {
    match step {
        Step::Join {
            how, on, suffix, ..
        } => table::join(chain, *how, on, suffix.as_deref()).await,
        Step::Concat { .. } => table::concat(chain).await,
        Step::Select { columns } => table::select(chain, columns).await,
        Step::Drop { columns } => table::drop(chain, columns).await,
        Step::Rename { columns } => table::rename(chain, columns).await,
        Step::Cast { columns, on_error } => table::cast(chain, columns, *on_error).await,
        Step::Reorder { columns } => table::reorder(chain, columns).await,
        Step::Filter { expression } => table::filter(chain, expression).await,
        Step::Sort { by } => table::sort(chain, by).await,
        Step::Deduplicate {
            key,
            order_by,
            keep,
        } => table::deduplicate(chain, key, order_by.as_deref(), *keep).await,
        Step::Sample {
            method,
            rows,
            fraction,
            column,
            seed,
        } => table::sample(chain, *method, *rows, *fraction, column.as_deref(), *seed).await,
        Step::Split {
            method,
            splits,
            column,
            output,
            seed,
            learned,
        } => {
            let output = output.as_deref().unwrap_or("split");
            table::split(
                chain,
                *method,
                splits,
                column.as_deref(),
                output,
                *seed,
                learned,
            )
            .await
        }
        Step::Sql { query } => table::sql(chain, query).await,
        Step::Missing {
            columns,
            action,
            value,
            key,
            time,
            learned,
        } => {
            clean::missing(
                chain,
                columns,
                *action,
                value.as_ref(),
                key,
                time.as_deref(),
                learned,
            )
            .await
        }
        Step::Outliers {
            columns,
            method,
            action,
            threshold,
            lower,
            upper,
            learned,
        } => {
            let bounds = clean::OutlierBounds {
                method: *method,
                threshold: *threshold,
                lower: *lower,
                upper: *upper,
            };
            clean::outliers(chain, columns, bounds, *action, learned).await
        }
        Step::Encode {
            columns,
            method,
            max_levels,
            target,
            folds,
            smoothing,
            keep_original,
            learned,
        } => {
            let options = encode::EncodeOptions {
                method: *method,
                max_levels: *max_levels,
                target: target.as_deref(),
                folds: folds.unwrap_or(5),
                smoothing: smoothing.unwrap_or(10.0),
                keep_original: *keep_original,
            };
            encode::encode(chain, columns, &options, learned).await
        }
        Step::Scale {
            columns,
            method,
            learned,
        } => encode::scale(chain, columns, *method, learned).await,
        Step::Bin {
            columns,
            method,
            bins,
            learned,
        } => encode::bin(chain, columns, *method, *bins, learned).await,
        Step::Datetime {
            column,
            parts,
            cyclic,
        } => derive::datetime(chain, column, parts, cyclic).await,
        Step::TextStats { columns, stats } => derive::text_stats(chain, columns, stats).await,
        Step::Text { columns, operation } => derive::rewrite_text(chain, columns, *operation).await,
        Step::RegexExtract {
            column,
            pattern,
            group,
            output,
        } => derive::regex_extract(chain, column, pattern, group.unwrap_or(1), output).await,
        Step::RegexReplace {
            column,
            pattern,
            replacement,
        } => derive::regex_replace(chain, column, pattern, replacement).await,
        Step::ParseJson { column, fields } => derive::parse_json(chain, column, fields).await,
        Step::Explode { column } => derive::explode(chain, column).await,
        Step::Lag {
            columns,
            key,
            time,
            lags,
        } => derive::lag(chain, columns, key, time, lags).await,
        Step::Rolling {
            columns,
            key,
            time,
            window,
            functions,
        } => derive::rolling(chain, columns, key, time, *window, functions).await,
        Step::GroupBy {
            key,
            aggregates,
            append,
        } => derive::group_by(chain, key, aggregates, *append).await,
    }
}

/// `a, b, c`.
fn comma(items: &[String]) -> String {
    items.join(", ")
}

/// `PARTITION BY key ORDER BY time` (no partition for an empty key).
pub fn window(key: &[String], time: &str) -> String {
    let partition = if key.is_empty() {
        String::new()
    } else {
        let key: Vec<String> = key.iter().map(|k| ident(k)).collect();
        format!("PARTITION BY {} ", comma(&key))
    };
    format!("{partition}ORDER BY {} ASC NULLS FIRST", ident(time))
}
