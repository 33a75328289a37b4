//! The merge itself: per identifier, its history rows deduplicated and with deletes applied,
//! matched with each base row, gathered into output batches.

use super::*;

/// One history row of the current identifier.
#[derive(Debug, Clone, Copy)]
pub(super) struct Row {
    /// Index into [`Identifier::batches`].
    pub(super) batch: usize,
    pub(super) row: usize,
    pub(super) event_time: i64,
    pub(super) api_time: i64,
    pub(super) write_time: i64,
    pub(super) deleted: bool,
}

impl Row {
    pub(super) fn order(&self) -> (i64, i64, i64) {
        (self.event_time, self.api_time, self.write_time)
    }
}

/// The current identifier's history, deduplicated and with deletes applied as asked.
#[derive(Default)]
pub(super) struct Identifier {
    pub(super) key: Option<Key>,
    pub(super) batches: Vec<Arc<HistoryBatch>>,
    pub(super) rows: Vec<Row>,
}

impl Identifier {
    /// The index in `batches` of `batch`, added if new.
    pub(super) fn batch(&mut self, batch: &Arc<HistoryBatch>) -> usize {
        match self.batches.iter().rposition(|b| b.serial == batch.serial) {
            Some(b) => b,
            None => {
                self.batches.push(batch.clone());
                self.batches.len() - 1
            }
        }
    }

    /// Appends `row`, of `batch`.
    pub(super) fn push_row(&mut self, batch: &Arc<HistoryBatch>, row: Row) {
        let b = self.batch(batch);
        self.rows.push(Row { batch: b, ..row });
    }

    /// Appends rows `rows` of `batch`.
    pub(super) fn push(&mut self, batch: &Arc<HistoryBatch>, rows: std::ops::Range<usize>) {
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
pub(super) struct Output {
    pub(super) schema: SchemaRef,
    pub(super) base_batches: Vec<RecordBatch>,
    pub(super) base_serial: Option<u64>,
    /// Per feature, its null value first (source 0), then each history batch's column.
    pub(super) history_batches: Vec<Arc<HistoryBatch>>,
    pub(super) history_sources: HashMap<u64, usize>,
    pub(super) nulls: Vec<ArrayRef>,
    pub(super) base_rows: Vec<(usize, usize)>,
    pub(super) history_rows: Vec<(usize, usize)>,
    /// The event time of each output row's history row.
    pub(super) match_times: Vec<Option<i64>>,
    pub(super) max_sources: usize,
}

impl Output {
    pub(super) fn push(&mut self, base_row: usize, history: Option<(&Arc<HistoryBatch>, &Row)>) {
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

    pub(super) fn full(&self, batch_size: usize) -> bool {
        // Bounded by rows, and by the history batches it keeps alive.
        self.base_rows.len() >= batch_size || self.history_batches.len() >= self.max_sources
    }

    pub(super) fn take(
        &mut self,
        current_base: Option<(&RecordBatch, u64)>,
    ) -> Result<Option<RecordBatch>> {
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

pub(super) struct Merge {
    pub(super) options: MergeOptions,
    pub(super) identifier: Identifier,
    pub(super) output: Output,
    pub(super) base_serial: u64,
}

impl Merge {
    pub(super) fn new(
        schema: SchemaRef,
        options: MergeOptions,
        history: &SchemaRef,
    ) -> Result<Self> {
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
    pub(super) async fn base_batch(
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

    pub(super) fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.output.take(None)
    }

    /// Pushes the output rows of base row `row` with time `t`.
    pub(super) fn matches(&mut self, row: usize, t: i64) {
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
    pub(super) async fn load(&mut self, key: Key, history: &mut History) -> Result<()> {
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
