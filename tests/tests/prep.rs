//! Data preparation through the real server: recipes stored with versions, diffed, previewed
//! and run into a file and into a feature group (from a group, a file and a query); a run into
//! a group killed with SIGKILL mid-run and resumed holds each row once, online and offline;
//! bad recipes refused naming the step and field; the CLI; lineage.

use std::time::Duration;

use quiver_client::pb;
use quiver_tests::TestServer;
use serde_json::json;

/// A file of `rows` rows: id, a category with missing values, an amount, a time.
fn write_events(path: &std::path::Path, rows: usize) {
    let mut csv = String::from("id,kind,amount,at\n");
    for i in 0..rows {
        let kind = if i % 7 == 0 {
            ""
        } else {
            ["a", "b", "c"][i % 3]
        };
        csv.push_str(&format!(
            "u{i},{kind},{}.5,2024-01-{:02}T00:00:00\n",
            i % 100,
            1 + i % 28
        ));
    }
    std::fs::write(path, csv).unwrap();
}

async fn ended_run(client: &quiver_client::Client, name: &str) -> pb::RecipeRun {
    let mut prep = client.prep();
    loop {
        let run = prep
            .describe_run(pb::RecipeRunName { name: name.into() })
            .await
            .expect("DescribeRun")
            .into_inner();
        if matches!(run.status.as_str(), "Completed" | "Failed" | "Stopped") {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn recipe(file: &std::path::Path) -> serde_json::Value {
    json!({
        "name": "events",
        "description": "events, cleaned",
        "source": {"file": {"uri": format!("file://{}", file.display())}},
        "steps": [
            {"step": "missing", "columns": ["kind"], "action": "fill_mode"},
            {"step": "encode", "columns": ["kind"], "method": "one_hot"},
            {"step": "scale", "columns": ["amount"], "method": "min_max"},
            {"step": "cast", "columns": {"at": "timestamp"}},
        ]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn recipes_are_versioned_previewed_and_run_into_a_file() {
    let (dir, server) = quiver_tests::start().await;
    let client = server.client().await;
    let file = dir.path().join("events.csv");
    write_events(&file, 1000);
    let mut prep = client.prep();

    let mut doc = recipe(&file);
    let v1 = prep
        .put_recipe(pb::PutRecipeRequest {
            recipe_json: doc.to_string(),
        })
        .await
        .expect("PutRecipe")
        .into_inner();
    assert_eq!((v1.version, v1.steps), (1, 4));
    doc["steps"]
        .as_array_mut()
        .unwrap()
        .push(json!({"step": "filter", "expression": "amount > 0.5"}));
    let v2 = prep
        .put_recipe(pb::PutRecipeRequest {
            recipe_json: doc.to_string(),
        })
        .await
        .expect("PutRecipe")
        .into_inner();
    assert_eq!(v2.version, 2);
    let diff = prep
        .diff_recipes(pb::DiffRecipesRequest {
            name: "events".into(),
            from_version: 1,
            to_version: None,
        })
        .await
        .expect("Diff")
        .into_inner()
        .diff;
    assert!(
        diff.lines()
            .any(|l| l.starts_with("+ ") && l.contains("amount > 0.5")),
        "{diff}"
    );

    // A preview after two steps: the one-hot columns, fitted on the sample.
    let shown = prep
        .preview(pb::PreviewRequest {
            recipe: Some(pb::preview_request::Recipe::Stored(pb::RecipeRef {
                name: "events".into(),
                version: Some(1),
            })),
            steps: Some(2),
            rows: 5,
            sample_rows: 100,
        })
        .await
        .expect("Preview")
        .into_inner();
    let names: Vec<&str> = shown.columns.iter().map(|c| c.name.as_str()).collect();
    // One-hot columns take the place of the column they encode.
    assert_eq!(names, ["id", "kind_a", "kind_b", "kind_c", "amount", "at"]);
    assert_eq!(shown.rows_json.len(), 5);
    assert!(shown.sql.starts_with("WITH s0 AS"), "{}", shown.sql);

    // The whole recipe into a Parquet file; the run keeps the fitted recipe.
    let out = dir.path().join("events-clean.parquet");
    prep.start_run(pb::StartRunRequest {
        name: "clean-1".into(),
        recipe: Some(pb::start_run_request::Recipe::Stored(pb::RecipeRef {
            name: "events".into(),
            version: None,
        })),
        output: Some(pb::start_run_request::Output::FileUri(format!(
            "file://{}",
            out.display()
        ))),
    })
    .await
    .expect("StartRun");
    let run = ended_run(&client, "clean-1").await;
    assert_eq!(run.status, "Completed", "{:?}", run.failure_reason);
    assert_eq!(run.recipe_version, Some(2));
    let fitted: serde_json::Value = serde_json::from_str(&run.fitted_recipe_json).unwrap();
    assert_eq!(fitted["steps"][2]["learned"]["amount"], json!([0.5, 99.0]));
    // amount > 0.5 after min-max scaling: (i % 100 + 0.5 - 0.5) / 99 > 0.5, i % 100 >= 50.
    assert_eq!(run.rows_written, 500);
    assert!(out.exists());

    // Bad recipes: refused with the step and field named.
    let error = prep
        .preview(pb::PreviewRequest {
            recipe: Some(pb::preview_request::Recipe::RecipeJson(
                json!({"name": "bad", "source": {"file": {"uri": file.display().to_string()}},
                       "steps": [{"step": "drop", "columns": ["nope"]}]})
                .to_string(),
            )),
            ..Default::default()
        })
        .await
        .expect_err("unknown column");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error
            .message()
            .contains("steps[0] (drop): columns: no column 'nope'"),
        "{}",
        error.message()
    );
    let error = prep
        .put_recipe(pb::PutRecipeRequest {
            recipe_json: json!({"name": "bad", "source": {"query": {"sql": "SELECT 1"}}, "steps": [{"step": "scale", "columns": ["a"], "method": "sideways"}]}).to_string(),
        })
        .await
        .expect_err("unknown method");
    assert!(
        error
            .message()
            .contains("steps[0].method: unknown variant `sideways`"),
        "{}",
        error.message()
    );
    let error = prep
        .start_run(pb::StartRunRequest {
            name: "clean-2".into(),
            recipe: Some(pb::start_run_request::Recipe::Stored(pb::RecipeRef {
                name: "events".into(),
                version: None,
            })),
            output: Some(pb::start_run_request::Output::FileUri(format!(
                "file://{}",
                out.display()
            ))),
        })
        .await
        .expect_err("the file exists");
    assert_eq!(error.code(), tonic::Code::AlreadyExists);

    // The CLI: preview a recipe file, list, the SQL.
    let recipe_file = dir.path().join("recipe.json");
    std::fs::write(&recipe_file, recipe(&file).to_string()).unwrap();
    let table = server.cli(&[
        "prep",
        "preview",
        recipe_file.to_str().unwrap(),
        "--rows",
        "3",
    ]);
    assert!(
        table.contains("kind_a") && table.lines().count() >= 4,
        "{table}"
    );
    let sql = server.cli(&["prep", "preview", "--recipe", "events", "--sql"]);
    assert!(sql.contains("WHERE (amount > 0.5)"), "{sql}");
    let report = server.cli(&["prep", "report", "--recipe", "events", "--target", "kind_a"]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("JSON");
    assert_eq!(report["rows"], json!(500), "{report}");
    assert!(report["quick_model"]["metrics"].is_object(), "{report}");
    let page = dir.path().join("report.html");
    server.cli(&[
        "prep",
        "report",
        "--recipe",
        "events",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&page).unwrap().contains("<svg"));
    let listed = server.cli(&["prep", "list"]);
    assert!(
        listed.contains("events") && listed.contains(" 2 "),
        "{listed}"
    );

    // Lineage: the file ContributedTo the run, which Produced the output file.
    let components =
        quiver_tests::lineage_entities(&client, pb::LineageEntityKind::TrialComponent, None, None)
            .await;
    let run_component = components
        .iter()
        .find(|c| c.name.as_deref() == Some("prep-clean-1"))
        .expect("the run's trial component");
    let graph = quiver_tests::query_lineage(&client, &run_component.arn, "Both", Some(1)).await;
    assert!(graph.edges.len() >= 2, "{graph:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_into_a_group_killed_mid_run_and_resumed_writes_each_row_once() {
    const ROWS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &[]).await;
    let client = server.client().await;
    let file = dir.path().join("events.csv");
    write_events(&file, ROWS);
    let recipe = json!({
        "name": "into-group",
        "source": {"file": {"uri": file.display().to_string()}},
        "steps": [
            {"step": "missing", "columns": ["kind"], "action": "fill_constant", "value": "none"},
            {"step": "cast", "columns": {"at": "timestamp"}},
            {"step": "datetime", "column": "at", "parts": ["day"]},
        ]
    });
    let start = |client: quiver_client::Client| {
        let recipe = recipe.to_string();
        async move {
            client
                .prep()
                .start_run(pb::StartRunRequest {
                    name: "load".into(),
                    recipe: Some(pb::start_run_request::Recipe::RecipeJson(recipe)),
                    output: Some(pb::start_run_request::Output::FeatureGroup(
                        pb::RunIntoGroup {
                            name: "events".into(),
                            create: true,
                            record_identifier: "id".into(),
                            event_time: "at".into(),
                        },
                    )),
                })
                .await
                .expect("StartRun")
                .into_inner()
        }
    };
    start(client.clone()).await;
    // Killed once some rows are written, before the last.
    let mut prep = client.prep();
    let written = loop {
        let run = prep
            .describe_run(pb::RecipeRunName {
                name: "load".into(),
            })
            .await
            .expect("DescribeRun")
            .into_inner();
        assert_eq!(run.status, "InProgress", "{:?}", run.failure_reason);
        if run.rows_written > 0 {
            break run.rows_written;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.kill_9();
    assert!(
        written < ROWS as u64,
        "the run ended before it could be killed"
    );

    let server = TestServer::start_in(&data, &[]).await;
    let client = server.client().await;
    let after = client
        .prep()
        .describe_run(pb::RecipeRunName {
            name: "load".into(),
        })
        .await
        .expect("DescribeRun")
        .into_inner();
    assert_eq!(after.status, "Failed");
    assert!(
        after
            .failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("resume"),
        "{after:?}"
    );
    let resumed = start(client.clone()).await;
    assert_eq!(resumed.attempts, 2);
    let run = ended_run(&client, "load").await;
    assert_eq!(run.status, "Completed", "{:?}", run.failure_reason);
    assert!(run.rows_skipped > 0, "{run:?}");
    assert_eq!(run.rows_written, ROWS as u64, "{run:?}");

    // Online: every record once, with the recipe's values.
    let record = quiver_tests::read(&client, "events", "u7").await;
    assert_eq!(quiver_tests::feature(&record, "kind"), Some(json!("none")));
    assert_eq!(quiver_tests::feature(&record, "at_day"), Some(json!(8)));
    // Offline (staged rows and files): each row once.
    let counted = server.cli(&[
        "sql",
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM events",
        "--output",
        "json",
    ]);
    let counted: serde_json::Value = serde_json::from_str(&counted).expect("JSON");
    assert_eq!(counted[0]["n"], json!(ROWS), "{counted}");
    assert_eq!(counted[0]["ids"], json!(ROWS), "{counted}");
    server.stop().await;
}

/// Feature groups (latest records and offline history, and a group without an offline
/// store) and queries as sources, joined.
#[tokio::test(flavor = "multi_thread")]
async fn groups_and_queries_are_sources() {
    let (_dir, server) = quiver_tests::start().await;
    let client = server.client().await;
    let mut offline = quiver_tests::customers_group("customers", None);
    offline.offline_store_config = Some(pb::OfflineStoreConfig::default());
    client.create_feature_group(offline).await.expect("group");
    client
        .create_feature_group(quiver_tests::customers_group("online_only", None))
        .await
        .expect("group");
    for i in 0..10 {
        let id = format!("c{i}");
        for group in ["customers", "online_only"] {
            // Two versions of each customer: the latest has age 30 + i.
            for (t, age) in [(0, 20 + i), (60, 30 + i)] {
                client
                    .put_record(quiver_tests::put(
                        group,
                        quiver_tests::record(&id, &quiver_tests::ts(t), age),
                    ))
                    .await
                    .expect("put");
            }
        }
    }
    let mut prep = client.prep();
    let preview = |recipe: serde_json::Value| {
        let mut prep = prep.clone();
        async move {
            prep.preview(pb::PreviewRequest {
                recipe: Some(pb::preview_request::Recipe::RecipeJson(recipe.to_string())),
                rows: 100,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
        }
    };
    let latest = preview(json!({
        "name": "latest",
        "source": {"feature_group": {"name": "customers"}},
        "steps": [
            {"step": "select", "columns": ["id", "age"]},
            {"step": "join", "with": {"query": {"sql": "SELECT id, age * 2 AS double_age FROM latest.customers"}}, "how": "inner", "on": ["id"]},
            {"step": "join", "with": {"feature_group": {"name": "online_only"}}, "how": "left", "on": ["id"], "suffix": "_online"},
            {"step": "sort", "by": [{"column": "id"}]},
        ]
    }))
    .await
    .expect("preview");
    let names: Vec<&str> = latest.columns.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.starts_with(&["id", "age", "double_age"]) && names.contains(&"age_online"),
        "{names:?}"
    );
    assert_eq!(latest.rows_json.len(), 10);
    let first: Vec<serde_json::Value> = serde_json::from_str(&latest.rows_json[0]).unwrap();
    assert_eq!(first[..3], [json!("c0"), json!("30"), json!("60")]);
    let history = preview(json!({
        "name": "history",
        "source": {"feature_group": {"name": "customers", "history": true}},
        "steps": [{"step": "group_by", "key": ["id"], "aggregates": [{"column": "age", "function": "count", "as": "versions"}]}]
    }))
    .await
    .expect("preview");
    assert_eq!(history.rows_json.len(), 10);
    assert!(
        history.rows_json.iter().all(|r| r.ends_with(",\"2\"]")),
        "{:?}",
        history.rows_json
    );
    let error = preview(json!({"name": "nohistory", "source": {"feature_group": {"name": "online_only", "history": true}}, "steps": []}))
        .await
        .expect_err("no offline store");
    assert!(
        error
            .message()
            .contains("source: feature group 'online_only': no offline store"),
        "{}",
        error.message()
    );
    let _ = &mut prep;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_on_s3_are_sources() {
    use quiver_tests::aws::{AWS_ENV, Moto, python};
    let moto = Moto::start().await;
    moto.create_bucket("quiver-prep");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.csv");
    write_events(&file, 500);
    let endpoint = moto.endpoint();
    for key in ["in/one/events.csv", "in/two/a.csv", "in/two/b.csv"] {
        python(
            "s3_put.py",
            &[&endpoint, "quiver-prep", key, file.to_str().unwrap()],
        );
    }
    let server = TestServer::start_with_env(
        &dir.path().join("data"),
        &["--s3-endpoint", &endpoint],
        &AWS_ENV,
    )
    .await;
    let client = server.client().await;
    let mut prep = client.prep();
    let preview = |uri: &str| {
        let mut doc = recipe(&file);
        doc["source"] = json!({"file": {"uri": uri, "format": "csv"}});
        pb::PreviewRequest {
            recipe: Some(pb::preview_request::Recipe::RecipeJson(doc.to_string())),
            steps: None,
            rows: 1000,
            sample_rows: 10_000,
        }
    };
    // A file, and a folder of two read as one table (a folder's format is said).
    let one = prep
        .preview(preview("s3://quiver-prep/in/one/events.csv"))
        .await
        .expect("a preview of an S3 file")
        .into_inner();
    assert_eq!(one.rows_json.len(), 500);
    let names: Vec<&str> = one.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "kind_a", "kind_b", "kind_c", "amount", "at"]);
    let two = prep
        .preview(preview("s3://quiver-prep/in/two/"))
        .await
        .expect("a preview of an S3 folder")
        .into_inner();
    assert_eq!(two.rows_json.len(), 1000);
    // A key that is not there is a clear error naming the source.
    let missing = prep
        .preview(preview("s3://quiver-prep/in/none.csv"))
        .await
        .expect_err("no such object");
    assert!(
        missing.message().starts_with("source: "),
        "{}",
        missing.message()
    );
    server.stop().await;
}
