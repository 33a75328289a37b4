//! Harness for end-to-end tests: starts the real `quiver-server` binary on port 0 in a data dir,
//! reads the bound addresses from its `--addr-file`, and stops it with SIGTERM or SIGKILL.
//!
//! The binaries come from the same target directory as the test executable; the README's test
//! command builds them (`cargo build --workspace --bins`) before running the tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quiver_client::{Client, pb};

pub mod aws;
pub mod flight;
pub mod pki;

/// Path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

pub struct TestServer {
    child: Option<Child>,
    data_dir: PathBuf,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub flight_sql: SocketAddr,
    /// With TLS on: the authority of the server's certificate, which this side trusts.
    ca: Option<PathBuf>,
}

impl TestServer {
    /// Starts a server with a data dir of its own (kept in `dir`).
    pub async fn start_in(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra_args, &[]).await
    }

    /// As [`TestServer::start_in`], with extra environment variables (e.g. AWS credentials).
    pub async fn start_with_env(
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let addr_file = data_dir.with_extension("addrs.json");
        let _ = std::fs::remove_file(&addr_file);
        let child = Command::new(binary("quiver-server"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--flight-sql-addr", "127.0.0.1:0"])
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("quiver-server starts");
        let mut server = Self {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            grpc: ([0, 0, 0, 0], 0).into(),
            http: ([0, 0, 0, 0], 0).into(),
            flight_sql: ([0, 0, 0, 0], 0).into(),
            ca: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                let addrs: serde_json::Value =
                    serde_json::from_str(&text).expect("addr file is JSON");
                server.grpc = addrs["grpc"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .expect("grpc address");
                server.http = addrs["http"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .expect("http address");
                server.flight_sql = addrs["flight_sql"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .expect("flight_sql address");
                return server;
            }
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("quiver-server exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "quiver-server was not ready within 60s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reach the server over TLS from now on, trusting the authority `ca` (a PEM file).
    pub fn trust(&mut self, ca: &Path) {
        self.ca = Some(ca.to_path_buf());
    }

    /// The gRPC endpoint: `https://localhost:PORT` once [`TestServer::trust`] was called.
    pub fn endpoint(&self) -> String {
        match &self.ca {
            Some(_) => format!("https://localhost:{}", self.grpc.port()),
            None => format!("http://{}", self.grpc),
        }
    }

    /// The TLS settings that trust the server's certificate (none without TLS).
    pub fn client_tls(&self) -> Option<quiver_proto::tls::ClientTls> {
        self.ca
            .as_ref()
            .map(|ca| quiver_proto::tls::ClientTls::new(Some(ca), None).expect("the test CA loads"))
    }

    /// A client signing with `credentials`, over TLS when the server has it.
    pub async fn client_with(
        &self,
        credentials: Option<quiver_proto::signing::Credentials>,
    ) -> Client {
        match self.client_tls() {
            Some(tls) => {
                let endpoint = tonic::transport::Endpoint::from_shared(self.endpoint()).unwrap();
                let channel = tls.connect(&endpoint).await.expect("TLS client connects");
                Client::from_channel(channel, credentials)
            }
            None => Client::connect_with(self.endpoint(), credentials)
                .await
                .expect("client connects"),
        }
    }

    /// Runs the `quiver` CLI against this server; panics unless it succeeds; its standard
    /// output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary("quiver"))
            .arg("--endpoint")
            .arg(self.endpoint())
            .args(args)
            .output()
            .expect("quiver runs");
        assert!(
            out.status.success(),
            "quiver {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("quiver prints UTF-8")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A client with the credentials of the environment, if any.
    pub async fn client(&self) -> Client {
        let credentials = quiver_proto::signing::Credentials::load().expect("credentials load");
        self.client_with(credentials).await
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL delivered");
            child.wait().expect("server reaped");
        }
    }

    /// SIGTERM and wait (up to 30 s) for a clean exit; panics if the exit is not clean. Async, so
    /// the test's own runtime keeps serving its client connections (HTTP/2 graceful shutdown
    /// waits for the client to answer).
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "SIGTERM delivered");
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = child.try_wait().expect("server status") {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "quiver-server did not stop within 30s of SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert!(
                status.success(),
                "quiver-server exited uncleanly after SIGTERM: {status}"
            );
        }
    }

    /// GET a path on the HTTP listener (over TLS once [`TestServer::trust`] was called);
    /// returns (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(self.http)
            .await
            .expect("http connects");
        let mut stream: Box<dyn AsyncReadWrite> = match &self.ca {
            Some(ca) => Box::new(pki::https(tcp, ca).await),
            None => Box::new(tcp),
        };
        trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
        impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut response = String::new();
        // A TLS server may close without close_notify after the response; what came counts.
        let _ = stream.read_to_string(&mut response).await;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("HTTP status line");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary directory and a server in it.
pub async fn start() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(&dir.path().join("data"), &[]).await;
    (dir, server)
}

pub fn fdef(name: &str, feature_type: pb::FeatureType) -> pb::FeatureDefinition {
    pb::FeatureDefinition {
        feature_name: name.to_string(),
        feature_type: feature_type as i32,
        ..Default::default()
    }
}

/// A group `name` with `id` (String), `ts` (String, ISO-8601), `age` (Integral), `score`
/// (Fractional), `tags` (String Set), online store on, optional default TTL in seconds.
pub fn customers_group(name: &str, ttl_seconds: Option<u64>) -> pb::CreateFeatureGroupRequest {
    pb::CreateFeatureGroupRequest {
        feature_group_name: name.to_string(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions: vec![
            fdef("id", pb::FeatureType::String),
            fdef("ts", pb::FeatureType::String),
            fdef("age", pb::FeatureType::Integral),
            fdef("score", pb::FeatureType::Fractional),
            pb::FeatureDefinition {
                collection_type: pb::CollectionType::Set as i32,
                ..fdef("tags", pb::FeatureType::String)
            },
        ],
        online_store_config: Some(pb::OnlineStoreConfig {
            enable_online_store: true,
            ttl_duration: ttl_seconds.map(|value| pb::TtlDuration {
                unit: pb::TtlUnit::Seconds as i32,
                value,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ` for `seconds` after 2024-01-01T00:00:00Z.
pub fn ts(seconds: u32) -> String {
    let total = seconds as u64;
    let (days, rest) = (total / 86_400, total % 86_400);
    assert!(days < 31, "ts() covers January 2024");
    format!(
        "2024-01-{:02}T{:02}:{:02}:{:02}Z",
        days + 1,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The current time as `yyyy-MM-ddTHH:mm:ss.SSSZ`.
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn record(id: &str, ts: &str, age: i64) -> Vec<pb::FeatureValue> {
    use quiver_client::value;
    vec![
        value::string("id", id),
        value::string("ts", ts),
        value::integral("age", age),
    ]
}

pub fn put(group: &str, record: Vec<pb::FeatureValue>) -> pb::PutRecordRequest {
    pb::PutRecordRequest {
        feature_group_name: group.to_string(),
        record,
        ..Default::default()
    }
}

pub fn get(group: &str, id: &str) -> pb::GetRecordRequest {
    pb::GetRecordRequest {
        feature_group_name: group.to_string(),
        record_identifier_value_as_string: id.to_string(),
        ..Default::default()
    }
}

/// A stream source's stored positions (the last offset written), by partition.
pub async fn source_positions(
    client: &Client,
    source: &str,
) -> std::collections::HashMap<String, i64> {
    client
        .get_source_positions(pb::GetSourcePositionsRequest {
            source: source.into(),
        })
        .await
        .map(|r| r.positions)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.partition, p.position.parse().unwrap()))
        .collect()
}

/// The live record of `id` in `group` (empty when there is none).
pub async fn read(client: &Client, group: &str, id: &str) -> Vec<pb::FeatureValue> {
    client
        .get_record(get(group, id))
        .await
        .unwrap_or_else(|e| panic!("GetRecord {group}/{id}: {e}"))
        .record
}

/// The value of `feature` in a record, as JSON.
pub fn feature(record: &[pb::FeatureValue], feature: &str) -> Option<serde_json::Value> {
    record
        .iter()
        .find(|v| v.feature_name == feature)
        .map(quiver_client::value::to_json)
}

/// The lineage entities of `kind`, of type `entity_type` when given (one page of up to 100).
pub async fn lineage_entities(
    client: &Client,
    kind: pb::LineageEntityKind,
    entity_type: Option<&str>,
    source_uri: Option<&str>,
) -> Vec<pb::LineageEntity> {
    client
        .lineage()
        .list_entities(pb::ListLineageEntitiesRequest {
            kind: kind.into(),
            entity_type: entity_type.map(str::to_string),
            source_uri: source_uri.map(str::to_string),
            max_results: Some(100),
            ..Default::default()
        })
        .await
        .expect("ListEntities")
        .into_inner()
        .entities
}

/// QueryLineage from `start` in `direction` (`Ascendants`, `Descendants`, `Both`), `depth`
/// deep (10 when `None`), with the edges walked: the first page.
pub async fn query_lineage(
    client: &Client,
    start: &str,
    direction: &str,
    depth: Option<i32>,
) -> pb::QueryLineageResponse {
    client
        .lineage()
        .query_lineage(pb::QueryLineageRequest {
            start_arns: vec![start.to_string()],
            direction: Some(direction.to_string()),
            include_edges: true,
            max_depth: depth,
            ..Default::default()
        })
        .await
        .expect("QueryLineage")
        .into_inner()
}
