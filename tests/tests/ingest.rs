//! Stream ingest end to end: the real `quiver-ingest` binary reading a Kafka wire-protocol
//! broker (librdkafka's mock cluster, hosted by this test) into the real server, killed with
//! SIGKILL at random moments; afterwards the online store equals the reference (greatest event
//! time per identifier), the offline store holds each good source record exactly once, and
//! every bad message is in the dead-letter destination (a file, a Kafka topic or a Kinesis
//! stream) with its reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quiver_client::{Client, pb};
use quiver_tests::aws::{AWS_ENV, Moto, python};
use quiver_tests::{TestServer, binary, fdef};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value as Json, json};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 4;

/// `id` (String), `ts` (Fractional seconds), `v` (Integral), `seq` (Integral: the message's
/// number, unique); online and offline stores.
fn events_group() -> pb::CreateFeatureGroupRequest {
    id_ts_group(
        "events",
        vec![
            fdef("v", pb::FeatureType::Integral),
            fdef("seq", pb::FeatureType::Integral),
        ],
        true,
    )
}

/// A group `name` of `id` (String), `ts` (Fractional seconds) and `features`, with an online
/// store, and an offline one if `offline`.
fn id_ts_group(
    name: &str,
    features: Vec<pb::FeatureDefinition>,
    offline: bool,
) -> pb::CreateFeatureGroupRequest {
    let mut feature_definitions = vec![
        fdef("id", pb::FeatureType::String),
        fdef("ts", pb::FeatureType::Fractional),
    ];
    feature_definitions.extend(features);
    pb::CreateFeatureGroupRequest {
        feature_group_name: name.into(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions,
        online_store_config: Some(pb::OnlineStoreConfig {
            enable_online_store: true,
            ..Default::default()
        }),
        offline_store_config: offline.then(pb::OfflineStoreConfig::default),
        ..Default::default()
    }
}

/// One produced message and what it should do.
struct Sent {
    partition: i32,
    payload: String,
    /// (id, event time ms, v, seq) for a good message.
    good: Option<(String, i64, i64, i64)>,
}

/// `n` messages over the partitions: identifiers reused many times with event times out of
/// order, some messages sent twice (the same payload again: a separate source record), and
/// bad ones of every kind.
fn messages(n: usize, seed: u64) -> Vec<Sent> {
    let mut state = seed | 1;
    let mut next = move |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let mut sent: Vec<Sent> = Vec::new();
    let mut used: HashSet<(String, i64)> = HashSet::new();
    for seq in 0..n as i64 {
        let partition = next(PARTITIONS as u64) as i32;
        if seq % 37 == 5 {
            let bad = match seq % 5 {
                0 => "not json".to_string(),
                1 => json!({"ts": 1.0, "v": 1}).to_string(),
                2 => json!({"id": "x", "v": 1}).to_string(),
                3 => json!({"id": "x", "ts": 1.0, "v": "ten"}).to_string(),
                _ => json!({"id": "x", "ts": 1.0, "colour": "red"}).to_string(),
            };
            sent.push(Sent {
                partition,
                payload: bad,
                good: None,
            });
            continue;
        }
        if seq % 23 == 7 && !sent.is_empty() {
            // A duplicate: a message sent again (its own source record, with its own seq).
            let k = next(sent.len() as u64) as usize;
            if let Some((id, ts, v, _)) = sent[k].good.clone() {
                let payload =
                    json!({"id": id, "ts": ts as f64 / 1000.0, "v": v, "seq": seq}).to_string();
                sent.push(Sent {
                    partition,
                    payload,
                    good: Some((id, ts, v, seq)),
                });
                continue;
            }
        }
        let id = format!("u{}", next(200));
        // Event times out of order, unique per identifier (a tie's winner would depend on
        // which partition is read first).
        let mut ts = 1_700_000_000_000 + next(10_000_000) as i64;
        while !used.insert((id.clone(), ts)) {
            ts += 1;
        }
        let v = next(1_000_000) as i64;
        let payload = json!({"id": id, "ts": ts as f64 / 1000.0, "v": v, "seq": seq}).to_string();
        sent.push(Sent {
            partition,
            payload,
            good: Some((id, ts, v, seq)),
        });
    }
    sent
}

/// A running `quiver-ingest`, killed if the test fails before it stops it.
struct Worker(Option<Child>);

impl Worker {
    fn kill_9(mut self) {
        let mut child = self.0.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `quiver-ingest`; with `log`, its log (at info) goes to that file.
fn start_worker(config: &std::path::Path, endpoint: &str, log: Option<&std::path::Path>) -> Worker {
    start_worker_with(config, endpoint, log, None)
}

/// As [`start_worker`], signing with the profile file `credentials` if given.
fn start_worker_with(
    config: &std::path::Path,
    endpoint: &str,
    log: Option<&std::path::Path>,
    credentials: Option<&std::path::Path>,
) -> Worker {
    let mut command = Command::new(binary("quiver-ingest"));
    command
        .arg("--config")
        .arg(config)
        .args(["--server", endpoint])
        .envs(AWS_ENV)
        .stdin(Stdio::null());
    if let Some(credentials) = credentials {
        command
            .env_remove("QUIVER_ACCESS_KEY_ID")
            .env_remove("QUIVER_SECRET_ACCESS_KEY")
            .env("QUIVER_SHARED_CREDENTIALS_FILE", credentials);
    }
    match log {
        Some(path) => {
            command
                .env("RUST_LOG", "info")
                .stderr(std::fs::File::create(path).unwrap());
        }
        None => {
            command.env(
                "RUST_LOG",
                std::env::var("QUIVER_TEST_INGEST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        }
    }
    Worker(Some(command.spawn().expect("quiver-ingest starts")))
}

/// A mock broker with a 4-partition topic, a server with the `events` group, messages being
/// produced in the background (over ~20 s, so workers meet them mid-stream), and a worker
/// configuration.
struct Scenario {
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    _dir: tempfile::TempDir,
    server: TestServer,
    client: Client,
    sent: Vec<Sent>,
    /// Each message's offset in its partition.
    offsets: Vec<i64>,
    per_partition: [i64; PARTITIONS as usize],
    config: std::path::PathBuf,
    dead_letters: DeadLetters,
    producing: Option<tokio::task::JoinHandle<()>>,
    seed: u64,
}

const SOURCE: &str = "events-from-kafka";

/// Where a scenario's worker sends bad messages.
enum DeadLetters {
    File(std::path::PathBuf),
    /// A topic of the scenario's own broker.
    Topic {
        brokers: String,
        topic: String,
    },
}

impl DeadLetters {
    /// Every dead letter written so far.
    async fn read(&self) -> Vec<Json> {
        match self {
            DeadLetters::File(path) => std::fs::read_to_string(path)
                .expect("dead-letter file")
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            DeadLetters::Topic { brokers, topic } => read_topic(brokers, topic).await,
        }
    }
}

/// Every message of `topic` (created with one partition) as JSON, each checked to be keyed `partition@position` as documented.
async fn read_topic(brokers: &str, topic: &str) -> Vec<Json> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "dead-letter-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("dead-letter topic watermarks");
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (out.len() as i64) < high {
            assert!(
                Instant::now() < deadline,
                "read {} of {high} dead letters",
                out.len()
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("dead-letter message");
            let value: Json = serde_json::from_slice(message.payload().unwrap()).unwrap();
            let key = std::str::from_utf8(message.key().expect("a key")).unwrap();
            assert_eq!(
                key,
                format!(
                    "{}@{}",
                    value["partition"].as_str().unwrap(),
                    value["position"].as_str().unwrap()
                ),
                "dead-letter key"
            );
            out.push(value);
        }
        out
    })
    .await
    .unwrap()
}

impl Scenario {
    /// With `in_server`, the server runs the source's worker itself. With `dead_letter_topic`,
    /// bad messages go to that topic of the same broker, else to a file.
    async fn start(n: usize, in_server: bool, dead_letter_topic: Option<&str>) -> Self {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster
            .create_topic(TOPIC, PARTITIONS, 1)
            .expect("topic created");
        let brokers = cluster.bootstrap_servers();
        let dir = tempfile::tempdir().unwrap();
        let (dead_letters, dead_letter_config) = match dead_letter_topic {
            Some(topic) => {
                cluster
                    .create_topic(topic, 1, 1)
                    .expect("dead-letter topic created");
                (
                    DeadLetters::Topic {
                        brokers: brokers.clone(),
                        topic: topic.to_string(),
                    },
                    format!(r#"{{ kind = "kafka", topic = "{topic}" }}"#),
                )
            }
            None => {
                let path = dir.path().join("dead.jsonl");
                let config = format!(r#"{{ kind = "file", path = "{}" }}"#, path.display());
                (DeadLetters::File(path), config)
            }
        };
        let source = format!(
            r#"
[[source]]
name = "{SOURCE}"
feature_group = "events"
batch_size = 50
linger_ms = 20
dead_letter = {dead_letter_config}
[source.kafka]
brokers = "{brokers}"
topics = ["{TOPIC}"]
# A killed member's partitions are reassigned after this (the broker's minimum).
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000"}}
"#
        );
        let config = dir.path().join("ingest.toml");
        std::fs::write(&config, format!("metrics_addr = \"127.0.0.1:0\"\n{source}")).unwrap();
        // Inside the server: the source is listed in the server's own configuration file.
        let server_config = dir.path().join("server.toml");
        std::fs::write(&server_config, &source).unwrap();
        let pki = quiver_tests::pki::Pki::new(dir.path(), "ingest-test-ca");
        let tls_args = pki.server_args(false);
        let mut args = vec![
            "--offline-flush-interval-ms",
            "200",
            "--wal-sync",
            "periodic",
        ];
        // Inside the server, with authentication and TLS on: the workers act as the server's
        // own ingest principal (in process), and this test connects over TLS as root.
        if in_server {
            args.extend(["--config", server_config.to_str().unwrap(), "--auth"]);
            args.extend(tls_args.iter().map(String::as_str));
        }
        let mut server = TestServer::start_in(&dir.path().join("data"), &args).await;
        let client = if in_server {
            let text = std::fs::read_to_string(server.data_dir().join("root-credentials"))
                .expect("root credentials");
            let root = quiver_proto::signing::Credentials::from_profile(&text, "default")
                .unwrap()
                .expect("a default profile");
            server.trust(&pki.ca);
            server.client_with(Some(root)).await
        } else {
            server.client().await
        };
        client.create_feature_group(events_group()).await.unwrap();

        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        eprintln!("seed {seed}");
        let sent = messages(n, seed);
        // Offsets are known up front: each partition's messages are numbered in send order.
        let mut per_partition = [0i64; PARTITIONS as usize];
        let mut offsets = Vec::with_capacity(sent.len());
        for m in &sent {
            offsets.push(per_partition[m.partition as usize]);
            per_partition[m.partition as usize] += 1;
        }
        let payloads: Vec<(i32, String)> = sent
            .iter()
            .map(|m| (m.partition, m.payload.clone()))
            .collect();
        let producing = {
            let brokers = brokers.clone();
            tokio::task::spawn_blocking(move || {
                let producer: BaseProducer = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .set("enable.idempotence", "true")
                    .create()
                    .unwrap();
                for (k, (partition, payload)) in payloads.iter().enumerate() {
                    loop {
                        let record = BaseRecord::<str, str>::to(TOPIC)
                            .partition(*partition)
                            .payload(payload);
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((e, _)) => {
                                assert!(e.to_string().contains("Queue full"), "produce: {e}");
                                producer.poll(Duration::from_millis(10));
                            }
                        }
                    }
                    if k % 20 == 19 {
                        producer.poll(Duration::ZERO);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                producer.flush(Duration::from_secs(30)).unwrap();
            })
        };

        Self {
            _cluster: cluster,
            _dir: dir,
            server,
            client,
            sent,
            offsets,
            per_partition,
            config,
            dead_letters,
            producing: Some(producing),
            seed,
        }
    }

    /// Starts a worker logging (at info) to `<name>.log`.
    fn worker(&self, name: &str) -> (Worker, std::path::PathBuf) {
        let log = self._dir.path().join(format!("{name}.log"));
        let child = start_worker(&self.config, &self.server.endpoint(), Some(&log));
        (child, log)
    }

    /// Waits until the worker logging to `log` has been assigned partitions.
    async fn assigned(&self, log: &std::path::Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("kafka partitions assigned partitions=[(")
        {
            assert!(
                Instant::now() < deadline,
                "{} got no partitions within 60 s; its log:\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn positions(&self) -> HashMap<String, i64> {
        quiver_tests::source_positions(&self.client, SOURCE).await
    }

    /// Waits until the stored positions differ from `before`: a worker has written.
    async fn progress_from(&self, before: &HashMap<String, i64>) -> HashMap<String, i64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.positions().await;
            if now != *before {
                return now;
            }
            assert!(Instant::now() < deadline, "no progress within 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the producer, then until every message is applied.
    async fn wait_consumed(&mut self) {
        if let Some(producing) = self.producing.take() {
            producing.await.unwrap();
        }
        let want: HashMap<String, i64> = (0..PARTITIONS)
            .filter(|&p| self.per_partition[p as usize] > 0)
            .map(|p| (format!("{TOPIC}/{p}"), self.per_partition[p as usize] - 1))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let now = self.positions().await;
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not consumed within 120 s: {now:?} of {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Online = the reference, offline = each good message once, dead letters = the bad ones.
    async fn verify(&self) {
        let bad: HashSet<(String, String)> = self
            .sent
            .iter()
            .zip(&self.offsets)
            .filter(|(m, _)| m.good.is_none())
            .map(|(m, o)| (format!("{TOPIC}/{}", m.partition), o.to_string()))
            .collect();
        let dead_letters = self.dead_letters.read().await;
        verify(&self.client, &self.sent, &bad, dead_letters).await;
    }
}

/// After a stream is consumed: the online store equals the reference (greatest event time per
/// identifier), the offline store holds each good message exactly once, and the dead letters
/// are exactly the `bad` (partition, position)s, each with its reason.
async fn verify(
    client: &Client,
    sent: &[Sent],
    bad: &HashSet<(String, String)>,
    dead_letters: Vec<Json>,
) {
    let mut reference: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (id, ts, v, _) in sent.iter().filter_map(|m| m.good.clone()) {
        let e = reference.entry(id).or_insert((ts, v));
        if ts > e.0 {
            *e = (ts, v);
        }
    }
    for (id, (_, v)) in &reference {
        let record = quiver_tests::read(client, "events", id).await;
        assert_eq!(
            quiver_tests::feature(&record, "v"),
            Some(json!(v)),
            "online record of {id}"
        );
    }

    let good: Vec<i64> = sent
        .iter()
        .filter_map(|m| m.good.as_ref().map(|g| g.3))
        .collect();
    let data_uri = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: "events".into(),
        })
        .await
        .unwrap()
        .offline_store_config
        .unwrap()
        .resolved_output_s3_uri;
    let deadline = Instant::now() + Duration::from_secs(60);
    let seqs = loop {
        let read = python(
            "read_offline.py",
            &["local", data_uri.strip_prefix("file://").unwrap()],
        );
        let seqs: Vec<i64> = read["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect();
        if seqs.len() >= good.len() || Instant::now() > deadline {
            break seqs;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for s in &seqs {
        *counts.entry(*s).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "offline rows written twice: {twice:?}");
    let missing: Vec<_> = good.iter().filter(|s| !counts.contains_key(s)).collect();
    assert!(missing.is_empty(), "offline rows missing: {missing:?}");
    assert_eq!(seqs.len(), good.len());

    // Every bad message, with a reason (at least once: a kill between the dead-letter write
    // and the positions' may send one again).
    let mut found = HashSet::new();
    for entry in &dead_letters {
        assert!(!entry["reason"].as_str().unwrap().is_empty(), "{entry}");
        assert!(entry["payload"].is_string(), "{entry}");
        found.insert((
            entry["partition"].as_str().unwrap().to_string(),
            entry["position"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        &found, bad,
        "dead letters differ from the bad messages sent"
    );
    eprintln!(
        "{} messages ({} good, {} bad): online = reference, offline once each, bad ones dead-lettered",
        sent.len(),
        good.len(),
        bad.len()
    );
}

/// The Prometheus text a worker serves, found from its log's "metrics on http://..." line.
async fn worker_metrics(log: &std::path::Path) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let text = std::fs::read_to_string(log).unwrap();
    let addr = text
        .lines()
        .find_map(|l| l.split("metrics on http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in {}", log.display()))
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// A sample's value: the line starting with `name{labels}`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_ingest_is_exactly_once_through_kill_9() {
    let mut s = Scenario::start(4000, false, None).await;
    // Killed with SIGKILL three times, each at a random moment after it has written something
    // (so inside the stream), then left to finish.
    let mut before = HashMap::new();
    for round in 0..3u64 {
        let (worker, _) = s.worker(&format!("round{round}"));
        s.progress_from(&before).await;
        let pause = s.seed.wrapping_mul(round + 3) % 400;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        worker.kill_9();
        before = s.positions().await;
        eprintln!("round {round}: killed {pause} ms after its first write, at {before:?}");
    }
    let (worker, log) = s.worker("last");
    s.assigned(&log).await;
    s.wait_consumed().await;
    let status = worker.terminate();
    assert!(status.success(), "worker exited with {status}");
    s.verify().await;
    s.server.stop().await;
}

/// A second consumer-group member joins mid-stream (the partitions are split between the two)
/// and leaves again (they go back to the first): nothing applied twice, nothing skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_ingest_is_exactly_once_through_a_rebalance() {
    let mut s = Scenario::start(4000, false, None).await;
    let (first, first_log) = s.worker("first");
    let progress = s.progress_from(&HashMap::new()).await;
    // The second member gets partitions, and writes.
    let (second, log) = s.worker("second");
    s.assigned(&log).await;
    let progress = s.progress_from(&progress).await;
    eprintln!("two members, at {progress:?}");
    let status = second.terminate();
    assert!(status.success(), "second worker exited with {status}");
    s.wait_consumed().await;
    // The first member's metrics: what it wrote and dead-lettered, and no lag left on any
    // partition (the gauges are updated every 5 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = worker_metrics(&first_log).await;
        let labels = format!("{{source=\"{SOURCE}\"}}");
        let lags: Vec<f64> = (0..PARTITIONS)
            .filter_map(|p| {
                sample(
                    &metrics,
                    &format!(
                        "quiver_ingest_lag_messages{{source=\"{SOURCE}\",partition=\"{TOPIC}/{p}\"}}"
                    ),
                )
            })
            .collect();
        let written = sample(
            &metrics,
            &format!("quiver_ingest_records_written_total{labels}"),
        );
        let dead = sample(
            &metrics,
            &format!("quiver_ingest_dead_letters_total{labels}"),
        );
        if lags.len() == PARTITIONS as usize
            && lags.iter().all(|l| *l == 0.0)
            && written.is_some_and(|w| w > 0.0)
            && dead.is_some_and(|d| d > 0.0)
        {
            assert!(
                sample(
                    &metrics,
                    &format!("quiver_ingest_records_per_second{labels}")
                )
                .is_some(),
                "{metrics}"
            );
            // The same through `quiver ingest status`.
            let text = std::fs::read_to_string(&first_log).unwrap();
            let addr = text
                .lines()
                .find_map(|l| l.split("metrics on ").nth(1))
                .unwrap()
                .trim()
                .to_string();
            let output = Command::new(binary("quiver"))
                .args(["--endpoint", &s.server.endpoint(), "--output", "json"])
                .args(["ingest", "status", "--source", SOURCE, "--worker", &addr])
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            let status: Json = serde_json::from_slice(&output.stdout).unwrap();
            let partitions = status["partitions"].as_array().unwrap();
            assert_eq!(partitions.len(), PARTITIONS as usize, "{status}");
            for p in partitions {
                let name = p["partition"].as_str().unwrap();
                let k: usize = name.rsplit('/').next().unwrap().parse().unwrap();
                assert_eq!(
                    p["position"].as_str().unwrap(),
                    (s.per_partition[k] - 1).to_string(),
                    "{status}"
                );
                assert_eq!(p["lag"].as_f64(), Some(0.0), "{status}");
            }
            assert_eq!(status["records_written"].as_f64(), written, "{status}");
            assert_eq!(status["dead_letters"].as_f64(), dead, "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker's metrics never showed the finished stream: lags {lags:?}, \
             written {written:?}, dead letters {dead:?}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = first.terminate();
    assert!(status.success(), "first worker exited with {status}");
    s.verify().await;
    s.server.stop().await;
}

/// A Kinesis client for moto at `endpoint`.
async fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_kinesis::Client::new(&config)
}

/// Every record of `stream` (all shards, from their oldest), as JSON documents.
async fn read_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Json> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards
        .unwrap_or_default();
    let mut documents = Vec::new();
    for shard in shards {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            // The injected faults fail some calls: ask again (they do not depend on the
            // iterator).
            let mut tries = 0;
            let out = loop {
                match kinesis.get_records().shard_iterator(&it).send().await {
                    Ok(out) => break out,
                    Err(_) if tries < 10 => tries += 1,
                    Err(e) => panic!("reading {stream}: {e:?}"),
                }
            };
            if out.records.is_empty() {
                break;
            }
            for r in out.records {
                documents.push(serde_json::from_slice(r.data.as_ref()).unwrap());
            }
            iterator = out.next_shard_iterator;
        }
    }
    documents
}

/// Kinesis through moto, with AWS's resharding (`tests/python/moto_kinesis.py`) and injected
/// expired iterators and throttling: a 2-shard stream whose first shard is split mid-stream,
/// while the worker is killed with SIGKILL before and after the split. Bad messages go to a
/// Kinesis dead-letter stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_ingest_is_exactly_once_through_a_shard_split_and_kill_9() {
    const SOURCE: &str = "events-from-kinesis";
    let moto = Moto::start_kinesis(true).await;
    let kinesis = kinesis_client(&moto.endpoint()).await;
    for (stream, shards) in [("events", 2), ("events-dlq", 1)] {
        kinesis
            .create_stream()
            .stream_name(stream)
            .shard_count(shards)
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &[
            "--offline-flush-interval-ms",
            "200",
            "--wal-sync",
            "periodic",
        ],
    )
    .await;
    let client = server.client().await;
    client.create_feature_group(events_group()).await.unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("seed {seed}");
    let sent = messages(3000, seed);

    // The producer: 20 messages every 100 ms (about 15 s), each keyed by its identifier (or its
    // number); shard 0 is split halfway. It returns each message's shard and sequence number.
    let (split_done, mut split_seen) = tokio::sync::watch::channel(false);
    let producing = {
        let kinesis = kinesis.clone();
        let payloads: Vec<(String, String)> = sent
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let key = m.good.as_ref().map_or(k.to_string(), |g| g.0.clone());
                (key, m.payload.clone())
            })
            .collect();
        tokio::spawn(async move {
            use aws_sdk_kinesis::primitives::Blob;
            use aws_sdk_kinesis::types::PutRecordsRequestEntry;
            let mut placed = Vec::with_capacity(payloads.len());
            for (k, chunk) in payloads.chunks(20).enumerate() {
                if k == payloads.len() / 40 {
                    let shards = kinesis
                        .list_shards()
                        .stream_name("events")
                        .send()
                        .await
                        .unwrap()
                        .shards
                        .unwrap();
                    let range = shards[0].hash_key_range().unwrap();
                    let (low, high): (u128, u128) = (
                        range.starting_hash_key().parse().unwrap(),
                        range.ending_hash_key().parse().unwrap(),
                    );
                    kinesis
                        .split_shard()
                        .stream_name("events")
                        .shard_to_split(shards[0].shard_id())
                        .new_starting_hash_key((low + (high - low) / 2).to_string())
                        .send()
                        .await
                        .unwrap();
                    let _ = split_done.send(true);
                    eprintln!("split {} after {} messages", shards[0].shard_id(), k * 20);
                }
                let entries = chunk
                    .iter()
                    .map(|(key, payload)| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(key)
                            .data(Blob::new(payload.as_bytes()))
                            .build()
                            .unwrap()
                    })
                    .collect();
                let out = kinesis
                    .put_records()
                    .stream_name("events")
                    .set_records(Some(entries))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(out.failed_record_count, Some(0));
                for r in out.records {
                    placed.push((r.shard_id.unwrap(), r.sequence_number.unwrap()));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            placed
        })
    };

    let dead_stream = "events-dlq";
    let config = dir.path().join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            r#"
metrics_addr = "127.0.0.1:0"
[[source]]
name = "{SOURCE}"
feature_group = "events"
batch_size = 50
linger_ms = 20
dead_letter = {{ kind = "kinesis", stream = "{dead_stream}" }}
[source.kinesis]
stream = "events"
region = "us-east-1"
endpoint = "{}"
shard_discovery_interval_ms = 300
poll_interval_ms = 50
max_records = 100
"#,
            moto.endpoint()
        ),
    )
    .unwrap();
    let stored = || async {
        quiver_tests::source_positions(&client, SOURCE)
            .await
            .into_iter()
            .map(|(p, v)| (p, v.to_string()))
            .collect::<HashMap<String, String>>()
    };
    let progress_from = |before: HashMap<String, String>| {
        let stored = &stored;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let now = stored().await;
                if now != before {
                    return now;
                }
                assert!(Instant::now() < deadline, "no progress within 60 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let worker = |name: &str| {
        let log = dir.path().join(format!("{name}.log"));
        (start_worker(&config, &server.endpoint(), Some(&log)), log)
    };

    // Killed once before the split and twice after it, each at a random moment after a write.
    let mut before = HashMap::new();
    let mut logs = Vec::new();
    for round in 0..3u64 {
        if round == 1 {
            split_seen.wait_for(|done| *done).await.unwrap();
        }
        let (w, log) = worker(&format!("round{round}"));
        logs.push(log);
        progress_from(before).await;
        let pause = seed.wrapping_mul(round + 3) % 600;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        w.kill_9();
        before = stored().await;
        eprintln!("round {round}: killed {pause} ms after a write, at {before:?}");
    }
    let (last, log) = worker("last");
    logs.push(log);
    let placed = producing.await.unwrap();
    assert_eq!(placed.len(), sent.len());
    let mut want: HashMap<String, String> = HashMap::new();
    for (shard, sequence) in &placed {
        let e = want.entry(format!("events/{shard}")).or_default();
        if sequence.parse::<u128>().unwrap() > e.parse::<u128>().unwrap_or(0) {
            *e = sequence.clone();
        }
    }
    assert_eq!(
        want.len(),
        4,
        "records in both first shards and both children: {want:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = stored().await;
        // The parent's position stays at its last record; the children's reach theirs.
        if now == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not consumed within 120 s: {now:?} of {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last worker's metrics: the injected throttling was counted, and the parent shows no
    // lag once read to its end.
    let metrics = worker_metrics(logs.last().unwrap()).await;
    let throttled = sample(
        &metrics,
        &format!("quiver_ingest_throttled_total{{source=\"{SOURCE}\"}}"),
    );
    assert!(throttled.is_some_and(|t| t > 0.0), "{metrics}");
    let parent_lag = sample(
        &metrics,
        &format!(
            "quiver_ingest_lag_millis{{source=\"{SOURCE}\",partition=\"events/shardId-000000000000\"}}"
        ),
    );
    assert_eq!(parent_lag, Some(0.0), "{metrics}");
    let status = last.terminate();
    assert!(status.success(), "worker exited with {status}");

    // The injected expired iterators were renewed (and the stream still read exactly once).
    assert!(
        logs.iter().any(|log| std::fs::read_to_string(log)
            .unwrap()
            .contains("kinesis iterator expired; renewing it")),
        "no worker met an expired iterator"
    );
    // Parents before children: a worker that started a child had read the parent to its end.
    let parent = "shardId-000000000000";
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap();
        let ended = text
            .lines()
            .position(|l| l.contains("read to its end") && l.contains(parent));
        let child = text.lines().position(|l| {
            l.contains("reading kinesis shard")
                && (l.contains("shardId-000000000002") || l.contains("shardId-000000000003"))
        });
        if let Some(child) = child {
            assert!(
                ended.is_some_and(|e| e < child),
                "{} started a child before its parent ended:\n{text}",
                log.display()
            );
        }
    }

    let bad: HashSet<(String, String)> = sent
        .iter()
        .zip(&placed)
        .filter(|(m, _)| m.good.is_none())
        .map(|(_, (shard, sequence))| (format!("events/{shard}"), sequence.clone()))
        .collect();
    let dead_letters = read_stream(&kinesis, dead_stream).await;
    verify(&client, &sent, &bad, dead_letters).await;
    server.stop().await;
}

/// The same Kafka source, run by `quiver-server` itself (listed in its configuration file):
/// it starts before the feature group exists (the worker fails, and is started again), reads
/// the stream into both stores exactly once, reports in the server's `/metrics`, and stops
/// cleanly with the server. Its bad messages go to a dead-letter topic of the same broker.
/// The server runs with --auth and TLS: the workers call its handlers in process as its
/// `quiver-ingest` principal, whose policy allows the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_ingest_runs_inside_the_server() {
    let mut s = Scenario::start(1500, true, Some("events-dlq")).await;
    s.wait_consumed().await;
    let (status, metrics) = s.server.http_get("/metrics").await;
    assert_eq!(status, 200);
    let written = sample(
        &metrics,
        &format!("quiver_ingest_records_written_total{{source=\"{SOURCE}\"}}"),
    );
    let good = s.sent.iter().filter(|m| m.good.is_some()).count() as f64;
    assert_eq!(written, Some(good), "{metrics}");
    s.verify().await;
    s.server.stop().await;
}

/// A batch over the server's request size limit (`--max-request-mb 1`: 150 messages of about
/// 20 KB in one batch) is written in halves, in order, and every message is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_batches_over_the_request_limit_are_written_in_halves() {
    batches_over_the_request_limit_are_written_in_halves(false).await;
}

/// As above, against a server with `--auth`, whose signature check refuses the oversized
/// request before the service does, in its own words (still OUT_OF_RANGE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_batches_over_the_request_limit_are_written_in_halves_with_auth() {
    batches_over_the_request_limit_are_written_in_halves(true).await;
}

async fn batches_over_the_request_limit_are_written_in_halves(auth: bool) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("big", 1, 1).expect("topic created");
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--max-request-mb", "1"];
    if auth {
        args.push("--auth");
    }
    let server = TestServer::start_in(&dir.path().join("data"), &args).await;
    // With --auth, the test and the worker sign as root, from the profile the server wrote.
    let credentials = server.data_dir().join("root-credentials");
    let client = if auth {
        let text = std::fs::read_to_string(&credentials).expect("root credentials");
        let root = quiver_proto::signing::Credentials::from_profile(&text, "default")
            .unwrap()
            .expect("a default profile");
        server.client_with(Some(root)).await
    } else {
        server.client().await
    };
    client
        .create_feature_group(id_ts_group(
            "big",
            vec![fdef("blob", pb::FeatureType::String)],
            false,
        ))
        .await
        .unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    const N: usize = 150;
    for i in 0..N {
        let payload = json!({
            "id": format!("k{i}"),
            "ts": 1_700_000_000.0 + i as f64,
            "blob": format!("{i}:{}", "x".repeat(20_000)),
        })
        .to_string();
        producer
            .send(
                BaseRecord::<str, str>::to("big")
                    .partition(0)
                    .payload(&payload),
            )
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let config = dir.path().join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[source]]
name = "big-from-kafka"
feature_group = "big"
batch_size = {N}
linger_ms = 2000
dead_letter = {{ kind = "file", path = "{}" }}
[source.kafka]
brokers = "{brokers}"
topics = ["big"]
"#,
            dir.path().join("dead.jsonl").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("worker.log");
    let worker = start_worker_with(
        &config,
        &server.endpoint(),
        Some(&log),
        auth.then_some(credentials.as_path()),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = quiver_tests::source_positions(&client, "big-from-kafka").await;
        if now.get("big/0") == Some(&(N as i64 - 1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not consumed within 60 s: {now:?}; the worker's log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = worker.terminate();
    assert!(status.success(), "worker exited with {status}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("writing it in halves"),
        "the batch was never split"
    );
    for i in 0..N {
        let record = quiver_tests::read(&client, "big", &format!("k{i}")).await;
        let blob = quiver_tests::feature(&record, "blob").unwrap();
        assert!(
            blob.as_str().unwrap().starts_with(&format!("{i}:")),
            "record k{i}"
        );
    }
    assert!(
        !dir.path().join("dead.jsonl").exists(),
        "nothing dead-lettered"
    );
    server.stop().await;
}

/// Lineage recorded by Quiver itself: a group fed by a Kafka topic, then a dataset built from
/// it; QueryLineage up from the dataset's artifact reaches the group's context, the SQL it
/// started from, and the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_built_from_kafka_ingest_traces_back_to_the_topic() {
    let mut s = Scenario::start(300, false, None).await;
    let (worker, _log) = s.worker("lineage");
    s.wait_consumed().await;
    assert!(worker.terminate().success(), "the worker stops cleanly");
    let out = s._dir.path().join("dataset");
    s.server.cli(&[
        "dataset",
        "create",
        "--base-sql",
        "SELECT id, ts FROM events",
        "--record-id",
        "id",
        "--event-time",
        "ts",
        "--group",
        "events:v",
        "--point-in-time",
        "--out",
        out.to_str().unwrap(),
    ]);
    let manifest = format!("file://{}/manifest.json", out.display());
    let datasets = quiver_tests::lineage_entities(
        &s.client,
        pb::LineageEntityKind::Artifact,
        None,
        Some(&manifest),
    )
    .await;
    assert_eq!(
        datasets.len(),
        1,
        "one artifact for {manifest}: {datasets:?}"
    );
    let dataset = &datasets[0];
    assert_eq!(dataset.entity_type, "DataSet");
    assert_eq!(
        dataset.properties.get("point_in_time").map(String::as_str),
        Some("true")
    );
    let up = quiver_tests::query_lineage(&s.client, &dataset.arn, "Ascendants", None).await;
    let found: Vec<(&str, &str)> = up
        .vertices
        .iter()
        .map(|v| (v.r#type.as_str(), v.source_uri.as_str()))
        .collect();
    let brokers_topic = format!("/{TOPIC}");
    assert!(
        found.iter().any(|(t, uri)| *t == "KafkaTopic"
            && uri.starts_with("kafka://")
            && uri.ends_with(&brokers_topic)),
        "the topic is upstream of the dataset: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(t, uri)| *t == "FeatureGroup" && uri.ends_with(":feature-group/events")),
        "the group is upstream of the dataset: {found:?}"
    );
    assert!(
        found.iter().any(|(t, _)| *t == "Query"),
        "the base query: {found:?}"
    );
    let types: HashSet<&str> = up
        .edges
        .iter()
        .filter_map(|e| e.association_type.as_deref())
        .collect();
    assert!(
        types.contains("ContributedTo") && types.contains("DerivedFrom"),
        "{types:?}"
    );
    s.server.stop().await;
}
