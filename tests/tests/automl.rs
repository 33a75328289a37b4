//! AutoML through SageMaker's API, driven by boto3 (`tests/python/sagemaker_automl.py`): a
//! model built from a feature group's records with CreateAutoMLJobV2 and followed to its end,
//! its candidates and the job list, a stop, and bad requests and bad data refused by name.

use quiver_tests::TestServer;
use quiver_tests::aws::python;

#[tokio::test(flavor = "multi_thread")]
async fn boto3_builds_a_model_from_a_feature_group() {
    let (_dir, server) = quiver_tests::start().await;
    let endpoint = format!("http://{}", server.http);
    let report = tokio::task::spawn_blocking(move || python("sagemaker_automl.py", &[&endpoint]))
        .await
        .expect("python ran");
    quiver_tests::aws::assert_all_checks_passed(&report, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_automl_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(&dir.path().join("data"), &["--automl", "false"]).await;
    let endpoint = format!("http://{}", server.http);
    let seen =
        tokio::task::spawn_blocking(move || python("sagemaker_automl.py", &[&endpoint, "off"]))
            .await
            .expect("python ran");
    assert_eq!(seen["code"], "ValidationException");
    let message = seen["message"].as_str().unwrap();
    assert!(message.contains("--automl false"), "{message}");
    server.stop().await;
}

/// Over gRPC: every problem type, from a feature group, a query and a file; predictions for
/// rows given as JSON equal those for the same records read from the online store in the
/// call, and those of a batch prediction into a file; lineage; the reports; the CLI; bad input
/// refused by name.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_builds_models_and_predicts_the_same_for_rows_and_online_records() {
    use quiver_client::pb;

    let (dir, server) = quiver_tests::start().await;
    let client = server.client().await;
    // The customers in a group with an offline store, and the same customers in one without
    // (read from its online store).
    churn_group(&client, "churn", true).await;
    churn_group(&client, "churn_online", false).await;
    let mut csv = String::from("tenure,spend,plan,churned\n");
    for i in 0..300 {
        let (tenure, spend, plan, churned) = row(i);
        csv.push_str(&format!("{tenure},{spend},{plan},{churned}\n"));
    }
    let file = dir.path().join("customers.csv");
    std::fs::write(&file, csv).unwrap();
    // What another system knows of the same customers, joined to the group on `id`.
    let mut regions = String::from("id,region\n");
    for i in 0..300 {
        regions.push_str(&format!("c{i},{}\n", ["north", "south"][i % 2]));
    }
    let regions_file = dir.path().join("regions.csv");
    std::fs::write(&regions_file, regions).unwrap();
    use pb::auto_ml_data_source::Source;
    let join = |sources: Vec<Source>| {
        Source::Join(pb::JoinedSources {
            sources: sources
                .into_iter()
                .map(|s| pb::AutoMlDataSource { source: Some(s) })
                .collect(),
            on: vec!["id".into()],
        })
    };

    let mut automl = client.automl();
    let create = |name: &str, source: pb::auto_ml_data_source::Source, target: &str| {
        pb::CreateAutoMlJobRequest {
            name: name.into(),
            source: Some(pb::AutoMlDataSource {
                source: Some(source),
            }),
            target: target.into(),
            budget_seconds: 120,
            max_candidates: Some(3),
            ..Default::default()
        }
    };
    for request in [
        create(
            "from-group",
            Source::FeatureGroup("churn".into()),
            "churned",
        ),
        create(
            "from-query",
            Source::Sql("SELECT tenure, spend, churned, plan FROM latest.churn".into()),
            "plan",
        ),
        create(
            "from-file",
            Source::FileUri(format!("file://{}", file.display())),
            "spend",
        ),
        create(
            "from-online",
            Source::FeatureGroup("churn_online".into()),
            "churned",
        ),
        create(
            "from-join",
            join(vec![
                Source::FeatureGroup("churn".into()),
                Source::FileUri(format!("file://{}", regions_file.display())),
            ]),
            "churned",
        ),
    ] {
        automl.create_job(request).await.expect("create");
    }
    let mut ended = std::collections::BTreeMap::new();
    for name in [
        "from-group",
        "from-query",
        "from-file",
        "from-online",
        "from-join",
    ] {
        let job = ended_job(&mut automl, name).await;
        assert_eq!(job.status, "Completed", "{name}: {:?}", job.failure_reason);
        ended.insert(name, job);
    }
    // The join: the file's column is a feature, the keys and the group's event time are not.
    let joined = automl
        .report(pb::AutoMlJobName {
            name: "from-join".into(),
        })
        .await
        .expect("report")
        .into_inner();
    let data: serde_json::Value = serde_json::from_str(&joined.data_report_json).unwrap();
    assert_eq!(data["rows"], 300, "{data}");
    let steps: serde_json::Value = serde_json::from_str(&joined.cleaning_steps_json).unwrap();
    let chosen = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "ColumnsChosen")
        .expect("the columns chosen")
        .to_string();
    // tenure, spend, plan and the file's region; the key and the group's columns left out.
    assert!(
        chosen.contains("4 columns used") && chosen.contains("left out: id, ts"),
        "{chosen}"
    );
    let columns: Vec<&str> = data["column_summaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(columns.contains(&"region"), "{columns:?}");
    // Bad joins: one source is refused at once; a column in two sources fails the job, naming it.
    let err = automl
        .create_job(create(
            "join-one",
            join(vec![Source::FeatureGroup("churn".into())]),
            "churned",
        ))
        .await
        .expect_err("one source");
    assert!(err.message().contains("join.sources"), "{err:?}");
    automl
        .create_job(create(
            "join-clash",
            join(vec![
                Source::FeatureGroup("churn".into()),
                Source::FeatureGroup("churn_online".into()),
            ]),
            "churned",
        ))
        .await
        .expect("create");
    let clash = ended_job(&mut automl, "join-clash").await;
    assert_eq!(clash.status, "Failed");
    let reason = clash.failure_reason.unwrap_or_default();
    assert!(reason.contains("'tenure'"), "{reason}");
    assert_eq!(
        ended["from-group"].problem_type.as_deref(),
        Some("BinaryClassification")
    );
    assert!(
        ended["from-group"].candidates[0].objective > 0.8,
        "{:?}",
        ended["from-group"].candidates[0]
    );
    assert_eq!(
        ended["from-query"].problem_type.as_deref(),
        Some("MulticlassClassification")
    );
    assert_eq!(
        ended["from-file"].problem_type.as_deref(),
        Some("Regression")
    );
    assert_eq!(ended["from-file"].objective.as_deref(), Some("MSE"));
    assert_eq!(
        ended["from-online"].problem_type.as_deref(),
        Some("BinaryClassification")
    );
    assert!(ended["from-online"].candidates[0].objective > 0.8);

    // The same rows, given as JSON and read from the online store, predict the same.
    let ids: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let rows: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            let (tenure, spend, plan, _) = row(i);
            serde_json::json!({"tenure": tenure, "spend": spend, "plan": plan})
        })
        .collect();
    let from_rows = automl
        .predict(pb::PredictRequest {
            job: "from-group".into(),
            input: Some(pb::predict_request::Input::RowsJson(
                serde_json::to_string(&rows).unwrap(),
            )),
        })
        .await
        .expect("predict rows")
        .into_inner()
        .predictions;
    let mut online_ids = ids.clone();
    online_ids.push("nobody".into());
    let from_online = automl
        .predict(pb::PredictRequest {
            job: "from-group".into(),
            input: Some(pb::predict_request::Input::Online(pb::OnlineRecords {
                feature_group: "churn".into(),
                record_identifiers: online_ids,
            })),
        })
        .await
        .expect("predict online")
        .into_inner()
        .predictions;
    assert_eq!(from_online.len(), 7);
    assert_eq!(
        from_online[..6],
        from_rows[..],
        "rows and online records predict alike"
    );
    assert!(
        from_online[6].missing,
        "an unknown identifier is reported missing"
    );
    for (i, p) in from_rows.iter().enumerate() {
        assert_eq!(p.predicted, row(i).3, "row {i}: {p:?}");
        assert!(p.confidence.unwrap() >= 0.5 && p.probabilities.len() == 2);
    }

    // Batch: every record of the group, to a CSV file; the same rows predict as online.
    let out = dir.path().join("scored.csv");
    let batch = automl
        .predict_batch(pb::PredictBatchRequest {
            job: "from-group".into(),
            source: Some(pb::AutoMlDataSource {
                source: Some(pb::auto_ml_data_source::Source::FeatureGroup(
                    "churn".into(),
                )),
            }),
            output_uri: format!("file://{}", out.display()),
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.rows, 300);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))
    };
    let (id_at, predicted_at, confidence_at) = (at("id"), at("predicted"), at("confidence"));
    let scored: std::collections::HashMap<String, (String, f64)> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (
                cells[id_at].to_string(),
                (
                    cells[predicted_at].to_string(),
                    cells[confidence_at].parse().unwrap(),
                ),
            )
        })
        .collect();
    for (i, p) in from_online[..6].iter().enumerate() {
        let (predicted, confidence) = &scored[&format!("c{i}")];
        assert_eq!(*predicted, p.predicted, "c{i}");
        assert!(
            (confidence - p.confidence.unwrap()).abs() < 1e-9,
            "c{i}: {confidence} vs {p:?}"
        );
    }
    let err = automl
        .predict_batch(pb::PredictBatchRequest {
            job: "from-group".into(),
            source: Some(pb::AutoMlDataSource {
                source: Some(pb::auto_ml_data_source::Source::FeatureGroup(
                    "churn".into(),
                )),
            }),
            output_uri: format!("file://{}", out.display()),
        })
        .await
        .expect_err("an existing file is not overwritten");
    assert!(
        err.message().contains("exists already"),
        "{}",
        err.message()
    );

    // Lineage: the group's context ContributedTo the job's trial component, which Produced
    // the model (recorded as the job ends).
    let group_arn = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: "churn".into(),
        })
        .await
        .expect("describe group")
        .feature_group_arn;
    let contexts = quiver_tests::lineage_entities(
        &client,
        pb::LineageEntityKind::Context,
        Some("FeatureGroup"),
        Some(&group_arn),
    )
    .await;
    let mut found = Vec::new();
    for _ in 0..100 {
        let walk =
            quiver_tests::query_lineage(&client, &contexts[0].arn, "Descendants", Some(2)).await;
        found = walk
            .vertices
            .iter()
            .map(|v| (v.lineage_type.clone(), v.r#type.clone(), v.arn.clone()))
            .collect();
        if found.iter().any(|(_, t, _)| t == "Model") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        found
            .iter()
            .any(|(l, _, arn)| l == "TrialComponent" && arn.ends_with("automl-from-group")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(l, t, _)| l == "Artifact" && t == "Model"),
        "{found:?}"
    );

    let report = automl
        .report(pb::AutoMlJobName {
            name: "from-group".into(),
        })
        .await
        .expect("report")
        .into_inner();
    let data: serde_json::Value = serde_json::from_str(&report.data_report_json).unwrap();
    assert_eq!(data["rows"], 300);
    let quality: serde_json::Value = serde_json::from_str(&report.model_report_json).unwrap();
    assert!(quality["confusion"]["counts"].is_array(), "{quality}");
    // Feature importance: the rule is on tenure, plan and spend, so they lead.
    let importance = quality["feature_importance"]
        .as_array()
        .expect("importance");
    let leaders: Vec<&str> = importance[..3]
        .iter()
        .map(|i| i["feature"].as_str().unwrap())
        .collect();
    for feature in ["tenure", "spend", "plan"] {
        assert!(leaders.contains(&feature), "{importance:?}");
    }
    assert!(report.html.starts_with("<!DOCTYPE html>") && report.html.contains("<svg"));

    // The CLI: a job created and followed to its end, listed, and a prediction from the
    // online store.
    let created = server.cli(&[
        "--output", "json", "automl", "create", "cli-job", "--group", "churn", "--target",
        "churned", "--budget", "2m",
    ]);
    let created: serde_json::Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(created["status"], "Completed", "{created}");
    let listed = server.cli(&["automl", "list"]);
    assert!(
        listed.contains("cli-job") && listed.contains("from-file"),
        "{listed}"
    );
    let predicted = server.cli(&[
        "automl", "predict", "cli-job", "--group", "churn", "--id", "c0", "--id", "c1",
    ]);
    assert!(
        predicted.contains("c0") && predicted.contains(row(0).3),
        "{predicted}"
    );
    // A join from the CLI: the group and the regions file, on id.
    let joined = server.cli(&[
        "--output",
        "json",
        "automl",
        "create",
        "cli-join",
        "--group",
        "churn",
        "--join-file",
        regions_file.to_str().unwrap(),
        "--on",
        "id",
        "--target",
        "churned",
        "--budget",
        "2m",
    ]);
    let joined: serde_json::Value = serde_json::from_str(&joined).expect("JSON");
    assert_eq!(joined["status"], "Completed", "{joined}");
    let report = server.cli(&["automl", "report", "cli-job"]);
    assert!(report.contains("\"model_report\""), "{report}");
    let page = dir.path().join("report.html");
    server.cli(&[
        "automl",
        "report",
        "cli-job",
        "--html",
        page.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&page).expect("the page");
    for section in ["ROC curve", "Feature importance", "Leaderboard", "cli-job"] {
        assert!(page.contains(section), "{section} missing from the page");
    }

    let err = automl
        .create_job(pb::CreateAutoMlJobRequest {
            name: "no-source".into(),
            target: "churned".into(),
            ..Default::default()
        })
        .await
        .expect_err("a job needs a source");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("source is required"),
        "{}",
        err.message()
    );
    let err = automl
        .predict(pb::PredictRequest {
            job: "from-group".into(),
            input: Some(pb::predict_request::Input::RowsJson(
                "{\"not\": \"an array\"}".into(),
            )),
        })
        .await
        .expect_err("rows must be an array");
    assert!(err.message().starts_with("rows_json"), "{}", err.message());
    server.stop().await;
}

/// Customer `i`: tenure, spend, plan, and whether it churned (by a rule a model can learn).
fn row(i: usize) -> (i64, f64, &'static str, &'static str) {
    let (tenure, spend, plan) = (
        (i * 7) % 60,
        ((i * 13) % 200) as f64,
        ["basic", "plus", "pro"][i % 3],
    );
    let churned = if (tenure < 20 && plan == "basic") || spend < 30.0 {
        "yes"
    } else {
        "no"
    };
    (tenure as i64, spend, plan, churned)
}

/// Job `name` once it has ended.
async fn ended_job(
    automl: &mut quiver_client::pb::auto_ml_client::AutoMlClient<quiver_client::Transport>,
    name: &str,
) -> quiver_client::pb::AutoMlJob {
    loop {
        let job = automl
            .describe_job(quiver_client::pb::AutoMlJobName { name: name.into() })
            .await
            .expect("describe")
            .into_inner();
        if job.status != "InProgress" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A group `name` of 300 customers (`row`), with an offline store or without.
async fn churn_group(client: &quiver_client::Client, name: &str, offline: bool) {
    use quiver_client::{pb, value};
    let f = quiver_tests::fdef;
    client
        .create_feature_group(pb::CreateFeatureGroupRequest {
            feature_group_name: name.into(),
            record_identifier_feature_name: "id".into(),
            event_time_feature_name: "ts".into(),
            feature_definitions: vec![
                f("id", pb::FeatureType::String),
                f("ts", pb::FeatureType::Fractional),
                f("tenure", pb::FeatureType::Integral),
                f("spend", pb::FeatureType::Fractional),
                f("plan", pb::FeatureType::String),
                f("churned", pb::FeatureType::String),
            ],
            online_store_config: Some(pb::OnlineStoreConfig {
                enable_online_store: true,
                ..Default::default()
            }),
            offline_store_config: offline.then(pb::OfflineStoreConfig::default),
            ..Default::default()
        })
        .await
        .expect("group");
    for i in 0..300 {
        let (tenure, spend, plan, churned) = row(i);
        client
            .put_record(quiver_tests::put(
                name,
                vec![
                    value::string("id", format!("c{i}")),
                    value::fractional("ts", 1_700_000_000.0),
                    value::integral("tenure", tenure),
                    value::fractional("spend", spend),
                    value::string("plan", plan),
                    value::string("churned", churned),
                ],
            ))
            .await
            .expect("put");
    }
}
