//! `quiver-bench`: a load generator for Quiver's online store.
//!
//! Loads `--records` records of `--features` features into a group (unless `--skip-load`), then
//! runs one operation (`get`, `batch-get`, `put`, `put-batch`, or `mixed` reads and writes) from
//! `--concurrency` requests in flight over `--connections` HTTP/2 connections, for `--duration`
//! seconds or `--requests` requests, with uniform or zipfian keys. Prints throughput, latency
//! percentiles (HDR histogram, microsecond resolution) and errors; `--json` prints one JSON object.
//!
//! By default each of the `--concurrency` workers sends its next request as soon as the last one
//! is answered (a closed loop, as redis-benchmark runs): the run measures the most the server
//! answers, and the latency at that saturation. With `--rate` the requests are offered at a fixed
//! rate instead (an open loop, as inference traffic arrives), still at most `--concurrency` in
//! flight; see [`pacer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use quiver_client::{Client, pb, value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

mod cpu;
mod pacer;
mod wire;

/// The load generator shares the machine with the server: keep its own allocation cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Operation {
    /// GetRecord of one record.
    Get,
    /// BatchGetRecord of `--batch-size` records.
    BatchGet,
    /// PutRecord of one record (a newer event time for an existing identifier).
    Put,
    /// PutRecords of `--batch-size` records.
    PutBatch,
    /// GetRecord and PutRecord, `--read-ratio` of them reads.
    Mixed,
    /// The gRPC health check: the cost of a unary call through the same HTTP/2 and tonic stack
    /// with no feature-store work, the floor under every operation above.
    Health,
    /// AutoML's online Predict of one record of `--group` with the model of job `--model`:
    /// GetRecord's read, then the model. Loads nothing: the group and the model exist.
    Predict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeyDistribution {
    Uniform,
    Zipfian,
}

#[derive(Debug, Parser)]
#[command(
    name = "quiver-bench",
    version,
    about = "Load generator for the Quiver online store"
)]
struct Args {
    #[arg(value_enum)]
    operation: Operation,
    /// Server gRPC endpoint.
    #[arg(long, env = "QUIVER_ENDPOINT", default_value = "http://127.0.0.1:7940")]
    endpoint: String,
    /// Feature group to use (created by the loading phase if missing).
    #[arg(long, default_value = "quiver_bench")]
    group: String,
    /// Records loaded and addressed by the run (identifiers r0 .. r<N-1>).
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Features per record, identifier and event time included (at least 3).
    #[arg(long, default_value_t = 50)]
    features: usize,
    /// Bytes of each String feature value.
    #[arg(long, default_value_t = 16)]
    value_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Threads of the load generator's runtime. One, like redis-benchmark, leaves the most CPU to
    /// a server on the same machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// HTTP/2 connections the requests share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Run for this many seconds (default 10 unless --requests is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Run this many requests instead of a duration.
    #[arg(long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Offer this many requests per second (an open loop) rather than sending each worker's next
    /// request as soon as its last is answered. The requests due each millisecond are released
    /// together, and a request's latency counts from its release, so the time it waited for a
    /// free worker (at most `--concurrency` are in flight) is part of it.
    #[arg(long)]
    rate: Option<f64>,
    /// Records per BatchGetRecord / PutRecords request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Key distribution of the run.
    #[arg(long, value_enum, default_value = "uniform")]
    distribution: KeyDistribution,
    /// Zipf exponent for --distribution zipfian.
    #[arg(long, default_value_t = 0.99)]
    zipf_exponent: f64,
    /// Share of reads in the mixed workload.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Do not create or load the group: it holds the records already.
    #[arg(long)]
    skip_load: bool,
    /// The AutoML job whose model `predict` applies.
    #[arg(long, required_if_eq("operation", "predict"))]
    model: Option<String>,
    /// Puts carry the current time as their event time, as live traffic does (so their offline
    /// rows fall in the current hour partition), rather than a synthetic increasing one.
    #[arg(long)]
    wall_clock_event_times: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also report the CPU time this process (the server under test, on this machine) used per
    /// request during the measured phase.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What one worker saw.
struct Tally {
    latency_us: Histogram<u64>,
    /// With `--rate`: from each request's release to when a worker sent it.
    wait_us: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.threads == 0 {
        bail!("--threads must be positive");
    }
    // One thread runs tasks first in, first out (tokio's current-thread scheduler): the
    // multi-thread one runs the task woken last first, so with every worker on one thread,
    // requests answered together would go out again in reverse order, and latency would vary
    // with the schedule rather than the server.
    let mut runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    };
    runtime
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    if args.features < 3 {
        bail!("--features must be at least 3 (identifier, event time, one more)");
    }
    if args.records == 0 || args.concurrency == 0 || args.connections == 0 || args.batch_size == 0 {
        bail!("--records, --concurrency, --connections and --batch-size must be positive");
    }
    if !(0.0..=1.0).contains(&args.read_ratio) {
        bail!("--read-ratio must be between 0 and 1");
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of requests per second");
    }
    // With a server under --auth, every request is signed (QUIVER_SHARED_CREDENTIALS_FILE or
    // QUIVER_ACCESS_KEY_ID / QUIVER_SECRET_ACCESS_KEY), as clients sign them.
    let credentials = quiver_proto::signing::Credentials::load().map_err(anyhow::Error::msg)?;
    let client = Client::connect_with(args.endpoint.clone(), credentials.clone()).await?;
    let mut connections = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        connections.push(wire::Connection::connect(&args.endpoint, credentials.clone()).await?);
    }
    let args = Arc::new(args);
    let shape = Arc::new(RecordShape::new(&args));

    let load = if args.skip_load || args.operation == Operation::Predict {
        None
    } else {
        Some(load(&client, &args, &shape).await?)
    };

    let sequence = Arc::new(AtomicU64::new(0));
    let deadline = match (args.requests, args.duration) {
        (Some(_), _) => None,
        (None, seconds) => Some(Duration::from_secs_f64(seconds.unwrap_or(10.0))),
    };
    let cpu_before = CpuSeconds::now(args.server_pid)?;
    let started = Instant::now();
    let schedule = args.rate.map(|rate| {
        let schedule = Arc::new(pacer::Schedule::new());
        // A run of `--duration` seconds offers as many requests as the rate fits in it.
        let total = match (args.requests, deadline) {
            (Some(total), _) => total,
            (None, d) => (d.unwrap_or_default().as_secs_f64() * rate) as u64,
        };
        tokio::spawn(pacer::run(
            schedule.clone(),
            rate,
            started,
            total,
            args.concurrency,
        ));
        schedule
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let connection = connections[worker % connections.len()].clone();
            let (args, shape, sequence) = (args.clone(), shape.clone(), sequence.clone());
            let schedule = schedule.clone();
            tokio::spawn(async move {
                run_worker(
                    worker as u64,
                    connection,
                    &args,
                    &shape,
                    &sequence,
                    Pace {
                        started,
                        deadline,
                        schedule,
                    },
                )
                .await
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut wait = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut errors, mut first_error) = (0, None);
    for worker in workers {
        let tally = worker.await.context("a worker panicked")?;
        latency.add(&tally.latency_us)?;
        wait.add(&tally.wait_us)?;
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = CpuSeconds::now(args.server_pid)?.since(&cpu_before);
    report(
        &args,
        &shape,
        load,
        &latency,
        Outcome {
            wait,
            errors,
            first_error,
            elapsed,
            cpu,
        },
    );
    Ok(())
}

/// The records the run writes and reads: `id` (String), `ts` (Fractional epoch seconds), then
/// Integral, Fractional and String features in turn.
struct RecordShape {
    definitions: Vec<pb::FeatureDefinition>,
    string_value: String,
    /// About the encoded size of one PutRecordRequest (a buffer's first capacity).
    put_len_hint: usize,
}

impl RecordShape {
    fn new(args: &Args) -> Self {
        let definition = |name: String, feature_type: pb::FeatureType| pb::FeatureDefinition {
            feature_name: name,
            feature_type: feature_type as i32,
            ..Default::default()
        };
        let mut definitions = vec![
            definition("id".into(), pb::FeatureType::String),
            definition("ts".into(), pb::FeatureType::Fractional),
        ];
        for i in 2..args.features {
            let feature_type = match i % 3 {
                0 => pb::FeatureType::Integral,
                1 => pb::FeatureType::Fractional,
                _ => pb::FeatureType::String,
            };
            definitions.push(definition(format!("f{i}"), feature_type));
        }
        let mut shape = Self {
            definitions,
            string_value: "x".repeat(args.value_size),
            put_len_hint: 0,
        };
        shape.put_len_hint = prost::Message::encoded_len(&pb::PutRecordRequest {
            feature_group_name: args.group.clone(),
            record: shape.record(u64::from(u32::MAX), LOAD_EVENT_TIME),
            ..Default::default()
        });
        shape
    }

    /// Bytes the server stores for one record (online codec v1, `server/src/online/codec.rs`:
    /// a 22-byte header, then per value a 2-byte ordinal, a tag, and 8 bytes or a 4-byte length
    /// and the string): what a Redis value must hold for a like-for-like comparison.
    fn stored_bytes(&self) -> usize {
        let id_len = 8; // "r" and up to 7 digits
        22 + self
            .definitions
            .iter()
            .enumerate()
            .map(|(i, d)| match (i, d.feature_type()) {
                (0, _) => 3 + 4 + id_len,
                (_, pb::FeatureType::String) => 3 + 4 + self.string_value.len(),
                _ => 3 + 8,
            })
            .sum::<usize>()
    }

    /// Writes the `PutRecordRequest` of [`RecordShape::record`] for `group` into `out`, byte
    /// for byte as prost encodes it, without building the message: the 50 values' names and
    /// strings are not allocated and copied per put (the client's CPU is taken from the server
    /// on this machine, and redis-benchmark likewise sends a prepared payload).
    fn encode_put(&self, group: &String, key: u64, event_time: f64, out: &mut BytesMut) {
        use prost::encoding::{WireType, double, encode_key, encode_varint, int64, string};
        enum V<'a> {
            I(i64),
            F(f64),
            S(&'a String),
        }
        let id = format!("r{key}");
        string::encode(1, group, out);
        for (i, d) in self.definitions.iter().enumerate() {
            let value = match (i, d.feature_type()) {
                (0, _) => V::S(&id),
                (1, _) => V::F(event_time),
                (_, pb::FeatureType::Integral) => V::I(key as i64),
                (_, pb::FeatureType::Fractional) => V::F(key as f64 * 0.5),
                _ => V::S(&self.string_value),
            };
            let value_len = match &value {
                V::I(n) => int64::encoded_len(2, n),
                V::F(f) => double::encoded_len(3, f),
                V::S(s) => string::encoded_len(4, s),
            };
            encode_key(2, WireType::LengthDelimited, out);
            encode_varint(
                (string::encoded_len(1, &d.feature_name) + value_len) as u64,
                out,
            );
            string::encode(1, &d.feature_name, out);
            match &value {
                V::I(n) => int64::encode(2, n, out),
                V::F(f) => double::encode(3, f, out),
                V::S(s) => string::encode(4, s, out),
            }
        }
    }

    fn record(&self, key: u64, event_time: f64) -> Vec<pb::FeatureValue> {
        self.definitions
            .iter()
            .enumerate()
            .map(|(i, d)| match (i, d.feature_type()) {
                (0, _) => value::string("id", format!("r{key}")),
                (1, _) => value::fractional("ts", event_time),
                (_, pb::FeatureType::Integral) => value::integral(&d.feature_name, key as i64),
                (_, pb::FeatureType::Fractional) => {
                    value::fractional(&d.feature_name, key as f64 * 0.5)
                }
                _ => value::string(&d.feature_name, self.string_value.clone()),
            })
            .collect()
    }
}

/// Event times: the load writes at a fixed base; each later put is newer, so it is applied.
const LOAD_EVENT_TIME: f64 = 1_700_000_000.0;

struct LoadReport {
    records: u64,
    seconds: f64,
}

async fn load(client: &Client, args: &Args, shape: &RecordShape) -> Result<LoadReport> {
    let exists = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: args.group.clone(),
        })
        .await
        .is_ok();
    if !exists {
        client
            .create_feature_group(pb::CreateFeatureGroupRequest {
                feature_group_name: args.group.clone(),
                record_identifier_feature_name: "id".into(),
                event_time_feature_name: "ts".into(),
                feature_definitions: shape.definitions.clone(),
                online_store_config: Some(pb::OnlineStoreConfig {
                    enable_online_store: true,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
    }
    let started = Instant::now();
    let chunk = 500u64;
    let chunks: Vec<u64> = (0..args.records.div_ceil(chunk)).collect();
    let mut in_flight = futures::stream::iter(chunks.into_iter().map(|c| {
        let client = client.clone();
        let from = c * chunk;
        let to = (from + chunk).min(args.records);
        let records = (from..to)
            .map(|key| pb::PutRecordRequest {
                feature_group_name: args.group.clone(),
                record: shape.record(key, LOAD_EVENT_TIME),
                ..Default::default()
            })
            .collect();
        async move { client.put_records(pb::PutRecordsRequest { records }).await }
    }))
    .buffer_unordered(8);
    while let Some(result) = in_flight.next().await {
        result.context("loading records")?;
    }
    Ok(LoadReport {
        records: args.records,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The gRPC methods the measured phase calls.
const GET_RECORD: &str = "/quiver.featurestore.v1.FeatureStore/GetRecord";
const BATCH_GET_RECORD: &str = "/quiver.featurestore.v1.FeatureStore/BatchGetRecord";
const PUT_RECORD: &str = "/quiver.featurestore.v1.FeatureStore/PutRecord";
const PUT_RECORDS: &str = "/quiver.featurestore.v1.FeatureStore/PutRecords";
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
const PREDICT: &str = "/quiver.featurestore.v1.AutoML/Predict";

fn non_empty(message_len: usize, problem: &str) -> Result<()> {
    if message_len == 0 {
        bail!("{problem}");
    }
    Ok(())
}

/// When a worker sends its requests: in a closed loop until the deadline (or `--requests`), or,
/// with `--rate`, as the [`pacer`] releases them.
struct Pace {
    started: Instant,
    deadline: Option<Duration>,
    schedule: Option<Arc<pacer::Schedule>>,
}

async fn run_worker(
    worker: u64,
    connection: wire::Connection,
    args: &Args,
    shape: &RecordShape,
    sequence: &AtomicU64,
    pace: Pace,
) -> Tally {
    let mut rng = SmallRng::seed_from_u64(0x5eed ^ worker.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let zipf = Zipf::new(args.records as f64, args.zipf_exponent).ok();
    let pick = move |rng: &mut SmallRng| -> u64 {
        match (args.distribution, &zipf) {
            // Zipf ranks are 1-based; rank 1 is the hottest key.
            (KeyDistribution::Zipfian, Some(z)) => (z.sample(rng) as u64).saturating_sub(1),
            _ => rng.random_range(0..args.records),
        }
    };
    let mut tally = Tally {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        wait_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        errors: 0,
        first_error: None,
    };
    loop {
        // The instant the request counts from: its release, or now in a closed loop.
        let due = match &pace.schedule {
            Some(schedule) => match schedule.next().await {
                Some(due) => {
                    let waited = due.elapsed().as_micros() as u64;
                    tally.wait_us.saturating_record(waited.max(1));
                    due
                }
                None => break,
            },
            None => Instant::now(),
        };
        let n = sequence.fetch_add(1, Ordering::Relaxed);
        if pace.schedule.is_none() {
            match (args.requests, pace.deadline) {
                (Some(total), _) if n >= total => break,
                (None, Some(d)) if pace.started.elapsed() >= d => break,
                _ => {}
            }
        }
        // Each put carries a newer event time than anything written before it.
        let event_time = if args.wall_clock_event_times {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
        } else {
            LOAD_EVENT_TIME + 1.0 + n as f64 / 1000.0
        };
        let operation = match args.operation {
            Operation::Mixed if rng.random_bool(args.read_ratio) => Operation::Get,
            Operation::Mixed | Operation::Put => Operation::Put,
            other => other,
        };
        let result = match operation {
            Operation::Get => connection
                .unary(
                    GET_RECORD,
                    &pb::GetRecordRequest {
                        feature_group_name: args.group.clone(),
                        record_identifier_value_as_string: format!("r{}", pick(&mut rng)),
                        ..Default::default()
                    },
                )
                .await
                // Every identifier was loaded: an empty response would be a lost record.
                .and_then(|len| non_empty(len, "GetRecord found no record")),
            Operation::BatchGet => connection
                .unary(
                    BATCH_GET_RECORD,
                    &pb::BatchGetRecordRequest {
                        identifiers: vec![pb::BatchGetRecordIdentifier {
                            feature_group_name: args.group.clone(),
                            record_identifiers_value_as_string: (0..args.batch_size)
                                .map(|_| format!("r{}", pick(&mut rng)))
                                .collect(),
                            feature_names: vec![],
                        }],
                        expiration_time_response: false,
                    },
                )
                .await
                .and_then(|len| non_empty(len, "BatchGetRecord found no records")),
            Operation::Put | Operation::Mixed => {
                let key = pick(&mut rng);
                let body = wire::frame(shape.put_len_hint, |out| {
                    shape.encode_put(&args.group, key, event_time, out)
                });
                connection.unary_framed(PUT_RECORD, body).await.map(|_| ())
            }
            Operation::Predict => connection
                .unary(
                    PREDICT,
                    &pb::PredictRequest {
                        job: args.model.clone().unwrap_or_default(),
                        input: Some(pb::predict_request::Input::Online(pb::OnlineRecords {
                            feature_group: args.group.clone(),
                            record_identifiers: vec![format!("r{}", pick(&mut rng))],
                        })),
                    },
                )
                .await
                .and_then(|len| non_empty(len, "Predict answered nothing")),
            Operation::Health => connection
                .unary(HEALTH_CHECK, &())
                .await
                .and_then(|len| non_empty(len, "Health/Check answered nothing")),
            Operation::PutBatch => connection
                .unary(
                    PUT_RECORDS,
                    &pb::PutRecordsRequest {
                        records: (0..args.batch_size)
                            .map(|_| pb::PutRecordRequest {
                                feature_group_name: args.group.clone(),
                                record: shape.record(pick(&mut rng), event_time),
                                ..Default::default()
                            })
                            .collect(),
                    },
                )
                .await
                .map(|_| ()),
        };
        let micros = due.elapsed().as_micros().max(1) as u64;
        tally.latency_us.saturating_record(micros);
        if let Err(e) = result {
            tally.errors += 1;
            tally.first_error.get_or_insert_with(|| e.to_string());
        }
    }
    tally
}

/// CPU seconds used so far by this process and, when given, the server's.
#[derive(Clone, Copy)]
struct CpuSeconds {
    client: f64,
    server: Option<f64>,
}

impl CpuSeconds {
    fn now(server_pid: Option<u32>) -> Result<Self> {
        Ok(Self {
            client: cpu::seconds("self")?,
            server: server_pid
                .map(|pid| cpu::seconds(&pid.to_string()))
                .transpose()
                .context("--server-pid")?,
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            client: self.client - before.client,
            server: self.server.zip(before.server).map(|(a, b)| a - b),
        }
    }
}

/// How the measured phase went, besides its latencies.
struct Outcome {
    /// With `--rate`: how long requests waited for a free worker after their release.
    wait: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    elapsed: f64,
    cpu: CpuSeconds,
}

fn report(
    args: &Args,
    shape: &RecordShape,
    load: Option<LoadReport>,
    latency: &Histogram<u64>,
    outcome: Outcome,
) {
    let Outcome {
        wait,
        errors,
        first_error,
        elapsed,
        cpu,
    } = outcome;
    let requests = latency.len();
    // Microseconds of CPU per request, all threads of the process together.
    let cpu_us = |seconds: f64| seconds * 1e6 / requests.max(1) as f64;
    let client_cpu_us = cpu_us(cpu.client);
    let server_cpu_us = cpu.server.map(cpu_us);
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let per_request = match args.operation {
        Operation::BatchGet | Operation::PutBatch => args.batch_size as u64,
        _ => 1,
    };
    let name = |v: &dyn Fn() -> Option<clap::builder::PossibleValue>| {
        v().map_or_else(String::new, |p| p.get_name().to_string())
    };
    let operation = name(&|| args.operation.to_possible_value());
    let distribution = name(&|| args.distribution.to_possible_value());
    if args.json {
        let json = serde_json::json!({
            "operation": operation,
            "records": args.records,
            "features": args.features,
            "stored_record_bytes": shape.stored_bytes(),
            "concurrency": args.concurrency,
            "connections": args.connections,
            "threads": args.threads,
            "distribution": distribution,
            "rate": args.rate,
            "wait_for_worker_ms": args.rate.map(|_| serde_json::json!({
                "p99": wait.value_at_quantile(0.99) as f64 / 1000.0,
                "max": wait.max() as f64 / 1000.0,
            })),
            "load": load.as_ref().map(|l| serde_json::json!({
                "records": l.records, "seconds": l.seconds, "records_per_second": l.records as f64 / l.seconds,
            })),
            "requests": requests,
            "errors": errors,
            "first_error": first_error,
            "seconds": elapsed,
            "requests_per_second": requests as f64 / elapsed,
            "records_per_second": (requests * per_request) as f64 / elapsed,
            "latency_ms": {
                "p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99), "p999": ms(0.999),
                "max": latency.max() as f64 / 1000.0, "mean": latency.mean() / 1000.0,
            },
            "cpu_us_per_request": { "client": client_cpu_us, "server": server_cpu_us },
        });
        println!("{json}");
        return;
    }
    if let Some(l) = &load {
        println!(
            "loaded {} records in {:.1}s ({:.0} records/s)",
            l.records,
            l.seconds,
            l.records as f64 / l.seconds
        );
    }
    println!(
        "{operation}: {requests} requests in {elapsed:.1}s = {:.0} requests/s ({:.0} records/s), concurrency {}, {} connections, {} keys",
        requests as f64 / elapsed,
        (requests * per_request) as f64 / elapsed,
        args.concurrency,
        args.connections,
        distribution,
    );
    if let Some(rate) = args.rate {
        println!(
            "offered {rate:.0} requests/s; waited for a free worker: p99 {:.3} ms, max {:.3} ms (part of the latency)",
            wait.value_at_quantile(0.99) as f64 / 1000.0,
            wait.max() as f64 / 1000.0
        );
    }
    println!(
        "latency ms: p50 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        ms(0.5),
        ms(0.95),
        ms(0.99),
        ms(0.999),
        latency.max() as f64 / 1000.0
    );
    match server_cpu_us {
        Some(server) => {
            println!("CPU per request: client {client_cpu_us:.1} us, server {server:.1} us")
        }
        None => println!("CPU per request: client {client_cpu_us:.1} us"),
    }
    println!("errors: {errors}");
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_are_encoded_as_prost_encodes_them() {
        let args = Args::parse_from([
            "quiver-bench",
            "put",
            "--features",
            "7",
            "--value-size",
            "3",
        ]);
        let shape = RecordShape::new(&args);
        for key in [0, 1, 127, 128, 999_999, u64::from(u32::MAX)] {
            let event_time = LOAD_EVENT_TIME + key as f64 / 1000.0;
            let expected = prost::Message::encode_to_vec(&pb::PutRecordRequest {
                feature_group_name: args.group.clone(),
                record: shape.record(key, event_time),
                ..Default::default()
            });
            let framed = wire::frame(0, |out| shape.encode_put(&args.group, key, event_time, out));
            assert_eq!(&framed[5..], &expected[..], "key {key}");
            assert_eq!(framed[0], 0);
            assert_eq!(
                u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize,
                expected.len()
            );
        }
    }
}
