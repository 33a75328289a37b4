//! The sorted merge at the heart of a dataset build: base rows sorted by one group's
//! identifier, merged in one pass with that group's history in (identifier, event time)
//! order, one identifier at a time.
//!
//! The base is a DataFusion plan ending in a sort (which spills within the query memory
//! budget), spooled to a file under the spill directory before the history is read, so the
//! two never hold memory at once. The history is read one of two ways:
//! - **in memory** ([`InMemory`]), when it takes at most [`MergeOptions::in_memory_limit`]
//!   and the pool grants it: rows of identifiers the base lacks ([`KeyFilter`], collected while
//!   the base is spooled) are skipped, the others indexed in a vector of 40-byte entries sorted
//!   in place by order key (on every query thread), and each batch keeps only its features.
//!   Much faster than a general sort: no row encoding, no k-way merge of sorted runs. Ranges of
//!   the base, split between identifiers, are then merged on every query thread at once;
//! - **streamed** ([`Reader`]) from a DataFusion sort by (identifier, event time), which
//!   spills, when it does not fit: memory stays bounded by the budget whatever the inputs.
//!
//! Either way the merge holds one identifier's rows (ordered by event time, then
//! `api_invocation_time` and `write_time` to break ties) and one output batch.
//!
//! Per identifier, its history rows (already filtered by `as_of` and the event-time range;
//! delete markers by the range only when it has both ends) are:
//! 1. without delete markers, which never match; unless deleted records are included, the
//!    latest delete marker (by event time, `api_invocation_time`, `write_time`) hides every row
//!    ordered at or before it;
//! 2. deduplicated unless duplicates are included: per event time, the one with the latest
//!    `api_invocation_time`, then `write_time`;
//! 3. matched with each base row of the identifier: with point-in-time, rows with event time
//!    at or before the base row's; with a maximum age, rows at most that much older; with
//!    `most_recent`, the N latest of those. A base row with no match (or a null identifier or
//!    time) is written once with null features; one with several once per match.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, new_null_array};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SpillFile;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext, execute_stream};
use futures::StreamExt;

mod history;
mod keys;
mod merge;
mod spool;

use history::*;
use keys::*;
use merge::*;
use spool::*;

/// The history's leading columns, in this order; the features follow.
pub const HISTORY_ID: usize = 0;
pub const HISTORY_EVENT_TIME: usize = 1;
pub const HISTORY_API_TIME: usize = 2;
pub const HISTORY_WRITE_TIME: usize = 3;
pub const HISTORY_DELETED: usize = 4;
pub const HISTORY_FEATURES: usize = 5;

/// What one merge does, beyond its inputs.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Columns of the base holding the identifier (the group's identifier type) and the time
    /// (epoch milliseconds, Int64).
    pub base_id: usize,
    pub base_time: usize,
    pub point_in_time: bool,
    pub include_duplicated_records: bool,
    pub include_deleted_records: bool,
    pub most_recent: Option<usize>,
    pub max_age_ms: Option<i64>,
    /// Base rows without a match are left out (an inner join) rather than kept with nulls.
    pub inner_join: bool,
    /// Rows per output batch.
    pub batch_size: usize,
    /// The most memory a history may take to be merged in memory (sorted there, much faster
    /// than a general sort); a larger one is sorted by DataFusion, spilling.
    pub in_memory_limit: usize,
}

/// One group's merge as a partition DataFusion can read from: the base's columns followed by
/// the group's features and the matched row's event time (epoch milliseconds, null without a
/// match) (`schema`). Executing it runs both inputs and the merge on a task of
/// the query runtime, cancelled when the stream is dropped.
#[derive(Debug)]
pub struct PointInTimeMerge {
    pub base: Arc<dyn ExecutionPlan>,
    /// The history, unsorted (read into memory when it fits) and sorted (read as a stream
    /// when it does not).
    pub history: Arc<dyn ExecutionPlan>,
    /// Planned only when needed: planning lists and reads the footers of every file again.
    pub sorted_history: datafusion::dataframe::DataFrame,
    pub options: MergeOptions,
    pub schema: SchemaRef,
}

impl PartitionStream for PointInTimeMerge {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        let (base, history) = (self.base.clone(), self.history.clone());
        let sorted_history = self.sorted_history.clone();
        let (options, schema) = (self.options.clone(), self.schema.clone());
        builder.spawn(async move {
            let history_schema = history.schema();
            // The sorted base is spooled to a file first: its sort's memory is released before
            // the history is read, so their peaks do not add up.
            // Its identifiers are collected on the way, to skip history rows of others; their
            // memory is a small part of the history's.
            let key_limit = options.in_memory_limit / 8;
            let (spooled, keys) = spool(
                execute_stream(base, ctx.clone())?,
                &ctx,
                options.base_id,
                key_limit,
            )
            .await?;
            tracing::debug!("dataset build: sorted base spooled");
            // The files' row counts (an upper bound under filters) size the in-memory index
            // at once, rather than by doubling (which leaves the smaller copies behind).
            let rows = StatisticsContext::default()
                .compute(history.as_ref(), &StatisticsArgs::new())
                .ok()
                .and_then(|s| s.num_rows.get_value().copied());
            let history = match InMemory::read(
                execute_stream(history, ctx.clone())?,
                rows,
                &keys,
                &ctx,
                &options,
            )
            .await?
            {
                Some(memory) => memory,
                None => {
                    let sorted = sorted_history.create_physical_plan().await?;
                    let reader = Reader::new(execute_stream(sorted, ctx)?);
                    let range = 0..spooled.rows;
                    let mut merge = Merge::new(schema, options, &history_schema)?;
                    // A streamed history's batches are dropped once read; output rows
                    // referring to too many of them are written out early.
                    merge.output.max_sources = 64;
                    merge_range(merge, &spooled, range, History::Sorted(reader), &tx).await?;
                    tracing::debug!("dataset build: merge done");
                    return Ok(());
                }
            };
            // In memory, ranges of the base (split between identifiers) are merged on every
            // query thread, each reading the shared history from its own place.
            let memory = Arc::new(history);
            let parts = if spooled.rows >= PARALLEL_MERGE_MIN_ROWS {
                ctx.session_config().target_partitions().max(1)
            } else {
                1
            };
            let bounds = spooled.boundaries(options.base_id, parts)?;
            let mut tasks = tokio::task::JoinSet::new();
            for range in bounds.windows(2).map(|w| w[0]..w[1]) {
                let mut merge = Merge::new(schema.clone(), options.clone(), &history_schema)?;
                merge.output.max_sources = usize::MAX;
                let (spooled, tx) = (spooled.clone(), tx.clone());
                let cursor = History::InMemory(Cursor {
                    memory: memory.clone(),
                    next: 0,
                });
                tasks.spawn(async move { merge_range(merge, &spooled, range, cursor, &tx).await });
            }
            // Dropping the set (when the stream is dropped) aborts the merges.
            while let Some(done) = tasks.join_next().await {
                done.map_err(|e| DataFusionError::External(Box::new(e)))??;
            }
            tracing::debug!(parts, "dataset build: merge done");
            Ok(())
        });
        builder.build()
    }
}

/// The fewest base rows merged on several threads (tests split even tiny bases).
const PARALLEL_MERGE_MIN_ROWS: usize = if cfg!(test) { 4 } else { 1 << 16 };

/// Merges rows `range` of the spooled base with `history`, sending the output to `tx`.
async fn merge_range(
    mut merge: Merge,
    spooled: &Spooled,
    range: std::ops::Range<usize>,
    mut history: History,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let mut start = 0; // of the batch, in the base
    for batch in spooled.read()? {
        let batch = batch?;
        let n = batch.num_rows();
        let (from, to) = (range.start.max(start), range.end.min(start + n));
        start += n;
        if from >= to {
            if start >= range.end {
                break;
            }
            continue;
        }
        let part = batch.slice(from - (start - n), to - from);
        for out in merge.base_batch(&part, &mut history).await? {
            if tx.send(Ok(out)).await.is_err() {
                return Ok(()); // the reader is gone
            }
        }
    }
    if let Some(out) = merge.finish()? {
        let _ = tx.send(Ok(out)).await;
    }
    Ok(())
}
