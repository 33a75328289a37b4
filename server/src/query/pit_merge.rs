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

/// The sorted base, spooled to a file.
#[derive(Clone)]
struct Spooled {
    file: Arc<dyn SpillFile>,
    rows: usize,
}

impl Spooled {
    /// The spooled base, read back.
    fn read(&self) -> Result<StreamReader<std::io::BufReader<std::fs::File>>> {
        let path = self.file.path().ok_or_else(|| {
            DataFusionError::Internal("dataset build: the spill directory is not local".into())
        })?;
        let file = std::fs::File::open(path)?;
        Ok(StreamReader::try_new(std::io::BufReader::new(file), None)?)
    }

    /// Row numbers splitting the base into `parts` ranges of about equal size, each starting
    /// with a new identifier (column `ids`): `parts + 1` of them, from 0 to `rows`.
    fn boundaries(&self, ids: usize, parts: usize) -> Result<Vec<usize>> {
        let mut bounds = vec![0];
        let target = |j: usize| self.rows * j / parts;
        let mut previous: Option<Option<Key>> = None; // the key of row r - 1, near a target
        let mut r = 0;
        'read: for batch in self.read()? {
            let batch = batch?;
            if bounds.len() == parts {
                break;
            }
            let next = target(bounds.len());
            if r + batch.num_rows() < next {
                r += batch.num_rows();
                continue; // ends before the row preceding the next target
            }
            let column = Ids::new(batch.column(ids))?;
            for i in 0..batch.num_rows() {
                if bounds.len() == parts {
                    break 'read;
                }
                let next = target(bounds.len());
                if r + 1 >= next {
                    let key = (!column.is_null(i)).then(|| column.key(i));
                    if r >= next && r > 0 && previous.as_ref() != Some(&key) {
                        bounds.push(r);
                    }
                    previous = Some(key);
                }
                r += 1;
            }
        }
        bounds.resize(parts, self.rows);
        bounds.push(self.rows);
        Ok(bounds)
    }
}

/// Writes `stream` to a temporary Arrow IPC file of the query spill directory, and collects
/// the identifiers of its column `ids` (up to `key_limit` bytes of them).
async fn spool(
    mut stream: SendableRecordBatchStream,
    ctx: &TaskContext,
    ids: usize,
    key_limit: usize,
) -> Result<(Spooled, KeyFilter)> {
    let file = ctx
        .runtime_env()
        .disk_manager
        .create_tmp_file("dataset build: sorted base")?;
    let mut writer = StreamWriter::try_new(
        std::io::BufWriter::new(file.open_writer()?),
        &stream.schema(),
    )?;
    let mut keys = KeyCollector::new(key_limit);
    let mut rows = 0;
    while let Some(batch) = stream.next().await.transpose()? {
        keys.add(&Ids::new(batch.column(ids))?);
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.finish()?;
    let mut inner = writer
        .into_inner()?
        .into_inner()
        .map_err(|e| DataFusionError::IoError(e.into_error()))?;
    inner.finish()?;
    Ok((Spooled { file, rows }, keys.finish()))
}

/// The base's identifiers, so that history rows no base row asks for are skipped as they are
/// read (a training set often covers a fraction of the identifiers).
enum KeyFilter {
    /// Too many to hold: every row is kept.
    All,
    /// Integer order keys within a small range: a bit per value from `min`.
    Dense {
        min: u64,
        bits: Vec<u64>,
    },
    Ints(std::collections::HashSet<u64, IntKeyHash>),
    Strings(std::collections::HashSet<String>),
}

impl KeyFilter {
    /// Whether row `i` of `ids` is asked for (nulls never are).
    fn keeps(&self, ids: &Ids, i: usize) -> bool {
        if ids.is_null(i) {
            return false;
        }
        match (self, ids) {
            (KeyFilter::All, _) => true,
            (KeyFilter::Dense { min, bits }, Ids::Int(a)) => {
                let k = int_key(a.value(i)).wrapping_sub(*min);
                (k as usize / 64) < bits.len() && bits[k as usize / 64] & (1 << (k % 64)) != 0
            }
            (KeyFilter::Ints(keys), Ids::Int(a)) => keys.contains(&int_key(a.value(i))),
            (KeyFilter::Strings(keys), Ids::Str(a)) => keys.contains(a.value(i)),
            // Both sides have the group's identifier type; keep rows if they ever differ.
            _ => true,
        }
    }

    fn memory_size(&self) -> usize {
        match self {
            KeyFilter::All => 0,
            KeyFilter::Dense { bits, .. } => bits.len() * 8,
            KeyFilter::Ints(keys) => keys.capacity() * 9,
            KeyFilter::Strings(keys) => keys.iter().map(|k| k.len() + 32).sum(),
        }
    }
}

/// Collects a sorted base's identifiers into a [`KeyFilter`].
struct KeyCollector {
    ints: Vec<u64>,
    strings: std::collections::HashSet<String>,
    bytes: usize,
    limit: usize,
    overflow: bool,
}

impl KeyCollector {
    fn new(limit: usize) -> Self {
        Self {
            ints: Vec::new(),
            strings: Default::default(),
            bytes: 0,
            limit,
            overflow: false,
        }
    }

    fn add(&mut self, ids: &Ids) {
        if self.overflow {
            return;
        }
        match ids {
            Ids::Int(a) => {
                for k in a.iter().flatten().map(int_key) {
                    // Sorted: a repeat follows its first.
                    if self.ints.last() != Some(&k) {
                        self.ints.push(k);
                        self.bytes += 8;
                    }
                }
            }
            Ids::Str(a) => {
                for k in a.iter().flatten() {
                    if !self.strings.contains(k) {
                        self.bytes += k.len() + 32;
                        self.strings.insert(k.to_string());
                    }
                }
            }
        }
        if self.bytes > self.limit {
            self.overflow = true;
            self.ints = Vec::new();
            self.strings = Default::default();
        }
    }

    fn finish(self) -> KeyFilter {
        if self.overflow {
            return KeyFilter::All;
        }
        if !self.strings.is_empty() {
            return KeyFilter::Strings(self.strings);
        }
        let (Some(&min), Some(&max)) = (self.ints.iter().min(), self.ints.iter().max()) else {
            return KeyFilter::Ints(Default::default());
        };
        let words = ((max - min) / 64 + 1) as usize;
        if words <= self.ints.len().max(1024) {
            let mut bits = vec![0u64; words];
            for k in &self.ints {
                let k = k - min;
                bits[k as usize / 64] |= 1 << (k % 64);
            }
            KeyFilter::Dense { min, bits }
        } else {
            KeyFilter::Ints(self.ints.into_iter().collect())
        }
    }
}

/// A multiplicative hash for integer order keys (std's SipHash is several times slower, and
/// the keys come from the caller's own base table).
#[derive(Default, Clone, Copy)]
struct IntKeyHash;

impl std::hash::BuildHasher for IntKeyHash {
    type Hasher = IntKeyHasher;
    fn build_hasher(&self) -> IntKeyHasher {
        IntKeyHasher(0)
    }
}

#[derive(Default)]
struct IntKeyHasher(u64);

impl std::hash::Hasher for IntKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

/// An identifier column, as the group's identifier type.
enum Ids {
    Int(arrow::array::Int64Array),
    Str(arrow::array::StringArray),
}

/// One identifier value, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Int(i64),
    Str(String),
}

impl Ids {
    fn new(array: &ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Int64 => Ids::Int(array.as_primitive::<Int64Type>().clone()),
            DataType::Utf8 => Ids::Str(array.as_string::<i32>().clone()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Ids::Int(
                cast(array, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            _ => Ids::Str(cast(array, &DataType::Utf8)?.as_string::<i32>().clone()),
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Ids::Int(a) => a.is_null(i),
            Ids::Str(a) => a.is_null(i),
        }
    }

    fn len(&self) -> usize {
        match self {
            Ids::Int(a) => a.len(),
            Ids::Str(a) => a.len(),
        }
    }

    fn key(&self, i: usize) -> Key {
        match self {
            Ids::Int(a) => Key::Int(a.value(i)),
            Ids::Str(a) => Key::Str(a.value(i).to_string()),
        }
    }

    /// Row `i` against `key`, nulls first (as both inputs are sorted).
    fn cmp_key(&self, i: usize, key: &Key) -> Ordering {
        if self.is_null(i) {
            return Ordering::Less;
        }
        match (self, key) {
            (Ids::Int(a), Key::Int(k)) => a.value(i).cmp(k),
            (Ids::Str(a), Key::Str(k)) => a.value(i).cmp(k.as_str()),
            (Ids::Int(a), Key::Str(k)) => a.value(i).to_string().as_str().cmp(k.as_str()),
            (Ids::Str(a), Key::Int(k)) => a.value(i).cmp(k.to_string().as_str()),
        }
    }
}

fn int64s(array: &ArrayRef) -> Result<arrow::array::Int64Array> {
    Ok(cast(array, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// One history batch, its columns typed.
struct HistoryBatch {
    serial: u64,
    ids: Ids,
    event_times: arrow::array::Int64Array,
    api_times: arrow::array::Int64Array,
    write_times: arrow::array::Int64Array,
    deleted: arrow::array::BooleanArray,
    features: Vec<ArrayRef>,
}

impl HistoryBatch {
    fn new(serial: u64, batch: &RecordBatch) -> Result<Self> {
        let deleted = cast(batch.column(HISTORY_DELETED), &DataType::Boolean)?;
        Ok(Self {
            serial,
            ids: Ids::new(batch.column(HISTORY_ID))?,
            event_times: int64s(batch.column(HISTORY_EVENT_TIME))?,
            api_times: int64s(batch.column(HISTORY_API_TIME))?,
            write_times: int64s(batch.column(HISTORY_WRITE_TIME))?,
            deleted: deleted.as_boolean().clone(),
            features: batch.columns()[HISTORY_FEATURES..].to_vec(),
        })
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Rows `rows` of a [`features_only`](Self::features_only) batch, in new arrays.
    fn take(&self, rows: &[u32]) -> Result<Self> {
        let rows = arrow::array::UInt32Array::from(rows.to_vec());
        Ok(Self {
            features: self
                .features
                .iter()
                .map(|f| arrow::compute::take(f.as_ref(), &rows, None))
                .collect::<std::result::Result<_, _>>()?,
            ..self.features_only()
        })
    }

    /// The same batch with only its features (empty key columns), for a history whose keys
    /// are indexed elsewhere.
    fn features_only(&self) -> Self {
        Self {
            serial: self.serial,
            ids: Ids::Int(arrow::array::Int64Array::from(Vec::<i64>::new())),
            event_times: arrow::array::Int64Array::from(Vec::<i64>::new()),
            api_times: arrow::array::Int64Array::from(Vec::<i64>::new()),
            write_times: arrow::array::Int64Array::from(Vec::<i64>::new()),
            deleted: arrow::array::BooleanArray::from(Vec::<bool>::new()),
            features: self.features.clone(),
        }
    }

    fn memory_size(&self) -> usize {
        let ids = match &self.ids {
            Ids::Int(a) => a.get_array_memory_size(),
            Ids::Str(a) => a.get_array_memory_size(),
        };
        ids + self.event_times.get_array_memory_size()
            + self.api_times.get_array_memory_size()
            + self.write_times.get_array_memory_size()
            + self.deleted.get_array_memory_size()
            + self
                .features
                .iter()
                .map(|f| f.get_array_memory_size())
                .sum::<usize>()
    }
}

/// The sorted history, read forward.
struct Reader {
    stream: SendableRecordBatchStream,
    current: Option<Arc<HistoryBatch>>,
    row: usize,
    serial: u64,
    done: bool,
}

impl Reader {
    fn new(stream: SendableRecordBatchStream) -> Self {
        Self {
            stream,
            current: None,
            row: 0,
            serial: 0,
            done: false,
        }
    }

    /// The batch holding the next unread row, or `None` at the end.
    async fn peek(&mut self) -> Result<Option<Arc<HistoryBatch>>> {
        loop {
            if let Some(batch) = &self.current
                && self.row < batch.len()
            {
                return Ok(Some(batch.clone()));
            }
            if self.done {
                return Ok(None);
            }
            match self.stream.next().await.transpose()? {
                Some(batch) => {
                    self.serial += 1;
                    self.current = Some(Arc::new(HistoryBatch::new(self.serial, &batch)?));
                    self.row = 0;
                }
                None => {
                    self.done = true;
                    self.current = None;
                }
            }
        }
    }
}

impl Reader {
    /// Reads up to `key` and appends its rows to `id`.
    async fn load(&mut self, key: &Key, id: &mut Identifier) -> Result<()> {
        // Skip identifiers before `key`: whole batches at once when they end before it.
        while let Some(batch) = self.peek().await? {
            let n = batch.len();
            if batch.ids.cmp_key(n - 1, key) == Ordering::Less {
                self.row = n;
                continue;
            }
            self.row =
                partition_point(self.row, n, |i| batch.ids.cmp_key(i, key) == Ordering::Less);
            break;
        }
        // The identifier's rows, across batches.
        while let Some(batch) = self.peek().await? {
            let n = batch.len();
            let from = self.row;
            let end = partition_point(from, n, |i| batch.ids.cmp_key(i, key) == Ordering::Equal);
            if end > from {
                id.push(&batch, from..end);
            }
            self.row = end;
            if end < n {
                break;
            }
        }
        Ok(())
    }
}

/// Where the merge reads the history from.
enum History {
    Sorted(Reader),
    InMemory(Cursor),
}

/// One history row in the in-memory index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The identifier's order key (see [`InMemory::strings`]).
    key: u64,
    event_time: i64,
    api_time: i64,
    write_time: i64,
    batch: u32,
    /// The row in its batch, with the delete flag in the top bit.
    row: u32,
}

/// A whole history in memory: an index of its rows sorted by (identifier, event time), and
/// its batches' features (the index holds the rest, so key columns are dropped on arrival).
struct InMemory {
    batches: Vec<Arc<HistoryBatch>>,
    index: Vec<Entry>,
    /// String identifiers: each distinct one's order key (its rank in byte order, as the
    /// sorted base has them). Integers are their own key.
    strings: Option<HashMap<String, u64>>,
    _reservation: MemoryReservation,
}

/// A reader's place in an [`InMemory`] history, which several merges (of different ranges of
/// the base) can read at once.
struct Cursor {
    memory: Arc<InMemory>,
    /// The first index entry not yet read.
    next: usize,
}

impl InMemory {
    /// Reads `stream` into memory, or `None` when it would take more than the limit (or than
    /// the pool gives).
    async fn read(
        mut stream: SendableRecordBatchStream,
        rows: Option<usize>,
        keys: &KeyFilter,
        ctx: &TaskContext,
        options: &MergeOptions,
    ) -> Result<Option<Self>> {
        let reservation =
            MemoryConsumer::new("dataset build: history in memory").register(ctx.memory_pool());
        if reservation.try_grow(keys.memory_size()).is_err() {
            return Ok(None);
        }
        let mut batches = Vec::new();
        let entry = std::mem::size_of::<Entry>();
        let mut index: Vec<Entry> = match rows {
            Some(rows) if rows * entry <= options.in_memory_limit => Vec::with_capacity(rows),
            _ => Vec::new(),
        };
        // String identifiers are ranked once all are seen; until then their arrays are kept.
        let mut string_ids: Vec<arrow::array::StringArray> = Vec::new();
        while let Some(batch) = stream.next().await.transpose()? {
            let b = batches.len();
            let history = HistoryBatch::new(b as u64, &batch)?;
            drop(batch);
            // Only the rows of identifiers the base asks for: their features are copied to
            // arrays of their size (and the batch's own are dropped).
            let kept: Vec<u32> = (0..history.len() as u32)
                .filter(|&i| keys.keeps(&history.ids, i as usize))
                .collect();
            if kept.is_empty() {
                continue;
            }
            let all = kept.len() == history.len();
            let slim = if all {
                history.features_only()
            } else {
                history.features_only().take(&kept)?
            };
            let strings = match &history.ids {
                Ids::Str(a) if all => Some(a.clone()),
                Ids::Str(a) => Some(
                    arrow::compute::take(a, &arrow::array::UInt32Array::from(kept.clone()), None)?
                        .as_string::<i32>()
                        .clone(),
                ),
                Ids::Int(_) => None,
            };
            let n = kept.len();
            let bytes = slim.memory_size()
                + n * entry
                + strings.as_ref().map_or(0, |a| a.get_array_memory_size());
            if reservation.size() + bytes > options.in_memory_limit
                || reservation.try_grow(bytes).is_err()
                || b >= u32::MAX as usize
                || n > ROW_MASK as usize
            {
                return Ok(None);
            }
            for (row, &i) in kept.iter().enumerate() {
                let i = i as usize;
                let key = match &history.ids {
                    Ids::Int(a) => int_key(a.value(i)),
                    Ids::Str(_) => 0, // ranked below
                };
                let deleted = history.deleted.is_valid(i) && history.deleted.value(i);
                index.push(Entry {
                    key,
                    event_time: history.event_times.value(i),
                    api_time: history.api_times.value(i),
                    write_time: history.write_times.value(i),
                    batch: b as u32,
                    row: row as u32 | if deleted { DELETED } else { 0 },
                });
            }
            if let Some(ids) = strings {
                string_ids.push(ids);
            }
            batches.push(Arc::new(slim));
        }
        let strings = if string_ids.is_empty() {
            None
        } else {
            let mut distinct: Vec<&str> =
                string_ids.iter().flat_map(|a| a.iter().flatten()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let bytes: usize = distinct.iter().map(|s| s.len() + 48).sum();
            if reservation.size() + bytes > options.in_memory_limit
                || reservation.try_grow(bytes).is_err()
            {
                return Ok(None);
            }
            let ranks: HashMap<String, u64> = distinct
                .into_iter()
                .enumerate()
                .map(|(rank, s)| (s.to_string(), rank as u64))
                .collect();
            for entry in &mut index {
                let ids = &string_ids[entry.batch as usize];
                entry.key = ranks[ids.value((entry.row & ROW_MASK) as usize)];
            }
            Some(ranks)
        };
        drop(string_ids);
        tracing::debug!(rows = index.len(), "dataset build: history read");
        // By identifier only: each identifier's rows are put in event-time order as loaded.
        sort_by_key_in_parallel(&mut index, ctx.session_config().target_partitions());
        tracing::debug!(
            rows = index.len(),
            batches = batches.len(),
            bytes = reservation.size(),
            "dataset build: history indexed in memory"
        );
        Ok(Some(Self {
            batches,
            index,
            strings,
            _reservation: reservation,
        }))
    }

    /// The order key of `key`, `None` when no row has it.
    fn order_key(&self, key: &Key) -> Option<u64> {
        match (key, &self.strings) {
            (Key::Int(n), None) => Some(int_key(*n)),
            (Key::Str(s), Some(strings)) => strings.get(s).copied(),
            (Key::Int(n), Some(strings)) => strings.get(&n.to_string()).copied(),
            (Key::Str(s), None) => s.parse().ok().map(int_key),
        }
    }
}

impl Cursor {
    /// Appends `key`'s rows to `id` (keys come in ascending order).
    fn load(&mut self, key: &Key, id: &mut Identifier) {
        let memory = &*self.memory;
        let Some(k) = memory.order_key(key) else {
            return;
        };
        let index = &memory.index;
        // Galloping from the last position: the next key is usually a few entries on.
        let rest = &index[self.next..];
        let mut step = 1;
        while step < rest.len() && rest[step - 1].key < k {
            step *= 2;
        }
        let window = &rest[..step.min(rest.len())];
        let from = self.next + window.partition_point(|e| e.key < k);
        // An identifier's rows are few and adjacent: scanned, not searched for (a binary search
        // over the rest of the index costs a cache miss per step).
        let run = index[from..]
            .iter()
            .position(|e| e.key != k)
            .unwrap_or(index.len() - from);
        for e in &index[from..from + run] {
            let batch = &memory.batches[e.batch as usize];
            id.push_row(
                batch,
                Row {
                    batch: 0,
                    row: (e.row & ROW_MASK) as usize,
                    event_time: e.event_time,
                    api_time: e.api_time,
                    write_time: e.write_time,
                    deleted: e.row & DELETED != 0,
                },
            );
        }
        self.next = from + run;
    }
}

/// Sorts `index` by key on up to `threads` threads: split around a sampled median key, each
/// side sorted on its own thread (the other query threads are idle while a history is
/// indexed).
fn sort_by_key_in_parallel(index: &mut [Entry], threads: usize) {
    if threads <= 1 || index.len() < 1 << 16 {
        index.sort_unstable_by_key(|e| e.key);
        return;
    }
    let step = index.len() / 255;
    let mut sample: Vec<u64> = (0..255).map(|i| index[i * step].key).collect();
    sample.sort_unstable();
    let pivot = sample[127];
    let mut split = 0;
    for j in 0..index.len() {
        if index[j].key < pivot {
            index.swap(split, j);
            split += 1;
        }
    }
    let (low, high) = index.split_at_mut(split);
    let low_threads = threads / 2;
    std::thread::scope(|scope| {
        scope.spawn(|| sort_by_key_in_parallel(low, low_threads));
        sort_by_key_in_parallel(high, threads - low_threads);
    });
}

/// The index's row numbers carry the row's delete flag in their top bit.
const DELETED: u32 = 1 << 31;
const ROW_MASK: u32 = DELETED - 1;

/// An integer identifier as an order key: its order as an i64, as unsigned.
fn int_key(n: i64) -> u64 {
    (n as u64) ^ (1 << 63)
}

/// One history row of the current identifier.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// Index into [`Identifier::batches`].
    batch: usize,
    row: usize,
    event_time: i64,
    api_time: i64,
    write_time: i64,
    deleted: bool,
}

impl Row {
    fn order(&self) -> (i64, i64, i64) {
        (self.event_time, self.api_time, self.write_time)
    }
}

/// The current identifier's history, deduplicated and with deletes applied as asked.
#[derive(Default)]
struct Identifier {
    key: Option<Key>,
    batches: Vec<Arc<HistoryBatch>>,
    rows: Vec<Row>,
}

impl Identifier {
    /// The index in `batches` of `batch`, added if new.
    fn batch(&mut self, batch: &Arc<HistoryBatch>) -> usize {
        match self.batches.iter().rposition(|b| b.serial == batch.serial) {
            Some(b) => b,
            None => {
                self.batches.push(batch.clone());
                self.batches.len() - 1
            }
        }
    }

    /// Appends `row`, of `batch`.
    fn push_row(&mut self, batch: &Arc<HistoryBatch>, row: Row) {
        let b = self.batch(batch);
        self.rows.push(Row { batch: b, ..row });
    }

    /// Appends rows `rows` of `batch`.
    fn push(&mut self, batch: &Arc<HistoryBatch>, rows: std::ops::Range<usize>) {
        let b = self.batch(batch);
        for i in rows {
            self.rows.push(Row {
                batch: b,
                row: i,
                event_time: batch.event_times.value(i),
                api_time: batch.api_times.value(i),
                write_time: batch.write_times.value(i),
                deleted: batch.deleted.is_valid(i) && batch.deleted.value(i),
            });
        }
    }
}

/// Output rows gathered for the next batch: per row a base row and a history row (or none).
struct Output {
    schema: SchemaRef,
    base_batches: Vec<RecordBatch>,
    base_serial: Option<u64>,
    /// Per feature, its null value first (source 0), then each history batch's column.
    history_batches: Vec<Arc<HistoryBatch>>,
    history_sources: HashMap<u64, usize>,
    nulls: Vec<ArrayRef>,
    base_rows: Vec<(usize, usize)>,
    history_rows: Vec<(usize, usize)>,
    /// The event time of each output row's history row.
    match_times: Vec<Option<i64>>,
    max_sources: usize,
}

impl Output {
    fn push(&mut self, base_row: usize, history: Option<(&Arc<HistoryBatch>, &Row)>) {
        let base = self.base_batches.len() - 1;
        self.base_rows.push((base, base_row));
        self.match_times
            .push(history.map(|(_, row)| row.event_time));
        self.history_rows.push(match history {
            None => (0, 0),
            Some((batch, &Row { row, .. })) => {
                let source = match self.history_sources.get(&batch.serial) {
                    Some(&s) => s,
                    None => {
                        self.history_batches.push(batch.clone());
                        let s = self.history_batches.len();
                        self.history_sources.insert(batch.serial, s);
                        s
                    }
                };
                (source, row)
            }
        });
    }

    fn full(&self, batch_size: usize) -> bool {
        // Bounded by rows, and by the history batches it keeps alive.
        self.base_rows.len() >= batch_size || self.history_batches.len() >= self.max_sources
    }

    fn take(&mut self, current_base: Option<(&RecordBatch, u64)>) -> Result<Option<RecordBatch>> {
        let result = if self.base_rows.is_empty() {
            None
        } else {
            let mut columns = Vec::with_capacity(self.schema.fields().len());
            let base_columns = self.base_batches[0].num_columns();
            for c in 0..base_columns {
                let sources: Vec<&dyn Array> = self
                    .base_batches
                    .iter()
                    .map(|b| b.column(c).as_ref())
                    .collect();
                columns.push(interleave(&sources, &self.base_rows)?);
            }
            for (f, null) in self.nulls.iter().enumerate() {
                let mut sources: Vec<&dyn Array> = vec![null.as_ref()];
                sources.extend(self.history_batches.iter().map(|b| b.features[f].as_ref()));
                columns.push(interleave(&sources, &self.history_rows)?);
            }
            columns.push(Arc::new(arrow::array::Int64Array::from(std::mem::take(
                &mut self.match_times,
            ))));
            Some(RecordBatch::try_new(self.schema.clone(), columns)?)
        };
        self.base_batches.clear();
        self.base_serial = None;
        self.history_batches.clear();
        self.history_sources.clear();
        self.base_rows.clear();
        self.history_rows.clear();
        self.match_times.clear();
        if let Some((batch, serial)) = current_base {
            self.base_batches.push(batch.clone());
            self.base_serial = Some(serial);
        }
        Ok(result)
    }
}

struct Merge {
    options: MergeOptions,
    identifier: Identifier,
    output: Output,
    base_serial: u64,
}

impl Merge {
    fn new(schema: SchemaRef, options: MergeOptions, history: &SchemaRef) -> Result<Self> {
        let nulls = history.fields()[HISTORY_FEATURES..]
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        Ok(Self {
            options,
            identifier: Identifier::default(),
            output: Output {
                schema,
                base_batches: Vec::new(),
                base_serial: None,
                history_batches: Vec::new(),
                history_sources: HashMap::new(),
                nulls,
                base_rows: Vec::new(),
                history_rows: Vec::new(),
                match_times: Vec::new(),
                max_sources: 64,
            },
            base_serial: 0,
        })
    }

    /// Merges one base batch (the base is sorted by identifier); returns the full output
    /// batches.
    async fn base_batch(
        &mut self,
        batch: &RecordBatch,
        history: &mut History,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.base_serial += 1;
        let serial = self.base_serial;
        if self.output.base_serial != Some(serial) {
            self.output.base_batches.push(batch.clone());
            self.output.base_serial = Some(serial);
        }
        let ids = Ids::new(batch.column(self.options.base_id))?;
        let times = int64s(batch.column(self.options.base_time))?;
        for row in 0..batch.num_rows() {
            if ids.is_null(row) || times.is_null(row) {
                if !self.options.inner_join {
                    self.output.push(row, None);
                }
            } else {
                let key = &self.identifier.key;
                if key
                    .as_ref()
                    .is_none_or(|k| ids.cmp_key(row, k) != Ordering::Equal)
                {
                    let key = ids.key(row);
                    self.load(key, history).await?;
                }
                self.matches(row, times.value(row));
            }
            if self.output.full(self.options.batch_size)
                && let Some(full) = self.output.take(Some((batch, serial)))?
            {
                out.push(full);
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.output.take(None)
    }

    /// Pushes the output rows of base row `row` with time `t`.
    fn matches(&mut self, row: usize, t: i64) {
        let o = &self.options;
        let rows = &self.identifier.rows;
        let hi = if o.point_in_time {
            rows.partition_point(|r| r.event_time <= t)
        } else {
            rows.len()
        };
        let lo = o.max_age_ms.map_or(0, |age| {
            rows.partition_point(|r| r.event_time < t.saturating_sub(age))
        });
        if lo >= hi || o.most_recent == Some(0) {
            if !o.inner_join {
                self.output.push(row, None);
            }
            return;
        }
        let n = o.most_recent.unwrap_or(usize::MAX);
        for r in rows[lo..hi].iter().rev().take(n) {
            let batch = &self.identifier.batches[r.batch];
            self.output.push(row, Some((batch, r)));
        }
    }

    /// Reads the history up to `key` and loads its rows (none if it has none).
    async fn load(&mut self, key: Key, history: &mut History) -> Result<()> {
        let id = &mut self.identifier;
        id.rows.clear();
        id.batches.clear();
        match history {
            History::Sorted(reader) => reader.load(&key, id).await?,
            History::InMemory(memory) => memory.load(&key, id),
        }
        id.key = Some(key);
        // The history is sorted by (identifier, event time); the times that break ties are
        // ordered here.
        id.rows.sort_by_key(Row::order);
        // Delete markers never match a base row. Unless deleted records are included, the
        // identifier's latest delete (by event time, then api_invocation_time, write_time)
        // hides every row ordered at or before it, as the SageMaker SDK's DatasetBuilder has it.
        let latest_delete = (!self.options.include_deleted_records)
            .then(|| id.rows.iter().rev().find(|r| r.deleted).map(Row::order))
            .flatten();
        id.rows
            .retain(|r| !r.deleted && latest_delete.is_none_or(|d| r.order() > d));
        if !self.options.include_duplicated_records {
            // Sorted by (event time, api, write): the last of each event time is the latest.
            let rows = &mut id.rows;
            let mut kept = 0;
            for i in 0..rows.len() {
                if i + 1 < rows.len() && rows[i + 1].event_time == rows[i].event_time {
                    continue;
                }
                rows[kept] = rows[i];
                kept += 1;
            }
            rows.truncate(kept);
        }
        Ok(())
    }
}

/// The first index in `from..to` where `before` no longer holds (`before` holds for a prefix).
fn partition_point(from: usize, to: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (from, to);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    #[test]
    fn index_sorts_by_key_on_several_threads() {
        let mut rng = StdRng::seed_from_u64(1);
        for (rows, keys, threads) in [(200_000, 1_000, 2), (300_000, 50, 3), (100_000, 1, 2)] {
            let mut index: Vec<Entry> = (0..rows)
                .map(|i| Entry {
                    key: rng.random_range(0..keys),
                    event_time: i as i64,
                    api_time: 0,
                    write_time: 0,
                    batch: 0,
                    row: i as u32,
                })
                .collect();
            let mut want: Vec<(u64, u32)> = index.iter().map(|e| (e.key, e.row)).collect();
            want.sort_unstable();
            sort_by_key_in_parallel(&mut index, threads);
            assert!(index.windows(2).all(|w| w[0].key <= w[1].key));
            let mut got: Vec<(u64, u32)> = index.iter().map(|e| (e.key, e.row)).collect();
            got.sort_unstable();
            assert_eq!(got, want, "rows lost or duplicated");
        }
    }
}
