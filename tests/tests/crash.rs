//! The crash harness: `kill -9` of the server at random moments under a mixed load (PutRecord,
//! PutRecords, soft and hard DeleteRecord, ingest from Kafka by `quiver-ingest`, offline
//! flushes every 100 ms), with and without encryption at rest, checking the whole history
//! after every restart:
//!
//! - online: each identifier reads as its last acknowledged write left it, or as a write whose
//!   answer the kill cut off (in doubt) left it; nothing else;
//! - offline: once staging has drained, each acknowledged write is in the offline store exactly
//!   once, each write in doubt at most once, and nothing else is there;
//! - Kafka: every message below the source's stored positions is online; at the end every
//!   message produced is online and offline exactly once.
//!
//! Fault injection (libfiu, Debian's `fiu-utils`): in the fault rounds the server runs with
//! libfiu's POSIX preload, and once it serves, `fiu-ctrl` makes random `fsync`, `fdatasync`,
//! `pwrite`, `open`, `rename` and `ftruncate` calls fail with EIO or ENOSPC (writes fsync
//! each commit, `--wal-sync always`, so a failed sync meets the write path); then it is killed
//! and the same history is checked on a server without faults. A request in doubt must be
//! applied whole or not at all.
//!
//! `QUIVER_CRASH_KILLS` kills in all (default 6; half without encryption, half with) and
//! `QUIVER_FAULT_ROUNDS` fault rounds among them (default 4), e.g. `QUIVER_CRASH_KILLS=100
//! QUIVER_FAULT_ROUNDS=40 cargo nextest run -p quiver-tests --test crash --no-capture`; it
//! prints a summary of kills survived and writes checked (docs/guarantees.md has the latest).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_client::{Client, pb, value};
use quiver_tests::{TestServer, binary, fdef};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const GROUP: &str = "history";
const EVENTS: &str = "events";
const TOPIC: &str = "events";
/// The ingest source, as `quiver-ingest` is configured.
const SOURCE: &str = "events-from-kafka";
const PARTITIONS: i32 = 2;
const WRITERS: usize = 3;
const IDS_PER_WRITER: usize = 40;
/// Event times: each identifier's n-th write is at BASE + n seconds.
const BASE_S: f64 = 1_700_000_000.0;

/// A small deterministic generator (xorshift), seeded per run and printed.
struct Rng(u64);

impl Rng {
    /// A generator for stream `stream` of `seed`: seeds pass through splitmix64, so streams of
    /// nearby seeds are unrelated (xorshift seeded with its own outputs repeats them shifted).
    fn new(seed: u64, stream: u64) -> Self {
        let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    SoftDelete,
    HardDelete,
}

/// One write to one identifier: its n-th (so its event time), the request that carried it
/// (a PutRecords carries several), and whether it was acknowledged.
#[derive(Debug, Clone, Copy)]
struct Op {
    n: u32,
    kind: Kind,
    request: u64,
    acked: bool,
}

/// Every write made to each identifier, in order.
#[derive(Default, Clone)]
struct History {
    ops: HashMap<String, Vec<Op>>,
}

impl History {
    fn next_n(&self, id: &str) -> u32 {
        self.ops.get(id).map_or(1, |ops| ops.len() as u32 + 1)
    }

    /// The online states a reader may see: `Some(n)` for the record of write n, `None` for
    /// none. The last acknowledged write's state, and that of every write after it (each in
    /// doubt).
    fn allowed(&self, id: &str) -> Vec<Option<u32>> {
        let ops = self.ops.get(id).map(Vec::as_slice).unwrap_or_default();
        let mut allowed = Vec::new();
        for op in ops.iter().rev() {
            allowed.push(match op.kind {
                Kind::Put => Some(op.n),
                Kind::SoftDelete | Kind::HardDelete => None,
            });
            if op.acked {
                return allowed;
            }
        }
        allowed.push(None);
        allowed
    }
}

fn history_group(name: &str) -> pb::CreateFeatureGroupRequest {
    pb::CreateFeatureGroupRequest {
        feature_group_name: name.into(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions: vec![
            fdef("id", pb::FeatureType::String),
            fdef("ts", pb::FeatureType::Fractional),
            fdef("n", pb::FeatureType::Integral),
        ],
        online_store_config: Some(pb::OnlineStoreConfig {
            enable_online_store: true,
            ..Default::default()
        }),
        offline_store_config: Some(pb::OfflineStoreConfig::default()),
        ..Default::default()
    }
}

fn put_request(group: &str, id: &str, n: u32) -> pb::PutRecordRequest {
    pb::PutRecordRequest {
        feature_group_name: group.into(),
        record: vec![
            value::string("id", id),
            value::fractional("ts", BASE_S + n as f64),
            value::integral("n", n as i64),
        ],
        ..Default::default()
    }
}

/// How writers' failed writes begin (`quiver_types::error::STORAGE_IO` and `DISK_FULL`).
const STORAGE_IO: &str = "I/O error on the data directory";
const DISK_FULL: &str = "disk full on the data directory";

/// Writes answered with a storage I/O error, in all.
static IO_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Numbers every request of every writer.
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One writer's load: its own identifiers, one request at a time, until the server dies.
async fn writer(client: Client, w: usize, history: Arc<Mutex<History>>, seed: u64) {
    let mut rng = Rng::new(seed, w as u64);
    loop {
        let request = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let roll = rng.below(100);
        let ids: Vec<String> = if roll < 15 {
            // PutRecords of five distinct identifiers.
            let mut ids: Vec<String> = (0..5)
                .map(|_| format!("w{w}-{}", rng.below(IDS_PER_WRITER as u64)))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        } else {
            vec![format!("w{w}-{}", rng.below(IDS_PER_WRITER as u64))]
        };
        let kind = match roll {
            15..=24 => Kind::SoftDelete,
            25..=29 => Kind::HardDelete,
            _ => Kind::Put,
        };
        // Recorded before it is sent: in doubt until answered.
        let ns: Vec<u32> = {
            let mut history = history.lock().unwrap();
            ids.iter()
                .map(|id| {
                    let n = history.next_n(id);
                    history.ops.entry(id.clone()).or_default().push(Op {
                        n,
                        kind,
                        request,
                        acked: false,
                    });
                    n
                })
                .collect()
        };
        let answered = if roll < 15 {
            client
                .put_records(pb::PutRecordsRequest {
                    records: ids
                        .iter()
                        .zip(&ns)
                        .map(|(id, n)| put_request(GROUP, id, *n))
                        .collect(),
                })
                .await
                .map(|_| ())
        } else if kind == Kind::Put {
            client
                .put_record(put_request(GROUP, &ids[0], ns[0]))
                .await
                .map(|_| ())
        } else {
            client
                .delete_record(pb::DeleteRecordRequest {
                    feature_group_name: GROUP.into(),
                    record_identifier_value_as_string: ids[0].clone(),
                    event_time: format!("{}", BASE_S + ns[0] as f64),
                    deletion_mode: match kind {
                        Kind::HardDelete => pb::DeletionMode::HardDelete,
                        _ => pb::DeletionMode::SoftDelete,
                    }
                    .into(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        };
        match answered {
            Ok(()) => {
                let mut history = history.lock().unwrap();
                for (id, n) in ids.iter().zip(&ns) {
                    let op = history
                        .ops
                        .get_mut(id)
                        .and_then(|ops| ops.iter_mut().find(|op| op.n == *n))
                        .expect("recorded");
                    op.acked = true;
                }
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some(
                        tonic::Code::InvalidArgument
                            | tonic::Code::NotFound
                            | tonic::Code::AlreadyExists
                            | tonic::Code::FailedPrecondition
                            | tonic::Code::Aborted
                            | tonic::Code::PermissionDenied
                    )
                ) =>
            {
                panic!("writer {w}: a write the server should have taken was refused: {e}")
            }
            // A storage failure (an injected I/O error, a full disk): the write stays in doubt,
            // and the writer goes on, as a client would.
            Err(e) if e.to_string().contains(STORAGE_IO) || e.to_string().contains(DISK_FULL) => {
                if e.to_string().contains(STORAGE_IO) {
                    IO_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The server is gone (or going): what was sent stays in doubt.
            Err(_) => return,
        }
    }
}

/// The online state of `id`: the `n` of its record, or `None`.
async fn online_n(client: &Client, group: &str, id: &str) -> Option<u32> {
    let read = client
        .get_record(pb::GetRecordRequest {
            feature_group_name: group.into(),
            record_identifier_value_as_string: id.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("GetRecord {id}: {e}"));
    quiver_tests::feature(&read.record, "n").map(|v| v.as_u64().unwrap() as u32)
}

async fn staged_rows(server: &TestServer) -> Option<f64> {
    let (_, body) = server.http_get("/metrics").await;
    body.lines()
        .find(|l| l.split_whitespace().next() == Some("quiver_offline_staged_rows"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn wait_drained(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while staged_rows(server).await != Some(0.0) {
        assert!(Instant::now() < deadline, "offline staging did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Offline rows by (identifier, n, is_deleted).
async fn offline_rows(client: &Client, group: &str) -> HashMap<(String, u32, bool), u32> {
    let sql = format!("SELECT id, CAST(ts - {BASE_S} AS BIGINT) AS n, is_deleted FROM \"{group}\"");
    let (_, batches) = client.query(&sql).await.expect("offline query");
    let mut rows = HashMap::new();
    for batch in batches {
        let ids = arrow::array::cast::as_string_array(batch.column(0));
        let ns =
            arrow::array::cast::as_primitive_array::<arrow::datatypes::Int64Type>(batch.column(1));
        let deleted = arrow::array::cast::as_boolean_array(batch.column(2));
        for i in 0..batch.num_rows() {
            let key = (
                ids.value(i).to_string(),
                ns.value(i) as u32,
                deleted.value(i),
            );
            *rows.entry(key).or_insert(0) += 1;
        }
    }
    rows
}

#[derive(Default, Debug)]
struct Checked {
    /// Fault rounds whose server reported degraded health after a write's I/O error.
    degraded: u64,
    online_reads: u64,
    offline_acked: u64,
    offline_in_doubt_found: u64,
    in_doubt: u64,
}

/// Checks the history online and offline on a restarted, quiet server.
async fn check_history(
    server: &TestServer,
    client: &Client,
    history: &History,
    checked: &mut Checked,
) {
    for w in 0..WRITERS {
        for i in 0..IDS_PER_WRITER {
            let id = format!("w{w}-{i}");
            let got = online_n(client, GROUP, &id).await;
            let allowed = history.allowed(&id);
            assert!(
                allowed.contains(&got),
                "{id} reads as {got:?}; its history allows only {allowed:?}: {:?}",
                history.ops.get(&id)
            );
            checked.online_reads += 1;
        }
    }
    wait_drained(server).await;
    let mut rows = offline_rows(client, GROUP).await;
    let (mut acked, mut doubt_found, mut doubt) = (0, 0, 0);
    // Requests in doubt: (writes, writes found offline), to be whole or absent.
    let mut requests: HashMap<u64, (u32, u32, Vec<String>)> = HashMap::new();
    for (id, ops) in &history.ops {
        for op in ops {
            let deleted = op.kind != Kind::Put;
            let found = rows.remove(&(id.clone(), op.n, deleted)).unwrap_or(0);
            if op.acked {
                assert_eq!(
                    found, 1,
                    "{id} write {} ({:?}) is offline {found} times",
                    op.n, op.kind
                );
                acked += 1;
            } else {
                assert!(
                    found <= 1,
                    "{id} write {} in doubt is offline {found} times",
                    op.n
                );
                doubt += 1;
                doubt_found += u64::from(found);
                let request = requests.entry(op.request).or_default();
                request.0 += 1;
                request.1 += found;
                request
                    .2
                    .push(format!("{id} write {} {:?}: {found}", op.n, op.kind));
            }
        }
    }
    assert!(rows.is_empty(), "offline rows no write made: {rows:?}");
    for (request, (writes, found, each)) in requests {
        assert!(
            found == 0 || found == writes,
            "request {request} in doubt is half applied: {found} of its {writes} writes: {each:?}"
        );
    }
    checked.offline_acked = acked;
    checked.offline_in_doubt_found = doubt_found;
    checked.in_doubt = doubt;
}

/// `quiver-ingest` for this round: a consumer group of its own (so it is assigned every
/// partition at once), resuming from the positions the server stored.
fn start_worker(dir: &Path, brokers: &str, endpoint: &str, round: usize) -> Child {
    let config = dir.join(format!("ingest-{round}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"
[[source]]
name = "{SOURCE}"
feature_group = "{EVENTS}"
batch_size = 20
linger_ms = 10
dead_letter = {{ kind = "file", path = "{}" }}
[source.kafka]
brokers = "{brokers}"
topics = ["{TOPIC}"]
group_id = "round-{round}"
"#,
            dir.join("dead.jsonl").display()
        ),
    )
    .unwrap();
    Command::new(binary("quiver-ingest"))
        .arg("--config")
        .arg(&config)
        .args(["--server", endpoint])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("quiver-ingest starts")
}

/// Kafka message `seq` sets record `k<seq>` to n = seq; messages are spread over partitions in
/// turn, so message `seq` is at offset `seq / PARTITIONS` of partition `seq % PARTITIONS`.
fn message(seq: u64) -> String {
    serde_json::json!({"id": format!("k{seq}"), "ts": BASE_S + seq as f64, "n": seq}).to_string()
}

/// Runs `kills` rounds of load and kill -9 on one data dir; returns what was checked.
/// The failures a fault round injects once the server serves: EIO or ENOSPC.
fn faults(errno: u32) -> String {
    [
        ("posix/io/sync/fdatasync", 0.05),
        ("posix/io/sync/fsync", 0.05),
        ("posix/io/rw/pwrite", 0.01),
        ("posix/io/rw/ftruncate", 0.05),
        ("posix/io/oc/open", 0.01),
        ("posix/io/dir/rename", 0.05),
    ]
    .iter()
    .map(|(name, p)| format!("enable_random name={name},probability={p},failinfo={errno}"))
    .collect::<Vec<_>>()
    .join("\n")
}

/// Runs `kills` rounds of load and kill -9 on one data dir, the first `fault_rounds` of them
/// with injected I/O failures; returns what was checked.
async fn harness(
    kills: usize,
    fault_rounds: usize,
    encrypted: bool,
    seed: u64,
) -> (Checked, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec!["--offline-flush-interval-ms", "100"];
    if encrypted {
        args.push("--encrypt-at-rest");
    }
    let fifo = dir.path().join("fiu");
    let fifo = fifo.to_str().unwrap();
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let mut produced = 0u64;
    let history = Arc::new(Mutex::new(History::default()));
    let mut checked = Checked::default();
    let mut rng = Rng::new(seed, u64::MAX);
    for round in 0..=kills {
        let faulty = round < fault_rounds;
        let mut round_args = args.clone();
        round_args.extend(["--wal-sync", if faulty { "always" } else { "periodic" }]);
        let server = if faulty {
            let preload = "/usr/lib/fiu/fiu_run_preload.so /usr/lib/fiu/fiu_posix_preload.so";
            let env = [
                ("LD_PRELOAD", preload),
                ("FIU_CTRL_FIFO", fifo),
                ("FIU_ENABLE", ""),
            ];
            TestServer::start_with_env(&data, &round_args, &env).await
        } else {
            TestServer::start_in(&data, &round_args).await
        };
        let client = server.client().await;
        if round == 0 {
            client
                .create_feature_group(history_group(GROUP))
                .await
                .unwrap();
            client
                .create_feature_group(history_group(EVENTS))
                .await
                .unwrap();
        }
        let snapshot = history.lock().unwrap().clone();
        check_history(&server, &client, &snapshot, &mut checked).await;
        // Every message below a stored position is online.
        for (partition, position) in quiver_tests::source_positions(&client, SOURCE).await {
            let p: u64 = partition.rsplit('/').next().unwrap().parse().unwrap();
            for offset in (0..=position as u64).step_by(7) {
                let seq = offset * PARTITIONS as u64 + p;
                assert_eq!(
                    online_n(&client, EVENTS, &format!("k{seq}")).await,
                    Some(seq as u32),
                    "message {seq} is below the stored position {position} of {partition}"
                );
            }
        }
        if round == kills {
            // The last: produce the rest, let the worker finish, check everything once more.
            let worker = start_worker(dir.path(), &brokers, &server.endpoint(), round);
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let positions = quiver_tests::source_positions(&client, SOURCE).await;
                // A position is the last offset written.
                let consumed: i64 = positions.values().map(|p| p + 1).sum();
                if consumed as u64 == produced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "ingest stopped at {positions:?} of {produced}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            kill(worker);
            wait_drained(&server).await;
            let rows = offline_rows(&client, EVENTS).await;
            for seq in 0..produced {
                assert_eq!(
                    online_n(&client, EVENTS, &format!("k{seq}")).await,
                    Some(seq as u32)
                );
                assert_eq!(
                    rows.get(&(format!("k{seq}"), seq as u32, false)),
                    Some(&1),
                    "message {seq} offline"
                );
            }
            assert_eq!(rows.len() as u64, produced, "no other rows");
            server.stop().await;
            break;
        }
        // Load: writers, a worker, and messages produced meanwhile; then kill -9 at a random
        // moment.
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                // Each request once: a write in doubt stays in doubt (no retries).
                let client = client.clone().with_retry(quiver_client::RetryPolicy {
                    max_attempts: 1,
                    ..Default::default()
                });
                let history = history.clone();
                tokio::spawn(writer(client, w, history, rng.below(u64::MAX)))
            })
            .collect();
        let worker = start_worker(dir.path(), &brokers, &server.endpoint(), round);
        if faulty {
            let errno = if round % 2 == 0 { 5 } else { 28 };
            let enabled = Command::new("fiu-ctrl")
                .args(["-f", fifo, "-c", &faults(errno), &server.pid().to_string()])
                .status()
                .expect("fiu-ctrl runs (Debian's fiu-utils)");
            assert!(enabled.success(), "fiu-ctrl failed");
        }
        let io_errors_before = IO_ERRORS.load(std::sync::atomic::Ordering::Relaxed);
        let pause = Duration::from_millis(150 + rng.below(1200));
        let started = Instant::now();
        while started.elapsed() < pause {
            for _ in 0..20 {
                let seq = produced;
                let payload = message(seq);
                let partition = (seq % PARTITIONS as u64) as i32;
                producer
                    .send(
                        BaseRecord::<(), _>::to(TOPIC)
                            .payload(&payload)
                            .partition(partition),
                    )
                    .expect("produced");
                produced += 1;
            }
            producer.poll(Duration::ZERO);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        // Once a write has failed for an I/O error, the server says so until it restarts.
        let errors_now = IO_ERRORS.load(std::sync::atomic::Ordering::Relaxed);
        if faulty && errors_now > io_errors_before {
            let (status, health) = server.http_get("/healthz").await;
            assert_eq!(status, 200, "{health}");
            assert!(health.starts_with("degraded: I/O error"), "{health}");
            checked.degraded += 1;
        }
        server.kill_9();
        kill(worker);
        for writer in writers {
            writer.await.unwrap();
        }
    }
    (checked, produced, kills as u64)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_write_and_half_applies_none() {
    let kills = env_count("QUIVER_CRASH_KILLS", 6);
    let fault_rounds = env_count("QUIVER_FAULT_ROUNDS", 4).min(kills);
    let seed = std::env::var("QUIVER_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        });
    eprintln!(
        "crash harness: {kills} kills, {fault_rounds} of them after injected I/O failures, seed \
         {seed} (QUIVER_CRASH_SEED repeats it)"
    );
    let started = Instant::now();
    let mut summary = Vec::new();
    for (encrypted, share, faulty) in [
        (false, kills / 2, fault_rounds / 2),
        (true, kills - kills / 2, fault_rounds - fault_rounds / 2),
    ] {
        let (checked, messages, survived) =
            harness(share, faulty, encrypted, seed ^ u64::from(encrypted)).await;
        summary.push(format!(
            "{} kills survived ({}, {faulty} of them after injected I/O failures): {} writes \
             acknowledged, each online as its history allows \
             and offline exactly once; {} in doubt ({} of them applied); {} online reads \
             checked; {} Kafka messages online and offline exactly once; {} fault rounds \
             reported degraded health after a write's I/O error",
            survived,
            if encrypted { "encrypted" } else { "plain" },
            checked.offline_acked,
            checked.in_doubt,
            checked.offline_in_doubt_found,
            checked.online_reads,
            messages,
            checked.degraded
        ));
    }
    eprintln!(
        "crash harness summary (seed {seed}, {:.0} s):\n  {}",
        started.elapsed().as_secs_f64(),
        summary.join("\n  ")
    );
}
