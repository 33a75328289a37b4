//! The Kafka worker: a consumer-group member that reads its assigned partitions, maps each
//! message to a record, and writes batches with their positions through
//! [`Sink::put`](crate::sink::Sink::put).
//!
//! Exactly once: a partition's position (the last offset applied) is stored by the server in
//! the same write as the records. On assignment (start, rebalance) each partition is read from
//! its stored position + 1, asked of the server then; a record that another member (or an
//! earlier run) applied meanwhile is skipped by the server. Kafka offsets are committed back
//! after each write, only so that standard lag tools see the group's progress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_proto::v1 as pb;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::watch;

use crate::config::{KafkaConfig, SourceConfig};
use crate::error::IngestError;
use crate::worker::{Lanes, Pipeline, lingered};

/// Partitions' last applied offsets, by `topic/partition`, as last heard from the server.
type Positions = Arc<Mutex<HashMap<String, i64>>>;

fn partition_name(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Sets each assigned partition's start to its stored position + 1.
struct Context {
    pipeline: Arc<Pipeline>,
    positions: Positions,
    runtime: tokio::runtime::Handle,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Fresh positions: another member may have moved them since this one last
                // heard. Without them (server away), the last known ones are still safe: the
                // server skips what was applied since.
                let pipeline = self.pipeline.clone();
                let fresh = tokio::task::block_in_place(|| {
                    self.runtime.block_on(async move {
                        tokio::time::timeout(Duration::from_secs(10), pipeline.stored_positions())
                            .await
                    })
                });
                let mut positions = self.positions.lock().expect("positions lock");
                match fresh {
                    Ok(Ok(fresh)) => {
                        for (partition, position) in fresh {
                            if let Ok(offset) = position.parse::<i64>() {
                                positions.insert(partition, offset);
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(
                        "reading stored positions on assignment: {e}; using the last known"
                    ),
                    Err(_) => tracing::warn!(
                        "reading stored positions on assignment timed out; using the last known"
                    ),
                }
                let assigned: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                for (topic, partition) in &assigned {
                    if let Some(&offset) = positions.get(&partition_name(topic, *partition))
                        && let Err(e) =
                            tpl.set_partition_offset(topic, *partition, Offset::Offset(offset + 1))
                    {
                        tracing::error!("setting the start of {topic}/{partition}: {e}");
                    }
                }
                tracing::info!(partitions = ?assigned, "kafka partitions assigned");
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!("kafka assign failed: {e}");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("kafka partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::error!("kafka unassign failed: {e}");
                }
            }
            other => {
                tracing::error!("kafka rebalance error: {other:?}");
                let _ = consumer.unassign();
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // Only lag tools read committed offsets; the stored positions decide.
            tracing::debug!("kafka offset commit failed: {e}");
        }
    }
}

/// Runs the worker for `config` until `shutdown` turns true; the batch in hand is written
/// first. Returns an error only for what retrying cannot mend (a bad configuration, a missing
/// feature group, a request the server refuses as malformed).
pub async fn run(
    config: &SourceConfig,
    kafka: &KafkaConfig,
    pipeline: Arc<Pipeline>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let positions: Positions = Arc::default();
    for (partition, position) in pipeline.stored_positions_retrying().await? {
        if let Ok(offset) = position.parse::<i64>() {
            positions
                .lock()
                .expect("positions lock")
                .insert(partition, offset);
        }
    }
    let context = Context {
        pipeline: pipeline.clone(),
        positions: positions.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.brokers)
        .set(
            "group.id",
            kafka.group_id.as_deref().unwrap_or(&config.name),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    for (key, value) in &kafka.properties {
        client.set(key, value);
    }
    let consumer: StreamConsumer<Context> = client.create_with_context(context).map_err(|e| {
        IngestError::Stream(format!("source {:?}: kafka consumer: {e}", config.name))
    })?;
    let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| {
        IngestError::Stream(format!(
            "source {:?}: subscribing to {topics:?}: {e}",
            config.name
        ))
    })?;

    let mut lanes = Lanes::new(pipeline.clone(), config);
    let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
    loop {
        let linger = lingered(lanes.deadline());
        tokio::select! {
            message = consumer.recv() => {
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("kafka: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let partition = partition_name(message.topic(), message.partition());
                let position = message.offset().to_string();
                let payload = message.payload().unwrap_or_default().to_vec();
                drop(message);
                let stored = lanes.add(&partition, &position, &payload).await?;
                stored_positions(&consumer, &positions, stored);
            }
            _ = gauges.tick() => {
                pipeline.record_rate();
                record_lag(&config.name, &consumer, &positions);
            }
            () = linger => {
                stored_positions(&consumer, &positions, lanes.flush().await?);
            }
            stored = lanes.next_written() => {
                stored_positions(&consumer, &positions, stored?);
            }
            _ = shutdown.changed() => {
                stored_positions(&consumer, &positions, lanes.flush().await?);
                stored_positions(&consumer, &positions, lanes.finish().await?);
                tracing::info!(source = config.name, "kafka worker stopped");
                return Ok(());
            }
        }
    }
}

/// How often the lag and rate gauges are updated.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Sets `quiver_ingest_lag_messages` for each assigned partition: messages in the partition
/// after the last applied one (its high watermark over its stored position).
fn record_lag(source: &str, consumer: &StreamConsumer<Context>, positions: &Positions) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    for element in assignment.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        // A metadata round trip to the broker: off the async threads' cores.
        let watermarks = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(topic, partition, Duration::from_secs(2))
        });
        let Ok((low, high)) = watermarks else {
            continue;
        };
        let name = partition_name(topic, partition);
        let next = positions
            .lock()
            .expect("positions lock")
            .get(&name)
            .map_or(low, |p| p + 1);
        metrics::gauge!("quiver_ingest_lag_messages", "source" => source.to_string(), "partition" => name)
            .set((high - next).max(0) as f64);
    }
}

/// Notes positions the server stored and commits them to Kafka (for lag tools).
fn stored_positions(
    consumer: &StreamConsumer<Context>,
    positions: &Positions,
    stored: Vec<pb::SourcePosition>,
) {
    if stored.is_empty() {
        return;
    }
    let mut commit = TopicPartitionList::new();
    {
        let mut known = positions.lock().expect("positions lock");
        for p in &stored {
            let Ok(offset) = p.position.parse::<i64>() else {
                continue;
            };
            known.insert(p.partition.clone(), offset);
            if let Some((topic, partition)) = p.partition.rsplit_once('/')
                && let Ok(partition) = partition.parse::<i32>()
            {
                let _ = commit.add_partition_offset(topic, partition, Offset::Offset(offset + 1));
            }
        }
    }
    if commit.count() > 0
        && let Err(e) = consumer.commit(&commit, CommitMode::Async)
    {
        tracing::debug!("kafka offset commit: {e}");
    }
}
