//! Queries and training datasets see every acknowledged write, and datasets give what the
//! SageMaker SDK's DatasetBuilder gives over the same offline data.
//!
//! - SQL, `latest.*`, Flight SQL and datasets see rows the moment they are acknowledged (from
//!   staging) and every file written since the server started (no cached listing);
//! - the DatasetBuilder's rules for deletes and ties, on the cases that differed;
//! - values as sent: a delete marker's event time, a base file's text columns;
//! - row-for-row parity with the SDK's generated SQL, run in DuckDB over Quiver's files
//!   (`tests/python/dataset_builder_parity.py`), for many option sets.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use quiver_client::{Client, pb, value};
use quiver_tests::aws::python;
use quiver_tests::{TestServer, fdef, put};

/// A group with an offline store: `id` (String), `ts` (String ISO-8601 or Fractional epoch
/// seconds), `v` (Integral).
fn group(name: &str, string_time: bool) -> pb::CreateFeatureGroupRequest {
    let time_type = if string_time {
        pb::FeatureType::String
    } else {
        pb::FeatureType::Fractional
    };
    pb::CreateFeatureGroupRequest {
        feature_group_name: name.into(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions: vec![
            fdef("id", pb::FeatureType::String),
            fdef("ts", time_type),
            fdef("v", pb::FeatureType::Integral),
        ],
        online_store_config: Some(pb::OnlineStoreConfig {
            enable_online_store: true,
            ..Default::default()
        }),
        offline_store_config: Some(pb::OfflineStoreConfig::default()),
        ..Default::default()
    }
}

/// 2026-01-01T00:00:00Z.
const JAN_1: i64 = 1_767_225_600;

/// An event time `seconds` after 2026-01-01, as the group's type spells it.
fn event_time(string_time: bool, seconds: i64) -> String {
    if string_time {
        chrono::DateTime::from_timestamp(JAN_1 + seconds, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    } else {
        format!("{}", JAN_1 + seconds)
    }
}

async fn put_v(client: &Client, group: &str, id: &str, ts: &str, v: i64) {
    let time = if ts.contains('T') {
        value::string("ts", ts)
    } else {
        value::fractional("ts", ts.parse().unwrap())
    };
    client
        .put_record(put(
            group,
            vec![value::string("id", id), time, value::integral("v", v)],
        ))
        .await
        .unwrap_or_else(|e| panic!("put {group}/{id}@{ts}: {e}"));
}

async fn delete(client: &Client, group: &str, id: &str, ts: &str) {
    client
        .delete_record(pb::DeleteRecordRequest {
            feature_group_name: group.into(),
            record_identifier_value_as_string: id.into(),
            event_time: ts.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("delete {group}/{id}@{ts}: {e}"));
}

async fn count(client: &Client, sql: &str) -> i64 {
    let (_, batches) = client
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// Waits until `sql` (a count) answers `want`, or panics after 30 s.
async fn count_until(client: &Client, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count(client, sql).await;
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {n}, expected {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `quiver dataset create` joining `group` (`NAME:features`) to the base file `base` (columns
/// `id` and `event_time`) into `out`, with `options`.
fn create_dataset(
    server: &TestServer,
    base: &Path,
    event_time: &str,
    group: &str,
    out: &Path,
    options: &[&str],
) {
    let mut args = vec![
        "dataset",
        "create",
        "--base-file",
        base.to_str().unwrap(),
        "--record-id",
        "id",
        "--event-time",
        event_time,
        "--group",
        group,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(options);
    server.cli(&args);
}

/// Every batch of the Parquet files in `dir`.
fn read_dir(dir: &Path) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(&path).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            batches.extend(reader.map(Result::unwrap));
        }
    }
    batches
}

/// (label, v) of every row of a dataset with an Int64 `label` and `v`.
fn labels_and_values(batches: &[RecordBatch]) -> Vec<(i64, Option<i64>)> {
    let mut rows = Vec::new();
    for b in batches {
        let label = b
            .column_by_name("label")
            .unwrap()
            .as_primitive::<Int64Type>();
        let v = b.column_by_name("v").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            rows.push((label.value(i), v.is_valid(i).then(|| v.value(i))));
        }
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn queries_see_rows_as_soon_as_they_are_acknowledged_and_every_file_written_since() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--offline-flush-interval-ms", "200"],
    )
    .await;
    let client = server.client().await;
    client.create_feature_group(group("g", true)).await.unwrap();
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        put_v(&client, "g", id, &event_time(true, i as i64), 1).await;
    }
    // Acknowledged: counted at once, whether or not the flush has written them yet.
    assert_eq!(count(&client, "SELECT count(*) AS c FROM g").await, 3);
    count_until(&client, "SELECT count(write_time) FROM g", 3).await;
    assert_eq!(count(&client, "SELECT count(*) AS c FROM g").await, 3);

    // Four more: counted at once, and still once each when their files are written (a
    // listing kept from the first queries would miss those files).
    for (i, id) in ["d", "e", "f", "g"].iter().enumerate() {
        put_v(
            &client,
            "g",
            id,
            &event_time(true, 3_600 * (i as i64 + 1)),
            2,
        )
        .await;
    }
    assert_eq!(count(&client, "SELECT count(*) AS c FROM g").await, 7);
    count_until(&client, "SELECT count(write_time) FROM g", 7).await;
    assert_eq!(count(&client, "SELECT count(*) AS c FROM g").await, 7);
    assert_eq!(count(&client, "SELECT count(*) FROM latest.g").await, 7);
    // Under writes and flushes, every acknowledged row is counted once: no row is missed or
    // counted twice while its flush completes.
    for round in 0..20_i64 {
        put_v(
            &client,
            "g",
            &format!("r{round}"),
            &event_time(true, round),
            3,
        )
        .await;
        assert_eq!(
            count(&client, "SELECT count(*) FROM g").await,
            8 + round,
            "after write {round}"
        );
        tokio::time::sleep(Duration::from_millis(37)).await;
    }

    // Flight SQL, from the ADBC driver.
    let address = server.flight_sql.to_string();
    let result = tokio::task::spawn_blocking(move || {
        python("flight_sql.py", &[&address, "SELECT count(*) AS c FROM g"])
    })
    .await
    .unwrap();
    assert_eq!(result["rows"], serde_json::json!([[27]]));
    server.stop().await;

    // On the default policy (a file per partition every 5 minutes) nothing is in a file yet,
    // and queries and datasets see every row all the same.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(&dir.path().join("data"), &[]).await;
    let client = server.client().await;
    client
        .create_feature_group(group("g", false))
        .await
        .unwrap();
    for i in 0..5 {
        put_v(&client, "g", &format!("k{i}"), &event_time(false, i), i).await;
    }
    assert_eq!(count(&client, "SELECT count(*) FROM g").await, 5);
    assert_eq!(
        count(&client, "SELECT count(write_time) FROM g").await,
        0,
        "not written yet: no write_time"
    );
    assert_eq!(count(&client, "SELECT count(*) FROM latest.g").await, 5);
    // Event-time predicates over staged rows.
    assert_eq!(
        count(
            &client,
            &format!("SELECT count(*) FROM g WHERE ts >= {}", JAN_1 + 2)
        )
        .await,
        3
    );
    let base = dir.path().join("base.csv");
    std::fs::write(
        &base,
        format!("id,t,label\nk1,{},1\nk4,{},4\n", JAN_1 + 10, JAN_1 + 10),
    )
    .unwrap();
    let out = dir.path().join("out");
    create_dataset(&server, &base, "t", "g:v", &out, &["--point-in-time"]);
    assert_eq!(
        labels_and_values(&read_dir(&out)),
        [(1, Some(1)), (4, Some(4))]
    );
    server.stop().await;
}

#[tokio::test]
async fn datasets_apply_deletes_and_ties_as_the_sagemaker_sdk_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(&dir.path().join("data"), &[]).await;
    let client = server.client().await;
    client.create_feature_group(group("g", true)).await.unwrap();
    // x at 01-01 (v=1); deleted at 01-05; written again at 01-05 (v=5), a moment later.
    put_v(&client, "g", "x", "2026-01-01T00:00:00Z", 1).await;
    delete(&client, "g", "x", "2026-01-05T00:00:00Z").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    put_v(&client, "g", "x", "2026-01-05T00:00:00Z", 5).await;

    // The delete marker keeps the event time as it was sent, as the puts do.
    let (_, spelled) = client
        .query("SELECT DISTINCT ts FROM g WHERE ts LIKE '2026-01-05%'")
        .await
        .unwrap();
    let spelled: Vec<String> = spelled
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_string::<i32>();
            (0..c.len())
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(spelled, ["2026-01-05T00:00:00Z"]);

    // The base's times are ISO-8601 text; they stay text in the output.
    let base = dir.path().join("base.csv");
    std::fs::write(
        &base,
        "id,at,label\nx,2026-01-03T00:00:00Z,3\nx,2026-01-06T00:00:00Z,6\n",
    )
    .unwrap();
    let build = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let options = [&["--point-in-time", "--most-recent", "1"], extra].concat();
        create_dataset(&server, &base, "at", "g:v", &out, &options);
        read_dir(&out)
    };
    // The latest delete (01-05) hides the 01-01 row; the 01-05 write, after the delete, stays.
    let plain = build("plain", &[]);
    assert_eq!(labels_and_values(&plain), [(3, None), (6, Some(5))]);
    let at = plain[0].column_by_name("at").unwrap();
    assert_eq!(at.data_type(), &DataType::Utf8, "base text stays text");
    let mut texts: Vec<&str> = plain
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("at").unwrap().as_string::<i32>();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        })
        .collect();
    texts.sort();
    assert_eq!(texts, ["2026-01-03T00:00:00Z", "2026-01-06T00:00:00Z"]);
    // With duplicates included, the same.
    assert_eq!(
        labels_and_values(&build("duplicates", &["--include-duplicates"])),
        [(3, None), (6, Some(5))]
    );
    // With deleted records included, the deleted row is seen again (the marker never is).
    assert_eq!(
        labels_and_values(&build("deleted", &["--include-deleted"])),
        [(3, Some(1)), (6, Some(5))]
    );
    server.stop().await;
}

/// One case of the parity test: its name and `quiver dataset create` options, with the same
/// options as the SDK takes them.
struct Case {
    name: &'static str,
    args: Vec<String>,
    options: serde_json::Value,
}

#[tokio::test]
async fn datasets_match_the_sagemaker_sdk_dataset_builder_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &["--offline-flush-interval-ms", "100"]).await;
    let client = server.client().await;

    // Two groups, one with ISO-8601 event times and one with epoch seconds, and the same
    // history in each: writes over 8 hours (8 partitions) for 6 identifiers, rewrites of an
    // (identifier, event time), deletes, late writes; some written after `as_of`.
    let groups = [("iso", true), ("epoch", false)];
    for (name, string_time) in groups {
        client
            .create_feature_group(group(name, string_time))
            .await
            .unwrap();
    }
    let mut seed = 7_u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut ops = Vec::new();
    for i in 0..90 {
        let id = format!("c{}", next(6));
        let at = next(16) as i64 * 1_800;
        let op = match next(100) {
            0..15 => None,
            _ => Some(i),
        };
        ops.push((id.clone(), at, op));
        // Half the deletes are followed by a write at the same event time (a tie the delete
        // loses on api_invocation_time).
        if op.is_none() && next(2) == 0 {
            ops.push((id, at, Some(1_000 + i)));
        }
    }
    let mut as_of = 0;
    for (k, (id, at, op)) in ops.iter().enumerate() {
        for (name, string_time) in groups {
            let ts = event_time(string_time, *at);
            match op {
                None => delete(&client, name, id, &ts).await,
                Some(v) => put_v(&client, name, id, &ts, *v).await,
            }
        }
        // Distinct api_invocation_times: the order of writes decides ties.
        tokio::time::sleep(Duration::from_millis(3)).await;
        if k == 64 {
            // Everything so far is written; `as_of` is a whole second after it (the SDK
            // truncates it to seconds), and the rest is written after that.
            for (name, _) in groups {
                count_until(
                    &client,
                    &format!("SELECT count(*) - count(write_time) FROM {name}"),
                    0,
                )
                .await;
            }
            let now = chrono::Utc::now().timestamp_millis();
            as_of = now / 1000 + 1;
            tokio::time::sleep(Duration::from_millis((as_of * 1000 - now + 200) as u64)).await;
        }
    }
    for (name, _) in groups {
        count_until(
            &client,
            &format!("SELECT count(*) - count(write_time) FROM {name}"),
            0,
        )
        .await;
    }

    // The base: identifiers with and without history, epoch-second times from before the
    // first write to after the last, some equal to feature times; (identifier, time) unique.
    let mut base = String::from("id,t,label\n");
    let mut seen = std::collections::HashSet::new();
    let mut label = 0;
    while label < 30 {
        let id = format!("c{}", next(8));
        let t = JAN_1 - 1_800 + next(20) as i64 * 900;
        if seen.insert((id.clone(), t)) {
            base.push_str(&format!("{id},{t}.0,{label}\n"));
            label += 1;
        }
    }
    let base_csv = dir.path().join("base.csv");
    std::fs::write(&base_csv, base).unwrap();

    let (start, end) = (JAN_1 + 2 * 3_600, JAN_1 + 6 * 3_600);
    let case = |name: &'static str, args: &[&str], options: serde_json::Value| Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        options,
    };
    let (s, e, a) = (start.to_string(), end.to_string(), as_of.to_string());
    use serde_json::json;
    let base_cases = vec![
        case("plain", &[], json!({})),
        case(
            "point-in-time",
            &["--point-in-time"],
            json!({"point_in_time": true}),
        ),
        case(
            "most recent 1",
            &["--point-in-time", "--most-recent-per-identifier", "1"],
            json!({"point_in_time": true, "most_recent_per_identifier": 1}),
        ),
        case(
            "most recent 2",
            &["--point-in-time", "--most-recent-per-identifier", "2"],
            json!({"point_in_time": true, "most_recent_per_identifier": 2}),
        ),
        case(
            "most recent, no point in time",
            &["--most-recent-per-identifier", "3"],
            json!({"most_recent_per_identifier": 3}),
        ),
        case(
            "deleted",
            &["--include-deleted"],
            json!({"include_deleted": true}),
        ),
        case(
            "deleted, point in time, most recent",
            &[
                "--include-deleted",
                "--point-in-time",
                "--most-recent-per-identifier",
                "1",
            ],
            json!({"include_deleted": true, "point_in_time": true, "most_recent_per_identifier": 1}),
        ),
        case(
            "duplicates",
            &["--include-duplicates"],
            json!({"include_duplicates": true}),
        ),
        case(
            "duplicates, point in time",
            &["--include-duplicates", "--point-in-time"],
            json!({"include_duplicates": true, "point_in_time": true}),
        ),
        case(
            "duplicates and deleted",
            &["--include-duplicates", "--include-deleted"],
            json!({"include_duplicates": true, "include_deleted": true}),
        ),
        case(
            "as of",
            &["--as-of", &a, "--point-in-time"],
            json!({"as_of": as_of, "point_in_time": true}),
        ),
        case(
            "range",
            &["--start", &s, "--end", &e],
            json!({"start": start, "end": end}),
        ),
        case("range from", &["--start", &s], json!({"start": start})),
        case(
            "range to, point in time",
            &["--end", &e, "--point-in-time"],
            json!({"end": end, "point_in_time": true}),
        ),
        case(
            "everything",
            &[
                "--point-in-time",
                "--as-of",
                &a,
                "--start",
                &s,
                "--end",
                &e,
                "--most-recent-per-identifier",
                "1",
            ],
            json!({"point_in_time": true, "as_of": as_of, "start": start, "end": end,
                   "most_recent_per_identifier": 1}),
        ),
    ];

    let mut cases = Vec::new();
    let mut built = 0;
    for (group_name, _) in groups {
        for inner in [false, true] {
            for c in &base_cases {
                built += 1;
                let out = dir.path().join(format!("out{built}"));
                let mut options: Vec<&str> = c.args.iter().map(String::as_str).collect();
                if inner {
                    options.push("--inner-join");
                }
                create_dataset(
                    &server,
                    &base_csv,
                    "t",
                    &format!("{group_name}:v"),
                    &out,
                    &options,
                );
                let mut sdk_options = c.options.clone();
                sdk_options["inner_join"] = json!(inner);
                cases.push(json!({
                    "name": format!("{group_name}, {}{}", c.name, if inner { ", inner join" } else { "" }),
                    "group": group_name,
                    "quiver_output": out,
                    "options": sdk_options,
                }));
            }
        }
    }
    let offline = data.join("offline-store");
    let spec = json!({
        "base_csv": base_csv,
        "base_id": "id",
        "base_time": "t",
        "groups": {
            "iso": {"files": format!("{}/**/offline-store/iso-*/data/*/*/*/*/*.parquet", offline.display()),
                    "record_id": "id", "event_time": "ts", "event_time_type": "String", "features": ["v"]},
            "epoch": {"files": format!("{}/**/offline-store/epoch-*/data/*/*/*/*/*.parquet", offline.display()),
                      "record_id": "id", "event_time": "ts", "event_time_type": "Fractional", "features": ["v"]},
        },
        "cases": cases,
    });
    let spec_file = dir.path().join("parity.json");
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let spec_path = spec_file.display().to_string();
    let result =
        tokio::task::spawn_blocking(move || python("dataset_builder_parity.py", &[&spec_path]))
            .await
            .unwrap();
    let results = result["cases"].as_array().unwrap();
    assert_eq!(results.len(), cases.len());
    let mut matched_rows = 0;
    for r in results {
        eprintln!(
            "{}: {} rows from the SDK's query, {} from quiver, {} differ",
            r["name"], r["sdk_rows"], r["quiver_rows"], r["differ"]
        );
        assert_eq!(r["differ"], 0, "{r:#}");
        assert!(r["sdk_rows"].as_u64().unwrap() > 0, "{r:#}");
        matched_rows += r["sdk_rows"].as_u64().unwrap();
    }
    // Not vacuous: the cases give different results.
    let distinct: std::collections::HashSet<u64> = results
        .iter()
        .map(|r| r["sdk_rows"].as_u64().unwrap())
        .collect();
    assert!(distinct.len() > 5, "{results:?}");
    assert!(matched_rows > 500, "{matched_rows}");
    server.stop().await;
}
