//! Prometheus metrics: per-RPC request counts and latency histograms, records written, and the
//! RocksDB figures worth watching, rendered at `/metrics` in Prometheus text format.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use quiver_core::FeatureStore;
use quiver_grpc::metrics::REQUEST_DURATION;
use quiver_offline::flusher::OFFLINE_FRESHNESS;
use quiver_storage::db::{self, CF_RECORDS};
use quiver_storage::online::WriteFault;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_string()), &buckets)
                .expect("the bucket list above is not empty")
                .set_buckets_for_metric(
                    Matcher::Full(OFFLINE_FRESHNESS.to_string()),
                    &[
                        0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0,
                        7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 12.5, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
                    ],
                )
                .expect("the bucket list above is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// Histograms buffer each observation until they are summarised; without a scrape the buffers
/// would grow with every request, so summarise them on a timer too.
pub async fn run_upkeep(handle: PrometheusHandle, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

pub fn record_purged(records: u64) {
    metrics::counter!("quiver_records_expired_purged_total").increment(records);
}

/// Reads the store's current figures (groups, offline backlog, RocksDB) into gauges, then
/// renders everything.
pub fn render(handle: &PrometheusHandle, store: &FeatureStore) -> String {
    let db = store.online().db();
    let staging = store.online().staging();
    metrics::gauge!("quiver_offline_staged_rows").set(staging.pending_rows() as f64);
    metrics::gauge!("quiver_offline_staged_bytes").set(staging.pending_bytes() as f64);
    let feature_groups = store.registry().all().len();
    let property =
        |cf_name: &str, name: &str| -> f64 { db::int_property(db, Some(cf_name), name) as f64 };
    metrics::gauge!("quiver_feature_groups").set(feature_groups as f64);
    let fault = store.online().write_fault();
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    metrics::gauge!("quiver_disk_full").set(flag(fault == Some(WriteFault::DiskFull)));
    metrics::gauge!("quiver_storage_io_error").set(flag(fault == Some(WriteFault::Io)));
    metrics::gauge!("quiver_online_records_estimate")
        .set(property(CF_RECORDS, "rocksdb.estimate-num-keys"));
    for (metric, prop) in [
        (
            "quiver_rocksdb_block_cache_usage_bytes",
            "rocksdb.block-cache-usage",
        ),
        (
            "quiver_rocksdb_memtable_bytes",
            "rocksdb.cur-size-all-mem-tables",
        ),
        (
            "quiver_rocksdb_sst_files_bytes",
            "rocksdb.total-sst-files-size",
        ),
        (
            "quiver_rocksdb_pending_compaction_bytes",
            "rocksdb.estimate-pending-compaction-bytes",
        ),
        (
            "quiver_rocksdb_live_data_bytes",
            "rocksdb.estimate-live-data-size",
        ),
    ] {
        metrics::gauge!(metric).set(property(CF_RECORDS, prop));
    }
    // Background work in progress, whole database: a benchmark waits for these to reach 0
    // after loading, so that what it measures is not the load's compactions.
    for (metric, prop) in [
        (
            "quiver_rocksdb_running_compactions",
            "rocksdb.num-running-compactions",
        ),
        (
            "quiver_rocksdb_running_flushes",
            "rocksdb.num-running-flushes",
        ),
    ] {
        metrics::gauge!(metric).set(db::int_property(db, None, prop) as f64);
    }
    handle.render()
}
