//! Each listener bounds what a client can hold (docs/operations.md, "Limits"): silent and
//! slow clients are let go after the idle timeout, a slow body fails after the body timeout,
//! a connection past the cap is refused in the protocol's terms, and the server goes on
//! serving everyone else meanwhile.

use std::time::{Duration, Instant};

use quiver_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closed `stream` (reading gives its end or an error) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response before closing (hyper may answer 408): read on to the end.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn response(stream: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn silent_and_slow_clients_are_let_go_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--idle-timeout-secs", "2", "--body-timeout-secs", "2"],
    )
    .await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("limits", None))
        .await
        .unwrap();
    client
        .put_record(put("limits", record("c1", &ts(1), 41)))
        .await
        .unwrap();

    // 300 HTTP clients that never finish their headers, 100 that send nothing, 100 silent
    // connections on gRPC and on Flight SQL each.
    let mut held = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(server.http).await.unwrap();
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ").as_bytes())
            .await
            .unwrap();
        held.push(s);
    }
    for _ in 0..100 {
        held.push(TcpStream::connect(server.http).await.unwrap());
        held.push(TcpStream::connect(server.grpc).await.unwrap());
        held.push(TcpStream::connect(server.flight_sql).await.unwrap());
    }
    // A body that stops halfway.
    let mut slow_body = TcpStream::connect(server.http).await.unwrap();
    slow_body
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: SageMaker.ListFeatureGroups\r\n\
              Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{\"Max",
        )
        .await
        .unwrap();

    // Meanwhile every other client is served.
    let started = Instant::now();
    for _ in 0..50 {
        let record = read(&client, "limits", "c1").await;
        assert_eq!(feature(&record, "age"), Some(serde_json::json!(41)));
    }
    assert_eq!(server.http_get("/healthz").await.0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "50 reads took {:?} while slow clients held connections",
        started.elapsed()
    );

    // A body declared larger than the limit is refused at once, before any of it is sent.
    let mut oversized = TcpStream::connect(server.http).await.unwrap();
    oversized
        .write_all(
            b"PUT /FeatureGroup/limits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1073741824\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = response(&mut oversized, Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("1073741824 bytes (Content-Length) is larger than the server's limit"),
        "{answer}"
    );

    // The slow body is answered with a clear error once its time is up.
    let answer = response(&mut slow_body, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_timeout_secs"), "{answer}");

    // And every silent or slow connection is closed by the server.
    let mut still_open = 0;
    for s in &mut held {
        if !closed_within(s, Duration::from_secs(6)).await {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "connections the server kept open past the idle timeout"
    );
    // A client that does its part keeps its kept-alive connection within the timeout.
    let record = read(&client, "limits", "c1").await;
    assert_eq!(feature(&record, "age"), Some(serde_json::json!(41)));
}

#[tokio::test]
async fn a_connection_past_the_cap_is_refused_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(&dir.path().join("data"), &["--max-connections", "20"]).await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("capped", None))
        .await
        .unwrap();
    client
        .put_record(put("capped", record("c1", &ts(1), 7)))
        .await
        .unwrap();

    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(server.http).await.unwrap());
    }
    // The server counts a connection once it accepts it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = TcpStream::connect(server.http).await.unwrap();
    let answer = response(&mut refused, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("max_connections"), "{answer}");

    // The gRPC listener has a cap of its own: reads go on.
    let record = read(&client, "capped", "c1").await;
    assert_eq!(feature(&record, "age"), Some(serde_json::json!(7)));

    // Places come back as connections close.
    held.truncate(10);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = server.http_get("/metrics").await;
        if status == 200 {
            assert!(
                body.contains("quiver_connections_refused_total{listener=\"http\"}"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no place came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP/1.1 request to the control plane's `operation`, its body sent in `chunk`-sized
/// chunks without a declared length; the whole answer.
async fn chunked_control_request(
    addr: std::net::SocketAddr,
    operation: &str,
    body: &[u8],
    chunk: usize,
) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: SageMaker.{operation}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for part in body.chunks(chunk) {
        let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
        framed.extend_from_slice(part);
        framed.extend_from_slice(b"\r\n");
        // The server may answer and close before the rest is sent: then stop sending.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    response(&mut stream, Duration::from_secs(10)).await
}

#[tokio::test]
async fn bodies_are_read_up_to_max_request_mb_and_no_further_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(&dir.path().join("data"), &["--max-request-mb", "4"]).await;
    // 3 MB (over axum's own 2 MB default, under the 4 MB limit) with no declared length: read.
    let mut body = b"{\"MaxResults\": 5}".to_vec();
    body.resize(3 << 20, b' ');
    let answer = chunked_control_request(server.http, "ListFeatureGroups", &body, 64 << 10).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..answer.len().min(500)]
    );
    assert!(answer.contains("FeatureGroupSummaries"), "{answer}");
    // 5 MB with no declared length: refused when the limit is passed, in the API's own terms.
    body.resize(5 << 20, b' ');
    let answer = chunked_control_request(server.http, "ListFeatureGroups", &body, 64 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer.contains("application/x-amz-json-1.1"), "{answer}");
    assert!(
        answer.contains("larger than the server's limit of 4194304 bytes (max_request_mb)"),
        "{answer}"
    );
    // The server goes on.
    let answer = chunked_control_request(server.http, "ListFeatureGroups", b"{}", 1024).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
