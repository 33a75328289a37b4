//! SQL over the offline store, end to end: the gRPC `Query` service (Arrow IPC), `quiver sql`
//! (table, CSV and Parquet output), Arrow Flight SQL from the ADBC Python driver, and a group
//! whose offline store is on S3 (moto_server).

use std::process::Command;
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use quiver_client::{Client, pb, value};
use quiver_tests::aws::{AWS_ENV, Moto, python};
use quiver_tests::{TestServer, binary, customers_group, put, ts};

/// `customers` with an offline store (under `s3_uri` when given).
fn group(name: &str, s3_uri: Option<&str>) -> pb::CreateFeatureGroupRequest {
    pb::CreateFeatureGroupRequest {
        offline_store_config: Some(pb::OfflineStoreConfig {
            s3_uri: s3_uri.unwrap_or_default().into(),
            ..Default::default()
        }),
        ..customers_group(name, None)
    }
}

fn customer(id: &str, ts: &str, age: i64) -> Vec<pb::FeatureValue> {
    vec![
        value::string("id", id),
        value::string("ts", ts),
        value::integral("age", age),
    ]
}

/// Runs `sql` until it returns `rows` rows (the offline store is written a moment after the
/// writes are acknowledged), or panics after 30 s.
async fn query_until(client: &Client, sql: &str, rows: usize) -> Vec<RecordBatch> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, batches) = client
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if n == rows {
            return batches;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {n} rows, expected {rows}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).unwrap();
            let c = c.as_any().downcast_ref::<StringArray>().unwrap();
            (0..c.len())
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ints(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).unwrap();
            let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

/// c1 written twice (the second newer), c2 once, c3 written then deleted: 5 history rows.
async fn load(client: &Client, name: &str) {
    for (id, t, age) in [
        ("c1", 0, 30),
        ("c2", 3_600, 40),
        ("c1", 7_200, 31),
        ("c3", 7_300, 50),
    ] {
        client
            .put_record(put(name, customer(id, &ts(t), age)))
            .await
            .unwrap();
    }
    client
        .delete_record(pb::DeleteRecordRequest {
            feature_group_name: name.into(),
            record_identifier_value_as_string: "c3".into(),
            event_time: ts(7_400),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn sql_over_the_offline_store_through_grpc_cli_and_flight_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--offline-flush-interval-ms", "100"],
    )
    .await;
    let client = server.client().await;
    client
        .create_feature_group(group("customers", None))
        .await
        .unwrap();
    load(&client, "customers").await;

    // History: every write and the delete marker, in event-time order.
    let history = query_until(
        &client,
        "SELECT id, age, is_deleted, hour FROM customers ORDER BY ts",
        5,
    )
    .await;
    assert_eq!(strings(&history, "id"), ["c1", "c2", "c1", "c3", "c3"]);
    // Latest per identifier, without the deleted one.
    let (_, latest) = client
        .query("SELECT id, age FROM latest.customers ORDER BY id")
        .await
        .unwrap();
    assert_eq!(strings(&latest, "id"), ["c1", "c2"]);
    assert_eq!(ints(&latest, "age"), [31, 40]);
    // An event-time predicate reads only the matching hour's files (EXPLAIN shows which), once
    // the rows are in files (queries saw them before, from staging).
    query_until(
        &client,
        "SELECT id FROM customers WHERE write_time IS NOT NULL",
        5,
    )
    .await;
    let (_, plan) = client
        .query("EXPLAIN SELECT * FROM customers WHERE ts >= '2024-01-01T02:00:00Z'")
        .await
        .unwrap();
    let plan = arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("hour=02"), "{plan}");
    assert!(
        !plan.contains("hour=00") && !plan.contains("hour=01"),
        "{plan}"
    );
    // A bad statement is the caller's error, and says what is wrong.
    let err = client.query("SELECT * FROM nosuch").await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err}");
    assert!(err.to_string().contains("nosuch"), "{err}");

    // The CLI: a table on stdout, CSV and Parquet files.
    let quiver = |args: &[&str]| server.cli(args);
    let table = quiver(&["sql", "SELECT id, age FROM latest.customers ORDER BY id"]);
    assert!(table.contains("| c1 | 31  |"), "{table}");
    let csv = dir.path().join("latest.csv");
    quiver(&[
        "sql",
        "SELECT id, age FROM latest.customers ORDER BY id",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "id,age\nc1,31\nc2,40\n"
    );
    let parquet = dir.path().join("history.parquet");
    quiver(&[
        "sql",
        "SELECT * FROM customers",
        "--out",
        parquet.to_str().unwrap(),
    ]);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&parquet).unwrap(),
    )
    .unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 5);

    // A point-in-time training dataset from a base CSV, through the CLI: each base row gets
    // the latest `age` at or before its time; c2 before its first write, c3 (deleted after)
    // and c9 (never written) get nulls.
    let base = dir.path().join("labels.csv");
    std::fs::write(
        &base,
        format!(
            "customer,at,label\nc1,{},1\nc1,{},0\nc2,{},1\nc3,{},0\nc9,{},1\n",
            ts(3_600),
            ts(9_000),
            ts(0),
            ts(7_350),
            ts(9_000)
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("training");
    let manifest: serde_json::Value = serde_json::from_str(&quiver(&[
        "--output",
        "json",
        "dataset",
        "create",
        "--base-file",
        base.to_str().unwrap(),
        "--record-id",
        "customer",
        "--event-time",
        "at",
        "--group",
        "customers:age",
        "--point-in-time",
        "--most-recent",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(manifest["row_count"], 5, "{manifest}");
    assert_eq!(
        manifest["feature_groups"][0]["features"],
        serde_json::json!([["age", "age"]])
    );
    assert_eq!(manifest["options"]["point_in_time"], true);
    assert!(out_dir.join("manifest.json").exists());
    let mut rows = Vec::new();
    for file in manifest["files"].as_array().unwrap() {
        let path = file.as_str().unwrap().trim_start_matches("file://");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let customer = strings(std::slice::from_ref(&batch), "customer");
            let label = ints(std::slice::from_ref(&batch), "label");
            let age = batch.column_by_name("age").unwrap();
            let age = age.as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..batch.num_rows() {
                rows.push((
                    customer[i].clone(),
                    label[i],
                    age.is_valid(i).then(|| age.value(i)),
                ));
            }
        }
    }
    rows.sort();
    assert_eq!(
        rows,
        [
            ("c1".to_string(), 0, Some(31)),
            ("c1".to_string(), 1, Some(30)),
            ("c2".to_string(), 1, None),
            ("c3".to_string(), 0, None),
            ("c9".to_string(), 1, None),
        ]
    );
    // Writing over a dataset is refused.
    let again = Command::new(binary("quiver"))
        .arg("--endpoint")
        .arg(server.endpoint())
        .args(["dataset", "create", "--base-file", base.to_str().unwrap()])
        .args([
            "--record-id",
            "customer",
            "--event-time",
            "at",
            "--group",
            "customers",
        ])
        .args(["--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a dataset"));

    // Arrow Flight SQL, from the ADBC driver.
    let address = server.flight_sql.to_string();
    let result = tokio::task::spawn_blocking(move || {
        python(
            "flight_sql.py",
            &[&address, "SELECT id, age FROM latest.customers ORDER BY id"],
        )
    })
    .await
    .unwrap();
    assert_eq!(result["columns"], serde_json::json!(["id", "age"]));
    assert_eq!(result["rows"], serde_json::json!([["c1", 31], ["c2", 40]]));
    assert_eq!(
        result["tables"],
        serde_json::json!([
            ["latest", "customers", "VIEW"],
            ["public", "customers", "TABLE"]
        ])
    );
    server.stop().await;
}

#[tokio::test]
async fn sql_over_an_s3_offline_store() {
    let moto = Moto::start().await;
    moto.create_bucket("quiver-sql");
    let dir = tempfile::tempdir().unwrap();
    let endpoint = moto.endpoint();
    let server = TestServer::start_with_env(
        &dir.path().join("data"),
        &[
            "--offline-flush-interval-ms",
            "100",
            "--s3-endpoint",
            &endpoint,
        ],
        &AWS_ENV,
    )
    .await;
    let client = server.client().await;
    client
        .create_feature_group(group("on-s3", Some("s3://quiver-sql/features")))
        .await
        .unwrap();
    load(&client, "on-s3").await;
    query_until(&client, "SELECT * FROM \"on-s3\"", 5).await;
    let (_, latest) = client
        .query("SELECT id FROM latest.\"on-s3\" ORDER BY id")
        .await
        .unwrap();
    assert_eq!(strings(&latest, "id"), ["c1", "c2"]);

    // A dataset whose base is a query and whose output goes to S3.
    let response = client
        .create_dataset(pb::CreateDatasetRequest {
            base: Some(pb::DatasetBase {
                source: Some(pb::dataset_base::Source::Sql(
                    "SELECT id AS customer, ts AS at FROM \"on-s3\" WHERE NOT is_deleted".into(),
                )),
                record_identifier_column: "customer".into(),
                event_time_column: "at".into(),
            }),
            feature_groups: vec![pb::DatasetFeatureGroup {
                feature_group_name: "on-s3".into(),
                feature_names: vec!["age".into()],
                ..Default::default()
            }],
            options: Some(pb::DatasetOptions {
                point_in_time_accurate_join: true,
                most_recent_records: 1,
                ..Default::default()
            }),
            output_uri: "s3://quiver-sql/datasets/first".into(),
        })
        .await
        .unwrap();
    assert_eq!(response.row_count, 4);
    assert!(!response.files.is_empty());
    assert!(
        response
            .files
            .iter()
            .all(|f| f.starts_with("s3://quiver-sql/datasets/first/")),
        "{:?}",
        response.files
    );
    let manifest: serde_json::Value = serde_json::from_str(&response.manifest_json).unwrap();
    let sources = manifest["feature_groups"][0]["source_files"]
        .as_array()
        .unwrap();
    assert!(
        sources
            .iter()
            .all(|f| f.as_str().unwrap().starts_with("s3://quiver-sql/features/")),
        "{sources:?}"
    );
    server.stop().await;
}
