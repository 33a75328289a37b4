//! The offline flusher driven through the feature store: a flush interrupted as a crash would,
//! the size limit, and rows of deleted groups.

use std::sync::Arc;

use quiver_offline::flusher::{Flusher, next_intent};

use crate::testing::{open, put, spec};
use quiver_types::time::ManualClock;

fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn rows_in(files: &[std::path::PathBuf]) -> usize {
    files
        .iter()
        .map(|f| {
            let reader =
                ::parquet::file::reader::SerializedFileReader::new(std::fs::File::open(f).unwrap())
                    .unwrap();
            ::parquet::file::reader::FileReader::metadata(&reader)
                .file_metadata()
                .num_rows() as usize
        })
        .sum()
}

#[tokio::test]
async fn a_flush_interrupted_after_its_files_are_written_is_redone_without_copies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Arc::new(open(dir.path(), clock.clone()));
    store.create_feature_group(spec(None, true)).unwrap();
    // Two hours of event time: two files per flush.
    let t = 1_700_000_000_000;
    store
        .put_records((0..10).map(|id| put(id, t + id * 600_000)).collect())
        .unwrap();

    // Crash 1: the intent is recorded and every file written, but the rows never leave
    // staging.
    let flusher = Flusher::new(store.flush_sources()).await;
    let (intent, rows) = next_intent(&store.flush_sources(), true)
        .unwrap()
        .expect("rows are staged");
    flusher.upload(&intent, rows).await.unwrap();
    let written = parquet_files(dir.path());
    assert_eq!(written.len(), 2, "{written:?}");
    assert_eq!(rows_in(&written), 10);
    drop(flusher);
    let store = Arc::into_inner(store).expect("one owner");
    drop(store);

    // The restarted server redoes exactly that flush: same rows, same names.
    let store = Arc::new(open(dir.path(), clock.clone()));
    assert_eq!(store.online().staging().pending_rows(), 10);
    store.put_records(vec![put(99, t)]).unwrap();
    let mut flusher = Flusher::new(store.flush_sources()).await;
    let redone = flusher
        .flush(false)
        .await
        .unwrap()
        .expect("the intent is redone");
    assert_eq!(redone, 10, "only the interrupted range, not the new row");
    assert_eq!(
        parquet_files(dir.path()),
        written,
        "the same objects, overwritten"
    );
    assert_eq!(store.online().staging().pending_rows(), 1);

    // The row accepted after the restart gets a flush (and file names) of its own.
    let next = flusher.flush(true).await.unwrap().expect("the new row");
    assert_eq!(next, 1);
    let files = parquet_files(dir.path());
    assert_eq!(files.len(), 3);
    assert_eq!(rows_in(&files), 11, "every row once");
    assert_eq!(store.online().staging().pending_rows(), 0);
}

#[tokio::test]
async fn flushes_fill_files_up_to_the_size_limit_and_no_further() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::testing::options(dir.path());
    options.offline.max_file_bytes = 1024 * 1024;
    let store = Arc::new(crate::testing::open_with(
        ManualClock::new(1_700_000_000_000),
        options,
    ));
    store.create_feature_group(spec(None, true)).unwrap();
    // ~2.6 MB of staged rows in one hour partition: three flushes of at most 1 MiB.
    let t = 1_700_000_000_000;
    let padding = "x".repeat(240);
    for chunk in 0..10 {
        let records = (0..1_000)
            .map(|n| {
                let id = chunk * 1_000 + n;
                let (g, mut p) = put(id, t + id);
                p.record[2].1 = quiver_types::model::Value::String(format!("{id}{padding}"));
                (g, p)
            })
            .collect();
        store.put_records(records).unwrap();
    }
    let mut flusher = Flusher::new(store.flush_sources()).await;
    let mut flushes = 0;
    while flusher.flush(true).await.unwrap().is_some() {
        flushes += 1;
    }
    let files = parquet_files(dir.path());
    assert_eq!(rows_in(&files), 10_000);
    assert_eq!(
        files.len(),
        flushes,
        "one file per flush: a flush never reads past the size at which it splits files"
    );
    assert!((3..=4).contains(&flushes), "{flushes} flushes");
}

#[tokio::test]
async fn rows_accepted_before_a_group_is_deleted_are_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), ManualClock::new(1_700_000_000_000)));
    let group_id = store.create_feature_group(spec(None, true)).unwrap().id;
    store
        .put_records((0..5).map(|id| put(id, 1_700_000_000_000)).collect())
        .unwrap();
    store.delete_feature_group("g").unwrap();
    assert!(
        store.registry().by_id(group_id).is_some(),
        "kept while its rows are staged"
    );

    let mut flusher = Flusher::new(store.flush_sources()).await;
    assert_eq!(flusher.flush(true).await.unwrap(), Some(5));
    assert_eq!(rows_in(&parquet_files(dir.path())), 5);
    assert!(
        store.registry().by_id(group_id).is_none(),
        "forgotten once its rows are written"
    );
}
