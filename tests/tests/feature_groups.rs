//! The control plane end to end: create, describe, list (filters, sort, pagination), update,
//! delete, feature metadata; plus health, reflection and the HTTP listener.

use quiver_client::pb;
use quiver_tests::*;

#[tokio::test]
async fn create_describe_update_delete() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    let mut request = customers_group("Customers-1", Some(3600));
    request.description = "people who buy".into();
    request.tags = vec![pb::Tag {
        key: "team".into(),
        value: "risk".into(),
    }];
    let arn = client
        .create_feature_group(request.clone())
        .await
        .unwrap()
        .feature_group_arn;
    assert_eq!(
        arn,
        "arn:aws:sagemaker:us-east-1:000000000000:feature-group/customers-1"
    );

    let again = client
        .create_feature_group(request.clone())
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some(tonic::Code::AlreadyExists));
    let mut other_case = request.clone();
    other_case.feature_group_name = "customers-1".into();
    assert_eq!(
        client
            .create_feature_group(other_case)
            .await
            .unwrap_err()
            .code(),
        Some(tonic::Code::AlreadyExists)
    );

    // By name or by ARN.
    for name in ["Customers-1", arn.as_str()] {
        let d = client
            .describe_feature_group(pb::DescribeFeatureGroupRequest {
                feature_group_name: name.into(),
            })
            .await
            .unwrap();
        assert_eq!(d.feature_group_name, "Customers-1");
        assert_eq!(d.feature_definitions.len(), 5);
        assert_eq!(d.description, "people who buy");
        assert_eq!(d.tags.len(), 1);
        assert_eq!(
            d.feature_group_status,
            pb::FeatureGroupStatus::Created as i32
        );
        assert_eq!(
            d.online_store_config.unwrap().ttl_duration.unwrap().value,
            3600
        );
        assert!(d.creation_time_unix_ms > 1_600_000_000_000);
    }

    // Update: add features, change the TTL.
    client
        .update_feature_group(pb::UpdateFeatureGroupRequest {
            feature_group_name: "Customers-1".into(),
            feature_additions: vec![
                fdef("country", pb::FeatureType::String),
                pb::FeatureDefinition {
                    collection_type: pb::CollectionType::Vector as i32,
                    vector_dimension: 3,
                    ..fdef("embedding", pb::FeatureType::Fractional)
                },
            ],
            online_store_config: Some(pb::OnlineStoreConfigUpdate {
                ttl_duration: Some(pb::TtlDuration {
                    unit: pb::TtlUnit::Days as i32,
                    value: 2,
                }),
                clear_ttl_duration: false,
            }),
        })
        .await
        .unwrap();
    let d = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: "Customers-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(d.feature_definitions.len(), 7);
    assert_eq!(d.feature_definitions[6].vector_dimension, 3);
    let ttl = d.online_store_config.unwrap().ttl_duration.unwrap();
    assert_eq!((ttl.unit, ttl.value), (pb::TtlUnit::Days as i32, 2));

    // A feature that already exists cannot be added again.
    let dup = client
        .update_feature_group(pb::UpdateFeatureGroupRequest {
            feature_group_name: "Customers-1".into(),
            feature_additions: vec![fdef("AGE", pb::FeatureType::Integral)],
            online_store_config: None,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Some(tonic::Code::InvalidArgument));

    // Feature metadata.
    client
        .update_feature_metadata(pb::UpdateFeatureMetadataRequest {
            feature_group_name: "Customers-1".into(),
            feature_name: "age".into(),
            description: Some("age in years".into()),
            parameter_additions: vec![
                pb::FeatureParameter {
                    key: "pii".into(),
                    value: "false".into(),
                },
                pb::FeatureParameter {
                    key: "unit".into(),
                    value: "years".into(),
                },
            ],
            parameter_removals: vec![],
        })
        .await
        .unwrap();
    client
        .update_feature_metadata(pb::UpdateFeatureMetadataRequest {
            feature_group_name: "Customers-1".into(),
            feature_name: "age".into(),
            description: None,
            parameter_additions: vec![],
            parameter_removals: vec!["unit".into()],
        })
        .await
        .unwrap();
    let meta = client
        .describe_feature_metadata(pb::DescribeFeatureMetadataRequest {
            feature_group_name: "Customers-1".into(),
            feature_name: "age".into(),
        })
        .await
        .unwrap();
    assert_eq!(meta.description, "age in years");
    assert_eq!(meta.feature_type, pb::FeatureType::Integral as i32);
    assert_eq!(meta.parameters.len(), 1);
    assert_eq!(meta.parameters[0].key, "pii");
    let missing = client
        .describe_feature_metadata(pb::DescribeFeatureMetadataRequest {
            feature_group_name: "Customers-1".into(),
            feature_name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(tonic::Code::NotFound));

    // Delete removes the data and frees the name.
    client
        .put_record(put("Customers-1", record("c1", &ts(1), 1)))
        .await
        .unwrap();
    client
        .delete_feature_group(pb::DeleteFeatureGroupRequest {
            feature_group_name: "Customers-1".into(),
        })
        .await
        .unwrap();
    let gone = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: "Customers-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some(tonic::Code::NotFound));
    assert_eq!(
        client
            .get_record(get("Customers-1", "c1"))
            .await
            .unwrap_err()
            .code(),
        Some(tonic::Code::NotFound)
    );
    client.create_feature_group(request).await.unwrap();
    assert!(
        read(&client, "Customers-1", "c1").await.is_empty(),
        "a re-created group does not see the old group's records"
    );
}

#[tokio::test]
async fn list_filters_sorts_and_paginates() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    for i in 0..25 {
        let name = if i % 2 == 0 {
            format!("even-{i:02}")
        } else {
            format!("odd-{i:02}")
        };
        client
            .create_feature_group(customers_group(&name, None))
            .await
            .unwrap();
    }

    let page = |max: u32, token: String| pb::ListFeatureGroupsRequest {
        sort_by: pb::SortBy::Name as i32,
        sort_order: pb::SortOrder::Ascending as i32,
        max_results: max,
        next_token: token,
        ..Default::default()
    };
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let response = client.list_feature_groups(page(10, token)).await.unwrap();
        pages += 1;
        names.extend(
            response
                .feature_group_summaries
                .into_iter()
                .map(|s| s.feature_group_name),
        );
        if response.next_token.is_empty() {
            break;
        }
        token = response.next_token;
    }
    assert_eq!(pages, 3);
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(names.len(), 25);

    let evens = client
        .list_all_feature_groups(pb::ListFeatureGroupsRequest {
            name_contains: "EVEN".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(evens.len(), 13);
    // Default order: newest first.
    assert!(
        evens
            .windows(2)
            .all(|w| w[0].creation_time_unix_ms >= w[1].creation_time_unix_ms)
    );

    let descending = client
        .list_feature_groups(pb::ListFeatureGroupsRequest {
            sort_by: pb::SortBy::Name as i32,
            sort_order: pb::SortOrder::Descending as i32,
            max_results: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        descending.feature_group_summaries[0].feature_group_name,
        "odd-23"
    );

    let bad = client
        .list_feature_groups(page(101, String::new()))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(tonic::Code::InvalidArgument));
    let bad_token = client
        .list_feature_groups(page(10, "zz".into()))
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Some(tonic::Code::InvalidArgument));
}

#[tokio::test]
async fn health_reflection_metrics_and_healthz() {
    let (_dir, server) = start().await;
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "quiver.featurestore.v1.FeatureStore".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Reflection: list services the way grpcurl does.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        services.contains(&"quiver.featurestore.v1.FeatureStore".to_string()),
        "{services:?}"
    );

    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();
    client
        .put_record(put("g", record("a", &ts(1), 1)))
        .await
        .unwrap();
    let _ = client.get_record(get("g", "a")).await.unwrap();

    let (code, body) = server.http_get("/healthz").await;
    assert_eq!(code, 200, "{body}");
    let (code, metrics) = server.http_get("/metrics").await;
    assert_eq!(code, 200);
    for expected in [
        "quiver_grpc_requests_total{method=\"PutRecord\",code=\"Ok\"} 1",
        "quiver_grpc_request_duration_seconds_bucket{method=\"GetRecord\"",
        "quiver_records_written_total 1",
        "quiver_feature_groups 1",
        "quiver_rocksdb_block_cache_usage_bytes",
        "quiver_rocksdb_running_compactions",
    ] {
        assert!(
            metrics.contains(expected),
            "/metrics lacks {expected}:\n{metrics}"
        );
    }
}
