//! The `quiver` CLI round trip against the real server: create a group from a CSV and from a
//! SageMaker JSON spec, ingest a CSV with bad rows, put, get, batch-get, delete, describe, list.

use std::process::{Command, Output};

use quiver_tests::*;

fn quiver(server: &TestServer, args: &[&str]) -> Output {
    Command::new(binary("quiver"))
        .arg("--endpoint")
        .arg(server.endpoint())
        .args(args)
        .output()
        .expect("quiver runs")
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "quiver failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn json(output: Output) -> serde_json::Value {
    let text = ok(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn cli_round_trip_with_csv_ingest() {
    let (dir, server) = start().await;
    let csv = dir.path().join("customers.csv");
    std::fs::write(
        &csv,
        "customer_id,event_time,age,score,city\n\
         c1,1700000000,34,0.5,Paris\n\
         c2,1700000001,45,1.25,Lima\n\
         c3,1700000002,not-a-number,2.0,Oslo\n\
         c4,1700000003,29,,Rome\n\
         c5,,52,3.5,Kyiv\n\
         c6,1700000005,61,4.5,Nairobi\n",
    )
    .unwrap();
    // The bad rows (3: age is not an integer; 5: no event time) are in the file from the start, so
    // inference must still type `age` as Integral: infer from a clean copy.
    let clean = dir.path().join("clean.csv");
    std::fs::write(
        &clean,
        "customer_id,event_time,age,score,city\nc0,1700000000,1,0.5,X\n",
    )
    .unwrap();

    let created = json(quiver(
        &server,
        &[
            "--output",
            "json",
            "feature-group",
            "create",
            "customers",
            "--from",
            clean.to_str().unwrap(),
            "--record-id",
            "customer_id",
            "--event-time",
            "event_time",
        ],
    ));
    let types: Vec<&str> = created["FeatureDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["FeatureType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["STRING", "FRACTIONAL", "INTEGRAL", "FRACTIONAL", "STRING"]
    );

    let ingest = quiver(
        &server,
        &[
            "--output",
            "json",
            "ingest",
            "customers",
            csv.to_str().unwrap(),
            "--batch-size",
            "2",
            "--no-progress",
        ],
    );
    assert_eq!(
        ingest.status.code(),
        Some(2),
        "rejected rows give exit code 2"
    );
    let summary: serde_json::Value = serde_json::from_slice(&ingest.stdout).unwrap();
    assert_eq!(summary["rows"], 6);
    assert_eq!(summary["written"], 4);
    let rejected = summary["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{summary}");
    assert_eq!(rejected[0]["row"], 3);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("'not-a-number' is not an integer"),
        "{summary}"
    );
    assert_eq!(rejected[1]["row"], 5);
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("event time"),
        "{summary}"
    );

    let record = json(quiver(
        &server,
        &["--output", "json", "get", "customers", "c2"],
    ));
    assert_eq!(record["age"], 45);
    assert_eq!(record["city"], "Lima");
    let c4 = json(quiver(
        &server,
        &[
            "--output",
            "json",
            "get",
            "customers",
            "c4",
            "--features",
            "age,score",
        ],
    ));
    assert_eq!(
        c4,
        serde_json::json!({ "age": 29 }),
        "the empty cell stayed null"
    );

    let table = ok(quiver(&server, &["get", "customers", "c6"]));
    assert!(
        table.contains("Nairobi") && table.contains("feature"),
        "{table}"
    );

    let put = json(quiver(
        &server,
        &[
            "--output",
            "json",
            "put",
            "customers",
            r#"{"customer_id": "c9", "event_time": 1700000100, "age": 9}"#,
        ],
    ));
    assert_eq!(put["outcome"], "APPLIED");
    let put_old = json(quiver(
        &server,
        &[
            "--output",
            "json",
            "put",
            "customers",
            r#"{"customer_id": "c9", "event_time": 1700000000, "age": 8}"#,
        ],
    ));
    assert_eq!(put_old["outcome"], "HISTORIC");

    let batch = json(quiver(
        &server,
        &["--output", "json", "batch-get", "customers=c1,c9,missing"],
    ));
    assert_eq!(batch["Records"].as_array().unwrap().len(), 2);

    ok(quiver(
        &server,
        &["delete", "customers", "c1", "--event-time", "1700000500"],
    ));
    let gone = quiver(&server, &["get", "customers", "c1"]);
    assert_eq!(gone.status.code(), Some(3), "no record gives exit code 3");

    ok(quiver(
        &server,
        &[
            "feature-group",
            "add-features",
            "customers",
            "--feature",
            "segment:String",
            "--feature",
            "emb:Fractional:Vector:2",
        ],
    ));
    let described = json(quiver(
        &server,
        &["--output", "json", "feature-group", "describe", "customers"],
    ));
    assert_eq!(described["FeatureDefinitions"].as_array().unwrap().len(), 7);

    // A SageMaker-shaped spec.
    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        r#"{
          "FeatureGroupName": "orders",
          "RecordIdentifierFeatureName": "order_id",
          "EventTimeFeatureName": "event_time",
          "FeatureDefinitions": [
            {"FeatureName": "order_id", "FeatureType": "Integral"},
            {"FeatureName": "event_time", "FeatureType": "String"},
            {"FeatureName": "items", "FeatureType": "String", "CollectionType": "List"}
          ],
          "OnlineStoreConfig": {"EnableOnlineStore": true, "TtlDuration": {"Unit": "Days", "Value": 30}},
          "RoleArn": "arn:aws:iam::000000000000:role/feature-store"
        }"#,
    )
    .unwrap();
    ok(quiver(
        &server,
        &["feature-group", "create", "--spec", spec.to_str().unwrap()],
    ));
    ok(quiver(
        &server,
        &[
            "put",
            "orders",
            r#"{"order_id": 1, "event_time": "2099-05-01T10:00:00Z", "items": ["a", "b"]}"#,
        ],
    ));
    let order = json(quiver(
        &server,
        &["--output", "json", "get", "orders", "1", "--expires"],
    ));
    assert_eq!(order["items"], serde_json::json!(["a", "b"]));
    assert_eq!(order["ExpiresAt"], "2099-05-31T10:00:00.000Z");

    let listed = json(quiver(
        &server,
        &["--output", "json", "feature-group", "list"],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let listed_table = ok(quiver(&server, &["feature-group", "list"]));
    assert!(listed_table.contains("orders") && listed_table.contains("customers"));

    ok(quiver(&server, &["feature-group", "delete", "orders"]));
    let missing = quiver(&server, &["get", "orders", "1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));

    let bad_json = quiver(&server, &["put", "customers", "{not json"]);
    assert!(!bad_json.status.success());
    assert!(String::from_utf8_lossy(&bad_json.stderr).contains("JSON object"));
}

#[tokio::test]
async fn cli_creates_and_ingests_from_parquet() {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Float32Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
        TimestampMillisecondArray,
    };
    use arrow::datatypes::Int64Type;

    let (dir, server) = start().await;
    let path = dir.path().join("events.parquet");
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        (
            "event_time",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    1_704_067_200_000,
                    1_704_067_201_500,
                    1_704_067_202_000,
                ])
                .with_timezone("UTC"),
            ),
        ),
        ("clicks", Arc::new(Int32Array::from(vec![5, 6, 7]))),
        ("ratio", Arc::new(Float32Array::from(vec![0.5, 0.25, 1.0]))),
        (
            "country",
            Arc::new(StringArray::from(vec![Some("NZ"), None, Some("PE")])),
        ),
        (
            "history",
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
                Some(vec![Some(1), Some(2)]),
                Some(vec![Some(3)]),
                Some(vec![]),
            ])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let created = json(quiver(
        &server,
        &[
            "--output",
            "json",
            "feature-group",
            "create",
            "events",
            "--from",
            path.to_str().unwrap(),
            "--record-id",
            "user_id",
            "--event-time",
            "event_time",
        ],
    ));
    let defs: Vec<(String, String)> = created["FeatureDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["FeatureType"].as_str().unwrap().to_string(),
                d["CollectionType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("INTEGRAL", "COLLECTION_TYPE_NONE"),
        ("STRING", "COLLECTION_TYPE_NONE"),
        ("INTEGRAL", "COLLECTION_TYPE_NONE"),
        ("FRACTIONAL", "COLLECTION_TYPE_NONE"),
        ("STRING", "COLLECTION_TYPE_NONE"),
        ("INTEGRAL", "LIST"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(defs, expected);

    let summary = json(quiver(
        &server,
        &[
            "--output",
            "json",
            "ingest",
            "events",
            path.to_str().unwrap(),
            "--no-progress",
        ],
    ));
    assert_eq!(summary["written"], 3, "{summary}");

    let two = json(quiver(&server, &["--output", "json", "get", "events", "2"]));
    assert_eq!(
        two,
        serde_json::json!({
            "user_id": 2, "event_time": "2024-01-01T00:00:01.500Z", "clicks": 6, "ratio": 0.25, "history": [3]
        })
    );
}

#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (_dir, server) = start().await;
    // `quiver sql ... | head -0`: the reader is gone before the first line is written.
    let mut child = Command::new(binary("quiver"))
        .arg("--endpoint")
        .arg(server.endpoint())
        .args(["sql", "SELECT 1 AS one"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("quiver runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        output.status.success() || output.status.signal() == Some(13),
        "{:?}: {stderr}",
        output.status
    );
    // Its output still reaches an open pipe.
    assert!(ok(quiver(&server, &["sql", "SELECT 1 AS one"])).contains('1'));
}
