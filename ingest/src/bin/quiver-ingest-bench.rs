//! `quiver-ingest-bench`: records per second from Kafka into both stores. For each partition
//! count it hosts a Kafka wire-protocol broker (librdkafka's mock cluster) in this process,
//! produces `--records` JSON records of `--features` Fractional features while the Kafka worker
//! (the same code as `quiver-ingest`) writes them to `--server`, and times the worker from its
//! start, and from its first write, until the server's stored positions reach the end of every
//! partition. `bench/ingest-kafka.sh`
//! starts a server and runs it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use quiver_ingest::config::IngestConfig;
use quiver_ingest::sink::Server;
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
    #[arg(long, default_value = "http://127.0.0.1:7940")]
    server: String,
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    #[arg(long, default_value_t = 20)]
    features: usize,
    /// Partition counts to measure, in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    partitions: Vec<i32>,
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    /// The worker's linger (the configuration's default is 50 ms).
    #[arg(long, default_value_t = 50)]
    linger_ms: u64,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
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
    let group = format!("ingest_bench_{}f", args.features);
    create_group(&args.server, &group, args.features).await?;
    let dir = std::env::temp_dir().join(format!("quiver-ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for &partitions in &args.partitions {
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

        let source = format!(
            "bench-{partitions}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        );
        let config = IngestConfig::parse(&format!(
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
            dir.join(format!("{source}.dead.jsonl")).display()
        ))?;
        let source_config = config.sources[0].clone();
        let server = Server::new(&args.server)?;
        let pipeline = Arc::new(Pipeline::new(&source_config, server.clone()).await?);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let producing = {
            let (brokers, topic, server, source) = (
                brokers.clone(),
                topic.clone(),
                server.clone(),
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
                                .block_on(server.positions(&source))
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
        let worker = {
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                let kafka = source_config.kafka.clone().expect("a kafka source");
                quiver_ingest::kafka::run(&source_config, &kafka, pipeline, shutdown).await
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
            let now = server.positions(&source).await.map_err(|s| s.to_string())?;
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
            if worker.is_finished() {
                return Err(format!("the worker stopped: {:?}", worker.await));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let (first_at, first_applied) = first.unwrap_or((started, 0));
        let steady = (args.records as u64 - first_applied) as f64
            / first_at.elapsed().as_secs_f64().max(1e-3);
        let _ = stop.send(true);
        worker
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        producing.await.map_err(|e| e.to_string())??;
        // Every record written once: none dropped by the broker before it was read.
        if pipeline.written() != args.records as u64 {
            return Err(format!(
                "{} of {} records written: the broker dropped messages before they were read; \
                 the measurement is void",
                pipeline.written(),
                args.records
            ));
        }
        results.push(Measured {
            partitions,
            total: elapsed,
            join: first_at.duration_since(started),
            steady,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);

    if args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|m| {
                serde_json::json!({
                    "partitions": m.partitions,
                    "records": args.records,
                    "total_seconds": m.total.as_secs_f64(),
                    "join_seconds": m.join.as_secs_f64(),
                    "records_per_second": m.steady,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!(
            "kafka -> quiver (online + offline), {} records of {} features, batch {}, linger {} ms",
            args.records, args.features, args.batch_size, args.linger_ms
        );
        println!(
            "{:>10} {:>10} {:>10} {:>12} {:>14}",
            "partitions", "join s", "total s", "total rec/s", "steady rec/s"
        );
        for m in &results {
            println!(
                "{:>10} {:>10.2} {:>10.2} {:>12.0} {:>14.0}",
                m.partitions,
                m.join.as_secs_f64(),
                m.total.as_secs_f64(),
                args.records as f64 / m.total.as_secs_f64(),
                m.steady
            );
        }
        println!(
            "join: worker start to first write (consumer-group join); steady: records/s after it"
        );
        if let Some(m) = results.iter().find(|m| m.partitions == 4) {
            println!(
                "target: at least 100,000 records/s with 4 partitions: {:.0} steady ({})",
                m.steady,
                if m.steady >= 100_000.0 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
    }
    Ok(())
}

struct Measured {
    partitions: i32,
    total: Duration,
    join: Duration,
    steady: f64,
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
        for f in 0..features {
            let _ = write!(payload, r#","f{f}":{}.{}"#, i % 997, f);
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
