//! A key's series computed natively. A run of consecutive steps over the rows of one key
//! (lags and rolling aggregates in time order, group aggregates appended to each row,
//! deduplication on the key and time) is one sort and one pass per key here, where DataFusion
//! sorts and buffers the partitions of each window operator on its own, at several
//! microseconds per partition and per expression.
//!
//! Only a fitted recipe's run query uses this ([`crate::compile`]): the block's tables become
//! one table, [`SeriesTable`], whose scan computes the table before the block as SQL and then
//! the block here. The export stays SQL, and both give the same table: rows of equal key and
//! time come in an unspecified order either way, and a rolling window is summed afresh here
//! where DataFusion slides it, so floating-point results can differ in the last bits.
//!
//! A block is computed here only where every step's output type is one this pass makes
//! exactly ([`Block::check`]); otherwise its steps stay SQL. The rows it holds are counted
//! against the context's memory pool (the server's `query_memory_mb`); a block whose rows do
//! not fit runs its steps' SQL instead, whose sorts spill to disk.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use arrow::compute::{SortOptions, cast, filter, interleave, take};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use crate::recipe::{Aggregate, Keep, Step};
use crate::steps::{aggregate_name, lag_name, rolling_name};

/// The longest rolling window computed here (each row sums its window afresh); a longer one
/// stays SQL.
pub const MAX_ROLLING_ROWS: u32 = 64;

/// The rows each output batch holds.
const BATCH_ROWS: usize = 8192;

/// What one step of a block computes.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    /// `input`'s value `rows` rows before, in the key's time order.
    Lag {
        input: String,
        rows: usize,
        output: String,
    },
    /// `function` over `input` in a window of the row and the `rows - 1` before it, or over
    /// the whole key when `rows` is `None`.
    Aggregate {
        input: String,
        function: Aggregate,
        rows: Option<usize>,
        output: String,
    },
    /// Keeps one row of each key (and time, when `by_time`): the first in the block's order.
    Deduplicate { by_time: bool },
}

/// A run of steps over one key's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    key: Vec<String>,
    time: Option<String>,
    /// The deduplication's order: a column, and whether it is descending.
    order_by: Option<(String, bool)>,
    ops: Vec<Op>,
}

impl Block {
    /// The block `steps` make, if all of them can be computed here together: one key (as a
    /// set), one time column, at most one deduplication.
    pub fn of(steps: &[&Step]) -> Option<Block> {
        let mut block = Block {
            key: Vec::new(),
            time: None,
            order_by: None,
            ops: Vec::new(),
        };
        // Whether a step set the key yet.
        let mut keyed = false;
        let mut deduplicated_by_key = false;
        for step in steps {
            match step {
                Step::Lag {
                    columns,
                    key,
                    time,
                    lags,
                } => {
                    if !block.same_key(&mut keyed, key)
                        || !block.same_time(time, deduplicated_by_key)
                    {
                        return None;
                    }
                    for c in columns {
                        for &n in lags {
                            block.ops.push(Op::Lag {
                                input: c.clone(),
                                rows: n as usize,
                                output: lag_name(c, n),
                            });
                        }
                    }
                }
                Step::Rolling {
                    columns,
                    key,
                    time,
                    window,
                    functions,
                } => {
                    if !block.same_key(&mut keyed, key)
                        || !block.same_time(time, deduplicated_by_key)
                        || *window == 0
                        || *window > MAX_ROLLING_ROWS
                    {
                        return None;
                    }
                    for &function in functions {
                        for c in columns {
                            block.ops.push(Op::Aggregate {
                                input: c.clone(),
                                function,
                                rows: Some(*window as usize),
                                output: rolling_name(c, function, *window),
                            });
                        }
                    }
                }
                Step::GroupBy {
                    key,
                    aggregates,
                    append: true,
                } => {
                    if !block.same_key(&mut keyed, key) {
                        return None;
                    }
                    for a in aggregates {
                        block.ops.push(Op::Aggregate {
                            input: a.column.clone(),
                            function: a.function,
                            rows: None,
                            output: aggregate_name(a),
                        });
                    }
                }
                Step::Deduplicate {
                    key,
                    order_by,
                    keep,
                } if !key.is_empty() => {
                    if block
                        .ops
                        .iter()
                        .any(|op| matches!(op, Op::Deduplicate { .. }))
                    {
                        return None;
                    }
                    let set: BTreeSet<&String> = key.iter().collect();
                    if set.len() != key.len() {
                        return None;
                    }
                    let by_time = if !keyed {
                        // The deduplication's whole key is the block's.
                        keyed = true;
                        block.key = key.clone();
                        false
                    } else {
                        let own: BTreeSet<&String> = block.key.iter().collect();
                        if set == own {
                            false
                        } else {
                            let extra: Vec<&&String> = set.difference(&own).collect();
                            if !own.is_subset(&set) || extra.len() != 1 {
                                return None;
                            }
                            let extra = extra[0].to_string();
                            if !block.same_time(&extra, false) {
                                return None;
                            }
                            true
                        }
                    };
                    if !by_time && block.time.is_some() {
                        // The key alone keeps the first by the order among all the key's
                        // rows, which the key's time order does not bring first.
                        return None;
                    }
                    deduplicated_by_key = !by_time;
                    block.order_by = order_by
                        .as_ref()
                        .map(|column| (column.clone(), *keep == Keep::Last));
                    block.ops.push(Op::Deduplicate { by_time });
                }
                _ => return None,
            }
        }
        (!block.ops.is_empty()).then_some(block)
    }

    /// Whether `key` is the block's key, as a set (taking it if there is none yet).
    fn same_key(&mut self, keyed: &mut bool, key: &[String]) -> bool {
        let set: BTreeSet<&String> = key.iter().collect();
        if !*keyed {
            *keyed = true;
            self.key = key.to_vec();
            set.len() == key.len()
        } else {
            set == self.key.iter().collect()
        }
    }

    /// Whether `time` is the block's time column (taking it if there is none yet, unless a
    /// deduplication on the key alone came first).
    fn same_time(&mut self, time: &str, deduplicated_by_key: bool) -> bool {
        match &self.time {
            Some(t) => t == time,
            None if deduplicated_by_key => false,
            None => {
                self.time = Some(time.to_string());
                true
            }
        }
    }

    /// Whether this pass computes the block exactly as its steps' SQL typed it: `after` is
    /// `before` with the block's new columns, each of a type made here (a lag keeps its
    /// column's type; count is Int64; mean and standard deviation are Float64; sum, min and
    /// max are when their result is Float64, or min and max of a type Float64 holds exactly).
    pub fn check(&self, before: &Schema, after: &Schema) -> bool {
        let outputs: Vec<&String> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Lag { output, .. } | Op::Aggregate { output, .. } => Some(output),
                Op::Deduplicate { .. } => None,
            })
            .collect();
        if after.fields().len() != before.fields().len() + outputs.len()
            || before
                .fields()
                .iter()
                .zip(after.fields())
                .any(|(b, a)| b.name() != a.name() || b.data_type() != a.data_type())
            || after.fields()[before.fields().len()..]
                .iter()
                .zip(&outputs)
                .any(|(a, o)| a.name() != *o)
        {
            return false;
        }
        let sorted: Vec<&String> = self
            .key
            .iter()
            .chain(&self.time)
            .chain(self.order_by.as_ref().map(|(c, _)| c))
            .collect();
        let sortable = sorted.iter().all(|c| {
            before.field_with_name(c).is_ok_and(|f| {
                RowConverter::supports_fields(&[SortField::new(f.data_type().clone())])
            })
        });
        if !sortable {
            return false;
        }
        self.ops.iter().all(|op| {
            let typed = |name: &str| after.field_with_name(name).map(|f| f.data_type().clone());
            match op {
                Op::Lag { input, output, .. } => {
                    matches!((typed(input), typed(output)), (Ok(a), Ok(b)) if a == b)
                }
                Op::Aggregate {
                    input,
                    function,
                    output,
                    ..
                } => {
                    let (Ok(input), Ok(output)) = (typed(input), typed(output)) else {
                        return false;
                    };
                    match function {
                        Aggregate::Count => output == DataType::Int64,
                        Aggregate::Mean | Aggregate::StdDev | Aggregate::Sum => {
                            input.is_numeric() && output == DataType::Float64
                        }
                        Aggregate::Min | Aggregate::Max => {
                            input == output
                                && matches!(
                                    input,
                                    DataType::Float64
                                        | DataType::Float32
                                        | DataType::Int32
                                        | DataType::Int16
                                        | DataType::Int8
                                        | DataType::UInt32
                                        | DataType::UInt16
                                        | DataType::UInt8
                                )
                        }
                        Aggregate::Median | Aggregate::CountDistinct => false,
                    }
                }
                Op::Deduplicate { .. } => true,
            }
        })
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key=[{}]", self.key.join(", "))?;
        if let Some(time) = &self.time {
            write!(f, ", time={time}")?;
        }
        let ops: Vec<String> = self
            .ops
            .iter()
            .map(|op| match op {
                Op::Lag { output, .. } | Op::Aggregate { output, .. } => output.clone(),
                Op::Deduplicate { .. } => match &self.order_by {
                    Some((c, desc)) => {
                        format!("deduplicate by {c}{}", if *desc { " desc" } else { "" })
                    }
                    None => "deduplicate".into(),
                },
            })
            .collect();
        write!(f, ", steps=[{}]", ops.join(", "))
    }
}

/// The table a block makes of the table before it: a query's logical plan (the recipe up
/// to the block) and the block.
#[derive(Debug)]
pub struct SeriesTable {
    block: Arc<Block>,
    input: LogicalPlan,
    /// The block's steps as SQL over the same input: what runs when its rows do not fit
    /// in memory.
    sql: LogicalPlan,
    schema: SchemaRef,
}

impl SeriesTable {
    /// `schema` is the block's last step's, as its SQL typed it ([`Block::check`]).
    pub fn new(block: Block, input: LogicalPlan, sql: LogicalPlan, schema: &Schema) -> Self {
        // Every column nullable: a lag or an aggregate can be null where SQL's plan did not
        // say so, and later steps read the columns by name.
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Self {
            block: Arc::new(block),
            input,
            sql,
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = state.create_physical_plan(&self.input).await?;
        let sql = state.create_physical_plan(&self.sql).await?;
        let partitions = state.config().target_partitions().max(1);
        Ok(Arc::new(SeriesExec::new(
            self.block.clone(),
            input,
            sql,
            self.schema.clone(),
            projection.cloned(),
            partitions,
        )))
    }
}

/// Computes a block over its input, all of it first (the input's rows are collected, split
/// by a hash of the key into the output partitions, and each partition is sorted and
/// computed on a thread of its own).
#[derive(Debug)]
pub struct SeriesExec {
    block: Arc<Block>,
    input: Arc<dyn ExecutionPlan>,
    /// The block as SQL, input included, for when the input does not fit in memory.
    sql: Arc<dyn ExecutionPlan>,
    /// The block's output before the projection.
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    /// The output's schema (after the projection).
    projected: SchemaRef,
    partitions: usize,
    properties: Arc<PlanProperties>,
    /// Computed by the first partition asked for.
    output: Arc<tokio::sync::OnceCell<Computed>>,
    /// The time computing the block (on the partition that did) and each partition's rows.
    metrics: ExecutionPlanMetricsSet,
}

/// What a block's execution made.
#[derive(Debug)]
enum Computed {
    /// Each partition's batches (each partition takes its own), and the memory they hold.
    Native {
        parts: Mutex<Vec<Option<Vec<RecordBatch>>>>,
        _memory: MemoryReservation,
    },
    /// The input did not fit in the memory pool: the block's SQL runs instead, all of its
    /// output from the first partition.
    Sql,
}

impl SeriesExec {
    fn new(
        block: Arc<Block>,
        input: Arc<dyn ExecutionPlan>,
        sql: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
        partitions: usize,
    ) -> Self {
        let projected = match &projection {
            Some(p) => Arc::new(
                schema
                    .project(p)
                    .expect("a projection of the table's columns"),
            ),
            None => schema.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(projected.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            block,
            input,
            sql,
            schema,
            projection,
            projected,
            partitions,
            properties: Arc::new(properties),
            output: Arc::new(tokio::sync::OnceCell::new()),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for SeriesExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeriesExec: {}", self.block)
    }
}

impl ExecutionPlan for SeriesExec {
    fn name(&self) -> &str {
        "SeriesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("SeriesExec has exactly one input".into()))?;
        Ok(Arc::new(SeriesExec::new(
            self.block.clone(),
            input,
            self.sql.clone(),
            self.schema.clone(),
            self.projection.clone(),
            self.partitions,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let (block, input, output) = (self.block.clone(), self.input.clone(), self.output.clone());
        let (schema, partitions) = (self.schema.clone(), self.partitions);
        let projection = self.projection.clone();
        let sql = self.sql.clone();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let fallbacks = MetricBuilder::new(&self.metrics).counter("sql_fallbacks", partition);
        let task = context.clone();
        let batches = futures::stream::once(async move {
            let compute_time = baseline.elapsed_compute().clone();
            let table = schema.clone();
            let computed = output
                .get_or_try_init(|| async move {
                    let Some((batches, memory)) = collect_within_memory(input, task).await?
                    else {
                        fallbacks.add(1);
                        tracing::info!(
                            "a series block's rows do not fit in the memory pool: its SQL runs instead"
                        );
                        return Ok(Computed::Sql);
                    };
                    let parts = tokio::task::spawn_blocking(move || {
                        let _timer = compute_time.timer();
                        compute(&block, batches, &table, partitions)
                    })
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))??;
                    Ok::<_, DataFusionError>(Computed::Native {
                        parts: Mutex::new(parts.into_iter().map(Some).collect()),
                        _memory: memory,
                    })
                })
                .await?;
            let project = move |batch: RecordBatch| match &projection {
                Some(p) => batch.project(p).map_err(DataFusionError::from),
                None => Ok(batch),
            };
            let stream: futures::stream::BoxStream<'static, DfResult<RecordBatch>> = match computed
            {
                Computed::Native { parts, .. } => {
                    let taken = parts
                        .lock()
                        .map_err(|_| {
                            DataFusionError::Internal("a series partition panicked".into())
                        })?
                        .get_mut(partition)
                        .and_then(Option::take)
                        .unwrap_or_default();
                    baseline.record_output(taken.iter().map(RecordBatch::num_rows).sum());
                    futures::stream::iter(taken.into_iter().map(project)).boxed()
                }
                Computed::Sql if partition == 0 => {
                    let schema = schema.clone();
                    datafusion::physical_plan::execute_stream(sql, context)?
                        .map(move |batch| {
                            // The SQL's columns, as this table types them (all nullable).
                            let batch = RecordBatch::try_new(schema.clone(), batch?.columns().to_vec())?;
                            project(batch)
                        })
                        .boxed()
                }
                Computed::Sql => futures::stream::empty().boxed(),
            };
            Ok::<_, DataFusionError>(stream)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.projected.clone(),
            batches.boxed(),
        )))
    }
}

/// Every row of `input`, if they fit in the task's memory pool (three times over: the rows,
/// their sorted copy and the new columns are held at once), with the memory they hold.
async fn collect_within_memory(
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
) -> DfResult<Option<(Vec<RecordBatch>, MemoryReservation)>> {
    let memory = MemoryConsumer::new("SeriesExec").register(context.memory_pool());
    let mut stream = datafusion::physical_plan::execute_stream(input, context)?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if memory.try_grow(3 * batch.get_array_memory_size()).is_err() {
            return Ok(None);
        }
        batches.push(batch);
    }
    Ok(Some((batches, memory)))
}

/// The block over `batches`, as `partitions` lists of batches of `schema`.
fn compute(
    block: &Block,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    partitions: usize,
) -> DfResult<Vec<Vec<RecordBatch>>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows > u32::MAX as usize {
        return Err(DataFusionError::ResourcesExhausted(format!(
            "{rows} rows in one series block; at most {} are computed at once",
            u32::MAX
        )));
    }
    let Some(first) = batches.first() else {
        return Ok(vec![Vec::new(); partitions]);
    };
    let input = first.schema();
    let column = |name: &str| -> DfResult<usize> { Ok(input.index_of(name)?) };
    // The named columns of every row as one comparable byte string (arrow-row).
    let row_keys = |names: Vec<(&str, SortOptions)>| -> DfResult<Option<Rows>> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut indices = Vec::new();
        let mut fields = Vec::new();
        for (name, options) in names {
            let i = column(name)?;
            indices.push(i);
            fields.push(SortField::new_with_options(
                input.field(i).data_type().clone(),
                options,
            ));
        }
        let converter = RowConverter::new(fields)?;
        let mut out = converter.empty_rows(rows, rows * 8);
        for batch in &batches {
            let columns: Vec<ArrayRef> = indices.iter().map(|&i| batch.column(i).clone()).collect();
            converter.append(&mut out, &columns)?;
        }
        Ok(Some(out))
    };
    let ascending = SortOptions {
        descending: false,
        nulls_first: true,
    };
    let key = row_keys(block.key.iter().map(|k| (k.as_str(), ascending)).collect())?;
    let time = row_keys(block.time.iter().map(|t| (t.as_str(), ascending)).collect())?;
    // The whole sort key in one row each: key, time, the deduplication's order.
    let order_by = block.order_by.iter().map(|(c, descending)| {
        let options = SortOptions {
            descending: *descending,
            nulls_first: false,
        };
        (c.as_str(), options)
    });
    let order = row_keys(
        block
            .key
            .iter()
            .chain(&block.time)
            .map(|c| (c.as_str(), ascending))
            .chain(order_by)
            .collect(),
    )?;

    // Rows by a hash of their key, one list per output partition.
    let mut lists: Vec<Vec<u32>> = vec![Vec::with_capacity(rows / partitions + 1); partitions];
    for i in 0..rows {
        let p = match &key {
            Some(key) => (fnv(key.row(i).as_ref()) % partitions as u64) as usize,
            None => 0,
        };
        lists[p].push(i as u32);
    }
    let mut starts = Vec::with_capacity(batches.len());
    let mut at = 0;
    for batch in &batches {
        starts.push(at);
        at += batch.num_rows();
    }
    let sorted = Sorted {
        batches: &batches,
        starts,
        key: key.as_ref(),
        time: time.as_ref(),
        order: order.as_ref(),
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = lists
            .into_iter()
            .map(|list| {
                let sorted = &sorted;
                scope.spawn(move || sorted.partition(block, list, schema))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| {
                    DataFusionError::Internal("a series partition's thread panicked".into())
                })?
            })
            .collect()
    })
}

/// The input and its sort keys, by row number across its batches.
struct Sorted<'a> {
    batches: &'a [RecordBatch],
    /// Each batch's first row number.
    starts: Vec<usize>,
    key: Option<&'a Rows>,
    time: Option<&'a Rows>,
    /// Key, time and the deduplication's order together: what the rows are sorted by.
    order: Option<&'a Rows>,
}

impl Sorted<'_> {
    fn same_key(&self, a: u32, b: u32) -> bool {
        self.key
            .is_none_or(|k| k.row(a as usize) == k.row(b as usize))
    }

    fn same_time(&self, a: u32, b: u32) -> bool {
        self.time
            .is_none_or(|t| t.row(a as usize) == t.row(b as usize))
    }

    /// One output partition: its rows sorted by key, time and order, the block's steps
    /// computed over them, in batches of [`BATCH_ROWS`].
    fn partition(
        &self,
        block: &Block,
        mut rows: Vec<u32>,
        schema: &SchemaRef,
    ) -> DfResult<Vec<RecordBatch>> {
        sort(&mut rows, self.order);
        let places: Vec<(usize, usize)> = rows
            .iter()
            .map(|&r| {
                let b = self.starts.partition_point(|&s| s <= r as usize) - 1;
                (b, r as usize - self.starts[b])
            })
            .collect();
        let input = self.batches[0].schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for c in 0..input.fields().len() {
            let arrays: Vec<&dyn Array> =
                self.batches.iter().map(|b| b.column(c).as_ref()).collect();
            columns.push(interleave(&arrays, &places)?);
        }
        drop(places);
        let mut names: Vec<String> = input.fields().iter().map(|f| f.name().clone()).collect();
        let mut keys = key_starts(&rows, |a, b| self.same_key(a, b));
        for op in &block.ops {
            match op {
                Op::Lag {
                    input,
                    rows: back,
                    output,
                } => {
                    let values = &columns[position(&names, input)?];
                    let indices = lag_indices(&keys, rows.len(), *back);
                    columns.push(take(values.as_ref(), &indices, None)?);
                    names.push(output.clone());
                }
                Op::Aggregate {
                    input,
                    function,
                    rows: window,
                    output,
                } => {
                    let values = cast(&columns[position(&names, input)?], &DataType::Float64)?;
                    let values = values.as_primitive::<Float64Type>();
                    let computed = aggregate(values, &keys, *function, *window);
                    let wanted = schema.field(columns.len()).data_type();
                    columns.push(cast(&computed, wanted)?);
                    names.push(output.clone());
                }
                Op::Deduplicate { by_time } => {
                    let kept: BooleanArray = (0..rows.len())
                        .map(|i| {
                            Some(
                                i == 0
                                    || !self.same_key(rows[i - 1], rows[i])
                                    || (*by_time && !self.same_time(rows[i - 1], rows[i])),
                            )
                        })
                        .collect();
                    for column in &mut columns {
                        *column = filter(column.as_ref(), &kept)?;
                    }
                    rows = rows
                        .iter()
                        .zip(kept.values().iter())
                        .filter_map(|(&r, keep)| keep.then_some(r))
                        .collect();
                    keys = key_starts(&rows, |a, b| self.same_key(a, b));
                }
            }
        }
        // The input as planned: a physical type that differs from the logical one (a view
        // of a string, say) is cast to it.
        for (column, field) in columns.iter_mut().zip(schema.fields()) {
            if column.data_type() != field.data_type() {
                *column = cast(column, field.data_type())?;
            }
        }
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok((0..batch.num_rows())
            .step_by(BATCH_ROWS)
            .map(|at| batch.slice(at, BATCH_ROWS.min(batch.num_rows() - at)))
            .collect())
    }
}

/// The bytes of a sort key compared at once: comparing packed words is several times faster
/// than comparing each pair of rows' bytes (the sort is most of a block's time).
const PREFIX_WORDS: usize = 4;

/// Sorts `rows` by their `order` rows (then by row number, so the input's order decides
/// among equals): by the first [`PREFIX_WORDS`] words of each, and by the whole row where
/// those are equal.
fn sort(rows: &mut [u32], order: Option<&Rows>) {
    let Some(order) = order else {
        return;
    };
    let mut keyed: Vec<([u64; PREFIX_WORDS], u32)> = rows
        .iter()
        .map(|&r| {
            let bytes = order.row(r as usize);
            let bytes = bytes.as_ref();
            let mut words = [0u64; PREFIX_WORDS];
            for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                *w = u64::from_be_bytes(word);
            }
            (words, r)
        })
        .collect();
    keyed.sort_unstable_by(|(a, x), (b, y)| {
        a.cmp(b)
            .then_with(|| order.row(*x as usize).cmp(&order.row(*y as usize)))
            .then(x.cmp(y))
    });
    for (slot, (_, r)) in rows.iter_mut().zip(keyed) {
        *slot = r;
    }
}

fn position(names: &[String], name: &str) -> DfResult<usize> {
    names.iter().position(|n| n == name).ok_or_else(|| {
        DataFusionError::Internal(format!("series block: no column {name} at its step"))
    })
}

/// Where each key's rows start in `rows` (sorted by key), and `rows.len()` at the end.
fn key_starts(rows: &[u32], same: impl Fn(u32, u32) -> bool) -> Vec<usize> {
    let mut starts: Vec<usize> = (0..rows.len())
        .filter(|&i| i == 0 || !same(rows[i - 1], rows[i]))
        .collect();
    starts.push(rows.len());
    starts
}

/// For each row, the row `back` rows before it in its key, or null.
fn lag_indices(keys: &[usize], len: usize, back: usize) -> UInt32Array {
    let mut out = Vec::with_capacity(len);
    for w in keys.windows(2) {
        for i in w[0]..w[1] {
            out.push((i >= w[0] + back).then(|| (i - back) as u32));
        }
    }
    UInt32Array::from(out)
}

/// `function` over each row's window (the row and the `rows - 1` before it in its key) or
/// over its whole key; nulls are skipped, as SQL's aggregates do.
fn aggregate(
    values: &Float64Array,
    keys: &[usize],
    function: Aggregate,
    rows: Option<usize>,
) -> ArrayRef {
    let value = |i: usize| (!values.is_null(i)).then(|| values.value(i));
    let over = |from: usize, to: usize| -> Option<f64> {
        let present = (from..to).filter_map(value);
        match function {
            Aggregate::Count => Some(present.count() as f64),
            Aggregate::Sum => present.fold(None, |s, v| Some(s.unwrap_or(0.0) + v)),
            Aggregate::Mean => {
                let (n, s) = present.fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
                (n > 0).then(|| s / n as f64)
            }
            Aggregate::StdDev => {
                let (n, s) = (from..to)
                    .filter_map(value)
                    .fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
                if n < 2 {
                    return None;
                }
                let mean = s / n as f64;
                let m2: f64 = present.map(|v| (v - mean) * (v - mean)).sum();
                Some((m2 / (n - 1) as f64).sqrt())
            }
            // NaN above every number, as DataFusion orders floats.
            Aggregate::Min => present.reduce(|a, b| if b.total_cmp(&a).is_lt() { b } else { a }),
            Aggregate::Max => present.reduce(|a, b| if b.total_cmp(&a).is_gt() { b } else { a }),
            Aggregate::Median | Aggregate::CountDistinct => None,
        }
    };
    let mut out: Vec<Option<f64>> = Vec::with_capacity(values.len());
    for w in keys.windows(2) {
        let (start, end) = (w[0], w[1]);
        match rows {
            Some(rows) => {
                for i in start..end {
                    out.push(over(start.max((i + 1).saturating_sub(rows)), i + 1));
                }
            }
            None => {
                let all = over(start, end);
                out.extend(std::iter::repeat_n(all, end - start));
            }
        }
    }
    if function == Aggregate::Count {
        return Arc::new(Int64Array::from_iter(
            out.into_iter().map(|v| v.map(|v| v as i64)),
        ));
    }
    Arc::new(Float64Array::from(out))
}

/// FNV-1a: spreads keys over the partitions.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::AggregateColumn;

    fn lag(key: &[&str], time: &str) -> Step {
        Step::Lag {
            columns: vec!["x".into()],
            key: key.iter().map(|k| k.to_string()).collect(),
            time: time.into(),
            lags: vec![1],
        }
    }

    fn dedupe(key: &[&str]) -> Step {
        Step::Deduplicate {
            key: key.iter().map(|k| k.to_string()).collect(),
            order_by: Some("x".into()),
            keep: Keep::Last,
        }
    }

    #[test]
    fn steps_on_one_key_and_time_make_a_block() {
        let group = Step::GroupBy {
            key: vec!["u".into()],
            aggregates: vec![AggregateColumn {
                column: "x".into(),
                function: Aggregate::Mean,
                output: None,
            }],
            append: true,
        };
        let (a, b) = (lag(&["u"], "t"), dedupe(&["t", "u"]));
        let block = Block::of(&[&a, &group, &b]).expect("a block");
        assert_eq!(block.time.as_deref(), Some("t"));
        assert_eq!(block.order_by, Some(("x".into(), true)));
        assert_eq!(block.ops.len(), 3);
        // Another time, another key, or a deduplication on the key alone after a time.
        assert!(Block::of(&[&a, &lag(&["u"], "t2")]).is_none());
        assert!(Block::of(&[&a, &lag(&["u", "v"], "t")]).is_none());
        assert!(Block::of(&[&a, &dedupe(&["u"])]).is_none());
        // A deduplication on the key alone first, then nothing with a time.
        assert!(Block::of(&[&dedupe(&["u"]), &group]).is_some());
        assert!(Block::of(&[&dedupe(&["u"]), &a]).is_none());
        // Not a series step.
        assert!(
            Block::of(&[&Step::Sql {
                query: "SELECT 1".into()
            }])
            .is_none()
        );
    }

    #[test]
    fn windows_and_lags_stay_within_a_key() {
        // Two keys: rows 0..3 and 3..5.
        let keys = [0, 3, 5];
        let lags = lag_indices(&keys, 5, 1);
        let lags: Vec<Option<u32>> = lags.iter().collect();
        assert_eq!(lags, [None, Some(0), Some(1), None, Some(3)]);
        let values = Float64Array::from(vec![Some(1.0), None, Some(3.0), Some(4.0), Some(6.0)]);
        let mean = aggregate(&values, &keys, Aggregate::Mean, Some(2));
        let mean: Vec<Option<f64>> = mean.as_primitive::<Float64Type>().iter().collect();
        assert_eq!(
            mean,
            [Some(1.0), Some(1.0), Some(3.0), Some(4.0), Some(5.0)]
        );
        let std = aggregate(&values, &keys, Aggregate::StdDev, None);
        let std: Vec<Option<f64>> = std.as_primitive::<Float64Type>().iter().collect();
        assert_eq!(std[0], Some(2f64.sqrt()));
        assert_eq!(std[3], Some(2f64.sqrt()));
        let count = aggregate(&values, &keys, Aggregate::Count, Some(3));
        let count: Vec<Option<i64>> = count
            .as_primitive::<arrow::datatypes::Int64Type>()
            .iter()
            .collect();
        assert_eq!(count, [Some(1), Some(1), Some(2), Some(1), Some(2)]);
    }
}
