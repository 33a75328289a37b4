//! A table of malformed requests: each is answered INVALID_ARGUMENT (or the named code) with a
//! message naming the field and the rule, and the server keeps serving.

use quiver_client::{Client, ClientError, pb, value};
use quiver_tests::*;

type Check =
    fn(
        &Client,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ClientError>> + '_>>;

fn group_with(f: impl FnOnce(&mut pb::CreateFeatureGroupRequest)) -> pb::CreateFeatureGroupRequest {
    let mut request = customers_group("fresh", None);
    f(&mut request);
    request
}

macro_rules! case {
    ($name:expr, $code:ident, $expect:expr, |$c:ident| $body:expr) => {
        (
            $name,
            tonic::Code::$code,
            $expect,
            (|$c: &Client| Box::pin(async move { $body.await.map(|_| ()) })) as Check,
        )
    };
}

#[tokio::test]
async fn malformed_requests_get_helpful_errors() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();

    let cases: Vec<(&str, tonic::Code, &str, Check)> = vec![
        case!(
            "group name with a space",
            InvalidArgument,
            "FeatureGroupName 'bad name'",
            |c| c.create_feature_group(group_with(|r| r.feature_group_name = "bad name".into()))
        ),
        case!(
            "group name too long",
            InvalidArgument,
            "1-64 characters",
            |c| c.create_feature_group(group_with(|r| r.feature_group_name = "x".repeat(65)))
        ),
        case!(
            "reserved feature name",
            InvalidArgument,
            "is reserved",
            |c| c.create_feature_group(group_with(
                |r| r.feature_definitions[2].feature_name = "is_deleted".into()
            ))
        ),
        case!(
            "feature type missing",
            InvalidArgument,
            "FeatureDefinitions[2].FeatureType is required",
            |c| c.create_feature_group(group_with(|r| r.feature_definitions[2].feature_type = 0))
        ),
        case!(
            "identifier not defined",
            InvalidArgument,
            "RecordIdentifierFeatureName 'nope'",
            |c| c.create_feature_group(group_with(
                |r| r.record_identifier_feature_name = "nope".into()
            ))
        ),
        case!(
            "event time of wrong type",
            InvalidArgument,
            "EventTimeFeatureName 'age'",
            |c| c.create_feature_group(group_with(|r| r.event_time_feature_name = "age".into()))
        ),
        case!("no store", InvalidArgument, "at least one of", |c| c
            .create_feature_group(group_with(
                |r| r.online_store_config = None
            ))),
        case!(
            "vector without dimension",
            InvalidArgument,
            "Dimension 0",
            |c| c.create_feature_group(group_with(|r| {
                r.feature_definitions[3].collection_type = pb::CollectionType::Vector as i32;
            }))
        ),
        case!("ttl of zero", InvalidArgument, "TtlDuration.Value 0", |c| c
            .create_feature_group(group_with(|r| {
                r.online_store_config.as_mut().unwrap().ttl_duration = Some(pb::TtlDuration {
                    unit: pb::TtlUnit::Seconds as i32,
                    value: 0,
                });
            }))),
        case!("too many features", ResourceExhausted, "1..2500", |c| c
            .create_feature_group(group_with(|r| {
                for i in 0..2500 {
                    r.feature_definitions
                        .push(fdef(&format!("f{i}"), pb::FeatureType::Integral));
                }
            }))),
        case!(
            "unknown group",
            NotFound,
            "feature group 'missing' does not exist",
            |c| c.put_record(put("missing", record("a", &ts(1), 1)))
        ),
        case!(
            "missing identifier",
            InvalidArgument,
            "missing the record identifier feature 'id'",
            |c| c.put_record(put("g", vec![value::string("ts", ts(1))]))
        ),
        case!(
            "missing event time",
            InvalidArgument,
            "missing the event time feature 'ts'",
            |c| c.put_record(put("g", vec![value::string("id", "a")]))
        ),
        case!(
            "event time with offset",
            InvalidArgument,
            "'2024-01-01T00:00:00+01:00'",
            |c| c.put_record(put("g", record("a", "2024-01-01T00:00:00+01:00", 1)))
        ),
        case!(
            "event time Feb 30",
            InvalidArgument,
            "day 30 is not 01..29",
            |c| c.put_record(put("g", record("a", "2024-02-30T00:00:00Z", 1)))
        ),
        case!(
            "wrong value type",
            InvalidArgument,
            "feature 'age' is Integral; got a String value",
            |c| c.put_record(put(
                "g",
                vec![
                    value::string("id", "a"),
                    value::string("ts", ts(1)),
                    value::string("age", "x")
                ]
            ))
        ),
        case!(
            "unknown feature",
            InvalidArgument,
            "Record[3].FeatureName 'colour' is not a feature",
            |c| c.put_record(put(
                "g",
                [record("a", &ts(1), 1), vec![value::string("colour", "red")]].concat()
            ))
        ),
        case!(
            "duplicate set element",
            InvalidArgument,
            "element 'x' appears more than once",
            |c| c.put_record(put(
                "g",
                [
                    record("a", &ts(1), 1),
                    vec![value::string_list("tags", vec!["x".into(), "x".into()])]
                ]
                .concat()
            ))
        ),
        case!(
            "value without a kind",
            InvalidArgument,
            "feature 'age' has no value",
            |c| c.put_record(put(
                "g",
                [
                    record("a", &ts(1), 1),
                    vec![pb::FeatureValue {
                        feature_name: "age".into(),
                        value: None
                    }]
                ]
                .concat()
            ))
        ),
        case!(
            "empty identifier",
            InvalidArgument,
            "must not be empty",
            |c| c.put_record(put("g", record("", &ts(1), 1)))
        ),
        case!(
            "identifier over 2 KB",
            ResourceExhausted,
            "longer than 2048 bytes",
            |c| c.put_record(put("g", record(&"i".repeat(3000), &ts(1), 1)))
        ),
        case!(
            "record over 350 KB",
            ResourceExhausted,
            "the limit is 358400",
            |c| c.put_record(put(
                "g",
                [
                    record("a", &ts(1), 1),
                    vec![value::string_list(
                        "tags",
                        (0..4)
                            .map(|i| format!("{i}{}", "v".repeat(100_000)))
                            .collect()
                    )]
                ]
                .concat()
            ))
        ),
        case!(
            "target store the group lacks",
            InvalidArgument,
            "has no offline store",
            |c| c.put_record(pb::PutRecordRequest {
                target_stores: vec![pb::TargetStore::OfflineStore as i32],
                ..put("g", record("a", &ts(1), 1))
            })
        ),
        case!(
            "unknown feature in GetRecord",
            InvalidArgument,
            "FeatureNames[0]",
            |c| c.get_record(pb::GetRecordRequest {
                feature_names: vec!["colour".into()],
                ..get("g", "a")
            })
        ),
        case!(
            "delete with a bad event time",
            InvalidArgument,
            "EventTime 'yesterday'",
            |c| c.delete_record(pb::DeleteRecordRequest {
                feature_group_name: "g".into(),
                record_identifier_value_as_string: "a".into(),
                event_time: "yesterday".into(),
                ..Default::default()
            })
        ),
        case!(
            "unknown deletion mode",
            InvalidArgument,
            "DeletionMode has unknown enum value 7",
            |c| c.delete_record(pb::DeleteRecordRequest {
                feature_group_name: "g".into(),
                record_identifier_value_as_string: "a".into(),
                event_time: ts(1),
                deletion_mode: 7,
                ..Default::default()
            })
        ),
        case!(
            "empty PutRecords",
            InvalidArgument,
            "at least one record",
            |c| c.put_records(pb::PutRecordsRequest { records: vec![] })
        ),
        case!(
            "empty BatchGetRecord",
            InvalidArgument,
            "at least one record identifier",
            |c| c.batch_get_record(pb::BatchGetRecordRequest::default())
        ),
        case!(
            "metadata description too long",
            InvalidArgument,
            "Description",
            |c| c.update_feature_metadata(pb::UpdateFeatureMetadataRequest {
                feature_group_name: "g".into(),
                feature_name: "age".into(),
                description: Some("d".repeat(256)),
                ..Default::default()
            })
        ),
        case!(
            "update with nothing to change",
            InvalidArgument,
            "needs FeatureAdditions",
            |c| c.update_feature_group(pb::UpdateFeatureGroupRequest {
                feature_group_name: "g".into(),
                ..Default::default()
            })
        ),
    ];
    assert!(cases.len() >= 20);

    for (name, code, expect, call) in &cases {
        let err = call(&client).await.expect_err(name);
        let status = err.status().unwrap_or_else(|| panic!("{name}: {err}"));
        assert_eq!(status.code(), *code, "{name}: {}", status.message());
        assert!(
            status.message().contains(expect),
            "{name}: message {:?} should contain {expect:?}",
            status.message()
        );
        assert!(
            status.message().len() < 600,
            "{name}: message quotes too much: {} bytes",
            status.message().len()
        );
    }

    // Still serving, and nothing was written by the bad requests.
    client
        .put_record(put("g", record("ok", &ts(1), 1)))
        .await
        .unwrap();
    assert!(!read(&client, "g", "ok").await.is_empty());
    assert!(read(&client, "g", "a").await.is_empty());
    let groups = client
        .list_all_feature_groups(pb::ListFeatureGroupsRequest::default())
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
}

/// PutRecord bytes as any protobuf library may send them: a field given twice means its last
/// value (the server reads such a request the slow way, as prost does), and bytes that are not
/// a PutRecordRequest are refused with the field and the problem, without writing anything.
#[tokio::test]
async fn put_record_bytes_are_read_as_protobuf_says() {
    use prost::Message;
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();
    let channel = tonic::transport::Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut send = async |bytes: Vec<u8>| {
        grpc.ready().await.unwrap();
        let codec =
            tonic_prost::ProstCodec::<quiver_proto::Undecoded, pb::PutRecordResponse>::default();
        grpc.unary(
            tonic::Request::new(quiver_proto::Undecoded(bytes.into())),
            "/quiver.featurestore.v1.FeatureStore/PutRecord"
                .parse()
                .unwrap(),
            codec,
        )
        .await
    };

    // The group named twice, the real one last; the age's value given twice, 7 last.
    let mut bytes = put("nope", record("c1", &ts(1), 41)[..2].to_vec()).encode_to_vec();
    prost::encoding::string::encode(1, &"g".to_string(), &mut bytes);
    let mut age = value::integral("age", 40).encode_to_vec();
    prost::encoding::int64::encode(2, &7, &mut age);
    prost::encoding::bytes::encode(2, &age, &mut bytes);
    let written = send(bytes).await.expect("a merged request is written");
    assert_eq!(written.get_ref().outcome, pb::WriteOutcome::Applied as i32);
    let stored = read(&client, "g", "c1").await;
    assert_eq!(feature(&stored, "age"), Some(serde_json::json!(7)));

    // A feature name that is not UTF-8.
    let mut bad = value::integral("age", 1).encode_to_vec();
    bad[2] = 0xff;
    let mut bytes = put("g", record("c2", &ts(1), 1)).encode_to_vec();
    prost::encoding::bytes::encode(2, &bad, &mut bytes);
    let refused = send(bytes).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("feature_name") && refused.message().contains("UTF-8"),
        "{refused:?}"
    );
    // Cut short inside a value.
    let bytes = put("g", record("c3", &ts(1), 1)).encode_to_vec();
    let refused = send(bytes[..bytes.len() - 3].to_vec()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("PutRecordRequest"),
        "{refused:?}"
    );
    for id in ["c2", "c3"] {
        assert!(
            read(&client, "g", id).await.is_empty(),
            "{id} was not written"
        );
    }
}
