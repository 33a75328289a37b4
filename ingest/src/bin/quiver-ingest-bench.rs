//! `quiver-ingest-bench`: records per second from Kafka into both stores. For each way of
//! running the workers (`--modes`) and each partition count it starts a fresh `quiver-server`,
//! hosts a Kafka wire-protocol broker (librdkafka's mock cluster) in this process, produces
//! `--records` JSON records of `--features` Fractional features, and times the Kafka worker
//! from its start, and from its first write, until the server's stored positions reach the end
//! of every partition. Workers run either inside the server (`in-server`: a `[[source]]` table
//! of its configuration, calling its handlers in process) or in this process as `quiver-ingest`
//! runs them (`standalone`: the same code, writing over gRPC). `bench/ingest-kafka.sh` runs it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use quiver_ingest::config::IngestConfig;
use quiver_ingest::sink::{Server, SharedSink};
use quiver_ingest::worker::Pipeline;
use quiver_proto::v1 as pb;
use quiver_proto::v1::feature_store_client::FeatureStoreClient;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// mimalloc: every message allocates its record's small values and strings.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// The `quiver-server` binary to start (default: the one next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    #[arg(long, default_value_t = 20)]
    features: usize,
    /// Partition counts to measure, in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    partitions: Vec<i32>,
    /// Where the workers run, in turn.
    #[arg(long, value_delimiter = ',', default_value = "in-server,standalone")]
    modes: Vec<Mode>,
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    /// The worker's linger (the configuration's default is 50 ms).
    #[arg(long, default_value_t = 50)]
    linger_ms: u64,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A `[[source]]` of the server's configuration: the worker calls its handlers in process.
    InServer,
    /// The worker in this process, writing over gRPC (as `quiver-ingest` does).
    Standalone,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::InServer => "in-server",
            Mode::Standalone => "standalone",
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,librdkafka=error,rdkafka=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("quiver-server"),
    };
    let dir = std::env::temp_dir().join(format!("quiver-ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for &mode in &args.modes {
        for &partitions in &args.partitions {
            let run_dir = dir.join(format!("{}-{partitions}", mode.name()));
            let measured = measure(&args, &server_bin, &run_dir, mode, partitions).await;
            let _ = std::fs::remove_dir_all(&run_dir);
            results.push(measured?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    report(&args, &results);
    Ok(())
}

/// One run: a fresh server and broker, `args.records` records over `partitions` partitions.
async fn measure(
    args: &Args,
    server_bin: &Path,
    dir: &Path,
    mode: Mode,
    partitions: i32,
) -> Result<Measured, String> {
    let group = format!("ingest_bench_{}f", args.features);
    let cluster = MockCluster::new(1).map_err(|e| e.to_string())?;
    let topic = format!("bench-{partitions}");
    cluster
        .create_topic(&topic, partitions, 1)
        .map_err(|e| e.to_string())?;
    let brokers = cluster.bootstrap_servers();
    // librdkafka's mock broker keeps at most 5 MB (or 100,000 messages) per partition and
    // drops the oldest beyond: the producer stays at most AHEAD messages per partition in
    // front of the stored positions, and runs alongside the worker.
    let last_offsets: Vec<i64> = (0..partitions)
        .map(|p| {
            let n = args.records / partitions as usize
                + usize::from((p as usize) < args.records % partitions as usize);
            n as i64 - 1
        })
        .collect();
    let source = format!("bench-{}-{partitions}", mode.name());
    let source_table = format!(
        r#"
[[source]]
name = "{source}"
feature_group = "{group}"
batch_size = {}
linger_ms = {}
dead_letter = {{ kind = "file", path = "{}" }}
[source.kafka]
brokers = "{brokers}"
topics = ["{topic}"]
properties = {{ "fetch.max.bytes" = "52428800", "queued.max.messages.kbytes" = "262144", "fetch.wait.max.ms" = "10" }}
"#,
        args.batch_size,
        args.linger_ms,
        dir.join("dead-letters.jsonl").display()
    );
    let config = IngestConfig::parse(&source_table).map_err(|e| e.to_string())?;
    let source_config = config.sources[0].clone();
    let server = Spawned::start(
        server_bin,
        dir,
        (mode == Mode::InServer).then_some(source_table.as_str()),
    )
    .await?;
    create_group(&server.grpc, &group, args.features).await?;
    let client: SharedSink = Arc::new(Server::new(&server.grpc).map_err(|e| e.to_string())?);
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&server.pid().to_string()));
    let started = Instant::now();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let worker = match mode {
        Mode::InServer => None,
        Mode::Standalone => {
            let pipeline = Arc::new(
                Pipeline::new(&source_config, client.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            );
            let running = pipeline.clone();
            let worker = tokio::spawn(async move {
                let kafka = source_config.kafka.clone().expect("a kafka source");
                quiver_ingest::kafka::run(&source_config, &kafka, running, shutdown).await
            });
            Some((pipeline, worker))
        }
    };
    let producing = {
        let (brokers, topic, client, source) = (
            brokers.clone(),
            topic.clone(),
            client.clone(),
            source.clone(),
        );
        let (records, features) = (args.records, args.features);
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            produce(
                &brokers,
                &topic,
                partitions,
                records,
                features,
                |p, offset| {
                    // Wait until the worker is within AHEAD of `offset` in partition `p`.
                    let name = format!("{topic}/{p}");
                    loop {
                        let stored = runtime
                            .block_on(client.positions(&source))
                            .ok()
                            .and_then(|all| all.get(&name).and_then(|v| v.parse::<i64>().ok()))
                            .unwrap_or(-1);
                        if offset - stored <= AHEAD {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                },
            )
        })
    };
    let want: HashMap<String, String> = last_offsets
        .iter()
        .enumerate()
        .filter(|(_, last)| **last >= 0)
        .map(|(p, last)| (format!("{topic}/{p}"), last.to_string()))
        .collect();
    // The first write is seen after the consumer group's join (seconds on any broker):
    // steady throughput is timed from there, the total from the worker's start.
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let now = client.positions(&source).await.map_err(|s| s.to_string())?;
        if first.is_none() && !now.is_empty() {
            let applied = now
                .values()
                .filter_map(|p| p.parse::<u64>().ok())
                .map(|p| p + 1)
                .sum();
            first = Some((Instant::now(), applied));
        }
        if now == want {
            break;
        }
        if let Some((_, worker)) = &worker
            && worker.is_finished()
        {
            return Err("the worker stopped early".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu = (
        cpu_seconds("self") - cpu_before.0,
        cpu_seconds(&server.pid().to_string()) - cpu_before.1,
    );
    let (first_at, first_applied) = first.unwrap_or((started, 0));
    let steady =
        (args.records as u64 - first_applied) as f64 / first_at.elapsed().as_secs_f64().max(1e-3);
    producing.await.map_err(|e| e.to_string())??;
    // Every record written once: none dropped by the broker before it was read.
    let written = match worker {
        Some((pipeline, worker)) => {
            let _ = stop.send(true);
            worker
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            pipeline.written()
        }
        None => {
            let metrics = server.metrics()?;
            let name = format!("quiver_ingest_records_written_total{{source=\"{source}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64
        }
    };
    if written != args.records as u64 {
        return Err(format!(
            "{written} of {} records written: the broker dropped messages before they were \
             read; the measurement is void",
            args.records
        ));
    }
    drop(server);
    Ok(Measured {
        mode,
        partitions,
        total: elapsed,
        join: first_at.duration_since(started),
        steady,
        bench_cpu_us: cpu.0 * 1e6 / args.records as f64,
        server_cpu_us: cpu.1 * 1e6 / args.records as f64,
    })
}

fn report(args: &Args, results: &[Measured]) {
    if args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|m| {
                serde_json::json!({
                    "mode": m.mode.name(),
                    "partitions": m.partitions,
                    "records": args.records,
                    "total_seconds": m.total.as_secs_f64(),
                    "join_seconds": m.join.as_secs_f64(),
                    "records_per_second": m.steady,
                    "bench_cpu_us_per_record": m.bench_cpu_us,
                    "server_cpu_us_per_record": m.server_cpu_us,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    println!(
        "kafka -> quiver (online + offline), {} records of {} features, batch {}, linger {} ms",
        args.records, args.features, args.batch_size, args.linger_ms
    );
    println!(
        "{:>10} {:>10} {:>8} {:>8} {:>12} {:>13} {:>14} {:>15}",
        "workers",
        "partitions",
        "join s",
        "total s",
        "total rec/s",
        "steady rec/s",
        "bench cpu us",
        "server cpu us"
    );
    for m in results {
        println!(
            "{:>10} {:>10} {:>8.2} {:>8.2} {:>12.0} {:>13.0} {:>14.1} {:>15.1}",
            m.mode.name(),
            m.partitions,
            m.join.as_secs_f64(),
            m.total.as_secs_f64(),
            args.records as f64 / m.total.as_secs_f64(),
            m.steady,
            m.bench_cpu_us,
            m.server_cpu_us,
        );
    }
    println!(
        "join: worker start to first write (consumer-group join); steady: records/s after it; \
         cpu: per record, this process (producer, broker{}) and the server",
        if args.modes.contains(&Mode::Standalone) {
            "; standalone: also the worker"
        } else {
            ""
        }
    );
    for m in results.iter().filter(|m| m.partitions == 4) {
        println!(
            "target: at least 100,000 records/s with 4 partitions ({}): {:.0} steady ({})",
            m.mode.name(),
            m.steady,
            if m.steady >= 100_000.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

/// A `quiver-server` on a fresh data dir in `dir` (with `sources`, a configuration file of
/// `[[source]]` tables), killed when dropped.
struct Spawned {
    child: Child,
    grpc: String,
    http: String,
}

impl Spawned {
    async fn start(binary: &Path, dir: &Path, sources: Option<&str>) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let addr_file = dir.join("addrs.json");
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--flight-sql-addr", "127.0.0.1:0"])
            .arg("--addr-file")
            .arg(&addr_file)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
            );
        if let Some(sources) = sources {
            let config = dir.join("quiver.toml");
            std::fs::write(&config, sources).map_err(|e| e.to_string())?;
            command.arg("--config").arg(config);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let mut spawned = Self {
            child,
            grpc: String::new(),
            http: String::new(),
        };
        for _ in 0..600 {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addrs) = serde_json::from_str::<serde_json::Value>(&text)
            {
                spawned.grpc = format!("http://{}", addrs["grpc"].as_str().unwrap_or_default());
                spawned.http = addrs["http"].as_str().unwrap_or_default().to_string();
                return Ok(spawned);
            }
            if let Ok(Some(status)) = spawned.child.try_wait() {
                return Err(format!("{} exited: {status}", binary.display()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{} did not start in 60 s", binary.display()))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's Prometheus metrics.
    fn metrics(&self) -> Result<String, String> {
        let mut stream = std::net::TcpStream::connect(&self.http).map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.http
        )
        .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        Ok(response)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of process `pid` ("self": this one) so far, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |k: usize| {
        fields
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

struct Measured {
    mode: Mode,
    partitions: i32,
    total: Duration,
    join: Duration,
    steady: f64,
    bench_cpu_us: f64,
    server_cpu_us: f64,
}

/// Most messages the producer runs ahead of the stored position of a partition (~3 MB of
/// these records, within the mock broker's 5 MB per partition).
const AHEAD: i64 = 8000;

/// Produces `records` JSON records round-robin over the partitions, calling `wait(partition,
/// offset)` every 1,000 messages of a partition, and waits for them all.
fn produce(
    brokers: &str,
    topic: &str,
    partitions: i32,
    records: usize,
    features: usize,
    wait: impl Fn(i32, i64),
) -> Result<(), String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(|e| e.to_string())?;
    let mut next = vec![0i64; partitions as usize];
    let mut payload = String::new();
    // Each feature's `,"fK":`, made once: formatting is most of the producer's work.
    let keys: Vec<String> = (0..features).map(|f| format!(r#","f{f}":"#)).collect();
    for i in 0..records {
        let partition = (i % partitions as usize) as i32;
        let offset = next[partition as usize];
        if offset % 1000 == 0 {
            producer.poll(Duration::ZERO);
            wait(partition, offset);
        }
        payload.clear();
        // Written in place: the producer shares the machine with what is measured.
        let _ = write!(
            payload,
            r#"{{"id":"u{}","ts":{}.{:03}"#,
            i % 100_000,
            1_700_000_000 + i / 1000,
            i % 1000
        );
        for (f, key) in keys.iter().enumerate() {
            payload.push_str(key);
            push_decimal(&mut payload, i % 997);
            payload.push('.');
            push_decimal(&mut payload, f);
        }
        payload.push('}');
        loop {
            match producer.send(
                BaseRecord::<str, str>::to(topic)
                    .partition(partition)
                    .payload(&payload),
            ) {
                Ok(()) => break,
                Err((e, _)) if e.to_string().contains("Queue full") => {
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(format!("produce: {e}")),
            }
        }
        next[partition as usize] += 1;
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| e.to_string())
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| d as char));
}

/// Creates the bench's group (`id` String, `ts` Fractional, `f0..` Fractional; online and
/// offline stores) unless it exists.
async fn create_group(server: &str, name: &str, features: usize) -> Result<(), String> {
    let mut client = FeatureStoreClient::connect(server.to_string())
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let f = |name: String, t: pb::FeatureType| pb::FeatureDefinition {
        feature_name: name,
        feature_type: t as i32,
        ..Default::default()
    };
    let mut definitions = vec![
        f("id".into(), pb::FeatureType::String),
        f("ts".into(), pb::FeatureType::Fractional),
    ];
    definitions.extend((0..features).map(|k| f(format!("f{k}"), pb::FeatureType::Fractional)));
    let request = pb::CreateFeatureGroupRequest {
        feature_group_name: name.to_string(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions: definitions,
        online_store_config: Some(pb::OnlineStoreConfig {
            enable_online_store: true,
            ..Default::default()
        }),
        offline_store_config: Some(pb::OfflineStoreConfig::default()),
        ..Default::default()
    };
    match client.create_feature_group(request).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(format!("creating {name}: {}", s.message())),
    }
}
