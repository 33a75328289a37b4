//! Randomized: histories with duplicate event times, deletes, late writes, missing
//! identifiers, ties and null values, built into datasets with every combination of options, compared
//! with a plain reference implementation of the rules in the module docs.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::{QueryEngine, QueryOptions};
use quiver_core::testing::{open, put, spec};
use quiver_offline::flusher::Flusher;
use quiver_storage::online::store::DeletionMode;
use quiver_types::model::Value;
use quiver_types::time::ManualClock;

const T: i64 = 1_700_000_000_000;
const STEP: i64 = 1_800_000; // half an hour

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    et: i64,
    api: i64,
    write: i64,
    deleted: bool,
    v: Option<String>,
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} type"))
}

async fn collect(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// The group's history as the store holds it.
async fn history(engine: &QueryEngine) -> Vec<Row> {
    let batches = collect(
        engine.context(),
        "SELECT id, ts, api_invocation_time, write_time, is_deleted, v FROM g",
    )
    .await;
    let mut rows = Vec::new();
    for b in &batches {
        let (id, ts) = (
            column::<Int64Array>(b, "id"),
            column::<Float64Array>(b, "ts"),
        );
        let api = column::<TimestampMillisecondArray>(b, "api_invocation_time");
        let write = column::<TimestampMillisecondArray>(b, "write_time");
        let deleted = column::<BooleanArray>(b, "is_deleted");
        let v = column::<StringArray>(b, "v");
        for i in 0..b.num_rows() {
            rows.push(Row {
                id: id.value(i),
                et: (ts.value(i) * 1000.0).round() as i64,
                api: api.value(i),
                // Not yet written: after every written row.
                write: if write.is_valid(i) {
                    write.value(i)
                } else {
                    i64::MAX
                },
                deleted: deleted.value(i),
                v: v.is_valid(i).then(|| v.value(i).to_string()),
            });
        }
    }
    rows
}

/// The rules of the module docs, plainly.
fn reference(
    history: &[Row],
    base: &[(i64, i64)],
    o: &DatasetOptions,
) -> Vec<(i64, i64, Option<String>)> {
    // As the SageMaker SDK's DatasetBuilder query has it: delete markers count outside the
    // event-time range unless it has both ends; the latest one per identifier (by event
    // time, api_invocation_time, write_time) hides every row ordered at or before it.
    let in_range = |r: &Row| {
        o.event_time_start_ms.is_none_or(|t| r.et >= t)
            && o.event_time_end_ms.is_none_or(|t| r.et <= t)
    };
    let both_ends = o.event_time_start_ms.is_some() && o.event_time_end_ms.is_some();
    let rows: Vec<Row> = history
        .iter()
        .filter(|r| o.as_of_ms.is_none_or(|t| r.write <= t))
        .filter(|r| in_range(r) || (r.deleted && !both_ends))
        .cloned()
        .collect();
    let order = |r: &Row| (r.et, r.api, r.write);
    let latest_delete = |id: i64| {
        rows.iter()
            .filter(|r| r.id == id && r.deleted)
            .map(order)
            .max()
    };
    let mut rows: Vec<Row> = rows
        .iter()
        .filter(|r| !r.deleted)
        .filter(|r| o.include_deleted_records || latest_delete(r.id).is_none_or(|d| order(r) > d))
        .cloned()
        .collect();
    if !o.include_duplicated_records {
        let mut kept: Vec<Row> = Vec::new();
        for r in rows {
            match kept.iter_mut().find(|k| k.id == r.id && k.et == r.et) {
                Some(k) if (r.api, r.write) > (k.api, k.write) => *k = r,
                Some(_) => {}
                None => kept.push(r),
            }
        }
        rows = kept;
    }
    let mut out = Vec::new();
    // The range leaves out base rows whose time is outside it, too.
    for &(id, t) in base.iter().filter(|(_, t)| {
        o.event_time_start_ms.is_none_or(|s| *t >= s) && o.event_time_end_ms.is_none_or(|e| *t <= e)
    }) {
        let mut matches: Vec<&Row> = rows
            .iter()
            .filter(|r| r.id == id)
            .filter(|r| !o.point_in_time || r.et <= t)
            .filter(|r| o.max_age_ms.is_none_or(|age| r.et >= t - age))
            .collect();
        matches.sort_by_key(|r| std::cmp::Reverse((r.et, r.api, r.write)));
        if let Some(n) = o.most_recent {
            matches.truncate(n as usize);
        }
        if matches.is_empty() && !o.inner_join {
            out.push((id, t, None));
        }
        out.extend(matches.into_iter().map(|r| (id, t, r.v.clone())));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_match_the_reference_for_every_option_combination() {
    let mut matched = 0;
    for seed in 0..6_u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T + 100 * STEP);
        let store = Arc::new(open(dir.path(), clock.clone()));
        store.create_feature_group(spec(None, true)).unwrap();
        let mut flusher = Flusher::new(store.flush_sources()).await;
        // Identifiers 0..7 (6 only in the history, 8 and 9 only in the base: missing),
        // dense or, for odd seeds, far apart (the two ways a build skips the history of
        // identifiers the base lacks); event times on a coarse grid so they repeat, in
        // random order (late writes), some deletes.
        let scale = if seed % 2 == 1 { 1_i64 << 40 } else { 1 };
        for n in 0..60 {
            let id = rng.random_range(0..7_i64) * scale;
            let et = T + rng.random_range(0..12_i64) * STEP;
            if rng.random_bool(0.12) {
                let secs = format!("{}", et as f64 / 1000.0);
                store
                    .delete_record("g", &id.to_string(), &secs, &[], DeletionMode::Soft)
                    .unwrap();
            } else {
                let (g, mut p) = put(id, et);
                if rng.random_bool(0.1) {
                    p.record.truncate(2); // `v` left out: null
                } else {
                    p.record[2].1 = Value::String(format!("s{seed}-{n}"));
                }
                store.put_records(vec![(g, p)]).unwrap();
            }
            clock.advance_ms(1);
            // For odd seeds the last rows stay staged: acknowledged, not yet in a file.
            if n % 20 == 19 && !(seed % 2 == 1 && n == 59) {
                flusher.flush(true).await.unwrap();
                // Distinct write times per flush, for as_of.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        drop(flusher);
        let mut engine = QueryEngine::new(
            store.clone(),
            &QueryOptions {
                memory_bytes: 256 << 20,
                // The base is merged in as many ranges as threads.
                threads: 2 + seed as usize % 2,
                spill_dir: dir.path().join("tmp"),
            },
        )
        .unwrap();
        let history = history(&engine).await;
        assert_eq!(
            history.len(),
            60,
            "every write and delete marker is in the history"
        );
        let mut writes: Vec<i64> = history
            .iter()
            .map(|r| r.write)
            .filter(|w| *w < i64::MAX)
            .collect();
        writes.sort();
        writes.dedup();

        // The base: identifiers 0..6, 8 and 9, times on a finer grid (some equal to feature
        // times). Two times per row: the group is joined twice, on `t` and on `t2`.
        let base: Vec<(i64, i64, i64)> = (0..25)
            .map(|_| {
                let time = |rng: &mut StdRng| T + rng.random_range(-2..26_i64) * STEP / 2;
                let id = [0, 1, 2, 3, 4, 5, 8, 9][rng.random_range(0..8)] * scale;
                (id, time(&mut rng), time(&mut rng))
            })
            .collect();
        let base_file = dir.path().join("base.csv");
        let mut csv = String::from("id,t,t2,label\n");
        for (i, (id, t, t2)) in base.iter().enumerate() {
            csv.push_str(&format!(
                "{id},{:.3},{:.3},{i}\n",
                *t as f64 / 1000.0,
                *t2 as f64 / 1000.0
            ));
        }
        std::fs::write(&base_file, csv).unwrap();

        let mut build = 0;
        for pit in [false, true] {
            for dup in [false, true] {
                for del in [false, true] {
                    for most_recent in [None, Some(1), Some(2)] {
                        let options = DatasetOptions {
                            point_in_time: pit,
                            include_duplicated_records: dup,
                            include_deleted_records: del,
                            most_recent,
                            event_time_start_ms: rng
                                .random_bool(0.3)
                                .then(|| T + rng.random_range(0..6) * STEP),
                            event_time_end_ms: rng
                                .random_bool(0.3)
                                .then(|| T + rng.random_range(6..12) * STEP),
                            as_of_ms: rng
                                .random_bool(0.3)
                                .then(|| writes[rng.random_range(0..writes.len())]),
                            max_age_ms: rng.random_bool(0.3).then(|| rng.random_range(0..6) * STEP),
                            inner_join: rng.random_bool(0.3),
                            most_recent_per_identifier: None,
                        };
                        build += 1;
                        // Both ways of reading the history: indexed in memory, and
                        // sorted by DataFusion (for histories above the limit).
                        engine.set_dataset_in_memory_limit(if (build + seed) % 2 == 0 {
                            0
                        } else {
                            usize::MAX
                        });
                        let out = dir.path().join(format!("out{build}"));
                        let manifest = engine
                            .create_dataset(DatasetRequest {
                                base: BaseSource::File(base_file.display().to_string()),
                                groups: ["t", "t2"]
                                    .map(|time| JoinedGroup {
                                        name: "g".into(),
                                        features: vec!["v".into()],
                                        base_identifier_column: "id".into(),
                                        base_event_time_column: time.into(),
                                    })
                                    .to_vec(),
                                options: options.clone(),
                                output_uri: out.display().to_string(),
                            })
                            .await
                            .unwrap_or_else(|e| panic!("seed {seed} {options:?}: {e}"));

                        let ctx = SessionContext::new_with_config(crate::tables::session_config());
                        let frame = ctx
                            .read_parquet(
                                format!("{}/", out.display()),
                                ParquetReadOptions::default(),
                            )
                            .await
                            .unwrap();
                        let batches = frame.collect().await.unwrap();
                        let mut got = Vec::new();
                        for b in &batches {
                            let (id, label) = (
                                column::<Int64Array>(b, "id"),
                                column::<Int64Array>(b, "label"),
                            );
                            let (v, v2) = (
                                column::<StringArray>(b, "v"),
                                column::<StringArray>(b, "g.v"),
                            );
                            let text =
                                |a: &StringArray, i| a.is_valid(i).then(|| a.value(i).to_string());
                            for i in 0..b.num_rows() {
                                got.push((id.value(i), label.value(i), text(v, i), text(v2, i)));
                            }
                        }
                        got.sort();
                        matched += got.iter().filter(|g| g.2.is_some()).count();
                        // Per base row, every pair of its matches in the two joins.
                        let mut want = Vec::new();
                        for (label, &(id, t, t2)) in base.iter().enumerate() {
                            let first = reference(&history, &[(id, t)], &options);
                            let second = reference(&history, &[(id, t2)], &options);
                            for (_, _, v) in &first {
                                for (_, _, v2) in &second {
                                    want.push((id, label as i64, v.clone(), v2.clone()));
                                }
                            }
                        }
                        want.sort();
                        assert_eq!(got, want, "seed {seed}, {options:?}");
                        assert_eq!(manifest.row_count, want.len() as u64);
                        assert!(!manifest.feature_groups[0].source_files.is_empty());
                    }
                }
            }
        }
    }
    // Not vacuous: most base rows found features in most builds.
    assert!(matched > 1000, "only {matched} matched rows in all builds");
}

/// Inputs (~100 MB of history, ~30 MB of base rows as Arrow) about eight times the query
/// memory budget (16 MiB): the build spills rather than fails, and is right. The history
/// is written straight into the group's offline layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_larger_than_the_memory_budget_complete() {
    use parquet::arrow::ArrowWriter;

    const IDS: i64 = 20_000;
    const ROWS: i64 = 1_000_000;
    const BASE_ROWS: usize = 400_000;
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), ManualClock::new(T)));
    store.create_feature_group(spec(None, true)).unwrap();
    let group = store.registry().get("g").unwrap();
    let data = store.offline().data_uri(&group);
    let data = std::path::PathBuf::from(data.strip_prefix("file://").unwrap());
    let schema = quiver_offline::parquet::schema(&group);
    let padding = "x".repeat(40);
    let mut rng = StdRng::seed_from_u64(11);
    // Row k: a random identifier, event time T + 250 ms * k (unique), so each hour
    // partition gets 14,400 rows.
    let mut by_id: Vec<Vec<i64>> = vec![Vec::new(); IDS as usize];
    let mut k = 0;
    while k < ROWS {
        let hour_rows = (HOUR / 250).min(ROWS - k);
        let (mut ids, mut ts, mut vs, mut times) = (vec![], vec![], vec![], vec![]);
        for j in k..k + hour_rows {
            let (id, et) = (rng.random_range(0..IDS), T + 250 * j);
            by_id[id as usize].push(et);
            ids.push(id);
            ts.push(et as f64 / 1000.0);
            vs.push(format!("{id}-{et}-{padding}"));
            times.push(et + 1);
        }
        let n = ids.len();
        let stamp = |v: Vec<i64>| {
            Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC")) as ArrayRef
        };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Float64Array::from(ts)),
                Arc::new(StringArray::from(vs)),
                stamp(vec![T + 100 * HOUR; n]),
                stamp(times),
                Arc::new(BooleanArray::from(vec![false; n])),
            ],
        )
        .unwrap();
        let partition = data.join(quiver_offline::layout::partition(T + 250 * k));
        std::fs::create_dir_all(&partition).unwrap();
        let file = std::fs::File::create(partition.join("part.parquet")).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        k += hour_rows;
    }
    // The base: some identifiers with no history, times from before the first row to
    // after the last.
    let span = 250 * ROWS;
    let base: Vec<(i64, i64)> = (0..BASE_ROWS)
        .map(|_| {
            (
                rng.random_range(0..IDS + 1_000),
                T + rng.random_range(-HOUR..span + HOUR),
            )
        })
        .collect();
    let label = "y".repeat(48);
    let base_batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int64Array::from_iter_values(base.iter().map(|b| b.0))) as ArrayRef,
        ),
        (
            "t",
            Arc::new(Float64Array::from_iter_values(
                base.iter().map(|b| b.1 as f64 / 1000.0),
            )),
        ),
        (
            "label",
            Arc::new(StringArray::from_iter_values(
                (0..BASE_ROWS).map(|i| format!("{i}-{label}")),
            )),
        ),
    ])
    .unwrap();
    let base_file = dir.path().join("base.parquet");
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&base_file).unwrap(),
        base_batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&base_batch).unwrap();
    writer.close().unwrap();

    let engine = QueryEngine::new(
        store.clone(),
        &QueryOptions {
            memory_bytes: 16 << 20,
            threads: 2,
            spill_dir: dir.path().join("tmp"),
        },
    )
    .unwrap();
    let out = dir.path().join("out");
    let manifest = engine
        .create_dataset(DatasetRequest {
            base: BaseSource::File(base_file.display().to_string()),
            groups: vec![JoinedGroup {
                name: "g".into(),
                features: vec!["v".into()],
                base_identifier_column: "id".into(),
                base_event_time_column: "t".into(),
            }],
            options: DatasetOptions {
                point_in_time: true,
                most_recent: Some(1),
                ..Default::default()
            },
            output_uri: out.display().to_string(),
        })
        .await
        .unwrap();
    assert_eq!(manifest.row_count, BASE_ROWS as u64);

    let ctx = SessionContext::new_with_config(crate::tables::session_config());
    let batches = ctx
        .read_parquet(format!("{}/", out.display()), ParquetReadOptions::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (mut rows, mut matched) = (0, 0);
    for b in &batches {
        let (id, t) = (
            column::<Int64Array>(b, "id"),
            column::<Float64Array>(b, "t"),
        );
        let v = column::<StringArray>(b, "v");
        for i in 0..b.num_rows() {
            let (id, t) = (id.value(i), (t.value(i) * 1000.0).round() as i64);
            let ets = by_id
                .get(id as usize)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let latest = ets.partition_point(|&et| et <= t).checked_sub(1);
            let want = latest.map(|p| format!("{id}-{}-{padding}", ets[p]));
            let got = v.is_valid(i).then(|| v.value(i).to_string());
            assert_eq!(got, want, "base row ({id}, {t})");
            matched += usize::from(want.is_some());
            rows += 1;
        }
    }
    assert_eq!(rows, BASE_ROWS);
    assert!(matched > BASE_ROWS / 2, "only {matched} rows matched");

    // Floating-point columns are written without a dictionary; others with one.
    let file = manifest
        .files
        .iter()
        .find(|f| f.ends_with(".parquet"))
        .unwrap();
    let path = file.strip_prefix("file://").unwrap_or(file);
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(
        std::fs::File::open(path).unwrap(),
    )
    .unwrap();
    use parquet::file::reader::FileReader;
    let row_group = reader.metadata().row_group(0);
    let dictionary = |name: &str| {
        let chunk = row_group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap();
        chunk.dictionary_page_offset().is_some()
    };
    assert!(!dictionary("t"), "float column t written with a dictionary");
    assert!(
        dictionary("id"),
        "integer column id written without a dictionary"
    );
}
