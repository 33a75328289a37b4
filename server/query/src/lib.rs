//! SQL over the offline store, on DataFusion.
//!
//! Every feature group with an offline store is a table of its history (`public.<group>`) and a
//! view of its latest records (`latest.<group>`), resolved from the registry when a query names
//! them ([`tables`]). Queries run on their own threads ([`QueryEngine`]), apart from the threads
//! serving online reads and writes, within one memory budget that sorts, joins and aggregations
//! spill to disk beyond. Training datasets ([`dataset`]) join a base table with groups'
//! histories point in time ([`pit_merge`]); staged rows not yet in a file are part of every
//! table ([`staged`]); encrypted files are read through the key providers ([`decryption`]).
//! The front doors (the gRPC `Query` service and Arrow Flight SQL) are in `quiver-server`'s
//! `grpc` module; nothing here knows a wire format.

pub mod dataset;
pub mod decryption;
pub mod pit_merge;
pub mod staged;
pub mod tables;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use dataset::{DatasetRequest, Manifest};
use quiver_core::FeatureStore;
use quiver_offline::encryption::FileKeys;
use quiver_types::error::{Error, Result};
use tables::{CATALOG, GroupSchema, GroupTables, SCHEMAS};

/// How queries run.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Memory all running queries may hold together; beyond it they spill or fail.
    pub memory_bytes: usize,
    /// Threads executing queries.
    pub threads: usize,
    /// Where spill files go.
    pub spill_dir: PathBuf,
}

/// Batches of a result in flight between the query threads and the caller.
const RESULT_BUFFER: usize = 4;

pub struct QueryEngine {
    ctx: SessionContext,
    store: Arc<FeatureStore>,
    env: Arc<RuntimeEnv>,
    catalog: Arc<dyn CatalogProvider>,
    /// Rows per row group of a dataset's files: each output file buffers one row group in
    /// memory, so fewer under small budgets.
    dataset_row_group_rows: usize,
    /// The most memory one group's history may take to be merged in memory (see
    /// [`pit_merge`]): 60% of the budget, leaving room for the rest of the build.
    dataset_in_memory_limit: usize,
    /// The query threads; `None` once shut down.
    runtime: Option<tokio::runtime::Runtime>,
}

impl QueryEngine {
    pub fn new(store: Arc<FeatureStore>, options: &QueryOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.spill_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the query spill directory {}: {e}",
                options.spill_dir.display()
            )
        })?;
        // The fair pool gives each spilling operator an equal share, and one batch must fit in
        // a share: smaller batches under small budgets (the default 8192 rows from 32 MiB).
        let batch_rows = (options.memory_bytes / 4096).clamp(1024, 8192);
        // A sort merging its spill files takes as many as the pool lets it, and cannot spill
        // that memory: with several sorts (one per thread), the first would starve the others.
        // Cap the files per merge pass so each fits in half its share (a pass holds two
        // batches of each file; ~256 bytes a row), with more passes when there are more files.
        let merge_fan_in =
            (options.memory_bytes / (2 * options.threads.max(1))) / (2 * batch_rows * 256);
        let env = RuntimeEnvBuilder::new()
            // No cached file listings: every scan lists its group's files afresh (and only the
            // hour partitions it reads), so no query misses a file written before it started.
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            // Tracking names the largest consumers when a query runs out of memory.
            .with_memory_pool(Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(options.memory_bytes),
                NonZeroUsize::new(5).expect("5 is not zero"),
            )))
            .with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::Directories(vec![
                        options.spill_dir.clone(),
                    ]))
                    .with_max_spill_merge_fan_in(merge_fan_in.clamp(2, 64)),
            )
            .build_arc()?;
        let data_keys = store.online().data_keys();
        env.register_parquet_encryption_factory(
            decryption::FACTORY_ID,
            Arc::new(decryption::OfflineDecryption::new(FileKeys::new(
                data_keys.provider().clone(),
                data_keys.policy().max_age,
            ))),
        );
        // Each sort reserves memory to merge its spill files with; scaled to the budget so that
        // several sorts fit in a small one.
        let spill_reservation = (options.memory_bytes / 32).clamp(256 << 10, 10 << 20);
        let config = tables::session_config()
            .with_target_partitions(options.threads)
            .with_batch_size(batch_rows)
            .set_usize(
                "datafusion.execution.sort_spill_reservation_bytes",
                spill_reservation,
            );
        let ctx = SessionContext::new_with_config_rt(config, env.clone());
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(
            SCHEMAS[0],
            Arc::new(GroupSchema::new(
                store.clone(),
                GroupTables::History,
                env.clone(),
            )),
        )?;
        catalog.register_schema(
            SCHEMAS[1],
            Arc::new(GroupSchema::new(
                store.clone(),
                GroupTables::Latest,
                env.clone(),
            )),
        )?;
        ctx.register_catalog(CATALOG, catalog.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            // Object-store file reads run as blocking tasks. Unbounded, a scan of hundreds of
            // files starts a hundred threads, each with its own allocator heap holding what it
            // allocated (the read buffers), and peak memory triples; a few read from the page
            // cache as fast.
            .max_blocking_threads(options.threads.max(2) * 2)
            .thread_name("quiver-query")
            .enable_all()
            .build()?;
        Ok(Self {
            ctx,
            store,
            env,
            catalog,
            dataset_row_group_rows: (options.memory_bytes / 1024).clamp(8 * 1024, 128 * 1024),
            dataset_in_memory_limit: options.memory_bytes / 10 * 6,
            runtime: Some(runtime),
        })
    }

    pub fn store(&self) -> &FeatureStore {
        &self.store
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The feature groups `sql` reads (its table references that name a group, in either
    /// schema), for authorization before it is planned or run.
    pub fn referenced_groups(&self, sql: &str) -> Result<Vec<String>> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(query_error)?;
        let references = state
            .resolve_table_references(&statement)
            .map_err(query_error)?;
        let mut groups: Vec<String> = references
            .iter()
            .filter(|r| r.catalog().is_none_or(|c| c == CATALOG))
            .map(|r| r.table().to_string())
            .filter(|name| self.store.registry().get(name).is_ok())
            .collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// The schema `sql`'s result would have, planned on the query threads without running it.
    pub async fn plan_schema(&self, sql: &str) -> Result<SchemaRef> {
        let runtime = self.runtime()?;
        let ctx = self.ctx.clone();
        let sql = sql.to_string();
        runtime
            .spawn(async move {
                let frame = ctx
                    .sql_with_options(&sql, read_only())
                    .await
                    .map_err(query_error)?;
                Ok(Arc::new(frame.schema().as_arrow().clone()))
            })
            .await
            .map_err(|_| Error::internal("the query task failed while planning"))?
    }

    /// Builds a training dataset ([`dataset`]) on the query threads and writes it.
    pub async fn create_dataset(&self, request: DatasetRequest) -> Result<Manifest> {
        let runtime = self.runtime()?;
        // Its own session: the base table is registered in it, and joins are sort-merge joins,
        // which spill, where a hash join's build side must fit in memory.
        let config = self
            .ctx
            .copied_config()
            .set_bool("datafusion.optimizer.prefer_hash_join", false)
            // The output's columns are encoded on all query threads (the writer is otherwise
            // the last group's bottleneck), one row group at a time.
            .set_bool(
                "datafusion.execution.parquet.allow_single_file_parallelism",
                true,
            )
            .set_usize(
                "datafusion.execution.parquet.maximum_parallel_row_group_writers",
                1,
            )
            .set_usize(
                "datafusion.execution.parquet.max_row_group_size",
                self.dataset_row_group_rows,
            )
            // Snappy, as the offline store (and SageMaker's, Spark's and DuckDB's defaults):
            // faster to write and read than DataFusion's default zstd.
            .set_str("datafusion.execution.parquet.compression", "snappy")
            // One file written at a time per query thread (the default is at least 4).
            .set_usize(
                "datafusion.execution.minimum_parallel_output_files",
                self.ctx.copied_config().target_partitions(),
            );
        let ctx = SessionContext::new_with_config_rt(config, self.env.clone());
        ctx.register_catalog(CATALOG, self.catalog.clone());
        // The build's own tables (the base) live in a catalog of this session only.
        let scratch = MemoryCatalogProvider::new();
        scratch
            .register_schema(
                dataset::SCRATCH_SCHEMA,
                Arc::new(MemorySchemaProvider::new()),
            )
            .map_err(query_error)?;
        ctx.register_catalog(dataset::SCRATCH_CATALOG, Arc::new(scratch));
        let (env, store) = (self.env.clone(), self.store.clone());
        let in_memory_limit = self.dataset_in_memory_limit;
        runtime
            .spawn(
                async move { dataset::build(&ctx, &env, &store, request, in_memory_limit).await },
            )
            .await
            .map_err(|_| Error::internal("the dataset build failed; see the server log"))?
    }

    /// Tests: histories above `bytes` take the sorted (spilling) path of dataset builds.
    #[cfg(test)]
    pub(crate) fn set_dataset_in_memory_limit(&mut self, bytes: usize) {
        self.dataset_in_memory_limit = bytes;
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.runtime
            .as_ref()
            .ok_or_else(|| Error::unavailable("the server is shutting down"))
    }

    /// Plans `sql` and runs it on the query threads, passing each result batch through `each`
    /// there (encoding, say). Resolves once the statement is planned, with the result's schema
    /// and a channel of `each`'s outputs; dropping the receiver cancels the query.
    pub async fn execute<T: Send + 'static>(
        &self,
        sql: &str,
        mut each: impl FnMut(RecordBatch) -> Result<T> + Send + 'static,
    ) -> Result<(SchemaRef, mpsc::Receiver<Result<T>>)> {
        let runtime = self.runtime()?;
        let ctx = self.ctx.clone();
        let sql = sql.to_string();
        let (planned_tx, planned) = oneshot::channel();
        let (tx, rx) = mpsc::channel(RESULT_BUFFER);
        runtime.spawn(async move {
            let stream = async {
                let frame = ctx.sql_with_options(&sql, read_only()).await?;
                frame.execute_stream().await
            }
            .await;
            let mut stream = match stream {
                Ok(stream) => {
                    if planned_tx.send(Ok(stream.schema())).is_err() {
                        return;
                    }
                    stream
                }
                Err(e) => {
                    let _ = planned_tx.send(Err(query_error(e)));
                    return;
                }
            };
            while let Some(batch) = stream.next().await {
                let item = batch.map_err(query_error).and_then(&mut each);
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let schema = planned
            .await
            .map_err(|_| Error::internal("the query task ended before planning finished"))??;
        Ok((schema, rx))
    }
}

impl Drop for QueryEngine {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; let its threads finish on their own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What a caller's statement may do: read. No DDL (`CREATE TABLE`, `CREATE EXTERNAL TABLE`
/// would change the shared catalog or read any file the server can), no DML (`INSERT`, `COPY
/// ... TO` would write files on the server), no `SET`: each would act beyond the statement.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// DataFusion's errors as the API's: the statement's faults are the caller's, running out of
/// query memory is a limit, the rest are the server's.
pub fn query_error(e: DataFusionError) -> Error {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => Error::validation(format!("SQL: {e}")),
        DataFusionError::ResourcesExhausted(_) => Error::limit(format!(
            "the query needs more memory than query_memory_mb allows: {e}"
        )),
        _ => Error::internal(format!("running the query: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::util::pretty::pretty_format_batches;
    use quiver_core::testing::{add_integral_feature, open, put, spec};
    use quiver_offline::flusher::Flusher;
    use quiver_storage::online::store::DeletionMode;
    use quiver_types::time::ManualClock;

    /// 2023-11-14T22:13:20Z: four consecutive hours from here cross a day boundary.
    const T: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    struct Fixture {
        dir: tempfile::TempDir,
        engine: QueryEngine,
    }

    async fn run(engine: &QueryEngine, sql: &str) -> Result<Vec<RecordBatch>> {
        let (_, mut rx) = engine.execute(sql, Ok).await?;
        let mut batches = Vec::new();
        while let Some(batch) = rx.recv().await {
            batches.push(batch?);
        }
        Ok(batches)
    }

    async fn text(engine: &QueryEngine, sql: &str) -> String {
        let batches = run(engine, sql).await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// Group `g` (id Integral, ts Fractional, v String) with rows over four hours: id 1 written
    /// twice (later event time second), id 2 twice at the same event time ("first" then
    /// "second"), id 3 written then soft-deleted, id 4 once; then a feature `extra` added and
    /// id 5 written with it.
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T + 10 * HOUR);
        let store = Arc::new(open(dir.path(), clock.clone()));
        store.create_feature_group(spec(None, true)).unwrap();
        let tick = |store: &FeatureStore,
                    (g, mut p): (String, quiver_types::model::PutRequest),
                    v: &str| {
            p.record[2].1 = quiver_types::model::Value::String(v.into());
            store.put_records(vec![(g, p)]).unwrap();
            clock.advance_ms(1);
        };
        tick(&store, put(1, T), "1-old");
        tick(&store, put(1, T + 3 * HOUR), "1-new");
        tick(&store, put(2, T + HOUR), "first");
        tick(&store, put(2, T + HOUR), "second");
        tick(&store, put(3, T + 2 * HOUR), "3");
        tick(&store, put(4, T + 2 * HOUR), "4");
        store
            .delete_record(
                "g",
                "3",
                &format!("{}", (T + 2 * HOUR + 1000) as f64 / 1000.0),
                &[],
                DeletionMode::Soft,
            )
            .unwrap();
        let mut flusher = Flusher::new(store.flush_sources()).await;
        flusher.flush(true).await.unwrap();

        add_integral_feature(&store, "extra");
        let (g, mut p) = put(5, T + 3 * HOUR);
        p.record
            .push(("extra".into(), quiver_types::model::Value::Integral(42)));
        store.put_records(vec![(g, p)]).unwrap();
        flusher.flush(true).await.unwrap();
        drop(flusher);

        let engine = QueryEngine::new(
            store,
            &QueryOptions {
                memory_bytes: 64 << 20,
                threads: 2,
                spill_dir: dir.path().join("tmp"),
            },
        )
        .unwrap();
        Fixture { dir, engine }
    }

    #[tokio::test]
    async fn history_latest_view_and_schema_evolution() {
        let f = fixture().await;
        let e = &f.engine;
        // Every accepted write and the delete marker.
        assert_eq!(
            text(
                e,
                "SELECT count(*) AS n, sum(CAST(is_deleted AS INT)) AS deletes FROM g"
            )
            .await,
            "+---+---------+\n| n | deletes |\n+---+---------+\n| 8 | 1       |\n+---+---------+"
        );
        // Latest: the newest event time; the first write of a tied event time; no deleted id.
        assert_eq!(
            text(e, "SELECT id, v, extra FROM latest.g ORDER BY id").await,
            "+----+-------+-------+\n| id | v     | extra |\n+----+-------+-------+\n| 1  | 1-new |       |\n| 2  | first |       |\n| 4  | 4     |       |\n| 5  | v5    | 42    |\n+----+-------+-------+"
        );
        // Files from before `extra` existed read as nulls; partition columns are integers.
        assert_eq!(
            text(
                e,
                "SELECT count(extra) AS with_extra, min(year) AS y, max(hour) AS h FROM g"
            )
            .await,
            "+------------+------+----+\n| with_extra | y    | h  |\n+------------+------+----+\n| 1          | 2023 | 23 |\n+------------+------+----+"
        );
    }

    /// Count of Parquet files a query's physical plan reads.
    async fn files_read(engine: &QueryEngine, sql: &str) -> usize {
        let plan = text(engine, &format!("EXPLAIN {sql}")).await;
        plan.matches(".parquet").count()
    }

    #[tokio::test]
    async fn event_time_predicates_prune_hour_partitions() {
        let f = fixture().await;
        let e = &f.engine;
        let all = files_read(e, "SELECT * FROM g").await;
        // Hours 22, 23 (day 14) and 00, 01 (day 15); the second flush added one more file at 01.
        assert_eq!(all, 5);
        let from_midnight = (T + 2 * HOUR) as f64 / 1000.0;
        let sql = format!("SELECT * FROM g WHERE ts >= {from_midnight}");
        assert_eq!(files_read(e, &sql).await, 3, "hours 00 and 01 only");
        let sql = format!("SELECT * FROM g WHERE ts < {}", (T + HOUR) as f64 / 1000.0);
        assert_eq!(
            files_read(e, &sql).await,
            2,
            "hours 22 and 23 (the bound's own hour is kept)"
        );
        let sql = format!(
            "SELECT * FROM g WHERE ts BETWEEN {} AND {}",
            (T + HOUR) as f64 / 1000.0,
            (T + HOUR + 60_000) as f64 / 1000.0
        );
        assert_eq!(files_read(e, &sql).await, 1);
        assert_eq!(files_read(e, "SELECT * FROM g WHERE day = 15").await, 3);
        // Pruning never changes the answer.
        let rows = |sql: String| async move { text(e, &sql).await };
        assert_eq!(
            rows(format!(
                "SELECT id, v FROM g WHERE ts >= {from_midnight} ORDER BY id, v"
            ))
            .await,
            rows(format!(
                "SELECT id, v FROM g WHERE ts + 0 >= {from_midnight} ORDER BY id, v"
            ))
            .await,
        );
    }

    #[tokio::test]
    async fn bad_statements_are_the_callers_errors() {
        let f = fixture().await;
        let err = run(&f.engine, "SELECT * FROM nosuch").await.unwrap_err();
        assert_eq!(
            err.kind(),
            quiver_types::error::ErrorKind::Validation,
            "{err}"
        );
        assert!(err.message().contains("nosuch"), "{err}");
        let err = run(&f.engine, "SELEC 1").await.unwrap_err();
        assert_eq!(
            err.kind(),
            quiver_types::error::ErrorKind::Validation,
            "{err}"
        );
        let err = run(&f.engine, "SELECT nope FROM g").await.unwrap_err();
        assert!(err.message().contains("nope"), "{err}");
        // Statements only read: no files written, no tables created, no settings changed.
        let out = f.dir.path().join("copied");
        for sql in [
            format!(
                "COPY (SELECT * FROM g) TO '{}' STORED AS PARQUET",
                out.display()
            ),
            "CREATE TABLE t AS SELECT * FROM g".to_string(),
            "INSERT INTO g SELECT * FROM g".to_string(),
            "SET datafusion.execution.batch_size = 1".to_string(),
        ] {
            let err = run(&f.engine, &sql).await.unwrap_err();
            assert_eq!(
                err.kind(),
                quiver_types::error::ErrorKind::Validation,
                "{sql}: {err}"
            );
        }
        assert!(!out.exists());
    }
}
