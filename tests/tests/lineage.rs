//! The lineage service through SageMaker's API, driven by boto3 (`tests/python/sagemaker_lineage.py`):
//! every operation, its errors and limits, pagination and filters, and QueryLineage over a
//! graph of 1,200 entities checked against a reference walk; experiments, trials and trial
//! components with SageMaker Metrics' BatchPutMetrics and Search; the graph kept across a
//! restart; and a server started without the service.

use quiver_tests::TestServer;
use quiver_tests::aws::python;

fn run(endpoint: String, mode: &'static str) -> tokio::task::JoinHandle<serde_json::Value> {
    tokio::task::spawn_blocking(move || python("sagemaker_lineage.py", &[&endpoint, mode]))
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_every_lineage_operation_against_quiver() {
    let (_dir, server) = quiver_tests::start().await;
    let report = run(format!("http://{}", server.http), "checks")
        .await
        .expect("python ran");
    quiver_tests::aws::assert_all_checks_passed(&report, 11);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lineage_graph_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &[]).await;
    let seeded = run(format!("http://{}", server.http), "seed")
        .await
        .expect("python ran");
    server.stop().await;

    let server = TestServer::start_in(&data, &[]).await;
    let seen = run(format!("http://{}", server.http), "verify")
        .await
        .expect("python ran");
    assert_eq!(seen["context"], seeded["context"]);
    assert_eq!(
        seeded["runs"],
        serde_json::json!([["keep-run", {"lr": {"NumberValue": 0.5}}]])
    );
    assert_eq!(
        seen["runs"], seeded["runs"],
        "a trial's runs survive the restart"
    );
    let mut expected = vec![
        seeded["artifact"].as_str().unwrap().to_string(),
        seeded["context"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(seen["vertices"], serde_json::json!(expected));
    assert_eq!(
        seen["edges"],
        serde_json::json!([[seeded["artifact"], seeded["context"], "ContributedTo"]])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_lineage_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(&dir.path().join("data"), &["--lineage", "false"]).await;
    let seen = run(format!("http://{}", server.http), "off")
        .await
        .expect("python ran");
    assert_eq!(seen["code"], "ValidationException");
    let message = seen["message"].as_str().unwrap();
    assert!(message.contains("--lineage false"), "{message}");
}

/// The SageMaker Python SDK's lineage classes (`tests/python/sagemaker_lineage_sdk.py`), and
/// the feature processor's check for a feature group's lineage contexts.
#[tokio::test(flavor = "multi_thread")]
async fn sagemaker_sdk_lineage_classes_work_against_quiver() {
    let (_dir, server) = quiver_tests::start().await;
    let endpoint = format!("http://{}", server.http);
    let seen =
        tokio::task::spawn_blocking(move || python("sagemaker_lineage_sdk.py", &[&endpoint]))
            .await
            .expect("python ran");
    assert_eq!(
        seen["loaded"],
        serde_json::json!({"name": "train-data", "type": "DataSet", "uri": "s3://bucket/train.csv", "properties": {"rows": "1000"}})
    );
    assert_eq!(seen["listed"], true);
    assert_eq!(seen["datasets_upstream"], true, "{seen}");
    let edges = seen["edges"].as_array().expect("edges");
    let types: Vec<&str> = edges.iter().map(|e| e[2].as_str().unwrap()).collect();
    assert_eq!(edges.len(), 3, "every association on the way up: {edges:?}");
    assert!(
        types.contains(&"ContributedTo") && types.contains(&"Produced"),
        "{types:?}"
    );
    assert_eq!(
        seen["vertex_object"],
        serde_json::json!(["DatasetArtifact", true])
    );
    assert_eq!(
        seen["downstream"],
        serde_json::json!(["Action", "Artifact", "Artifact", "Context"])
    );
    assert_eq!(
        seen["context_saved"],
        serde_json::json!({"description": "serving v2", "properties": {"stage": "prod"}})
    );
    assert_eq!(seen["after_model_delete"], 0);
    let contexts = &seen["feature_group_contexts"];
    let epoch = contexts["epoch"].as_i64().expect("epoch");
    assert_eq!(contexts["name"], "lineage-orders");
    assert_eq!(
        contexts["pipeline"],
        format!("lineage-orders-{epoch}-feature-group-pipeline")
    );
    assert_eq!(
        contexts["version"],
        format!("lineage-orders-{epoch}-feature-group-pipeline-version")
    );
    assert_eq!(seen["version_type"], "FeatureGroupPipelineVersion");
    assert_eq!(seen["contexts_after_delete"], "ResourceNotFound");
}

/// The SageMaker Python SDK's experiments (`tests/python/sagemaker_experiments_sdk.py`): a
/// `Run` logs parameters, metrics and artifacts, fails, is loaded again and listed, and
/// `Experiment._delete_all` removes it all.
#[tokio::test(flavor = "multi_thread")]
async fn sagemaker_sdk_runs_log_parameters_metrics_and_artifacts_to_quiver() {
    let (_dir, server) = quiver_tests::start().await;
    let endpoint = format!("http://{}", server.http);
    let seen =
        tokio::task::spawn_blocking(move || python("sagemaker_experiments_sdk.py", &[&endpoint]))
            .await
            .expect("python ran");
    assert_eq!(seen["inside"], "InProgress", "{seen}");
    let run = &seen["run"];
    assert_eq!(run["status"], "Completed");
    assert_eq!(run["has_times"], true);
    assert_eq!(
        run["parameters"],
        serde_json::json!({"algo": {"StringValue": "gbm"}, "depth": {"NumberValue": 6.0}, "lr": {"NumberValue": 0.1}})
    );
    assert_eq!(
        run["inputs"],
        serde_json::json!({"train": {"MediaType": "text/csv", "Value": "s3://bucket/train.csv"}})
    );
    assert_eq!(
        run["outputs"],
        serde_json::json!({"model": {"Value": "s3://bucket/model.tar.gz"}})
    );
    assert_eq!(run["loss"], serde_json::json!([3, 0.3, 0.9, 0.3]));
    assert_eq!(seen["failed"], serde_json::json!(["Failed", "diverged"]));
    assert_eq!(seen["loaded"], serde_json::json!(["run-1", "sdk-exp", 6.0]));
    assert_eq!(
        seen["after_load"],
        serde_json::json!(["algo", "depth", "epochs", "lr"])
    );
    assert_eq!(seen["listed"], serde_json::json!(["run-1", "run-2"]));
    assert_eq!(
        seen["trials"],
        serde_json::json!(["Default-Run-Group-sdk-exp"])
    );
    assert_eq!(seen["after_delete"], "ResourceNotFound");
    assert_eq!(seen["runs_left"], 0);
}

/// Experiments over gRPC and the CLI: an experiment, a trial and a run made over gRPC, the run
/// put in the trial, its parameters updated and metrics added, listed by experiment and
/// described by the CLI; bad input refused naming the field; deletes refused while held.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_and_the_cli_serve_experiments_and_runs() {
    use quiver_client::pb;

    let (_dir, server) = quiver_tests::start().await;
    let client = server.client().await;
    let mut lineage = client.lineage();
    let fields = |f: pb::ExperimentFields| Some(f);
    let experiment = lineage
        .create_entity(pb::CreateLineageEntityRequest {
            kind: pb::LineageEntityKind::Experiment.into(),
            name: Some("fraud".into()),
            description: Some("card fraud".into()),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    assert!(
        experiment.arn.ends_with(":experiment/fraud"),
        "{}",
        experiment.arn
    );
    let trial = lineage
        .create_entity(pb::CreateLineageEntityRequest {
            kind: pb::LineageEntityKind::Trial.into(),
            name: Some("gbm".into()),
            experiment: fields(pb::ExperimentFields {
                experiment_name: Some("fraud".into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("trial")
        .into_inner();
    let number = |n: f64| pb::RunParameter {
        value: Some(pb::run_parameter::Value::NumberValue(n)),
    };
    let run = lineage
        .create_entity(pb::CreateLineageEntityRequest {
            kind: pb::LineageEntityKind::TrialComponent.into(),
            name: Some("gbm-run-1".into()),
            status: Some("InProgress".into()),
            experiment: fields(pb::ExperimentFields {
                start_time_ms: Some(1_700_000_000_000),
                parameters: [("lr".to_string(), number(0.1))].into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("trial component")
        .into_inner();
    let membership = lineage
        .associate_trial_component(pb::TrialMembershipRequest {
            trial_component: "gbm-run-1".into(),
            trial: "gbm".into(),
        })
        .await
        .expect("associate")
        .into_inner();
    assert_eq!(
        (
            membership.trial_component_arn.as_str(),
            membership.trial_arn.as_str()
        ),
        (run.arn.as_str(), trial.arn.as_str())
    );
    lineage
        .update_entity(pb::UpdateLineageEntityRequest {
            kind: pb::LineageEntityKind::TrialComponent.into(),
            name_or_arn: "gbm-run-1".into(),
            status: Some("Completed".into()),
            experiment: fields(pb::ExperimentFields {
                end_time_ms: Some(1_700_000_060_000),
                parameters: [("depth".to_string(), number(6.0))].into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("update");
    let metric = |value: f64, at: i64| pb::MetricValue {
        name: "auc".into(),
        timestamp_ms: at,
        step: None,
        value,
    };
    let refused = lineage
        .put_metrics(pb::PutMetricsRequest {
            trial_component: "gbm-run-1".into(),
            values: vec![
                metric(0.81, 1),
                metric(0.85, 2),
                pb::MetricValue {
                    name: String::new(),
                    ..metric(1.0, 3)
                },
            ],
        })
        .await
        .expect("metrics")
        .into_inner();
    assert_eq!(refused.errors.len(), 1);
    assert_eq!(
        (refused.errors[0].index, refused.errors[0].code.as_str()),
        (2, "VALIDATION_ERROR")
    );

    // Bad input names the field.
    let err = lineage
        .create_entity(pb::CreateLineageEntityRequest {
            kind: pb::LineageEntityKind::TrialComponent.into(),
            name: Some("bad-run".into()),
            status: Some("Done".into()),
            ..Default::default()
        })
        .await
        .expect_err("a bad status is refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("Status.PrimaryStatus"),
        "{}",
        err.message()
    );
    let err = lineage
        .create_entity(pb::CreateLineageEntityRequest {
            kind: pb::LineageEntityKind::Trial.into(),
            name: Some("orphan".into()),
            ..Default::default()
        })
        .await
        .expect_err("a trial needs its experiment");
    assert!(
        err.message().contains("experiment_name"),
        "{}",
        err.message()
    );
    let err = lineage
        .delete_entity(pb::DescribeLineageEntityRequest {
            kind: pb::LineageEntityKind::Trial.into(),
            name_or_arn: "gbm".into(),
        })
        .await
        .expect_err("a trial holding a run is kept");
    assert!(
        err.message().contains("DisassociateTrialComponent"),
        "{}",
        err.message()
    );

    // The CLI lists the experiment's runs and describes one with its metrics.
    let listed: serde_json::Value = serde_json::from_str(&server.cli(&[
        "--output",
        "json",
        "lineage",
        "list",
        "trial-components",
        "--experiment",
        "fraud",
    ]))
    .expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let run_json = &listed[0];
    assert_eq!(run_json["name"], "gbm-run-1");
    assert_eq!(run_json["status"], "Completed");
    assert_eq!(
        run_json["parameters"],
        serde_json::json!({"depth": 6.0, "lr": 0.1})
    );
    assert_eq!(run_json["metrics"]["auc"]["count"], 2);
    assert_eq!(run_json["metrics"]["auc"]["last"], 0.85);
    let table = server.cli(&[
        "lineage",
        "list",
        "trials",
        "--trial-component",
        "gbm-run-1",
    ]);
    assert!(
        table.contains("gbm") && table.contains("experiment-trial/gbm"),
        "{table}"
    );
    let described = server.cli(&["lineage", "describe", "fraud", "--kind", "experiment"]);
    assert!(described.contains("card fraud"), "{described}");
}

/// Writes through SageMaker's runtime API are recorded as ingest sessions: the SageMaker SDK's
/// `FeatureGroup.ingest` (200 PutRecord calls from four threads) becomes a BatchIngest action
/// with its row count, ContributedTo the group, once the writes pause; and a session still
/// open at shutdown is recorded then.
#[tokio::test(flavor = "multi_thread")]
async fn runtime_api_ingests_are_recorded_as_batch_ingest_actions() {
    use quiver_client::pb;

    let group_arn = "arn:aws:sagemaker:us-east-1:000000000000:feature-group/sdk_customers";
    let ingests = |client: quiver_client::Client| async move {
        quiver_tests::lineage_entities(
            &client,
            pb::LineageEntityKind::Action,
            Some("BatchIngest"),
            Some(group_arn),
        )
        .await
    };
    let sdk_ingest = |endpoint: String| {
        tokio::task::spawn_blocking(move || {
            quiver_tests::aws::python("sagemaker_sdk.py", &[&endpoint])
        })
    };

    // Ended by a pause.
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--lineage-ingest-idle-secs", "1"],
    )
    .await;
    let seen = sdk_ingest(format!("http://{}", server.http))
        .await
        .expect("python ran");
    assert_eq!(seen["failed_rows"], serde_json::json!([]), "{seen}");
    let mut actions = Vec::new();
    for _ in 0..100 {
        actions = ingests(server.client().await).await;
        if !actions.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rows: u64 = actions
        .iter()
        .map(|a| a.properties["rows"].parse::<u64>().expect("rows"))
        .sum();
    assert_eq!(rows, 200, "{actions:?}");
    let action = &actions[0];
    assert_eq!(action.properties["FeatureGroupName"], "sdk_customers");
    assert!(
        action.properties["client"].contains("Boto3"),
        "{:?}",
        action.properties
    );
    let client = server.client().await;
    let up = quiver_tests::query_lineage(&client, &action.arn, "Descendants", Some(1)).await;
    let types: Vec<&str> = up.vertices.iter().map(|v| v.r#type.as_str()).collect();
    assert!(types.contains(&"FeatureGroup"), "{types:?}");
    server.stop().await;

    // Still open at shutdown.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &["--lineage-ingest-idle-secs", "3600"]).await;
    sdk_ingest(format!("http://{}", server.http))
        .await
        .expect("python ran");
    assert!(ingests(server.client().await).await.is_empty());
    server.stop().await;
    let server = TestServer::start_in(&data, &[]).await;
    let actions = ingests(server.client().await).await;
    let rows: u64 = actions
        .iter()
        .map(|a| a.properties["rows"].parse::<u64>().expect("rows"))
        .sum();
    assert_eq!(rows, 200, "{actions:?}");
    server.stop().await;
}

/// The same graph over gRPC (the Rust client) and the CLI: entities made over gRPC, found by
/// name, drawn as a table, JSON, DOT and Mermaid; bad input refused naming the field; and a
/// feature group's contexts there as soon as it exists.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_and_the_cli_serve_the_same_graph() {
    use quiver_client::pb;

    let (dir, server) = quiver_tests::start().await;
    let client = server.client().await;
    let mut lineage = client.lineage();
    let create = |kind: pb::LineageEntityKind, name: Option<&str>, uri: &str, entity_type: &str| {
        pb::CreateLineageEntityRequest {
            kind: kind.into(),
            name: name.map(str::to_string),
            source: Some(pb::LineageSource {
                source_uri: uri.into(),
                ..Default::default()
            }),
            entity_type: entity_type.into(),
            ..Default::default()
        }
    };
    let data = lineage
        .create_entity(create(
            pb::LineageEntityKind::Artifact,
            None,
            "s3://b/train.csv",
            "DataSet",
        ))
        .await
        .expect("artifact")
        .into_inner();
    let job = lineage
        .create_entity(create(
            pb::LineageEntityKind::Action,
            Some("train"),
            "job",
            "TrainingJob",
        ))
        .await
        .expect("action")
        .into_inner();
    let model = lineage
        .create_entity(create(
            pb::LineageEntityKind::Context,
            Some("model-group"),
            "models",
            "ModelGroup",
        ))
        .await
        .expect("context")
        .into_inner();
    for (from, to, t) in [(&data, &job, "ContributedTo"), (&job, &model, "Produced")] {
        lineage
            .add_association(pb::LineageAssociationRequest {
                source_arn: from.arn.clone(),
                destination_arn: to.arn.clone(),
                association_type: Some(t.into()),
            })
            .await
            .expect("association");
    }
    let err = lineage
        .create_entity(create(
            pb::LineageEntityKind::Action,
            Some("bad name"),
            "x",
            "t",
        ))
        .await
        .expect_err("a bad name is refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("ActionName 'bad name'"),
        "{}",
        err.message()
    );
    let err = lineage
        .query_lineage(pb::QueryLineageRequest {
            start_arns: vec![data.arn.clone()],
            max_depth: Some(11),
            ..Default::default()
        })
        .await
        .expect_err("depth 11 is refused");
    assert!(
        err.message().starts_with("MaxDepth 11"),
        "{}",
        err.message()
    );

    // By name: a context first, else an action.
    let found = lineage
        .describe_entity(pb::DescribeLineageEntityRequest {
            kind: pb::LineageEntityKind::Unspecified.into(),
            name_or_arn: "train".into(),
        })
        .await
        .expect("describe by name")
        .into_inner();
    assert_eq!(found.arn, job.arn);

    let table = server.cli(&[
        "lineage",
        "query",
        "model-group",
        "--direction",
        "ascendants",
    ]);
    assert!(
        table.contains("context/model-group") && table.contains("action/train"),
        "{table}"
    );
    assert!(
        table.contains("ContributedTo") && table.contains("Produced"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&server.cli(&[
        "--output",
        "json",
        "lineage",
        "query",
        &model.arn,
        "--direction",
        "ascendants",
        "--lineage-type",
        "Artifact",
    ]))
    .expect("JSON");
    assert_eq!(json["vertices"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["vertices"][0]["arn"], data.arn);
    assert_eq!(json["edges"].as_array().unwrap().len(), 2, "{json}");
    let dot = server.cli(&[
        "lineage", "query", "train", "--format", "dot", "--depth", "1",
    ]);
    assert!(dot.starts_with("digraph lineage {"), "{dot}");
    assert!(
        dot.contains(&format!(
            "\"{}\" -> \"{}\" [label=\"Produced\"]",
            job.arn, model.arn
        )),
        "{dot}"
    );
    let mermaid = server.cli(&["lineage", "query", "train", "--format", "mermaid"]);
    assert!(mermaid.starts_with("graph LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("-->|ContributedTo|") && mermaid.contains("s3://b/train.csv"),
        "{mermaid}"
    );
    let listed = server.cli(&["lineage", "list", "artifacts", "--type", "DataSet"]);
    assert!(listed.contains("s3://b/train.csv"), "{listed}");
    let associations = server.cli(&["lineage", "list", "associations", "--source-arn", &job.arn]);
    assert!(
        associations.contains("Produced") && associations.contains("(ModelGroup)"),
        "{associations}"
    );
    let described = server.cli(&["lineage", "describe", "model-group"]);
    assert!(described.contains("ModelGroup"), "{described}");

    // A feature group's contexts exist as soon as the group does.
    client
        .create_feature_group(quiver_tests::customers_group("orders", None))
        .await
        .expect("group created");
    let contexts = server.cli(&[
        "--output",
        "json",
        "lineage",
        "list",
        "contexts",
        "--type",
        "FeatureGroupPipelineVersion",
    ]);
    let contexts: serde_json::Value = serde_json::from_str(&contexts).expect("JSON");
    let names: Vec<&str> = contexts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{contexts}");
    assert!(
        names[0].starts_with("orders-") && names[0].ends_with("-feature-group-pipeline-version"),
        "{names:?}"
    );

    // `quiver ingest` records itself: an action contributing to the group.
    let csv = dir.path().join("orders.csv");
    std::fs::write(
        &csv,
        "id,ts,age,score\na,2024-01-01T00:00:00Z,1,0.5\nb,2024-01-01T00:00:00Z,2,1.5\n",
    )
    .unwrap();
    server.cli(&["ingest", "orders", csv.to_str().unwrap(), "--no-progress"]);
    let actions = quiver_tests::lineage_entities(
        &client,
        pb::LineageEntityKind::Action,
        Some("BatchIngest"),
        None,
    )
    .await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(
        actions[0].properties.get("written").map(String::as_str),
        Some("2")
    );
    assert_eq!(actions[0].status.as_deref(), Some("Completed"));
    let downstream =
        quiver_tests::query_lineage(&client, &actions[0].arn, "Descendants", Some(1)).await;
    let types: Vec<&str> = downstream
        .vertices
        .iter()
        .map(|v| v.r#type.as_str())
        .collect();
    assert_eq!(types, ["BatchIngest", "FeatureGroup"]);
}

/// OpenLineage: the `openlineage-python` client's HTTP transport posts run and job events
/// (`tests/python/openlineage_events.py`); the datasets, jobs and runs are in the graph, a
/// dataset naming a feature group's offline table is joined to the group, and the column
/// lineage is queryable (`quiver lineage columns`).
#[tokio::test(flavor = "multi_thread")]
async fn openlineage_events_join_the_graph_with_their_column_lineage() {
    use quiver_client::pb;

    let (_dir, server) = quiver_tests::start().await;
    let client = server.client().await;
    let mut group = quiver_tests::customers_group("orders", None);
    group.offline_store_config = Some(pb::OfflineStoreConfig::default());
    client.create_feature_group(group).await.expect("group");
    let catalog = client
        .get_offline_store_catalog(pb::GetOfflineStoreCatalogRequest {
            feature_group_name: "orders".into(),
            ..Default::default()
        })
        .await
        .expect("catalog");
    let table = format!("{}.{}", catalog.database, catalog.table_name);
    let endpoint = format!("http://{}", server.http);
    let seen = tokio::task::spawn_blocking(move || {
        python("openlineage_events.py", &[&endpoint, "-", &table])
    })
    .await
    .expect("python ran");
    let upstream: Vec<(String, String, String)> =
        serde_json::from_value(seen["upstream_of_report"].clone()).expect("vertices");
    let has = |lineage_type: &str, entity_type: &str, uri: &str| {
        upstream
            .iter()
            .any(|(l, t, u)| l == lineage_type && t == entity_type && u == uri)
    };
    assert!(
        has("Artifact", "DataSet", "s3://warehouse/report"),
        "{upstream:?}"
    );
    assert!(
        has("Action", "JobRun", "airflow/reports.revenue"),
        "{upstream:?}"
    );
    assert!(
        has("Artifact", "DataSet", "s3://warehouse/orders_daily"),
        "{upstream:?}"
    );
    assert!(
        has("Action", "JobRun", "airflow/etl.orders_daily"),
        "{upstream:?}"
    );
    assert!(
        has("Action", "Job", "airflow/etl.orders_daily"),
        "{upstream:?}"
    );
    assert!(
        has(
            "Artifact",
            "DataSet",
            "postgres://db:5432/shop.public.orders"
        ),
        "{upstream:?}"
    );
    assert_eq!(
        seen["failed_run"],
        serde_json::json!({"status": "Failed", "error": "division by zero", "job": "reports.revenue"})
    );
    assert_eq!(
        seen["runs"],
        serde_json::json!([[true, "Completed"], [true, "Failed"]]),
        "the first run's COMPLETE followed its START"
    );
    assert_eq!(
        seen["jobs"],
        serde_json::json!([
            "airflow/etl.orders_daily",
            "airflow/reports.revenue",
            "dbt/models.customers"
        ])
    );
    assert_eq!(
        seen["daily_same_as_group"],
        serde_json::json!([["SameAs", "FeatureGroup"]]),
        "the group's offline table is joined to its context"
    );

    let columns: serde_json::Value = serde_json::from_str(&server.cli(&[
        "--output",
        "json",
        "lineage",
        "columns",
        "s3://warehouse/report",
        "--depth",
        "2",
    ]))
    .expect("JSON");
    let edges: Vec<(String, String, String, String)> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["output_column"].as_str().unwrap().into(),
                e["input_dataset"].as_str().unwrap().into(),
                e["input_field"].as_str().unwrap().into(),
                e["transformation"].as_str().unwrap_or("-").into(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            (
                "revenue".into(),
                "s3://warehouse/orders_daily".into(),
                "total".into(),
                "-".into()
            ),
            (
                "total".into(),
                "postgres://db:5432/shop.public.orders".into(),
                "amount".into(),
                "AGGREGATION".into()
            ),
        ],
        "revenue <- orders_daily.total <- orders.amount"
    );
}

/// With `--auth`, OpenLineage producers authenticate with their API key: Quiver's
/// `<access key id>:<secret>`; without it, or with a wrong secret, they get 403.
#[tokio::test(flavor = "multi_thread")]
async fn openlineage_producers_authenticate_with_an_access_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(&dir.path().join("data"), &["--auth"]).await;
    let text = std::fs::read_to_string(server.data_dir().join("root-credentials")).expect("root");
    let root = quiver_proto::signing::Credentials::from_profile(&text, "default")
        .unwrap()
        .expect("a default profile");
    let endpoint = format!("http://{}", server.http);
    let status = |key: String| {
        let endpoint = endpoint.clone();
        tokio::task::spawn_blocking(move || {
            python("openlineage_events.py", &[&endpoint, &key, "one"])
        })
    };
    let good = format!("{}:{}", root.access_key_id, root.secret_access_key);
    let wrong = format!("{}:not-the-secret", root.access_key_id);
    assert_eq!(status(good).await.unwrap()["status"], 201);
    assert_eq!(status(wrong).await.unwrap()["status"], 403);
    assert_eq!(status("-".into()).await.unwrap()["status"], 403);
    server.stop().await;
}

/// OpenLineage out: a server started with `--openlineage-url` sends what it records by itself
/// to another OpenLineage server (here a second Quiver, which takes them at
/// `/api/v1/lineage`), retrying while that server is not up yet.
#[tokio::test(flavor = "multi_thread")]
async fn quiver_sends_its_own_lineage_as_openlineage_events() {
    use quiver_client::pb;

    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let sender = TestServer::start_in(&dir.path().join("a"), &["--openlineage-url", &url]).await;
    let client = sender.client().await;
    let mut group = quiver_tests::customers_group("orders", None);
    group.offline_store_config = Some(pb::OfflineStoreConfig::default());
    client.create_feature_group(group).await.expect("group");
    client
        .put_record(quiver_tests::put(
            "orders",
            quiver_tests::record("c1", "2024-01-01T00:00:00Z", 30),
        ))
        .await
        .expect("put");
    let base = dir.path().join("base.csv");
    std::fs::write(&base, "id,t\nc1,2024-01-02T00:00:00Z\n").unwrap();
    let out = dir.path().join("dataset");
    sender.cli(&[
        "dataset",
        "create",
        "--base-file",
        base.to_str().unwrap(),
        "--record-id",
        "id",
        "--event-time",
        "t",
        "--group",
        "orders",
        "--out",
        out.to_str().unwrap(),
    ]);

    // The receiver starts only now: the event waits and is sent again.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let receiver = TestServer::start_in(
        &dir.path().join("b"),
        &["--http-addr", &format!("127.0.0.1:{port}")],
    )
    .await;
    let receiver_client = receiver.client().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let job = loop {
        let jobs = quiver_tests::lineage_entities(
            &receiver_client,
            pb::LineageEntityKind::Action,
            Some("Job"),
            None,
        )
        .await;
        if let Some(job) = jobs
            .into_iter()
            .find(|j| j.properties.get("Name").map(String::as_str) == Some("dataset.create"))
        {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dataset.create job arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        job.properties.get("Namespace").map(String::as_str),
        Some("quiver")
    );
    let runs = quiver_tests::lineage_entities(
        &receiver_client,
        pb::LineageEntityKind::Action,
        Some("JobRun"),
        None,
    )
    .await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status.as_deref(), Some("Completed"));
    let upstream =
        quiver_tests::query_lineage(&receiver_client, &runs[0].arn, "Ascendants", Some(1)).await;
    let uris: Vec<&str> = upstream
        .vertices
        .iter()
        .map(|v| v.source_uri.as_str())
        .collect();
    let base_uri = format!("file://{}", base.display());
    assert!(uris.contains(&base_uri.as_str()), "{uris:?}");
    assert!(
        uris.iter().any(|u| u.ends_with(":feature-group/orders")),
        "{uris:?}"
    );
    let downstream =
        quiver_tests::query_lineage(&receiver_client, &runs[0].arn, "Descendants", Some(1)).await;
    assert!(
        downstream
            .vertices
            .iter()
            .any(|v| v.source_uri.ends_with("/dataset")),
        "{:?}",
        downstream.vertices
    );
    let (status, metrics) = sender.http_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("quiver_openlineage_events_total{outcome=\"sent\"} 1"),
        "{metrics}"
    );
    receiver.stop().await;
    sender.stop().await;
}
