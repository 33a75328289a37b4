//! Bad messages (not JSON, no identifier or event time, wrong types, unknown features, or
//! refused by the server) go to a dead-letter destination with the reason: a local JSON-lines
//! file, a Kafka topic or a Kinesis stream. They are written before the batch's positions are stored, so a crash
//! in between sends them again (at least once there); they never stop the partition.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::error::{IngestError, Result};

/// One bad message, as written to the destination.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadMessage {
    pub source: String,
    pub partition: String,
    pub position: String,
    pub reason: String,
    /// The payload as text when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload in hex when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

impl BadMessage {
    pub fn new(
        source: &str,
        partition: &str,
        position: &str,
        payload: &[u8],
        reason: String,
    ) -> Self {
        let (text, hex) = match std::str::from_utf8(payload) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(hex::encode(payload))),
        };
        Self {
            source: source.to_string(),
            partition: partition.to_string(),
            position: position.to_string(),
            reason,
            payload: text,
            payload_hex: hex,
        }
    }
}

pub enum DeadLetter {
    /// Appended and flushed to disk before the batch goes on.
    File(PathBuf),
    Kafka {
        producer: FutureProducer,
        topic: String,
    },
    Kinesis {
        client: aws_sdk_kinesis::Client,
        stream: String,
    },
}

impl DeadLetter {
    pub fn file(path: PathBuf) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                IngestError::DeadLetter(format!("dead-letter directory {}: {e}", dir.display()))
            })?;
        }
        Ok(Self::File(path))
    }

    pub fn kafka(brokers: &str, topic: &str, properties: &[(String, String)]) -> Result<Self> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        for (k, v) in properties {
            config.set(k, v);
        }
        config.set("enable.idempotence", "true");
        let producer: FutureProducer = config
            .create()
            .map_err(|e| IngestError::DeadLetter(format!("dead-letter producer: {e}")))?;
        Ok(Self::Kafka {
            producer,
            topic: topic.to_string(),
        })
    }

    pub fn kinesis(client: aws_sdk_kinesis::Client, stream: &str) -> Self {
        Self::Kinesis {
            client,
            stream: stream.to_string(),
        }
    }

    /// Writes `messages`; returns once they are durable at the destination.
    pub async fn send(&self, messages: &[BadMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        match self {
            DeadLetter::File(path) => {
                let mut lines = Vec::new();
                for m in messages {
                    serde_json::to_writer(&mut lines, m)
                        .map_err(|e| IngestError::DeadLetter(e.to_string()))?;
                    lines.push(b'\n');
                }
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| {
                            IngestError::DeadLetter(format!(
                                "dead-letter file {}: {e}",
                                path.display()
                            ))
                        })?;
                    file.write_all(&lines)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| {
                            IngestError::DeadLetter(format!(
                                "dead-letter file {}: {e}",
                                path.display()
                            ))
                        })
                })
                .await
                .map_err(|e| IngestError::DeadLetter(e.to_string()))?
            }
            DeadLetter::Kafka { producer, topic } => {
                let sends = messages.iter().map(|m| async move {
                    let body = serde_json::to_vec(m)
                        .map_err(|e| IngestError::DeadLetter(e.to_string()))?;
                    let key = format!("{}@{}", m.partition, m.position);
                    producer
                        .send(
                            FutureRecord::to(topic).key(&key).payload(&body),
                            Duration::from_secs(30),
                        )
                        .await
                        .map(|_| ())
                        .map_err(|(e, _)| {
                            IngestError::DeadLetter(format!("dead-letter topic {topic:?}: {e}"))
                        })
                });
                futures::future::try_join_all(sends).await.map(|_| ())
            }
            DeadLetter::Kinesis { client, stream } => put_to_stream(client, stream, messages).await,
        }
    }
}

/// PutRecords in calls of at most 500 (the API's limit), each message a JSON document keyed
/// by its source partition; entries the stream refused (throttled) are sent again a few times.
async fn put_to_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    messages: &[BadMessage],
) -> Result<()> {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let fail = |e: &dyn std::fmt::Display| {
        IngestError::DeadLetter(format!("dead-letter stream {stream:?}: {e}"))
    };
    for chunk in messages.chunks(500) {
        let mut entries = Vec::with_capacity(chunk.len());
        for m in chunk {
            let body = serde_json::to_vec(m).map_err(|e| fail(&e))?;
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(&m.partition)
                    .data(Blob::new(body))
                    .build()
                    .map_err(|e| fail(&e))?,
            );
        }
        let mut wait = Duration::from_millis(100);
        for attempt in 0.. {
            let out = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries.clone()))
                .send()
                .await
                .map_err(|e| fail(&aws_sdk_kinesis::error::DisplayErrorContext(e)))?;
            if out.failed_record_count.unwrap_or(0) == 0 {
                break;
            }
            // Only the refused entries go again.
            entries = entries
                .into_iter()
                .zip(out.records)
                .filter(|(_, result)| result.error_code.is_some())
                .map(|(entry, _)| entry)
                .collect();
            if attempt == 4 {
                return Err(fail(&format!("{} messages refused 5 times", entries.len())));
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Ok(())
}
