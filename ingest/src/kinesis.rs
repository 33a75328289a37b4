//! The Kinesis worker: reads every shard of a stream, parents before children, maps each
//! record to a feature record, and writes batches with their positions through
//! [`Pipeline::write`].
//!
//! Exactly once: a shard's position (the sequence number of the last record applied) is stored
//! by the server in the same write as the records, under the partition `<stream>/<shard id>`.
//! A shard is read from after its stored position, so a restart resumes where the last write
//! ended and nothing is applied twice.
//!
//! Resharding: a split or merge closes shards and opens children that list them as parents. A
//! shard is read only once each of its parents has been read to its end (GetRecords returned no
//! next iterator) and that end written, so records of one partition key stay in order. Parents
//! are checked again after a restart: a closed shard read from its stored position ends at
//! once. A parent that the stream no longer lists (past its retention) counts as read.
//!
//! Each shard is read by its own task; records come to the batching loop through a bounded
//! channel, so readers wait while the server is slow or away (back-pressure). Expired
//! iterators are renewed after the last record read; throttling is retried with backoff.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_kinesis::types::ShardIteratorType;
use quiver_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::{KinesisConfig, SourceConfig, StartingPosition};
use crate::error::IngestError;
use crate::kinesis_client::client;
use crate::worker::{Lanes, Pipeline, lingered};

/// Where a shard's reading begins.
#[derive(Debug, Clone, PartialEq)]
enum Start {
    /// After this sequence number (the stored position).
    After(String),
    TrimHorizon,
    Latest,
}

/// What a shard's reader reports to the batching loop.
enum Event {
    Records {
        shard: String,
        /// (sequence number, payload), in shard order.
        records: Vec<(String, Vec<u8>)>,
        millis_behind: Option<i64>,
    },
    /// The shard is closed and every record in it has been sent.
    Ended { shard: String },
    /// Retrying cannot mend this (no such stream, access denied, ...).
    Failed { shard: String, error: String },
}

/// The stream's shards as this worker knows them: which are read, being read, or waiting for
/// their parents.
struct Shards {
    stream: String,
    /// Each listed shard's parents.
    parents: HashMap<String, Vec<String>>,
    reading: HashSet<String>,
    /// Read to their end in this run (or skipped by `latest` on a first start).
    done: HashSet<String>,
}

impl Shards {
    fn partition(&self, shard: &str) -> String {
        format!("{}/{shard}", self.stream)
    }

    /// Takes a listing in; returns the shards that may start now (all parents done), with
    /// where each starts. `stored` holds the source's positions; `latest_first` is set on the
    /// first listing of a source that has none, with `starting_position = "latest"`: then
    /// closed shards are skipped and open ones start at their tip.
    fn listed(
        &mut self,
        listing: Vec<aws_sdk_kinesis::types::Shard>,
        stored: &HashMap<String, String>,
        latest_first: bool,
    ) -> Vec<(String, Start)> {
        self.parents.clear();
        let mut closed = HashSet::new();
        for shard in &listing {
            let id = shard.shard_id().to_string();
            let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(str::to_string)
                .collect();
            self.parents.insert(id.clone(), parents);
            if shard
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_some()
            {
                closed.insert(id);
            }
        }
        if latest_first {
            for id in self.parents.keys() {
                if closed.contains(id) {
                    self.done.insert(id.clone());
                }
            }
        }
        let mut ready = Vec::new();
        let mut ids: Vec<&String> = self.parents.keys().collect();
        ids.sort();
        for id in ids {
            if self.reading.contains(id) || self.done.contains(id) {
                continue;
            }
            // A parent no longer listed is past the stream's retention: nothing left to read.
            let parents_done = self.parents[id]
                .iter()
                .all(|p| self.done.contains(p) || !self.parents.contains_key(p));
            if !parents_done {
                continue;
            }
            let start = match stored.get(&self.partition(id)) {
                Some(position) => Start::After(position.clone()),
                None if latest_first => Start::Latest,
                None => Start::TrimHorizon,
            };
            ready.push((id.clone(), start));
        }
        for (id, _) in &ready {
            self.reading.insert(id.clone());
        }
        ready
    }
}

/// Runs the worker for `config` until `shutdown` turns true; the batch in hand is written
/// first. Returns an error only for what retrying cannot mend.
pub async fn run(
    config: &SourceConfig,
    kinesis: &KinesisConfig,
    pipeline: Arc<Pipeline>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let client = client(kinesis.region.as_deref(), kinesis.endpoint.as_deref()).await;
    let mut stored = pipeline.stored_positions_retrying().await?;
    let mut latest_first =
        stored.is_empty() && kinesis.starting_position == StartingPosition::Latest;
    let mut shards = Shards {
        stream: kinesis.stream.clone(),
        parents: HashMap::new(),
        reading: HashSet::new(),
        done: HashSet::new(),
    };
    let (events, mut inbox) = mpsc::channel::<Event>(4);
    let mut readers = JoinSet::new();
    let mut lanes = Lanes::new(pipeline.clone(), config);
    let mut discovery = tokio::time::interval(kinesis.shard_discovery_interval());
    let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
    let source = config.name.as_str();
    loop {
        let linger = lingered(lanes.deadline());
        tokio::select! {
            _ = discovery.tick() => {
                let listing = match list_shards(&client, &kinesis.stream).await {
                    Ok(listing) => listing,
                    Err(Retry::Later(e)) => {
                        tracing::warn!(source, "listing the shards of {:?}: {e}", kinesis.stream);
                        continue;
                    }
                    Err(Retry::Never(e)) => {
                        return Err(IngestError::Stream(format!("source {source:?}: stream {:?}: {e}", kinesis.stream)));
                    }
                };
                for (shard, start) in shards.listed(listing, &stored, latest_first) {
                    tracing::info!(source, shard, ?start, "reading kinesis shard");
                    readers.spawn(read_shard(
                        client.clone(),
                        kinesis.clone(),
                        source.to_string(),
                        shard,
                        start,
                        events.clone(),
                    ));
                }
                latest_first = false;
            }
            event = inbox.recv() => {
                let Some(event) = event else { continue };
                match event {
                    Event::Records { shard, records, millis_behind } => {
                        let partition = shards.partition(&shard);
                        if let Some(ms) = millis_behind {
                            metrics::gauge!("quiver_ingest_lag_millis", "source" => source.to_string(), "partition" => partition.clone())
                                .set(ms as f64);
                        }
                        for (sequence, payload) in records {
                            note(&mut stored, lanes.add(&partition, &sequence, &payload).await?);
                        }
                    }
                    Event::Ended { shard } => {
                        // The shard's last records are stored before its children start.
                        note(&mut stored, lanes.flush().await?);
                        note(&mut stored, lanes.finish().await?);
                        tracing::info!(source, shard, "kinesis shard read to its end");
                        metrics::gauge!("quiver_ingest_lag_millis", "source" => source.to_string(), "partition" => shards.partition(&shard))
                            .set(0.0);
                        shards.reading.remove(&shard);
                        shards.done.insert(shard);
                        // Its children are listed by now: look at once.
                        discovery.reset_immediately();
                    }
                    Event::Failed { shard, error } => {
                        lanes.flush().await?;
                        lanes.finish().await?;
                        return Err(IngestError::Stream(format!(
                            "source {source:?}: shard {shard} of {:?}: {error}",
                            kinesis.stream
                        )));
                    }
                }
            }
            Some(Err(e)) = readers.join_next() => {
                // A reader that panicked would leave its shard unread: stop the source (the
                // server restarts it; the standalone worker exits for its supervisor).
                lanes.flush().await?;
                lanes.finish().await?;
                return Err(IngestError::Task(format!(
                    "source {source:?}: a shard reader failed: {e}"
                )));
            }
            _ = gauges.tick() => pipeline.record_rate(),
            () = linger => note(&mut stored, lanes.flush().await?),
            written = lanes.next_written() => note(&mut stored, written?),
            _ = shutdown.changed() => {
                note(&mut stored, lanes.flush().await?);
                note(&mut stored, lanes.finish().await?);
                readers.abort_all();
                tracing::info!(source, "kinesis worker stopped");
                return Ok(());
            }
        }
    }
}

/// How often the rate gauge is updated.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Notes the positions the server stored.
fn note(stored: &mut HashMap<String, String>, written: Vec<pb::SourcePosition>) {
    for p in written {
        stored.insert(p.partition, p.position);
    }
}

/// Whether a failed call is worth trying again.
enum Retry {
    Later(String),
    Never(String),
}

/// Every shard of `stream` (all pages).
async fn list_shards(
    client: &Client,
    stream: &str,
) -> Result<Vec<aws_sdk_kinesis::types::Shard>, Retry> {
    use aws_sdk_kinesis::operation::list_shards::ListShardsError as E;
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // A page after the first names the token only (the API refuses both).
        let request = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        match request.send().await {
            Ok(page) => {
                shards.extend(page.shards.unwrap_or_default());
                match page.next_token {
                    Some(t) => token = Some(t),
                    None => return Ok(shards),
                }
            }
            Err(e) => {
                let message = error_message(&e);
                return Err(match e.as_service_error() {
                    Some(E::ResourceNotFoundException(_) | E::AccessDeniedException(_)) => {
                        Retry::Never(message)
                    }
                    Some(E::InvalidArgumentException(_)) => Retry::Never(message),
                    _ => Retry::Later(message),
                });
            }
        }
    }
}

/// An SDK error with its service message when there is one.
fn error_message<E, R>(e: &SdkError<E, R>) -> String
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("no message")
        ),
        None => aws_sdk_kinesis::error::DisplayErrorContext(e).to_string(),
    }
}

/// Exponential backoff for throttling and transient failures: 100 ms doubling to 10 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
    }

    fn reset(&mut self) {
        *self = Self::new();
    }
}

/// Reads `shard` from `start` to its end (or forever while it is open), sending its records to
/// the batching loop.
async fn read_shard(
    client: Client,
    kinesis: KinesisConfig,
    source: String,
    shard: String,
    start: Start,
    events: mpsc::Sender<Event>,
) {
    let (failed, ended) = (
        |error: String| Event::Failed {
            shard: shard.clone(),
            error,
        },
        || Event::Ended {
            shard: shard.clone(),
        },
    );
    // The last sequence number read: an expired iterator is renewed after it.
    let mut last: Option<String> = None;
    let mut iterator: Option<String> = None;
    let mut backoff = Backoff::new();
    loop {
        let current = match iterator.take() {
            Some(it) => it,
            None => {
                let (kind, sequence) = match (&last, &start) {
                    (Some(s), _) | (None, Start::After(s)) => {
                        (ShardIteratorType::AfterSequenceNumber, Some(s.clone()))
                    }
                    (None, Start::TrimHorizon) => (ShardIteratorType::TrimHorizon, None),
                    (None, Start::Latest) => (ShardIteratorType::Latest, None),
                };
                let result = client
                    .get_shard_iterator()
                    .stream_name(&kinesis.stream)
                    .shard_id(&shard)
                    .shard_iterator_type(kind)
                    .set_starting_sequence_number(sequence)
                    .send()
                    .await;
                match result {
                    Ok(out) => match out.shard_iterator {
                        Some(it) => {
                            backoff.reset();
                            it
                        }
                        None => {
                            let _ = events.send(ended()).await;
                            return;
                        }
                    },
                    Err(e) => {
                        use GetShardIteratorError as E;
                        let message = error_message(&e);
                        match e.as_service_error() {
                            // The shard is past the stream's retention: nothing left in it.
                            Some(E::ResourceNotFoundException(_)) => {
                                tracing::info!(shard, "kinesis shard gone: {message}");
                                let _ = events.send(ended()).await;
                                return;
                            }
                            Some(E::AccessDeniedException(_) | E::InvalidArgumentException(_)) => {
                                let _ = events.send(failed(message)).await;
                                return;
                            }
                            _ => {
                                tracing::warn!(
                                    shard,
                                    "getting a shard iterator: {message}; retrying"
                                );
                                backoff.wait().await;
                                continue;
                            }
                        }
                    }
                }
            }
        };
        let result = client
            .get_records()
            .shard_iterator(&current)
            .limit(kinesis.max_records)
            .send()
            .await;
        match result {
            Ok(out) => {
                backoff.reset();
                let records: Vec<(String, Vec<u8>)> = out
                    .records
                    .into_iter()
                    .map(|r| (r.sequence_number, r.data.into_inner()))
                    .collect();
                let read = records.len();
                if let Some((sequence, _)) = records.last() {
                    last = Some(sequence.clone());
                }
                let behind = out.millis_behind_latest;
                if (read > 0 || behind.is_some())
                    && events
                        .send(Event::Records {
                            shard: shard.clone(),
                            records,
                            millis_behind: behind,
                        })
                        .await
                        .is_err()
                {
                    return;
                }
                match out.next_shard_iterator {
                    Some(next) => iterator = Some(next),
                    None => {
                        let _ = events.send(ended()).await;
                        return;
                    }
                }
                // Caught up: wait before asking again (a shard serves 5 reads a second to
                // all its consumers together).
                if read == 0 || behind == Some(0) {
                    tokio::time::sleep(kinesis.poll_interval()).await;
                }
            }
            Err(e) => {
                use GetRecordsError as E;
                let message = error_message(&e);
                match e.as_service_error() {
                    Some(E::ExpiredIteratorException(_)) => {
                        tracing::info!(shard, "kinesis iterator expired; renewing it");
                    }
                    Some(
                        E::ProvisionedThroughputExceededException(_) | E::KmsThrottlingException(_),
                    ) => {
                        tracing::debug!(shard, "throttled: {message}");
                        metrics::counter!("quiver_ingest_throttled_total", "source" => source.clone())
                            .increment(1);
                        iterator = Some(current);
                        backoff.wait().await;
                    }
                    Some(
                        E::AccessDeniedException(_)
                        | E::InvalidArgumentException(_)
                        | E::KmsAccessDeniedException(_)
                        | E::KmsDisabledException(_)
                        | E::KmsInvalidStateException(_)
                        | E::KmsNotFoundException(_)
                        | E::KmsOptInRequired(_)
                        | E::ResourceNotFoundException(_),
                    ) => {
                        let _ = events.send(failed(message)).await;
                        return;
                    }
                    _ => {
                        tracing::warn!(shard, "reading records: {message}; retrying");
                        iterator = Some(current);
                        backoff.wait().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::{SequenceNumberRange, Shard};

    fn shard(id: &str, parents: &[&str], closed: bool) -> Shard {
        let mut range = SequenceNumberRange::builder().starting_sequence_number("1");
        if closed {
            range = range.ending_sequence_number("99");
        }
        let mut b = Shard::builder()
            .shard_id(id)
            .sequence_number_range(range.build().unwrap());
        if let Some(p) = parents.first() {
            b = b.parent_shard_id(*p);
        }
        if let Some(p) = parents.get(1) {
            b = b.adjacent_parent_shard_id(*p);
        }
        b.build().unwrap()
    }

    fn shards() -> Shards {
        Shards {
            stream: "s".into(),
            parents: HashMap::new(),
            reading: HashSet::new(),
            done: HashSet::new(),
        }
    }

    #[test]
    fn children_wait_for_their_parents() {
        // 0 split into 1 and 2; 1 and 2 merged into 3.
        let listing = || {
            vec![
                shard("0", &[], true),
                shard("1", &["0"], true),
                shard("2", &["0"], true),
                shard("3", &["1", "2"], false),
            ]
        };
        let mut s = shards();
        let stored = HashMap::from([("s/0".to_string(), "42".to_string())]);
        let ready = s.listed(listing(), &stored, false);
        assert_eq!(ready, vec![("0".to_string(), Start::After("42".into()))]);
        // Nothing new while 0 is read.
        assert!(s.listed(listing(), &stored, false).is_empty());
        s.reading.remove("0");
        s.done.insert("0".into());
        let ready = s.listed(listing(), &stored, false);
        assert_eq!(
            ready,
            vec![
                ("1".to_string(), Start::TrimHorizon),
                ("2".to_string(), Start::TrimHorizon)
            ]
        );
        s.reading.remove("1");
        s.done.insert("1".into());
        // 3 waits for both parents.
        assert!(s.listed(listing(), &stored, false).is_empty());
        s.reading.remove("2");
        s.done.insert("2".into());
        assert_eq!(
            s.listed(listing(), &stored, false),
            vec![("3".to_string(), Start::TrimHorizon)]
        );
    }

    #[test]
    fn expired_parents_and_latest() {
        // 1's parent 0 is past retention (not listed): 1 starts at once.
        let mut s = shards();
        let ready = s.listed(vec![shard("1", &["0"], false)], &HashMap::new(), false);
        assert_eq!(ready, vec![("1".to_string(), Start::TrimHorizon)]);
        // `latest` on a first start: closed shards are skipped, open ones start at the tip,
        // even a child of a skipped parent.
        let mut s = shards();
        let ready = s.listed(
            vec![
                shard("0", &[], true),
                shard("1", &["0"], false),
                shard("2", &[], false),
            ],
            &HashMap::new(),
            true,
        );
        assert_eq!(
            ready,
            vec![
                ("1".to_string(), Start::Latest),
                ("2".to_string(), Start::Latest)
            ]
        );
    }
}
