//! The part of a group's history that is acknowledged but not yet in a file: the rows waiting
//! in offline staging, read into a query as if they were one more file, so that SQL and
//! datasets are current within a second of an acknowledged write whatever the flush policy.
//!
//! A scan of a group's history is the union of two inputs that must never overlap or leave a
//! gap, though the flusher turns staged rows into files at any moment:
//! - [`read`] takes, from one RocksDB snapshot, the flush position P and the group's staged
//!   rows (every committed row at or above P that is still staged);
//! - [`files_flushed_before`] keeps only the files of flushes that started below P (a file's
//!   name carries its flush's first sequence, `offline/layout.rs`): files of a flush that
//!   completed after the snapshot, or is still writing, hold rows the snapshot still has staged.
//!
//! Staged rows have a null `write_time` (they are not written yet) and the hour partition
//! columns of their event time, as a file's rows would. A scan holds its group's staged rows in
//! memory, outside the query memory budget: normally at most `offline_max_file_mb` of rows wait
//! (a flush starts there), up to `offline_staging_limit_mb` while the offline store is down.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::common::{DataFusionError, Statistics};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use quiver_core::FeatureStore;
use quiver_offline::layout;
use quiver_offline::parquet as offline_parquet;
use quiver_storage::staging::StagedRow;
use quiver_types::model::FeatureGroup;
use quiver_types::time::{self, EpochMillis};

/// Rows per batch of staged rows.
const BATCH_ROWS: usize = 8192;

/// A group's staged rows as of one snapshot, and the flush position of that snapshot.
pub struct Staged {
    pub flushed_upto: u64,
    pub batches: Vec<RecordBatch>,
}

/// Reads `group`'s staged rows with event times in the hours `hours` (both ends inclusive) as
/// batches of `schema` (the history table's: [`offline_parquet::history_schema`], then the
/// partition columns). Blocking: RocksDB reads, and decryption of sealed rows.
pub fn read(
    store: &FeatureStore,
    group: &FeatureGroup,
    hours: (Option<EpochMillis>, Option<EpochMillis>),
    schema: &SchemaRef,
) -> quiver_types::error::Result<Staged> {
    let online = store.online();
    let mut batches = Vec::new();
    let mut pending: Vec<StagedRow> = Vec::new();
    let mut flush = |pending: &mut Vec<StagedRow>| -> quiver_types::error::Result<()> {
        if !pending.is_empty() {
            batches.push(to_batch(group, pending, schema)?);
            pending.clear();
        }
        Ok(())
    };
    let flushed_upto = online
        .staging()
        .snapshot_group(online.db(), group.id, hours, |row| {
            pending.push(row);
            if pending.len() == BATCH_ROWS {
                flush(&mut pending)?;
            }
            Ok(())
        })?;
    flush(&mut pending)?;
    Ok(Staged {
        flushed_upto,
        batches,
    })
}

fn to_batch(
    group: &FeatureGroup,
    rows: &[StagedRow],
    schema: &SchemaRef,
) -> quiver_types::error::Result<RecordBatch> {
    let refs: Vec<&StagedRow> = rows.iter().collect();
    let history = offline_parquet::record_batch(group, &refs, None)?;
    let hours: Vec<_> = rows
        .iter()
        .map(|r| time::civil_hour(r.event_time_ms))
        .collect();
    let part = |pick: fn(&(i64, i64, i64, i64)) -> i64| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(
            hours.iter().map(|h| pick(h) as i32),
        ))
    };
    let mut columns = history.columns().to_vec();
    columns.extend([part(|h| h.0), part(|h| h.1), part(|h| h.2), part(|h| h.3)]);
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
        quiver_types::error::Error::internal(format!(
            "building staged rows of '{}' as a table: {e}",
            group.name
        ))
    })
}

/// `scan` (the plan a listing of the group's files made) reading only the files of flushes
/// that started below `flushed_upto`. Files whose names are not the flusher's (put there by
/// hand) are kept. Statistics are those of the files kept.
pub fn files_flushed_before(
    scan: Arc<dyn ExecutionPlan>,
    flushed_upto: u64,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    if scan.is::<EmptyExec>() {
        return Ok(scan);
    }
    let config = scan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "a group's file scan is {}, not a file scan",
                scan.name()
            ))
        })?;
    let flushed = |name: &str| {
        layout::flush_start(name).is_none_or(|start| start < (flushed_upto & 0xffff_ffff_ffff))
    };
    let groups: Vec<FileGroup> = config
        .file_groups
        .iter()
        .map(|group| {
            FileGroup::new(
                group
                    .iter()
                    .filter(|f| f.object_meta.location.filename().is_some_and(flushed))
                    .cloned()
                    .collect(),
            )
        })
        .filter(|group| !group.is_empty())
        .collect();
    // The row count of the files kept (readers size their buffers by it); column statistics
    // would have to be merged again, and nothing here needs them.
    let schema = config.file_source.table_schema().table_schema().clone();
    let mut statistics = Statistics::new_unknown(&schema);
    let rows: Option<usize> = groups
        .iter()
        .flat_map(|g| g.iter())
        .map(|f| {
            f.statistics
                .as_ref()
                .and_then(|s| s.num_rows.get_value().copied())
        })
        .sum();
    if let Some(rows) = rows {
        statistics.num_rows = Precision::Inexact(rows);
    }
    let config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(groups)
        .with_statistics(statistics)
        .build();
    Ok(DataSourceExec::from_data_source(config))
}
