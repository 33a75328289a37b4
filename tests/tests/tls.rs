//! TLS on every listener, end to end against `quiver-server --auth --tls-cert ... --tls-key ...
//! --tls-client-ca ...`: clients that trust the authority connect and work; plain-text
//! connections and untrusted certificates are refused; a client certificate authenticates its
//! connection's unsigned requests as the principal it names, with `aws:SecureTransport` true;
//! boto3 reaches the HTTP API over HTTPS.

use quiver_client::{Client, pb};
use quiver_proto::signing::Credentials;
use quiver_proto::tls::ClientTls;
use quiver_tests::pki::Pki;
use quiver_tests::{TestServer, customers_group, feature, flight, get, put, record};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

fn code<T>(result: Result<T, quiver_client::ClientError>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(e) => e.code().unwrap_or(Code::Unknown),
    }
}

async fn tls_channel(url: &str, tls: &ClientTls) -> Result<Channel, tonic::transport::Error> {
    tls.connect(&Endpoint::from_shared(url.to_string()).unwrap())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_speaks_tls_and_client_certificates_map_to_principals() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "quiver-test-ca");
    let args = pki.server_args(true);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--auth");
    let server = TestServer::start_in(&dir.path().join("data"), &args).await;
    let text = std::fs::read_to_string(server.data_dir().join("root-credentials")).unwrap();
    let root = Credentials::from_profile(&text, "default")
        .unwrap()
        .unwrap();
    let grpc = format!("https://localhost:{}", server.grpc.port());
    let trusting = ClientTls::new(Some(&pki.ca), None).unwrap();

    // Root, signing, over TLS: the whole API works.
    let admin = Client::from_channel(
        tls_channel(&grpc, &trusting).await.expect("TLS connection"),
        Some(root.clone()),
    );
    admin
        .create_feature_group(customers_group("secure", None))
        .await
        .unwrap();
    admin
        .put_record(put("secure", record("c1", "2026-01-01T00:00:00Z", 41)))
        .await
        .unwrap();
    let read = admin.get_record(get("secure", "c1")).await.unwrap();
    assert_eq!(feature(&read.record, "age"), Some(serde_json::json!(41)));
    // Many requests in flight on the one connection, answers small and large (BatchGetRecord
    // answers together far larger than a TLS record and h2's write buffer): every answer arrives
    // whole and in its place, however the server groups them into TLS records.
    let ids: Vec<String> = (0..400).map(|i| format!("m{i}")).collect();
    futures::future::try_join_all(ids.iter().enumerate().map(|(i, id)| {
        admin.put_record(put("secure", record(id, "2026-01-01T00:00:00Z", i as i64)))
    }))
    .await
    .unwrap();
    let batches = futures::future::try_join_all(ids.chunks(100).map(|chunk| {
        admin.batch_get_record(pb::BatchGetRecordRequest {
            identifiers: vec![pb::BatchGetRecordIdentifier {
                feature_group_name: "secure".into(),
                record_identifiers_value_as_string: chunk.to_vec(),
                feature_names: vec![],
            }],
            expiration_time_response: false,
        })
    }));
    let singles =
        futures::future::try_join_all(ids.iter().map(|id| admin.get_record(get("secure", id))));
    let (batches, singles) = futures::future::try_join(batches, singles).await.unwrap();
    let batched: Vec<_> = batches.iter().flat_map(|b| &b.records).collect();
    assert_eq!((batched.len(), singles.len()), (ids.len(), ids.len()));
    for (i, (single, batched)) in singles.iter().zip(batched).enumerate() {
        assert_eq!(feature(&single.record, "age"), Some(serde_json::json!(i)));
        assert_eq!(batched.record_identifier_value_as_string, ids[i]);
        assert_eq!(feature(&batched.record, "age"), Some(serde_json::json!(i)));
    }
    // By IP address too: the certificate lists 127.0.0.1.
    let by_ip = format!("https://127.0.0.1:{}", server.grpc.port());
    tls_channel(&by_ip, &trusting)
        .await
        .expect("the certificate names 127.0.0.1");

    // alice may read only over TLS; she has no key, only a client certificate.
    let mut auth = admin.admin();
    auth.create_principal(pb::CreatePrincipalRequest {
        name: "alice".into(),
    })
    .await
    .unwrap();
    auth.put_policy(pb::PutPolicyRequest {
        name: "secure-reads".into(),
        document: serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "sagemaker:GetRecord",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}}
            }]
        })
        .to_string(),
    })
    .await
    .unwrap();
    auth.attach_policy(pb::AttachPolicyRequest {
        policy: "secure-reads".into(),
        principal: "alice".into(),
        group: String::new(),
    })
    .await
    .unwrap();

    let alice_cert = pki.client("alice");
    let alice_tls =
        ClientTls::new(Some(&pki.ca), Some((&alice_cert.cert, &alice_cert.key))).unwrap();
    let alice = Client::from_channel(tls_channel(&grpc, &alice_tls).await.unwrap(), None);
    let read = alice
        .get_record(get("secure", "c1"))
        .await
        .expect("alice reads over mTLS");
    assert_eq!(feature(&read.record, "age"), Some(serde_json::json!(41)));
    assert_eq!(
        code(
            alice
                .put_record(put("secure", record("c2", "2026-01-01T00:00:00Z", 1)))
                .await
        ),
        Code::PermissionDenied
    );
    // A request signed by another principal on alice's connection is refused.
    let mixed = Client::from_channel(
        tls_channel(&grpc, &alice_tls).await.unwrap(),
        Some(root.clone()),
    );
    assert_eq!(
        code(mixed.get_record(get("secure", "c1")).await),
        Code::Unauthenticated
    );

    // A certificate naming no principal, and no certificate and no signature: UNAUTHENTICATED.
    let mallory_cert = pki.client("mallory");
    let mallory_tls =
        ClientTls::new(Some(&pki.ca), Some((&mallory_cert.cert, &mallory_cert.key))).unwrap();
    let mallory = Client::from_channel(tls_channel(&grpc, &mallory_tls).await.unwrap(), None);
    assert_eq!(
        code(mallory.get_record(get("secure", "c1")).await),
        Code::Unauthenticated
    );
    let anonymous = Client::from_channel(tls_channel(&grpc, &trusting).await.unwrap(), None);
    assert_eq!(
        code(anonymous.get_record(get("secure", "c1")).await),
        Code::Unauthenticated
    );

    // A client certificate from another authority fails the handshake: nothing is served.
    let rogue = Pki::new(dir.path(), "rogue-ca");
    let forged = rogue.client("alice");
    let forged_tls = ClientTls::new(Some(&pki.ca), Some((&forged.cert, &forged.key))).unwrap();
    // (Under TLS 1.3 the client finishes its side first and learns of the refusal on its first
    // request: the server has closed the connection.)
    let refused = match tls_channel(&grpc, &forged_tls).await {
        Err(e) => format!("connect: {e:?}"),
        Ok(channel) => match Client::from_channel(channel, None)
            .get_record(get("secure", "c1"))
            .await
        {
            Ok(_) => panic!("a certificate from an unknown authority was accepted"),
            Err(e) => format!("{e:?}"),
        },
    };
    assert!(
        refused.starts_with("connect") || refused.contains("tonic::transport::Error"),
        "{refused}"
    );
    // A server certificate from an authority the client does not trust is refused by it.
    let distrusting = ClientTls::new(Some(&rogue.ca), None).unwrap();
    assert!(tls_channel(&grpc, &distrusting).await.is_err());
    // Plain text to a TLS listener gets no answer.
    let plain = Client::connect_with(format!("http://{}", server.grpc), Some(root.clone())).await;
    let plain_failed = match plain {
        Err(_) => true,
        Ok(client) => client.get_record(get("secure", "c1")).await.is_err(),
    };
    assert!(plain_failed, "the TLS listener answered plain text");

    // Flight SQL is TLS too, and takes client certificates: alice may not query.
    let flight_url = format!("https://localhost:{}", server.flight_sql.port());
    let denied = flight::statement_info(
        tls_channel(&flight_url, &alice_tls).await.unwrap(),
        None,
        "SELECT * FROM secure",
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // The HTTP API over HTTPS, with boto3.
    let key = root.access_key_id.clone();
    let secret = root.secret_access_key.clone();
    let out = quiver_tests::aws::python(
        "sagemaker_tls.py",
        &[
            &format!("https://localhost:{}", server.http.port()),
            pki.ca.to_str().unwrap(),
            &key,
            &secret,
            "secure",
            "c1",
        ],
    );
    let results = &out["results"];
    assert_eq!(results["trusted_ca"]["age"], "41", "{out}");
    assert_eq!(results["system_roots"], "ssl error", "{out}");
    assert!(
        results["plain_http"]
            .as_str()
            .unwrap_or("")
            .starts_with("connection error"),
        "{out}"
    );

    // Every refusal of a certificate is audited, with the name it carried.
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("mallory") && l.contains("not a principal")),
        "{audit}"
    );
    server.stop().await;
}
