//! What counting a runtime-API write into its ingest session costs the write:
//! `cargo bench -p quiver-lineage --bench ingest_sessions`. Prints ns per `observe` call, on
//! one thread and on two at once (the HTTP listener's writers share one lock), against the
//! cost of the write itself (docs/benchmarks.md: PutRecord's p99 is milliseconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_lineage::Lineage;
use quiver_lineage::ingests::IngestSessions;
use quiver_storage::db::{StorageOptions, open};
use quiver_storage::lineage_records::LineageRecords;
use quiver_types::model::arn::ArnContext;
use quiver_types::time::SystemClock;

const CALLS: u64 = 2_000_000;
const CLIENT: &str = "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.36 AWS-SageMaker-Python-SDK/2.257.7";

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(
        dir.path(),
        &StorageOptions {
            block_cache_bytes: 8 << 20,
        },
    )
    .expect("RocksDB");
    let lineage = Arc::new(
        Lineage::open(
            LineageRecords::new(db, false),
            ArnContext {
                region: "us-east-1".into(),
                account_id: "123456789012".into(),
            },
            Arc::new(SystemClock),
            1_000,
        )
        .expect("lineage"),
    );
    let sessions = Arc::new(IngestSessions::new(lineage, Duration::from_secs(60)));
    // Warm up: the sessions exist, as during a load.
    for group in ["orders", "customers"] {
        sessions.observe(group, Some("ana"), CLIENT, 1);
    }
    for threads in [1, 2] {
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let sessions = sessions.clone();
                std::thread::spawn(move || {
                    let group = if t == 0 { "orders" } else { "customers" };
                    for _ in 0..CALLS {
                        sessions.observe(group, Some("ana"), CLIENT, 1);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        let elapsed = start.elapsed();
        let per_call = elapsed.as_nanos() as f64 / (CALLS * threads) as f64;
        println!(
            "observe, {threads} thread(s): {:.0} ns per call ({:.1} M calls/s in all)",
            per_call * threads as f64,
            (CALLS * threads) as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
}
