//! What every source's worker shares: messages mapped into a [`Batch`], bad ones set aside for
//! the dead-letter destination, and the batch written with its positions ([`Pipeline::write`]),
//! per partition and in the background while the next ones fill ([`Lanes`]).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use quiver_proto::v1 as pb;

use crate::config::{DeadLetterConfig, SourceConfig};
use crate::dead_letter::{BadMessage, DeadLetter};
use crate::error::IngestError;
use crate::mapping::Mapping;
use crate::sink::{SharedSink, with_retries};

/// Messages read since the last write from one partition, in source order.
#[derive(Default)]
pub struct Batch {
    /// The partition of every message in the batch (a lane's).
    partition: String,
    records: Vec<pb::SourceRecord>,
    /// Each record's position and payload: to build the records again should a write be
    /// tried again, and for the dead-letter destination should the server refuse one.
    origins: Vec<(String, Vec<u8>)>,
    bad: Vec<BadMessage>,
    /// The last position read (records and bad messages alike).
    last: String,
    messages: usize,
}

impl Batch {
    /// Messages in the batch, good and bad.
    pub fn len(&self) -> usize {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Whether `position` comes after everything the batch holds.
    pub fn is_after(&self, position: &str) -> bool {
        self.is_empty() || compare_positions(position, &self.last) == Ordering::Greater
    }
}

/// Orders two positions (non-negative decimal integers of any length) as numbers.
pub fn compare_positions(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a).cmp(&(b.len(), b))
}

/// One source's way from messages to stored records.
pub struct Pipeline {
    source: String,
    /// Where the source reads, sent with each write for the server's lineage graph.
    source_uris: Vec<String>,
    mapping: Mapping,
    sink: SharedSink,
    dead_letter: DeadLetter,
    /// Records written so far (for the records-per-second gauge).
    written: std::sync::atomic::AtomicU64,
    /// When the rate gauge was last set, and the records written then.
    rate_mark: Mutex<(Instant, u64)>,
}

impl Pipeline {
    /// Looks the target group up (waiting for the server if it is not up yet) and prepares the
    /// mapping and the dead-letter destination.
    pub async fn new(config: &SourceConfig, sink: SharedSink) -> Result<Self, IngestError> {
        let described = with_retries("describing the feature group", || {
            sink.describe(&config.feature_group)
        })
        .await
        .map_err(|s| {
            IngestError::Server(format!(
                "source {:?}: feature group {:?}: {}",
                config.name,
                config.feature_group,
                s.message()
            ))
        })?;
        let mapping = Mapping::new(&config.mapping(), &described)
            .map_err(|e| IngestError::Config(format!("source {:?}: {e}", config.name)))?;
        let dead_letter = match &config.dead_letter {
            None => DeadLetter::file(format!("dead-letter/{}.jsonl", config.name).into())?,
            Some(DeadLetterConfig::File { path }) => DeadLetter::file(path.clone())?,
            Some(DeadLetterConfig::Kafka { topic, brokers }) => {
                let kafka = config.kafka.as_ref();
                let brokers = brokers
                    .clone()
                    .or_else(|| kafka.map(|k| k.brokers.clone()))
                    .ok_or_else(|| {
                        IngestError::Config(format!(
                            "source {:?}: dead_letter.brokers is required",
                            config.name
                        ))
                    })?;
                let properties: Vec<(String, String)> = kafka
                    .map(|k| k.properties.clone().into_iter().collect())
                    .unwrap_or_default();
                DeadLetter::kafka(&brokers, topic, &properties)?
            }
            Some(DeadLetterConfig::Kinesis {
                stream,
                region,
                endpoint,
            }) => {
                let source = config.kinesis.as_ref();
                let region = region
                    .as_deref()
                    .or_else(|| source.and_then(|k| k.region.as_deref()));
                let endpoint = endpoint
                    .as_deref()
                    .or_else(|| source.and_then(|k| k.endpoint.as_deref()));
                DeadLetter::kinesis(
                    crate::kinesis_client::client(region, endpoint).await,
                    stream,
                )
            }
        };
        Ok(Self {
            source: config.name.clone(),
            source_uris: config.source_uris(),
            mapping,
            sink,
            dead_letter,
            written: Default::default(),
            rate_mark: Mutex::new((Instant::now(), 0)),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Records written since the worker started.
    pub fn written(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets `quiver_ingest_records_per_second`: records written since the last call, per
    /// second.
    pub fn record_rate(&self) {
        let now = (Instant::now(), self.written());
        let mut mark = self.rate_mark.lock().expect("rate lock");
        let seconds = now.0.duration_since(mark.0).as_secs_f64().max(1e-3);
        metrics::gauge!("quiver_ingest_records_per_second", "source" => self.source.clone())
            .set((now.1 - mark.1) as f64 / seconds);
        *mark = now;
    }

    /// The source's stored positions, by partition (one try).
    pub async fn stored_positions(&self) -> Result<HashMap<String, String>, IngestError> {
        self.sink
            .positions(&self.source)
            .await
            .map_err(|s| IngestError::Server(s.message().to_string()))
    }

    /// The source's stored positions, waiting for the server if need be.
    pub async fn stored_positions_retrying(&self) -> Result<HashMap<String, String>, IngestError> {
        with_retries("reading stored positions", || {
            self.sink.positions(&self.source)
        })
        .await
        .map_err(|s| IngestError::Server(format!("source {:?}: {}", self.source, s.message())))
    }

    /// Maps the message at `position` of `partition` into `batch`: a record, or a bad message
    /// with its reason.
    pub fn add(&self, batch: &mut Batch, partition: &str, position: &str, payload: &[u8]) {
        if batch.is_empty() {
            partition.clone_into(&mut batch.partition);
        }
        debug_assert_eq!(batch.partition, partition, "a batch holds one partition");
        match self.mapping.values(payload) {
            Ok(values) => {
                batch
                    .records
                    .push(source_record(partition, position, values));
                batch.origins.push((position.to_string(), payload.to_vec()));
            }
            Err(rejected) => batch.bad.push(BadMessage::new(
                &self.source,
                partition,
                position,
                payload,
                rejected.0,
            )),
        }
        position.clone_into(&mut batch.last);
        batch.messages += 1;
    }

    /// Writes `batch`: its bad messages to the dead-letter destination first, then its records
    /// with its positions, retrying while the server is away or behind. Returns the stored
    /// position of the batch's partition.
    pub async fn write(&self, batch: Batch) -> Result<Vec<pb::SourcePosition>, IngestError> {
        let source = self.source.as_str();
        self.dead_letters(&batch.bad).await;
        let request = pb::PutSourceRecordsRequest {
            source: source.to_string(),
            feature_group_name: self.mapping.group().to_string(),
            feature_names: self.mapping.features().to_vec(),
            records: batch.records,
            positions: vec![pb::SourcePosition {
                partition: batch.partition.clone(),
                position: batch.last,
            }],
            source_uris: self.source_uris.clone(),
        };
        let response = self
            .put(request, &batch.partition, &batch.origins)
            .await
            .map_err(|s| {
                IngestError::Server(format!(
                    "source {source:?}: the server refused a batch: {}",
                    s.message()
                ))
            })?;
        let (mut written, mut skipped) = (0u64, 0u64);
        let mut refused = Vec::new();
        use pb::source_record_result::Result as R;
        for (k, result) in response.results.iter().enumerate() {
            match &result.result {
                Some(R::Outcome(_)) => written += 1,
                Some(R::AlreadyApplied(_)) => skipped += 1,
                Some(R::Error(reason)) => {
                    let (position, payload) = &batch.origins[k];
                    refused.push(BadMessage::new(
                        source,
                        &batch.partition,
                        position,
                        payload,
                        format!("refused by the server: {reason}"),
                    ));
                }
                None => {}
            }
        }
        self.dead_letters(&refused).await;
        let labels = [("source", source.to_string())];
        metrics::counter!("quiver_ingest_records_written_total", &labels).increment(written);
        self.written
            .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("quiver_ingest_records_already_applied_total", &labels)
            .increment(skipped);
        Ok(response.positions)
    }

    /// Writes `request` (the records of `origins`, read from `partition`), retrying while the
    /// server is away or behind: the first try sends `request` itself, a later one the records
    /// mapped again from their payloads (the mapping is a function of the payload), so no copy
    /// is kept for tries that are seldom needed. A request over the server's size limit
    /// (`max_request_mb`) is written as two halves, in order.
    fn put<'a>(
        &'a self,
        request: pb::PutSourceRecordsRequest,
        partition: &'a str,
        origins: &'a [(String, Vec<u8>)],
    ) -> futures::future::BoxFuture<'a, Result<pb::PutSourceRecordsResponse, tonic::Status>> {
        Box::pin(async move {
            let header = pb::PutSourceRecordsRequest {
                source: request.source.clone(),
                feature_group_name: request.feature_group_name.clone(),
                feature_names: request.feature_names.clone(),
                positions: request.positions.clone(),
                records: Vec::new(),
                source_uris: request.source_uris.clone(),
            };
            let mut first = Some(request);
            let status = match with_retries("writing records", || {
                let attempt = match first.take() {
                    Some(request) => Ok(request),
                    None => self.remap(&header, partition, origins),
                };
                async move { self.sink.put(attempt?).await }
            })
            .await
            {
                Ok(response) => return Ok(response),
                Err(status) => status,
            };
            // OutOfRange is how the server refuses a request over its size limit, whatever the
            // message says (with --auth, the signature check in front of the service words it
            // differently): halve the batch until it fits.
            let too_large = status.code() == tonic::Code::OutOfRange;
            if !too_large || origins.len() < 2 {
                return Err(status);
            }
            let mid = origins.len() / 2;
            let mut whole = self.remap(&header, partition, origins)?;
            let tail = whole.records.split_off(mid);
            // The first half stores the position of its own last record; the second, the
            // batch's.
            let first = pb::PutSourceRecordsRequest {
                positions: vec![pb::SourcePosition {
                    partition: partition.to_string(),
                    position: origins[mid - 1].0.clone(),
                }],
                ..whole
            };
            let second = pb::PutSourceRecordsRequest {
                records: tail,
                ..header
            };
            tracing::info!(
                source = self.source,
                records = origins.len(),
                "a batch over the server's request size limit: writing it in halves"
            );
            let mut response = self.put(first, partition, &origins[..mid]).await?;
            let rest = self.put(second, partition, &origins[mid..]).await?;
            response.results.extend(rest.results);
            response.positions = rest.positions;
            Ok(response)
        })
    }

    /// `header` with the records of `origins` mapped again.
    fn remap(
        &self,
        header: &pb::PutSourceRecordsRequest,
        partition: &str,
        origins: &[(String, Vec<u8>)],
    ) -> Result<pb::PutSourceRecordsRequest, tonic::Status> {
        let records = origins
            .iter()
            .map(|(position, payload)| {
                let values = self.mapping.values(payload).map_err(|e| {
                    tonic::Status::internal(format!(
                        "{partition} at {position} no longer maps to a record: {e}"
                    ))
                })?;
                Ok(source_record(partition, position, values))
            })
            .collect::<Result<_, tonic::Status>>()?;
        Ok(pb::PutSourceRecordsRequest {
            records,
            ..header.clone()
        })
    }

    /// Sends `bad` to the dead-letter destination, retrying until it takes them: a bad message
    /// is never dropped, and never stops the partition for longer than the destination is away.
    async fn dead_letters(&self, bad: &[BadMessage]) {
        if bad.is_empty() {
            return;
        }
        let mut wait = std::time::Duration::from_millis(100);
        while let Err(e) = self.dead_letter.send(bad).await {
            tracing::warn!(
                source = self.source,
                "dead-letter destination: {e}; retrying in {wait:?}"
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
        for m in bad {
            tracing::debug!(
                source = self.source,
                partition = m.partition,
                position = m.position,
                reason = m.reason,
                "dead-lettered"
            );
        }
        metrics::counter!("quiver_ingest_dead_letters_total", "source" => self.source.clone())
            .increment(bad.len() as u64);
    }
}

/// A record in the shared form: the values of the mapping's features, named once per write.
fn source_record(
    partition: &str,
    position: &str,
    values: Vec<Option<pb::feature_value::Value>>,
) -> pb::SourceRecord {
    pb::SourceRecord {
        partition: partition.to_string(),
        position: position.to_string(),
        record: None,
        values: values
            .into_iter()
            .map(|value| pb::FeatureValue {
                feature_name: String::new(),
                value,
            })
            .collect(),
    }
}

type Write = JoinHandle<Result<Vec<pb::SourcePosition>, IngestError>>;

/// One partition's batch, and its write in flight.
#[derive(Default)]
struct Lane {
    batch: Batch,
    in_flight: Option<Write>,
}

/// Messages batched per partition and written in the background: partitions are written
/// concurrently while their next batches fill, but each partition has at most one write in
/// flight, so its writes reach the server in source order (a later batch stored first would
/// make the server skip an earlier one as already applied).
pub struct Lanes {
    pipeline: Arc<Pipeline>,
    batch_size: usize,
    linger: Duration,
    lanes: HashMap<String, Lane>,
    /// Messages in the lanes' batches.
    pending: usize,
    /// When the oldest of them has waited `linger`.
    deadline: Option<Instant>,
}

impl Lanes {
    pub fn new(pipeline: Arc<Pipeline>, config: &SourceConfig) -> Self {
        Self {
            pipeline,
            batch_size: config.batch_size,
            linger: config.linger(),
            lanes: HashMap::new(),
            pending: 0,
            deadline: None,
        }
    }

    /// When the batches in hand are due ([`lingered`]); none while they are empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Adds the message at `position` of `partition`; a full batch is handed to writing.
    /// Returns the positions stored by writes that finished meanwhile.
    pub async fn add(
        &mut self,
        partition: &str,
        position: &str,
        payload: &[u8],
    ) -> Result<Vec<pb::SourcePosition>, IngestError> {
        let mut stored = Vec::new();
        if !self.lanes.contains_key(partition) {
            self.lanes.insert(partition.to_string(), Lane::default());
        }
        let lane = self.lanes.get_mut(partition).expect("inserted above");
        // A partition read again from an earlier position (reassigned): what is in hand goes
        // first, so each write's positions rise.
        if !lane.batch.is_after(position) {
            self.pending -= lane.batch.len();
            stored.extend(submit(&self.pipeline, lane).await?);
        }
        self.pipeline
            .add(&mut lane.batch, partition, position, payload);
        self.pending += 1;
        if lane.batch.len() >= self.batch_size {
            self.pending -= lane.batch.len();
            stored.extend(submit(&self.pipeline, lane).await?);
        }
        if self.pending == 0 {
            self.deadline = None;
        } else {
            self.deadline
                .get_or_insert_with(|| Instant::now() + self.linger);
        }
        Ok(stored)
    }

    /// Hands every partition's batch to writing (after that partition's write in flight).
    pub async fn flush(&mut self) -> Result<Vec<pb::SourcePosition>, IngestError> {
        let mut stored = Vec::new();
        for lane in self.lanes.values_mut() {
            if !lane.batch.is_empty() {
                stored.extend(submit(&self.pipeline, lane).await?);
            }
        }
        self.pending = 0;
        self.deadline = None;
        Ok(stored)
    }

    /// Waits for the first write in flight to end; returns the positions it stored. Pending
    /// when none is in flight. Cancel-safe.
    pub async fn next_written(&mut self) -> Result<Vec<pb::SourcePosition>, IngestError> {
        let (partitions, writes): (Vec<&String>, Vec<&mut Write>) = self
            .lanes
            .iter_mut()
            .filter_map(|(p, l)| l.in_flight.as_mut().map(|w| (p, w)))
            .unzip();
        if writes.is_empty() {
            return std::future::pending().await;
        }
        let (result, k, _) = futures::future::select_all(writes).await;
        let partition = partitions[k].clone();
        self.lanes
            .get_mut(&partition)
            .expect("a lane in flight")
            .in_flight = None;
        result.map_err(|e| IngestError::Task(format!("the write task failed: {e}")))?
    }

    /// Waits for every write in flight; returns the positions they stored.
    pub async fn finish(&mut self) -> Result<Vec<pb::SourcePosition>, IngestError> {
        let mut stored = Vec::new();
        for lane in self.lanes.values_mut() {
            stored.extend(finish(lane).await?);
        }
        Ok(stored)
    }
}

/// Resolves at `deadline` ([`Lanes::deadline`]); never without one.
pub async fn lingered(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for `lane`'s write in flight; returns the positions it stored.
async fn finish(lane: &mut Lane) -> Result<Vec<pb::SourcePosition>, IngestError> {
    let Some(write) = lane.in_flight.as_mut() else {
        return Ok(Vec::new());
    };
    let result = write.await;
    lane.in_flight = None;
    result.map_err(|e| IngestError::Task(format!("the write task failed: {e}")))?
}

/// Waits for `lane`'s write in flight, then starts writing its batch.
async fn submit(
    pipeline: &Arc<Pipeline>,
    lane: &mut Lane,
) -> Result<Vec<pb::SourcePosition>, IngestError> {
    let stored = finish(lane).await?;
    let batch = std::mem::take(&mut lane.batch);
    if !batch.is_empty() {
        let pipeline = pipeline.clone();
        lane.in_flight = Some(tokio::spawn(async move { pipeline.write(batch).await }));
    }
    Ok(stored)
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // Writes still in flight when a worker stops on an error are abandoned; their batches
        // are read again from the stored positions.
        for lane in self.lanes.values_mut() {
            if let Some(write) = lane.in_flight.take() {
                write.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that refuses the first `failures` writes as unavailable, and any of more than
    /// `most_records` records as OUT_OF_RANGE (worded as the server's signature check words
    /// it), and keeps every request it is sent.
    struct Flaky {
        failures: Mutex<usize>,
        most_records: usize,
        seen: Mutex<Vec<pb::PutSourceRecordsRequest>>,
    }

    impl crate::sink::Sink for Flaky {
        fn describe<'a>(
            &'a self,
            group: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<pb::DescribeFeatureGroupResponse, tonic::Status>>
        {
            let f = |name: &str, t: pb::FeatureType| pb::FeatureDefinition {
                feature_name: name.into(),
                feature_type: t as i32,
                ..Default::default()
            };
            let described = pb::DescribeFeatureGroupResponse {
                feature_group_name: group.into(),
                record_identifier_feature_name: "id".into(),
                event_time_feature_name: "ts".into(),
                feature_definitions: vec![
                    f("id", pb::FeatureType::String),
                    f("ts", pb::FeatureType::Fractional),
                    f("x", pb::FeatureType::Fractional),
                ],
                ..Default::default()
            };
            Box::pin(async move { Ok(described) })
        }

        fn positions<'a>(
            &'a self,
            _source: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<HashMap<String, String>, tonic::Status>>
        {
            Box::pin(async { Ok(HashMap::new()) })
        }

        fn put(
            &self,
            request: pb::PutSourceRecordsRequest,
        ) -> futures::future::BoxFuture<'_, Result<pb::PutSourceRecordsResponse, tonic::Status>>
        {
            let records = request.records.len();
            self.seen.lock().unwrap().push(request);
            let mut failures = self.failures.lock().unwrap();
            let result = if *failures > 0 {
                *failures -= 1;
                Err(tonic::Status::unavailable("restarting"))
            } else if records > self.most_records {
                Err(tonic::Status::out_of_range(
                    "the request is larger than the server's limit of 1048576 bytes",
                ))
            } else {
                use pb::source_record_result::Result as R;
                Ok(pb::PutSourceRecordsResponse {
                    results: (0..records)
                        .map(|_| pb::SourceRecordResult {
                            result: Some(R::Outcome(0)),
                        })
                        .collect(),
                    positions: vec![],
                })
            };
            Box::pin(async move { result })
        }
    }

    /// Source `s` into group `g` from a Kafka topic, dead letters to a file in `dir`.
    fn kafka_source(dir: &std::path::Path) -> crate::config::IngestConfig {
        crate::config::IngestConfig::parse(&format!(
            r#"
[[source]]
name = "s"
feature_group = "g"
dead_letter = {{ kind = "file", path = "{}" }}
[source.kafka]
brokers = "127.0.0.1:9"
topics = ["t"]
"#,
            dir.join("dead.jsonl").display()
        ))
        .unwrap()
    }

    /// A write tried again after the server was unavailable sends the same records (mapped
    /// again from their payloads) and the same positions; a bad message is not among them.
    #[tokio::test]
    async fn a_retried_write_sends_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let config = kafka_source(dir.path());
        let sink = Arc::new(Flaky {
            failures: Mutex::new(2),
            most_records: usize::MAX,
            seen: Mutex::new(Vec::new()),
        });
        let pipeline = Pipeline::new(&config.sources[0], sink.clone())
            .await
            .unwrap();
        let mut batch = Batch::default();
        pipeline.add(
            &mut batch,
            "t/0",
            "7",
            br#"{"id":"a","ts":1700000000,"x":1.5}"#,
        );
        pipeline.add(&mut batch, "t/0", "8", b"not json");
        pipeline.add(&mut batch, "t/0", "9", br#"{"id":"b","ts":1700000001}"#);
        pipeline.write(batch).await.unwrap();
        assert_eq!(pipeline.written(), 2);
        let seen = sink.seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "two refusals, then the write");
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[0], seen[2]);
        let first = &seen[0];
        assert_eq!(first.records.len(), 2);
        assert_eq!(
            first
                .records
                .iter()
                .map(|r| r.position.as_str())
                .collect::<Vec<_>>(),
            ["7", "9"]
        );
        assert_eq!(first.positions.len(), 1);
        assert_eq!(first.positions[0].position, "9");
        assert_eq!(first.feature_names.len(), first.records[0].values.len());
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        assert!(dead.contains("not JSON"), "{dead}");
    }

    /// A batch the server refuses as OUT_OF_RANGE, whatever the message, is written in
    /// halves until each part fits; every record is written once, in order, and the last part
    /// stores the batch's position.
    #[tokio::test]
    async fn a_batch_refused_as_out_of_range_is_written_in_halves() {
        let dir = tempfile::tempdir().unwrap();
        let config = kafka_source(dir.path());
        let sink = Arc::new(Flaky {
            failures: Mutex::new(0),
            most_records: 2,
            seen: Mutex::new(Vec::new()),
        });
        let pipeline = Pipeline::new(&config.sources[0], sink.clone())
            .await
            .unwrap();
        let mut batch = Batch::default();
        for n in 0..7 {
            let payload = format!(r#"{{"id":"k{n}","ts":1700000000,"x":{n}}}"#);
            pipeline.add(&mut batch, "t/0", &n.to_string(), payload.as_bytes());
        }
        pipeline.write(batch).await.unwrap();
        assert_eq!(pipeline.written(), 7);
        let seen = sink.seen.lock().unwrap();
        let written: Vec<&pb::PutSourceRecordsRequest> =
            seen.iter().filter(|r| r.records.len() <= 2).collect();
        let positions: Vec<&str> = written
            .iter()
            .flat_map(|r| r.records.iter().map(|x| x.position.as_str()))
            .collect();
        assert_eq!(positions, ["0", "1", "2", "3", "4", "5", "6"]);
        assert_eq!(written.last().unwrap().positions[0].position, "6");
    }

    #[test]
    fn positions_compare_as_numbers() {
        assert_eq!(compare_positions("10", "9"), Ordering::Greater);
        assert_eq!(compare_positions("007", "7"), Ordering::Equal);
        assert_eq!(
            compare_positions(
                "49590338271490256608559692538361571095921575989136588898",
                "18446744073709551615"
            ),
            Ordering::Greater
        );
        let mut batch = Batch::default();
        assert!(batch.is_after("0"));
        batch.partition = "t/0".into();
        batch.last = "5".into();
        batch.messages = 1;
        assert!(batch.is_after("6"));
        assert!(!batch.is_after("5"));
    }
}
