//! OpenLineage out: the lineage Quiver records by itself (datasets built, stream sources
//! feeding groups) also sent as OpenLineage events to another server (Marquez, say), at
//! `<url>/api/v1/lineage`. Events wait in a bounded queue and one task posts them, retrying
//! with backoff, so that recording never waits for that server: when it is away long enough
//! for the queue to fill, further events are dropped, counted and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The events sent (`outcome` `sent`), dropped with the queue full (`dropped`) or given up
/// after every try (`failed`), on the server's `/metrics`.
pub const EVENTS: &str = "quiver_openlineage_events_total";

/// Where and how events go.
#[derive(Debug, Clone)]
pub struct EmitterConfig {
    /// The server's base URL (`http://marquez:5000`); events go to `<url>/api/v1/lineage`.
    pub url: String,
    /// Sent as `Authorization: Bearer <api key>`.
    pub api_key: Option<String>,
    /// The namespace of Quiver's jobs.
    pub namespace: String,
    /// Events waiting at most; past it new ones are dropped.
    pub queue: usize,
    /// Tries per event before it is dropped.
    pub attempts: u32,
}

/// The sending side: cheap to call from any thread, never blocks.
pub struct Emitter {
    queue: mpsc::Sender<Value>,
    namespace: String,
    producer: String,
    /// Events dropped so far (for the log's back-off; `/metrics` counts them too).
    dropped: Arc<AtomicU64>,
}

impl Emitter {
    /// Starts the posting task on the current tokio runtime. Only `http://` URLs.
    pub fn start(config: EmitterConfig) -> Result<Arc<Self>, String> {
        let endpoint = format!("{}/api/v1/lineage", config.url.trim_end_matches('/'));
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("openlineage_url {:?}: {e}", config.url))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "openlineage_url {:?}: only http:// is supported (put a TLS proxy in front for https)",
                config.url
            ));
        }
        let (queue, mut events) = mpsc::channel::<Value>(config.queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_by_task = dropped.clone();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let attempts = config.attempts.max(1);
        let api_key = config.api_key.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let body = Bytes::from(event.to_string());
                let mut backoff = Duration::from_millis(200);
                let mut delivered = false;
                for attempt in 1..=attempts {
                    let mut request =
                        http::Request::post(uri.clone()).header("content-type", "application/json");
                    if let Some(key) = &api_key {
                        request = request.header("authorization", format!("Bearer {key}"));
                    }
                    let Ok(request) = request.body(Full::new(body.clone())) else {
                        break;
                    };
                    match client.request(request).await {
                        Ok(response) if response.status().is_success() => {
                            delivered = true;
                            break;
                        }
                        // A refusal that trying again does not change.
                        Ok(response) if response.status().is_client_error() => {
                            tracing::error!(status = %response.status(), "the OpenLineage server refused an event");
                            break;
                        }
                        outcome => {
                            let why = match outcome {
                                Ok(response) => response.status().to_string(),
                                Err(e) => e.to_string(),
                            };
                            tracing::warn!(attempt, error = %why, "cannot send an OpenLineage event; trying again");
                        }
                    }
                    if attempt < attempts {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
                if delivered {
                    metrics::counter!(EVENTS, "outcome" => "sent").increment(1);
                } else {
                    dropped_by_task.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(EVENTS, "outcome" => "failed").increment(1);
                }
            }
        });
        Ok(Arc::new(Self {
            queue,
            namespace: config.namespace,
            producer: "https://github.com/quiver-feature-store/quiver".to_string(),
            dropped,
        }))
    }

    fn enqueue(&self, event: Value) {
        if self.queue.try_send(event).is_err() {
            metrics::counter!(EVENTS, "outcome" => "dropped").increment(1);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "the OpenLineage queue is full: events are dropped");
            }
        }
    }

    /// A completed run of Quiver's job `job`, reading `inputs` and writing `outputs` (each a
    /// dataset URI).
    pub fn run_completed(
        &self,
        job: &str,
        inputs: &[String],
        outputs: &[String],
        event_time: &str,
    ) {
        let run_id = uuid_v4();
        self.enqueue(json!({
            "eventType": "COMPLETE",
            "eventTime": event_time,
            "run": {"runId": run_id},
            "job": {"namespace": self.namespace, "name": job},
            "inputs": inputs.iter().map(|u| dataset(u)).collect::<Vec<_>>(),
            "outputs": outputs.iter().map(|u| dataset(u)).collect::<Vec<_>>(),
            "producer": self.producer,
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        }));
    }

    /// Static lineage: Quiver's job `job` reads `inputs` and writes `outputs`.
    pub fn job(&self, job: &str, inputs: &[String], outputs: &[String], event_time: &str) {
        self.enqueue(json!({
            "eventTime": event_time,
            "job": {"namespace": self.namespace, "name": job},
            "inputs": inputs.iter().map(|u| dataset(u)).collect::<Vec<_>>(),
            "outputs": outputs.iter().map(|u| dataset(u)).collect::<Vec<_>>(),
            "producer": self.producer,
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        }));
    }
}

/// A dataset URI as OpenLineage names it: `s3://bucket/key` is namespace `s3://bucket`, name
/// `key`; `kafka://brokers/topic` namespace `kafka://brokers`, name `topic`; an ARN its
/// partition-to-account prefix and its resource; anything else, the part before its last `/`.
pub fn dataset(uri: &str) -> Value {
    let (namespace, name) = if let Some(rest) = uri.strip_prefix("arn:") {
        match rest.rsplit_once(':') {
            Some((prefix, resource)) => (format!("arn:{prefix}"), resource.to_string()),
            None => (uri.to_string(), String::new()),
        }
    } else if let Some((scheme, rest)) = uri.split_once("://") {
        match rest.split_once('/') {
            Some((authority, path)) if !authority.is_empty() => {
                (format!("{scheme}://{authority}"), path.to_string())
            }
            // file:///abs/path: namespace `file`, name the path.
            _ => (scheme.to_string(), rest.to_string()),
        }
    } else {
        match uri.rsplit_once('/') {
            Some((namespace, name)) => (namespace.to_string(), name.to_string()),
            None => ("quiver".to_string(), uri.to_string()),
        }
    };
    json!({"namespace": namespace, "name": name})
}

/// A random version-4 UUID, as OpenLineage run ids are.
fn uuid_v4() -> String {
    let bits = rand::random::<u128>() & !(0xf000 << 64) & !(0xc000 << 48);
    let bits = bits | (0x4000 << 64) | (0x8000 << 48);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_named_as_openlineage_names_them() {
        assert_eq!(
            dataset("s3://bucket/a/b.parquet"),
            json!({"namespace": "s3://bucket", "name": "a/b.parquet"})
        );
        assert_eq!(
            dataset("kafka://b1:9092,b2:9092/events"),
            json!({"namespace": "kafka://b1:9092,b2:9092", "name": "events"})
        );
        assert_eq!(
            dataset("file:///data/base.csv"),
            json!({"namespace": "file", "name": "/data/base.csv"})
        );
        assert_eq!(
            dataset("arn:aws:sagemaker:us-east-1:000000000000:feature-group/orders"),
            json!({"namespace": "arn:aws:sagemaker:us-east-1:000000000000", "name": "feature-group/orders"})
        );
    }

    #[test]
    fn names_sent_are_read_back_as_the_same_uri() {
        for uri in [
            "s3://bucket/a/b.parquet",
            "kafka://b1:9092/events",
            "file:///data/base.csv",
            "arn:aws:sagemaker:us-east-1:000000000000:feature-group/orders",
        ] {
            let named = dataset(uri);
            let back = crate::openlineage::dataset_uri(
                named["namespace"].as_str().unwrap(),
                named["name"].as_str().unwrap(),
            );
            assert_eq!(back, uri);
        }
    }

    #[test]
    fn run_ids_are_version_4_uuids() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
