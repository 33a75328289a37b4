//! What the gRPC front door records per request: each method's request count by status code
//! and its latency, and the records written. The server installs the recorder and renders
//! `/metrics`.

use std::time::Duration;

/// The latency histogram's name; the server gives it its buckets.
pub const REQUEST_DURATION: &str = "quiver_grpc_request_duration_seconds";

/// One gRPC method's request counter and latency histogram, registered once so that recording
/// a request neither formats labels nor looks the metric up (docs/benchmarks.md).
pub struct MethodMetrics {
    method: &'static str,
    ok: metrics::Counter,
    duration: metrics::Histogram,
}

impl MethodMetrics {
    /// Registers against the installed recorder: create after the server installs it.
    pub fn new(method: &'static str) -> Self {
        Self {
            method,
            ok: metrics::counter!("quiver_grpc_requests_total", "method" => method, "code" => "Ok"),
            duration: metrics::histogram!(REQUEST_DURATION, "method" => method),
        }
    }

    pub fn record(&self, code: tonic::Code, elapsed: Duration) {
        if code == tonic::Code::Ok {
            self.ok.increment(1);
        } else {
            metrics::counter!("quiver_grpc_requests_total", "method" => self.method, "code" => format!("{code:?}"))
                .increment(1);
        }
        self.duration.record(elapsed.as_secs_f64());
    }
}

pub fn record_writes(records: usize) {
    metrics::counter!("quiver_records_written_total").increment(records as u64);
}
