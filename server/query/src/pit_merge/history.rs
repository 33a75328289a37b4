//! Reading a group's history in (identifier, event time) order: in memory, indexed and sorted
//! on every query thread ([`InMemory`]), or streamed from DataFusion's spilling sort
//! ([`Reader`]).

use super::*;

/// One history batch, its columns typed.
pub(super) struct HistoryBatch {
    pub(super) serial: u64,
    pub(super) ids: Ids,
    pub(super) event_times: arrow::array::Int64Array,
    pub(super) api_times: arrow::array::Int64Array,
    pub(super) write_times: arrow::array::Int64Array,
    pub(super) deleted: arrow::array::BooleanArray,
    pub(super) features: Vec<ArrayRef>,
}

impl HistoryBatch {
    pub(super) fn new(serial: u64, batch: &RecordBatch) -> Result<Self> {
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

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Rows `rows` of a [`features_only`](Self::features_only) batch, in new arrays.
    pub(super) fn take(&self, rows: &[u32]) -> Result<Self> {
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
    pub(super) fn features_only(&self) -> Self {
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

    pub(super) fn memory_size(&self) -> usize {
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
pub(super) struct Reader {
    pub(super) stream: SendableRecordBatchStream,
    pub(super) current: Option<Arc<HistoryBatch>>,
    pub(super) row: usize,
    pub(super) serial: u64,
    pub(super) done: bool,
}

impl Reader {
    pub(super) fn new(stream: SendableRecordBatchStream) -> Self {
        Self {
            stream,
            current: None,
            row: 0,
            serial: 0,
            done: false,
        }
    }

    /// The batch holding the next unread row, or `None` at the end.
    pub(super) async fn peek(&mut self) -> Result<Option<Arc<HistoryBatch>>> {
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
    pub(super) async fn load(&mut self, key: &Key, id: &mut Identifier) -> Result<()> {
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
pub(super) enum History {
    Sorted(Reader),
    InMemory(Cursor),
}

/// One history row in the in-memory index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// The identifier's order key (see [`InMemory::strings`]).
    pub(super) key: u64,
    pub(super) event_time: i64,
    pub(super) api_time: i64,
    pub(super) write_time: i64,
    pub(super) batch: u32,
    /// The row in its batch, with the delete flag in the top bit.
    pub(super) row: u32,
}

/// A whole history in memory: an index of its rows sorted by (identifier, event time), and
/// its batches' features (the index holds the rest, so key columns are dropped on arrival).
pub(super) struct InMemory {
    pub(super) batches: Vec<Arc<HistoryBatch>>,
    pub(super) index: Vec<Entry>,
    /// String identifiers: each distinct one's order key (its rank in byte order, as the
    /// sorted base has them). Integers are their own key.
    pub(super) strings: Option<HashMap<String, u64>>,
    pub(super) _reservation: MemoryReservation,
}

/// A reader's place in an [`InMemory`] history, which several merges (of different ranges of
/// the base) can read at once.
pub(super) struct Cursor {
    pub(super) memory: Arc<InMemory>,
    /// The first index entry not yet read.
    pub(super) next: usize,
}

impl InMemory {
    /// Reads `stream` into memory, or `None` when it would take more than the limit (or than
    /// the pool gives).
    pub(super) async fn read(
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
    pub(super) fn order_key(&self, key: &Key) -> Option<u64> {
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
    pub(super) fn load(&mut self, key: &Key, id: &mut Identifier) {
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
pub(super) fn sort_by_key_in_parallel(index: &mut [Entry], threads: usize) {
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
pub(super) const DELETED: u32 = 1 << 31;
pub(super) const ROW_MASK: u32 = DELETED - 1;

/// The first index in `from..to` where `before` no longer holds (`before` holds for a prefix).
pub(super) fn partition_point(from: usize, to: usize, before: impl Fn(usize) -> bool) -> usize {
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
