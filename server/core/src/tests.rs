//! Tests of the feature store's operations against a real RocksDB in a temporary directory.

use quiver_storage::online::WriteOutcome;
use quiver_storage::online::store::DeletionMode;
use quiver_storage::staging;
use quiver_types::model::Value;
use quiver_types::time::ManualClock;

use crate::testing::{add_integral_feature, open, put, spec};
use crate::*;

const START_MS: i64 = 1_700_000_000_000;

/// A record validated against a group that is deleted (and created again under the same
/// name) before the write is refused, and writes nothing; one validated before the group
/// gained a feature is still written.
#[test]
fn validated_puts_are_checked_against_the_current_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ManualClock::new(START_MS));
    store.create_feature_group(spec(None, false)).unwrap();

    let (group, request) = put(1, START_MS);
    let before_update = store.validate_put(&group, request).unwrap();
    add_integral_feature(&store, "extra");
    let outcomes = store.write_validated_each(vec![Ok(before_update)]).unwrap();
    assert!(
        matches!(outcomes[..], [Ok(WriteOutcome::Applied)]),
        "{outcomes:?}"
    );

    let (group, request) = put(2, START_MS);
    let stale = store.validate_put(&group, request).unwrap();
    store.delete_feature_group("g").unwrap();
    store.create_feature_group(spec(None, false)).unwrap();
    let outcomes = store.write_validated_each(vec![Ok(stale)]).unwrap();
    let err = outcomes[0].clone().unwrap_err();
    assert_eq!(err.kind(), quiver_types::error::ErrorKind::NotFound);
    assert!(err.message().contains("was deleted"), "{err}");
    assert_eq!(store.get_record("g", "2", &[]).unwrap(), None);
}

fn source_record(partition: &str, position: u64, id: i64, event_time_ms: i64) -> SourceRecord {
    let (group, request) = put(id, event_time_ms);
    SourceRecord {
        partition: partition.into(),
        position: position.to_string(),
        values: SourceValues::Record { group, request },
    }
}

/// Source records are written once: a retried or replayed batch is skipped up to the stored
/// position, records past it are written, invalid ones refused alone, and positions (also
/// those of messages with no record) never move back. A store reopened after the write
/// has both the records and the positions: they were one write.
#[test]
fn source_records_are_written_once_with_their_positions() {
    let dir = tempfile::tempdir().unwrap();
    let staged = {
        let store = open(dir.path(), ManualClock::new(START_MS));
        store.create_feature_group(spec(None, true)).unwrap();
        let first = vec![
            source_record("t/0", 10, 1, START_MS),
            source_record("t/0", 11, 2, START_MS),
            source_record("t/1", 5, 1, START_MS + 1000),
        ];
        let written = store
            .put_source_records(
                "orders",
                first.clone(),
                vec![("t/2".into(), "7".into())],
                None,
            )
            .unwrap();
        assert!(
            written
                .results
                .iter()
                .all(|r| matches!(r, SourceRecordResult::Written(_))),
            "{:?}",
            written.results
        );
        let positions = |w: &SourceWrite| {
            let mut p: Vec<(String, String)> = w
                .positions
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            p.sort();
            p
        };
        let want = vec![
            ("t/0".to_string(), "11".to_string()),
            ("t/1".to_string(), "5".to_string()),
            ("t/2".to_string(), "7".to_string()),
        ];
        assert_eq!(positions(&written), want);

        // The same batch again (a retry after a lost answer): nothing is written twice.
        let again = store
            .put_source_records("orders", first, vec![], None)
            .unwrap();
        assert!(
            again
                .results
                .iter()
                .all(|r| matches!(r, SourceRecordResult::AlreadyApplied)),
            "{:?}",
            again.results
        );
        // Overlapping: 11 was applied, 12 is new; an invalid record is refused alone; a
        // lower explicit position does not move the stored one back.
        let mut bad = source_record("t/0", 13, 3, START_MS);
        if let SourceValues::Record { request, .. } = &mut bad.values {
            request.record[2].1 = Value::Integral(5);
        }
        let next = store
            .put_source_records(
                "orders",
                vec![
                    source_record("t/0", 11, 2, START_MS),
                    source_record("t/0", 12, 2, START_MS + 5000),
                    bad,
                ],
                vec![("t/2".into(), "3".into())],
                None,
            )
            .unwrap();
        assert!(matches!(
            next.results[0],
            SourceRecordResult::AlreadyApplied
        ));
        assert!(matches!(
            next.results[1],
            SourceRecordResult::Written(WriteOutcome::Applied)
        ));
        let SourceRecordResult::Refused(e) = &next.results[2] else {
            panic!("{:?}", next.results[2]);
        };
        assert!(e.message().contains("Records[2]"), "{e}");
        assert!(e.message().contains('v'), "{e}");
        // Other sources are independent.
        assert!(store.source_positions("other").unwrap().is_empty());
        store.online().staging().pending_rows()
    };
    // Reopened: the records and positions are there, and the offline staging area holds
    // each written record once (three, then one more).
    let store = open(dir.path(), ManualClock::new(START_MS));
    let mut positions: Vec<(String, String)> = store
        .source_positions("orders")
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    positions.sort();
    assert_eq!(
        positions,
        vec![
            ("t/0".to_string(), "13".to_string()),
            ("t/1".to_string(), "5".to_string()),
            ("t/2".to_string(), "7".to_string()),
        ]
    );
    assert_eq!(staged, 4);
    let record = store.get_record("g", "2", &[]).unwrap().unwrap();
    let ts = record.values().unwrap();
    assert!(ts.contains(&(
        "ts".into(),
        Value::Fractional((START_MS + 5000) as f64 / 1000.0)
    )));
}

/// Records in the shared form (group and features named once per call) are written as
/// the named form writes them, each checked alone: a value for an unknown feature, a value
/// of the wrong type or a missing identifier refuses that record only, naming it.
#[test]
fn shared_form_source_records_are_checked_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ManualClock::new(START_MS));
    store.create_feature_group(spec(None, true)).unwrap();
    let shared = |features: &[&str]| SharedFeatures {
        group: "g".into(),
        features: features.iter().map(|f| f.to_string()).collect(),
    };
    let record = |position: u64, values: Vec<Option<Value>>| SourceRecord {
        partition: "t/0".into(),
        position: position.to_string(),
        values: SourceValues::Shared(values),
    };
    let ts = |ms: i64| Some(Value::Fractional(ms as f64 / 1000.0));
    let written = store
        .put_source_records(
            "s",
            vec![
                record(1, vec![Some(Value::Integral(1)), ts(START_MS), None, None]),
                record(
                    2,
                    vec![
                        Some(Value::Integral(2)),
                        ts(START_MS),
                        Some(Value::String("b".into())),
                        None,
                    ],
                ),
                record(3, vec![Some(Value::Integral(3)), ts(START_MS), None, ts(1)]),
                record(
                    4,
                    vec![
                        Some(Value::Integral(4)),
                        ts(START_MS),
                        Some(Value::Integral(7)),
                        None,
                    ],
                ),
                record(5, vec![None, ts(START_MS), None, None]),
                record(6, vec![Some(Value::Integral(6)), ts(START_MS)]),
            ],
            vec![],
            Some(shared(&["id", "ts", "v", "nope"])),
        )
        .unwrap();
    let refused = |k: usize| match &written.results[k] {
        SourceRecordResult::Refused(e) => e.message().to_string(),
        other => panic!("record {k}: {other:?}"),
    };
    assert!(matches!(
        written.results[0],
        SourceRecordResult::Written(WriteOutcome::Applied)
    ));
    assert!(matches!(
        written.results[1],
        SourceRecordResult::Written(WriteOutcome::Applied)
    ));
    let e = refused(2);
    assert!(e.contains("Records[2]") && e.contains("'nope'"), "{e}");
    let e = refused(3);
    assert!(e.contains("Records[3]") && e.contains("'v'"), "{e}");
    let e = refused(4);
    assert!(e.contains("record identifier"), "{e}");
    let e = refused(5);
    assert!(e.contains("2 values for 4 FeatureNames"), "{e}");
    let two = store.get_record("g", "2", &[]).unwrap().unwrap();
    assert!(
        two.values()
            .unwrap()
            .contains(&("v".into(), Value::String("b".into())))
    );
    assert!(store.get_record("g", "1", &[]).unwrap().is_some());
    assert!(store.get_record("g", "3", &[]).unwrap().is_none());
    assert_eq!(store.online().staging().pending_rows(), 2);

    // Shared records need the shared features; a missing group refuses each record.
    let written = store
        .put_source_records("s", vec![record(7, vec![None])], vec![], None)
        .unwrap();
    let e = refused_message(&written.results[0]);
    assert!(e.contains("FeatureGroupName and FeatureNames"), "{e}");
    let mut missing = shared(&["id"]);
    missing.group = "absent".into();
    let written = store
        .put_source_records("s", vec![record(8, vec![None])], vec![], Some(missing))
        .unwrap();
    let e = refused_message(&written.results[0]);
    assert!(e.contains("Records[0]") && e.contains("absent"), "{e}");
}

fn refused_message(result: &SourceRecordResult) -> String {
    match result {
        SourceRecordResult::Refused(e) => e.message().to_string(),
        other => panic!("{other:?}"),
    }
}

/// Malformed source writes are refused whole, naming the field.
#[test]
fn malformed_source_writes_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ManualClock::new(START_MS));
    store.create_feature_group(spec(None, false)).unwrap();
    let err = |source: &str, records: Vec<SourceRecord>, positions: Vec<(String, String)>| {
        store
            .put_source_records(source, records, positions, None)
            .unwrap_err()
            .message()
            .to_string()
    };
    assert!(err("", vec![], vec![]).contains("Source"));
    let mut r = source_record("t/0", 1, 1, START_MS);
    r.position = "-4".into();
    let e = err("s", vec![r], vec![]);
    assert!(e.contains("Records[0]: Position '-4'"), "{e}");
    let e = err(
        "s",
        vec![
            source_record("t/0", 5, 1, START_MS),
            source_record("t/0", 5, 2, START_MS),
        ],
        vec![],
    );
    assert!(
        e.contains("Records[1].Position") && e.contains("source order"),
        "{e}"
    );
    let e = err("s", vec![], vec![("".into(), "1".into())]);
    assert!(
        e.contains("Positions[0]: Partition must not be empty"),
        "{e}"
    );
    // Nothing was stored by the refused calls.
    assert!(store.source_positions("s").unwrap().is_empty());
    assert_eq!(store.get_record("g", "1", &[]).unwrap(), None);
}

#[test]
fn ttl_is_enforced_at_read_time_and_purged_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let store = open(dir.path(), clock.clone());
    store.create_feature_group(spec(Some(60), false)).unwrap();
    store
        .put_records(vec![put(1, START_MS), put(2, START_MS + 30_000)])
        .unwrap();

    let view = store.get_record("g", "1", &[]).unwrap().unwrap();
    assert_eq!(view.expires_at_ms, Some(START_MS + 60_000));
    clock.advance_ms(60_000);
    assert_eq!(
        store.get_record("g", "1", &[]).unwrap(),
        None,
        "expired exactly at event time + TTL"
    );
    assert!(store.get_record("g", "2", &[]).unwrap().is_some());

    // Not yet purged from disk, but never returned; the purge removes exactly the expired one.
    assert_eq!(store.online().purge_expired().unwrap(), 1);
    assert_eq!(store.online().purge_expired().unwrap(), 0);
    clock.advance_ms(30_000);
    assert_eq!(store.online().purge_expired().unwrap(), 1);
}

#[test]
fn record_headers_are_filled_at_open_for_a_database_written_without_them() {
    use quiver_storage::db::{CF_RECORD_HEADERS, cf};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    {
        let store = open(dir.path(), clock.clone());
        store.create_feature_group(spec(Some(60), false)).unwrap();
        store
            .put_records(vec![put(1, START_MS), put(2, START_MS)])
            .unwrap();
        // As a database from before the column family: records, no headers, no mark.
        let db = store.online().db();
        let headers = cf(db, CF_RECORD_HEADERS);
        let keys: Vec<Box<[u8]>> = db
            .iterator_cf(headers, rocksdb::IteratorMode::Start)
            .map(|item| item.unwrap().0)
            .collect();
        assert_eq!(keys.len(), 3, "two headers and the completion mark");
        for key in keys {
            db.delete_cf(headers, key).unwrap();
        }
    }
    let store = open(dir.path(), clock.clone());
    // The filled headers make an older write historic, and a newer one applied.
    assert_eq!(
        store
            .put_records(vec![put(1, START_MS - 1000), put(2, START_MS + 1000)])
            .unwrap(),
        vec![WriteOutcome::Historic, WriteOutcome::Applied]
    );
    // The TTL purge scans the headers: record 1 expires, record 2 (rewritten) later.
    clock.advance_ms(60_000);
    assert_eq!(store.online().purge_expired().unwrap(), 1);
    // A hard delete removes the header too: an older put is then applied.
    store
        .delete_record("g", "2", "1700000002", &[], DeletionMode::Hard)
        .unwrap();
    assert_eq!(
        store.put_records(vec![put(2, START_MS - 5000)]).unwrap(),
        vec![WriteOutcome::Applied]
    );
}

#[test]
fn every_accepted_write_is_staged_for_the_offline_store_in_the_same_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ManualClock::new(START_MS));
    store.create_feature_group(spec(None, true)).unwrap();
    let outcomes = store
        .put_records(vec![put(1, START_MS), put(1, START_MS - 1000)])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![WriteOutcome::Applied, WriteOutcome::Historic]
    );
    store
        .delete_record("g", "1", "1700000001", &[], DeletionMode::Soft)
        .unwrap();
    store
        .delete_record("g", "1", "1700000002", &[], DeletionMode::Hard)
        .unwrap();
    store.put_records(vec![put(1, START_MS + 5000)]).unwrap();
    // A rejected write stages nothing.
    let rejected = store.delete_record("g", "1", "1600000000", &[], DeletionMode::Hard);
    assert_eq!(
        rejected.unwrap_err().kind(),
        quiver_types::error::ErrorKind::Conflict
    );
    let rows = staging::read_all(store.online().db(), store.online().data_keys()).unwrap();
    let summary: Vec<(bool, i64)> = rows
        .iter()
        .map(|(_, r)| (r.is_deleted, r.event_time_ms))
        .collect();
    assert_eq!(
        summary,
        vec![
            (false, START_MS),
            (false, START_MS - 1000),
            (true, START_MS + 1000),
            (true, START_MS + 2000),
            (false, START_MS + 5000),
        ]
    );
    let sequences: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
    assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
    // The marker holds the identifier and the delete's event time, typed as the group says.
    assert_eq!(
        rows[2].1.values,
        vec![
            (0, Value::Integral(1)),
            (1, Value::Fractional(1_700_000_001.0))
        ]
    );
}

#[test]
fn staging_sequence_and_registry_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), ManualClock::new(START_MS));
        store.create_feature_group(spec(None, true)).unwrap();
        store.put_records(vec![put(1, START_MS)]).unwrap();
    }
    let store = open(dir.path(), ManualClock::new(START_MS));
    store.put_records(vec![put(2, START_MS)]).unwrap();
    let sequences: Vec<u64> = staging::read_all(store.online().db(), store.online().data_keys())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(sequences, vec![0, 1]);
    assert_eq!(store.describe_feature_group("g").unwrap().id, 1);
}

#[test]
fn a_registry_from_a_newer_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), ManualClock::new(START_MS));
        let db = store.online().db();
        db.put_cf(
            quiver_storage::db::cf(db, quiver_storage::db::CF_REGISTRY),
            b"meta/format_version",
            b"99",
        )
        .unwrap();
    }
    let err = FeatureStore::open(
        &crate::testing::options(dir.path()),
        ManualClock::new(0),
        crate::testing::local_keys(dir.path()),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("newer than this server's"),
        "{err}"
    );
}

/// With encryption at rest, online keys are keyed hashes of the identifiers, never the
/// identifiers: a data dir written without it is moved to hashed keys when the server opens
/// with it, and back when it opens without; every operation keeps working each way.
#[test]
fn identifiers_are_hashed_at_rest_and_a_data_dir_moves_both_ways() {
    use crate::testing::{open_with, options};
    use quiver_storage::db::{CF_RECORD_HEADERS, CF_RECORDS, cf};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let encrypted = || {
        let mut options = options(dir.path());
        options.default_key_id = Some("local/default".into());
        open_with(clock.clone(), options)
    };
    // The identifiers each column family's keys hold, or None for a key that holds none.
    let stored_keys = |store: &FeatureStore| -> Vec<Vec<Option<String>>> {
        let db = store.online().db();
        [CF_RECORDS, CF_RECORD_HEADERS]
            .iter()
            .map(|name| {
                let mut scan = rocksdb::ReadOptions::default();
                scan.set_total_order_seek(true);
                db.iterator_cf_opt(cf(db, name), scan, rocksdb::IteratorMode::Start)
                    .map(|item| item.unwrap().0)
                    .filter(|key| key.len() > 8)
                    .map(|key| match key.len() {
                        40 => None,
                        _ => Some(String::from_utf8(key[8..].to_vec()).unwrap()),
                    })
                    .collect()
            })
            .collect()
    };
    let listed = |store: &FeatureStore, include_deleted: bool| -> Vec<String> {
        // Two at a time, as a client pages.
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = store
                .list_record_identifiers("g", after.as_deref(), 2, include_deleted)
                .unwrap();
            all.extend(page.iter().cloned());
            after = page.last().cloned();
            if !more {
                break;
            }
        }
        all.sort_by_key(|id| id.parse::<i64>().unwrap());
        all
    };
    let value = |store: &FeatureStore, id: &str| -> Option<Value> {
        store.get_record("g", id, &[]).unwrap().map(|record| {
            record
                .values()
                .unwrap()
                .into_iter()
                .find(|(name, _)| name == "v")
                .unwrap()
                .1
        })
    };
    let ids = |range: std::ops::RangeInclusive<i64>| -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    };

    // Without encryption: identifiers are the keys.
    {
        let store = open(dir.path(), clock.clone());
        store.create_feature_group(spec(None, false)).unwrap();
        store
            .put_records((1..=9).map(|i| put(i, START_MS)).collect())
            .unwrap();
        store
            .delete_record("g", "7", "1700000001", &[], DeletionMode::Soft)
            .unwrap();
        let keys = stored_keys(&store);
        assert_eq!(keys[0].len(), 9);
        assert!(keys.iter().flatten().all(Option::is_some), "{keys:?}");
    }

    // Opened with encryption: every record moves to a hashed key.
    {
        let store = encrypted();
        let keys = stored_keys(&store);
        assert_eq!(keys[0].len(), 9);
        assert!(keys.iter().flatten().all(Option::is_none), "{keys:?}");
        assert_eq!(value(&store, "3"), Some(Value::String("v3".into())));
        assert_eq!(value(&store, "7"), None, "still soft-deleted");
        assert_eq!(value(&store, "10"), None);
        let mut expected = ids(1..=9);
        assert_eq!(listed(&store, true), expected);
        expected.retain(|id| id != "7");
        assert_eq!(listed(&store, false), expected);
        // Writes find the moved records: an older put is historic, a newer one applied.
        assert_eq!(
            store
                .put_records(vec![
                    put(3, START_MS - 1),
                    put(4, START_MS + 1),
                    put(10, START_MS)
                ])
                .unwrap(),
            vec![
                WriteOutcome::Historic,
                WriteOutcome::Applied,
                WriteOutcome::Applied
            ]
        );
        let batch = store
            .batch_get_record(&[BatchGetEntry {
                group_name: "g".into(),
                identifiers: vec!["4".into(), "10".into(), "11".into()],
                feature_names: vec![],
            }])
            .unwrap();
        let found: Vec<bool> = batch
            .iter()
            .map(|item| matches!(item, BatchGetItem::Found { .. }))
            .collect();
        assert_eq!(found, vec![true, true, false]);
        store
            .delete_record("g", "2", "1700000002", &[], DeletionMode::Hard)
            .unwrap();
        assert_eq!(value(&store, "2"), None);
        assert_eq!(stored_keys(&store)[0].len(), 9);
        assert!(stored_keys(&store).iter().flatten().all(Option::is_none));
    }

    // Reopened with encryption: nothing to move, the same keys.
    {
        let store = encrypted();
        assert_eq!(value(&store, "10"), Some(Value::String("v10".into())));
    }

    // Opened without encryption again: the identifiers are the keys again; records still read.
    {
        let store = open(dir.path(), clock.clone());
        let keys = stored_keys(&store);
        assert!(keys.iter().flatten().all(Option::is_some), "{keys:?}");
        assert_eq!(value(&store, "4"), Some(Value::String("v4".into())));
        assert_eq!(value(&store, "10"), Some(Value::String("v10".into())));
        let mut expected = ids(1..=10);
        expected.retain(|id| id != "2");
        assert_eq!(listed(&store, true), expected);
        store.put_records(vec![put(11, START_MS)]).unwrap();
    }

    // And with encryption once more, under a new identifier key.
    let store = encrypted();
    assert!(stored_keys(&store).iter().flatten().all(Option::is_none));
    assert_eq!(value(&store, "11"), Some(Value::String("v11".into())));
    assert_eq!(listed(&store, false).len(), 9);
}
