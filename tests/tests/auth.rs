//! Authentication and authorization end to end, against a real `quiver-server --auth`:
//! unsigned, wrongly signed, replayed, expired and revoked requests are UNAUTHENTICATED;
//! requests a principal's policies do not allow are PERMISSION_DENIED and audited; every gRPC
//! method of every service and every HTTP operation checks authorization; keys rotate; the
//! simulator explains decisions; boto3 signs with Quiver keys.

use std::time::Duration;

use prost::Message;
use quiver_client::{Client, pb};
use quiver_proto::signing::{self, Credentials, Signed};
use quiver_tests::{TestServer, customers_group, flight, get, put, read, record};
use tonic::Code;
use tonic::transport::Channel;

async fn start_with_auth() -> (tempfile::TempDir, TestServer, Credentials) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(&dir.path().join("data"), &["--auth"]).await;
    let text = std::fs::read_to_string(server.data_dir().join("root-credentials"))
        .expect("the root principal's credentials file");
    let root = Credentials::from_profile(&text, "default")
        .unwrap()
        .expect("a default profile");
    (dir, server, root)
}

async fn client(server: &TestServer, credentials: Option<Credentials>) -> Client {
    Client::connect_with(server.endpoint(), credentials)
        .await
        .expect("client connects")
}

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn code<T>(result: Result<T, quiver_client::ClientError>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(e) => e.code().unwrap_or(Code::Unknown),
    }
}

/// The audit log's entries, as JSON.
fn audit(server: &TestServer) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.data_dir().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

/// A principal with one policy and a key, made by root.
async fn principal(root: &Client, name: &str, policy: &str) -> Credentials {
    let mut admin = root.admin();
    admin
        .create_principal(pb::CreatePrincipalRequest { name: name.into() })
        .await
        .unwrap();
    if !policy.is_empty() {
        admin
            .put_policy(pb::PutPolicyRequest {
                name: format!("{name}-policy"),
                document: policy.into(),
            })
            .await
            .unwrap();
        admin
            .attach_policy(pb::AttachPolicyRequest {
                policy: format!("{name}-policy"),
                principal: name.into(),
                group: String::new(),
            })
            .await
            .unwrap();
    }
    let key = admin
        .create_access_key(pb::CreateAccessKeyRequest {
            principal: name.into(),
        })
        .await
        .unwrap()
        .into_inner();
    Credentials {
        access_key_id: key.key.unwrap().access_key_id,
        secret_access_key: key.secret_access_key,
    }
}

const GET_RECORD: &str = "/quiver.featurestore.v1.FeatureStore/GetRecord";

/// GetRecord sent with exactly these signing headers (date, nonce, digest, authorization),
/// so that a test can replay or forge them.
async fn get_record_with(
    channel: &Channel,
    message: &pb::GetRecordRequest,
    headers: &[(&'static str, String)],
) -> Code {
    let mut request = tonic::Request::new(message.clone());
    for (name, value) in headers {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    let mut client =
        quiver_proto::v1::feature_store_client::FeatureStoreClient::new(channel.clone());
    match client.get_record(request).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// The HTTP/2 body tonic sends for `message`: one uncompressed gRPC frame.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((body.len() as u32).to_be_bytes());
    frame.extend(&body);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_must_be_signed_fresh_and_not_replayed() {
    let (_dir, server, root_key) = start_with_auth().await;
    let root = client(&server, Some(root_key.clone())).await;
    root.create_feature_group(customers_group("customers", None))
        .await
        .unwrap();
    root.put_record(put("customers", record("c1", "2024-01-01T00:00:00Z", 41)))
        .await
        .unwrap();
    assert_eq!(
        code(root.get_record(get("customers", "c1")).await),
        Code::Ok
    );

    // Unsigned, a wrong secret, an unknown key.
    let unsigned = client(&server, None).await;
    assert_eq!(
        code(unsigned.get_record(get("customers", "c1")).await),
        Code::Unauthenticated
    );
    let wrong = client(
        &server,
        Some(Credentials {
            access_key_id: root_key.access_key_id.clone(),
            secret_access_key: "not-the-secret".into(),
        }),
    )
    .await;
    let err = wrong.get_record(get("customers", "c1")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    assert!(
        err.to_string().contains("signature does not match"),
        "{err}"
    );
    let unknown = client(
        &server,
        Some(Credentials {
            access_key_id: "AKQVNOSUCHKEY".into(),
            secret_access_key: "x".into(),
        }),
    )
    .await;
    assert_eq!(
        code(
            unknown
                .create_feature_group(customers_group("x", None))
                .await
        ),
        Code::Unauthenticated
    );

    // A replay of a valid signed request: the first is answered, the copy is not.
    let ch = channel(&server).await;
    let message = get("customers", "c1");
    let headers = [(
        signing::AUTHORIZATION,
        root_key.sign(GET_RECORD, &frame(&message)),
    )];
    assert_eq!(get_record_with(&ch, &message, &headers).await, Code::Ok);
    assert_eq!(
        get_record_with(&ch, &message, &headers).await,
        Code::Unauthenticated
    );

    // The signature covers the body: the same header on another request is refused.
    let other = get("customers", "c2");
    let headers = [(
        signing::AUTHORIZATION,
        root_key.sign(GET_RECORD, &frame(&message)),
    )];
    assert_eq!(
        get_record_with(&ch, &other, &headers).await,
        Code::Unauthenticated
    );

    // Expired: signed ten minutes ago (outside the five-minute window), correctly otherwise.
    let date = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .timestamp_millis()
        .to_string();
    let nonce = "0123456789abcdef0123456789abcdef";
    let signature = signing::signature(
        &root_key.secret_access_key,
        &signing::string_to_sign(
            &date,
            GET_RECORD,
            nonce,
            &signing::sha256_hex(&frame(&message)),
        ),
    );
    let expired = signing::Authorization {
        key_id: &root_key.access_key_id,
        date: &date,
        nonce,
        signature: &signature,
    };
    assert_eq!(
        get_record_with(
            &ch,
            &message,
            &[(signing::AUTHORIZATION, expired.to_header())]
        )
        .await,
        Code::Unauthenticated
    );

    // A revoked (inactive) key, then active again.
    let alice = principal(
        &root,
        "alice",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sagemaker:GetRecord","Resource":"*"}}"#,
    )
    .await;
    let as_alice = client(&server, Some(alice.clone())).await;
    assert_eq!(
        code(as_alice.get_record(get("customers", "c1")).await),
        Code::Ok
    );
    let mut admin = root.admin();
    admin
        .update_access_key(pb::UpdateAccessKeyRequest {
            access_key_id: alice.access_key_id.clone(),
            status: "Inactive".into(),
        })
        .await
        .unwrap();
    let err = as_alice
        .get_record(get("customers", "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    assert!(err.to_string().contains("inactive"), "{err}");

    // Rotation: a new key works, the old one is made inactive.
    admin
        .update_access_key(pb::UpdateAccessKeyRequest {
            access_key_id: alice.access_key_id.clone(),
            status: "Active".into(),
        })
        .await
        .unwrap();
    let rotated = admin
        .rotate_access_key(pb::RotateAccessKeyRequest {
            access_key_id: alice.access_key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let new_key = Credentials {
        access_key_id: rotated.key.unwrap().access_key_id,
        secret_access_key: rotated.secret_access_key,
    };
    assert_ne!(new_key.access_key_id, alice.access_key_id);
    let as_new = client(&server, Some(new_key)).await;
    assert_eq!(
        code(as_new.get_record(get("customers", "c1")).await),
        Code::Ok
    );
    assert_eq!(
        code(as_alice.get_record(get("customers", "c1")).await),
        Code::Unauthenticated
    );

    // Health checks need no signature.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health is public");

    // Every refusal was audited, with what was wrong.
    let entries = audit(&server);
    let unauthenticated: Vec<_> = entries
        .iter()
        .filter(|e| e["decision"] == "unauthenticated")
        .collect();
    assert!(unauthenticated.len() >= 7, "{entries:#?}");
    for needle in [
        "not signed",
        "signature does not match",
        "already received",
        "from the server's",
        "inactive",
    ] {
        assert!(
            unauthenticated
                .iter()
                .any(|e| e["detail"].as_str().unwrap_or("").contains(needle)),
            "no audited refusal mentions {needle:?}: {unauthenticated:#?}"
        );
    }
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "quiver:RotateAccessKey" && e["decision"] == "allowed"),
        "administrative changes are audited: {entries:#?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_decide_feature_level_access_and_denials_are_audited() {
    let (_dir, server, root_key) = start_with_auth().await;
    let root = client(&server, Some(root_key)).await;
    for name in ["customers", "orders"] {
        root.create_feature_group(customers_group(name, None))
            .await
            .unwrap();
        root.put_record(put(name, record("c1", "2024-01-01T00:00:00Z", 41)))
            .await
            .unwrap();
    }
    // Reads of `customers` only, never its `score` feature.
    let analyst = principal(
        &root,
        "analyst",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"ReadCustomers","Effect":"Allow","Action":["sagemaker:GetRecord","sagemaker:BatchGetRecord","sagemaker:DescribeFeatureGroup"],
             "Resource":"arn:aws:sagemaker:*:*:feature-group/customers"},
            {"Sid":"NoScore","Effect":"Deny","Action":["sagemaker:GetRecord","sagemaker:BatchGetRecord","quiver:Query"],"Resource":"*",
             "Condition":{"ForAnyValue:StringEquals":{"quiver:FeatureNames":["score"]}}}]}"#,
    )
    .await;
    let as_analyst = client(&server, Some(analyst)).await;
    let named = |features: &[&str]| pb::GetRecordRequest {
        feature_names: features.iter().map(|f| f.to_string()).collect(),
        ..get("customers", "c1")
    };
    let record = as_analyst.get_record(named(&["id", "age"])).await.unwrap();
    assert_eq!(record.record.len(), 2);
    let err = as_analyst
        .get_record(named(&["age", "score"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    assert!(err.to_string().contains("explicit deny"), "{err}");
    // Without FeatureNames, GetRecord reads every feature, `score` included: denied.
    assert_eq!(
        code(as_analyst.get_record(get("customers", "c1")).await),
        Code::PermissionDenied
    );
    // Another group, and writes: nothing allows them.
    let err = as_analyst
        .get_record(pb::GetRecordRequest {
            feature_names: vec!["age".into()],
            ..get("orders", "c1")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    assert!(
        err.to_string().contains("no identity-based policy allows"),
        "{err}"
    );
    assert_eq!(
        code(
            as_analyst
                .put_record(put("customers", record_of("c2")))
                .await
        ),
        Code::PermissionDenied
    );
    // A group's policy adds writes to `customers`.
    let mut admin = root.admin();
    admin
        .create_group(pb::CreateGroupRequest {
            name: "writers".into(),
        })
        .await
        .unwrap();
    admin
        .put_policy(pb::PutPolicyRequest {
            name: "WriteCustomers".into(),
            document: r#"{"Version":"2012-10-17","Statement":{"Sid":"Write","Effect":"Allow","Action":"sagemaker:PutRecord","Resource":"arn:aws:sagemaker:*:*:feature-group/customers"}}"#.into(),
        })
        .await
        .unwrap();
    admin
        .attach_policy(pb::AttachPolicyRequest {
            policy: "WriteCustomers".into(),
            principal: String::new(),
            group: "writers".into(),
        })
        .await
        .unwrap();
    admin
        .add_principal_to_group(pb::GroupMembershipRequest {
            group: "writers".into(),
            principal: "analyst".into(),
        })
        .await
        .unwrap();
    as_analyst
        .put_record(put("customers", record_of("c2")))
        .await
        .expect("allowed through the group");
    // A bad policy is refused with the field named.
    let err = admin
        .put_policy(pb::PutPolicyRequest {
            name: "Broken".into(),
            document: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqulas":{"a":"b"}}}}"#.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("Condition.StringEqulas"),
        "{}",
        err.message()
    );

    // The simulator gives the decision and the deciding statement.
    let simulate = |action: &str, resource: &str, features: &[&str]| pb::SimulateRequest {
        principal: "analyst".into(),
        action: action.into(),
        resource: resource.into(),
        context: if features.is_empty() {
            vec![]
        } else {
            vec![pb::ContextEntry {
                key: "quiver:FeatureNames".into(),
                values: features.iter().map(|f| f.to_string()).collect(),
            }]
        },
    };
    let arn = "arn:aws:sagemaker:us-east-1:000000000000:feature-group/customers";
    let out = admin
        .simulate_principal_policy(simulate("sagemaker:GetRecord", arn, &["age"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.decision, "allowed");
    assert!(out.statement.contains("ReadCustomers"), "{out:?}");
    let out = admin
        .simulate_principal_policy(simulate("sagemaker:GetRecord", arn, &["score"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.decision, "explicitDeny");
    assert!(out.statement.contains("NoScore"), "{out:?}");
    let out = admin
        .simulate_principal_policy(simulate("sagemaker:DeleteRecord", arn, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.decision.as_str(), out.statement.as_str()),
        ("implicitDeny", "")
    );
    assert!(
        out.policies.contains(&"writers/WriteCustomers".to_string()),
        "{out:?}"
    );
    // The analyst may not administer.
    let err = as_analyst
        .admin()
        .create_principal(pb::CreatePrincipalRequest { name: "eve".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Denials are in the audit log with the principal, action, resource and statement.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let entries = audit(&server);
    let denied = entries
        .iter()
        .find(|e| {
            e["decision"] == "explicitDeny"
                && e["principal"] == "analyst"
                && e["action"] == "sagemaker:GetRecord"
        })
        .unwrap_or_else(|| panic!("no audited explicit deny: {entries:#?}"));
    assert_eq!(denied["resource"], arn);
    assert!(
        denied["statement"].as_str().unwrap().contains("NoScore"),
        "{denied}"
    );
    assert!(
        denied["source_ip"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1"),
        "{denied}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["decision"] == "implicitDeny" && e["action"] == "quiver:CreatePrincipal")
    );
    assert!(entries.iter().any(|e| e["decision"] == "allowed"
        && e["action"] == "quiver:AttachPolicy"
        && e["detail"] == "WriteCustomers"));
    server.stop().await;
}

/// PutSourceRecords in the shared form (group and feature names once per request, as
/// quiver-ingest sends it) is authorized as PutRecord on that group, with the features the
/// records give values for: a name listed but never given does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_form_source_writes_are_authorized_per_group_and_feature() {
    let (_dir, server, root_key) = start_with_auth().await;
    let root = client(&server, Some(root_key)).await;
    for name in ["customers", "orders"] {
        root.create_feature_group(customers_group(name, None))
            .await
            .unwrap();
    }
    let ingester = principal(
        &root,
        "ingester",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Sources","Effect":"Allow","Action":"quiver:PutSourceRecords","Resource":"*"},
            {"Sid":"WriteCustomers","Effect":"Allow","Action":"sagemaker:PutRecord",
             "Resource":"arn:aws:sagemaker:*:*:feature-group/customers"},
            {"Sid":"NoScore","Effect":"Deny","Action":"sagemaker:PutRecord","Resource":"*",
             "Condition":{"ForAnyValue:StringEquals":{"quiver:FeatureNames":["score"]}}}]}"#,
    )
    .await;
    let as_ingester = client(&server, Some(ingester)).await;
    use pb::feature_value::Value as V;
    let value = |v: Option<V>| pb::FeatureValue {
        feature_name: String::new(),
        value: v,
    };
    let write = |group: &str, offset: u64, score: Option<f64>| pb::PutSourceRecordsRequest {
        source: "events".into(),
        feature_group_name: group.into(),
        feature_names: ["id", "ts", "age", "score"].map(String::from).to_vec(),
        records: vec![pb::SourceRecord {
            partition: "t/0".into(),
            position: offset.to_string(),
            record: None,
            values: vec![
                value(Some(V::StringValue(format!("c{offset}")))),
                value(Some(V::StringValue("2024-01-01T00:00:00Z".into()))),
                value(Some(V::Integral(30))),
                value(score.map(V::Fractional)),
            ],
        }],
        positions: vec![],
        source_uris: vec![],
    };
    let written = as_ingester
        .put_source_records(write("customers", 1, None))
        .await
        .expect("id, ts and age of customers may be written");
    assert!(matches!(
        written.results[0].result,
        Some(pb::source_record_result::Result::Outcome(_))
    ));
    assert_eq!(read(&root, "customers", "c1").await.len(), 3);
    assert_eq!(
        code(
            as_ingester
                .put_source_records(write("customers", 2, Some(0.5)))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            as_ingester
                .put_source_records(write("orders", 3, None))
                .await
        ),
        Code::PermissionDenied
    );
    assert!(read(&root, "customers", "c2").await.is_empty());
}

fn record_of(id: &str) -> Vec<pb::FeatureValue> {
    record(id, "2024-01-02T00:00:00Z", 7)
}

/// Every method of every gRPC service the server registers (from the descriptor set it serves
/// by reflection, so a new method is covered the day it is added) and of Flight SQL, called
/// with an empty request by a signed principal without any policy: each must be refused with
/// PERMISSION_DENIED (Flight SQL's: refused somehow, none answered). Then the SageMaker HTTP
/// routes refuse unsigned requests with 403 (every operation signed by an unprivileged
/// principal is in `boto3_signs_with_quiver_keys_and_policies_apply`); /healthz and /metrics
/// stay public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpc_method_and_http_route_checks_authorization() {
    let (_dir, server, root_key) = start_with_auth().await;
    let root = client(&server, Some(root_key)).await;
    root.create_feature_group(customers_group("customers", None))
        .await
        .unwrap();
    let nobody = principal(&root, "nobody", "").await;

    let set = prost_types::FileDescriptorSet::decode(quiver_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut paths = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                paths.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    assert!(paths.len() >= 37, "{paths:?}");
    let ch = channel(&server).await;
    let call = |path: String, ch: Channel, creds: Credentials| async move {
        let mut grpc = tonic::client::Grpc::new(Signed::new(ch, Some(creds)));
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        match grpc
            .unary(tonic::Request::new(()), path.parse().unwrap(), codec)
            .await
        {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        }
    };
    let mut open = Vec::new();
    for path in &paths {
        let answer = call(path.clone(), ch.clone(), nobody.clone()).await;
        if answer != Code::PermissionDenied {
            open.push(format!("{path}: {answer:?}"));
        }
    }
    assert!(
        open.is_empty(),
        "methods answered without an authorization check:\n{}",
        open.join("\n")
    );

    // Flight SQL, on its own listener.
    let flight = Channel::from_shared(format!("http://{}", server.flight_sql))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for method in [
        "Handshake",
        "ListFlights",
        "GetFlightInfo",
        "PollFlightInfo",
        "GetSchema",
        "DoGet",
        "DoPut",
        "DoExchange",
        "DoAction",
        "ListActions",
    ] {
        let path = format!("/arrow.flight.protocol.FlightService/{method}");
        let answer = call(path.clone(), flight.clone(), nobody.clone()).await;
        assert_ne!(
            answer,
            Code::Ok,
            "{path} answered an unauthorized principal"
        );
    }
    // A Flight SQL statement naming a group is denied as such.
    let denied = flight::statement_info(
        flight.clone(),
        Some(nobody.clone()),
        "SELECT * FROM customers",
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // HTTP: unsigned requests to the SageMaker API are refused.
    for (path, target) in [
        ("/", Some("SageMaker.ListFeatureGroups")),
        ("/", Some("SageMaker.DescribeFeatureGroup")),
        (
            "/FeatureGroup/customers?RecordIdentifierValueAsString=c1",
            None,
        ),
        ("/BatchGetRecord", None),
        ("/", Some("SageMaker.QueryLineage")),
        ("/api/v1/lineage", None),
    ] {
        let status = http_post(&server, path, target).await;
        assert_eq!(status, 403, "{path} {target:?}");
    }
    assert_eq!(server.http_get("/healthz").await.0, 200);
    assert_eq!(server.http_get("/metrics").await.0, 200);
    server.stop().await;
}

async fn http_post(server: &TestServer, path: &str, target: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let target = target
        .map(|t| format!("X-Amz-Target: {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\n{target}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The CLI administers with the root profile file, and `quiver auth simulate` explains a
/// decision; without credentials it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_administers_and_simulates_with_a_profile() {
    let (_dir, server, _root) = start_with_auth().await;
    let credentials = server.data_dir().join("root-credentials");
    let quiver = |args: &[&str], with_credentials: bool| {
        let mut command = std::process::Command::new(quiver_tests::binary("quiver"));
        command
            .arg("--endpoint")
            .arg(server.endpoint())
            .args(args)
            .env_remove("QUIVER_ACCESS_KEY_ID")
            .env_remove("QUIVER_SECRET_ACCESS_KEY")
            .env("HOME", server.data_dir());
        if with_credentials {
            command.env("QUIVER_SHARED_CREDENTIALS_FILE", &credentials);
        }
        let output = command.output().expect("quiver runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let run = |args: &[&str]| {
        let (ok, stdout, stderr) = quiver(args, true);
        assert!(ok, "quiver {args:?} failed: {stderr}\n{stdout}");
        stdout
    };
    run(&["auth", "principal", "create", "bob"]);
    run(&[
        "auth",
        "policy",
        "put",
        "BobReads",
        r#"{"Version":"2012-10-17","Statement":{"Sid":"BobGets","Effect":"Allow","Action":"sagemaker:Get*","Resource":"*"}}"#,
    ]);
    run(&["auth", "policy", "attach", "BobReads", "--principal", "bob"]);
    let key: serde_json::Value =
        serde_json::from_str(&run(&["--output", "json", "auth", "key", "create", "bob"])).unwrap();
    assert!(
        key["SecretAccessKey"].as_str().unwrap().len() >= 40,
        "{key}"
    );
    let listed = run(&["auth", "key", "list", "--principal", "bob"]);
    assert!(
        listed.contains(key["AccessKeyId"].as_str().unwrap()),
        "{listed}"
    );

    let simulate = |action: &str| -> serde_json::Value {
        serde_json::from_str(&run(&[
            "--output",
            "json",
            "auth",
            "simulate",
            "--principal",
            "bob",
            "--action",
            action,
            "--resource",
            "arn:aws:sagemaker:us-east-1:000000000000:feature-group/customers",
            "--context",
            "quiver:FeatureNames=age,score",
        ]))
        .unwrap()
    };
    let allowed = simulate("sagemaker:GetRecord");
    assert_eq!(allowed["Decision"], "allowed");
    assert!(
        allowed["DecidingStatement"]
            .as_str()
            .unwrap()
            .contains("BobGets"),
        "{allowed}"
    );
    let denied = simulate("sagemaker:PutRecord");
    assert_eq!(denied["Decision"], "implicitDeny");
    let table = run(&[
        "auth",
        "simulate",
        "--principal",
        "bob",
        "--action",
        "sagemaker:GetRecord",
        "--resource",
        "*",
    ]);
    assert!(table.contains("decision:  allowed"), "{table}");

    // No credentials: refused, and told how to sign.
    let (ok, _, stderr) = quiver(&["feature-group", "list"], false);
    assert!(!ok);
    assert!(stderr.contains("not signed"), "{stderr}");
    server.stop().await;
}

/// boto3 itself signs with AWS Signature V4 using Quiver access keys
/// (`tests/python/sagemaker_auth.py`): root may do everything; a wrong secret, an unknown key
/// and an unsigned request get HTTP 403; a reader's policy decides per feature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_signs_with_quiver_keys_and_policies_apply() {
    let (_dir, server, root_key) = start_with_auth().await;
    let root = client(&server, Some(root_key.clone())).await;
    let reader = principal(
        &root,
        "reader",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Read","Effect":"Allow","Action":["sagemaker:GetRecord","sagemaker:BatchGetRecord"],"Resource":"arn:aws:sagemaker:*:*:feature-group/authz"},
            {"Sid":"NoSsn","Effect":"Deny","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"quiver:FeatureNames":"ssn"}}},
            {"Sid":"Lineage","Effect":"Allow","Action":["sagemaker:QueryLineage","sagemaker:DescribeContext"],"Resource":"arn:aws:sagemaker:*:*:context/authz-*"},
            {"Sid":"Runs","Effect":"Allow","Action":["sagemaker:DescribeTrialComponent","sagemaker:BatchPutMetrics"],"Resource":"arn:aws:sagemaker:*:*:experiment-trial-component/authz-*"},
            {"Sid":"AutoML","Effect":"Allow","Action":"sagemaker:CreateAutoMLJobV2","Resource":"arn:aws:sagemaker:*:*:automl-job/*"}]}"#,
    )
    .await;
    let nobody = principal(&root, "nobody", "").await;
    let endpoint = format!("http://{}", server.http);
    let root_key_id = root_key.access_key_id.clone();
    let report = tokio::task::spawn_blocking(move || {
        quiver_tests::aws::python(
            "sagemaker_auth.py",
            &[
                &endpoint,
                &root_key.access_key_id,
                &root_key.secret_access_key,
                &reader.access_key_id,
                &reader.secret_access_key,
                &nobody.access_key_id,
                &nobody.secret_access_key,
            ],
        )
    })
    .await
    .unwrap();
    let results = &report["results"];
    let expect = [
        ("root_create", "ok"),
        ("root_put", "ok"),
        ("root_get", "ok"),
        ("root_batch_get", "ok"),
        ("root_list", "ok"),
        ("wrong_secret_list", "UnrecognizedClientException 403"),
        ("wrong_secret_get", "UnrecognizedClientException 403"),
        ("unknown_key_list", "UnrecognizedClientException 403"),
        ("unsigned_list", "UnrecognizedClientException 403"),
        ("unsigned_get", "UnrecognizedClientException 403"),
        ("reader_get_age", "ok"),
        ("reader_get_ssn", "AccessDeniedException 403"),
        ("reader_get_all", "AccessDeniedException 403"),
        ("reader_put", "AccessDeniedException 403"),
        ("reader_describe", "AccessDeniedException 400"),
        ("reader_batch_get_ssn", "AccessDeniedException 403"),
        ("root_add_association", "ok"),
        ("reader_query_context", "ok"),
        ("reader_describe_context", "ok"),
        ("reader_query_artifact", "AccessDeniedException 400"),
        ("reader_create_artifact", "AccessDeniedException 400"),
        ("reader_delete_association", "AccessDeniedException 400"),
        ("reader_describe_run", "ok"),
        ("reader_describe_other_run", "AccessDeniedException 400"),
        ("reader_put_metrics", "ok"),
        ("reader_put_other_metrics", "AccessDeniedException 403"),
        ("reader_create_experiment", "AccessDeniedException 400"),
        ("reader_automl_from_group", "AccessDeniedException 400"),
        ("reader_automl_from_file", "AccessDeniedException 400"),
    ];
    // Every operation the HTTP API serves refuses a principal without policies.
    let every = results.as_object().unwrap();
    let nobody_results: Vec<_> = every
        .iter()
        .filter(|(k, _)| k.starts_with("nobody_"))
        .collect();
    assert_eq!(nobody_results.len(), 29, "{report}");
    for (name, got) in nobody_results {
        assert!(
            got.as_str().unwrap().starts_with("AccessDeniedException"),
            "{name} answered {got} to a principal without policies"
        );
    }
    let wrong: Vec<String> = expect
        .iter()
        .filter(|(name, want)| results[*name] != *want)
        .map(|(name, want)| format!("{name}: got {}, want {want}", results[*name]))
        .collect();
    assert!(wrong.is_empty(), "{}\n{report}", wrong.join("\n"));
    // The refusals are audited, the signature ones with the key that was offered.
    let entries = audit(&server);
    assert!(entries.iter().any(|e| e["decision"] == "unauthenticated"
        && e["principal"] == root_key_id.as_str()
        && e["detail"].as_str().unwrap_or("").contains("signature")));
    assert!(entries.iter().any(|e| e["decision"] == "explicitDeny"
        && e["principal"] == "reader"
        && e["statement"].as_str().unwrap_or("").contains("NoSsn")));
    server.stop().await;
}

/// Secret access keys are stored sealed: after keys are made and the server stopped, no file
/// under the data dir but the root credentials file (written for the operator, 0600) holds a
/// secret in plaintext, and the server started again still authenticates them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_keys_are_not_stored_in_plaintext() {
    let (dir, server, root_key) = start_with_auth().await;
    let root = client(&server, Some(root_key.clone())).await;
    let alice = principal(&root, "alice", "").await;
    let data = server.data_dir().to_path_buf();
    server.stop().await;

    let mut files = vec![data.clone()];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.file_name().is_some_and(|n| n == "root-credentials") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        scanned += 1;
        for secret in [&root_key.secret_access_key, &alice.secret_access_key] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret access key in plaintext",
                path.display()
            );
        }
    }
    assert!(scanned > 5, "scanned {scanned} files");

    let server = TestServer::start_in(&data, &["--auth"]).await;
    let as_alice = client(&server, Some(alice)).await;
    // Authenticated (no policy: denied, not unauthenticated).
    assert_eq!(
        code(as_alice.get_record(get("customers", "c1")).await),
        Code::PermissionDenied
    );
    server.stop().await;
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_file_into_a_recipe_needs_read_file_on_it() {
    let (dir, server, root_key) = start_with_auth().await;
    let root = client(&server, Some(root_key)).await;
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("ok.csv"), "id,x\n1,2\n").unwrap();
    std::fs::write(dir.path().join("secret.csv"), "id,x\n1,2\n").unwrap();
    // Previews, queries, and reading files under `shared/` only.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["quiver:PreviewRecipe","quiver:Query"],"Resource":"*"}},
            {{"Effect":"Allow","Action":"quiver:ReadFile","Resource":"arn:quiver:file:::{}/*"}}]}}"#,
        shared.display()
    );
    let analyst = principal(&root, "analyst", &policy).await;
    let as_analyst = client(&server, Some(analyst)).await;
    let preview = |path: std::path::PathBuf| pb::PreviewRequest {
        recipe: Some(pb::preview_request::Recipe::RecipeJson(
            serde_json::json!({
                "name": "files",
                "source": {"file": {"uri": path.display().to_string()}},
                "steps": [],
            })
            .to_string(),
        )),
        steps: None,
        rows: 5,
        sample_rows: 100,
    };
    let shown = as_analyst
        .prep()
        .preview(preview(shared.join("ok.csv")))
        .await
        .expect("a file it may read")
        .into_inner();
    assert_eq!(shown.rows_json.len(), 1);
    let err = as_analyst
        .prep()
        .preview(preview(dir.path().join("secret.csv")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("quiver:ReadFile"),
        "{}",
        err.message()
    );
    // Root reads any file.
    root.prep()
        .preview(preview(dir.path().join("secret.csv")))
        .await
        .expect("root reads it");
    server.stop().await;
}
