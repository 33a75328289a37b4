//! Bad messages (not JSON, no identifier or event time, wrong types, unknown features, or
//! refused by the server) go to a dead-letter destination with the reason: a local JSON-lines
//! file or a Kafka topic. They are written before the batch's positions are stored, so a crash
//! in between sends them again (at least once there); they never stop the partition.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

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
}

impl DeadLetter {
    pub fn file(path: PathBuf) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("dead-letter directory {}: {e}", dir.display()))?;
        }
        Ok(Self::File(path))
    }

    pub fn kafka(
        brokers: &str,
        topic: &str,
        properties: &[(String, String)],
    ) -> Result<Self, String> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        for (k, v) in properties {
            config.set(k, v);
        }
        config.set("enable.idempotence", "true");
        let producer: FutureProducer = config
            .create()
            .map_err(|e| format!("dead-letter producer: {e}"))?;
        Ok(Self::Kafka {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Writes `messages`; returns once they are durable at the destination.
    pub async fn send(&self, messages: &[BadMessage]) -> Result<(), String> {
        if messages.is_empty() {
            return Ok(());
        }
        match self {
            DeadLetter::File(path) => {
                let mut lines = Vec::new();
                for m in messages {
                    serde_json::to_writer(&mut lines, m).map_err(|e| e.to_string())?;
                    lines.push(b'\n');
                }
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| format!("dead-letter file {}: {e}", path.display()))?;
                    file.write_all(&lines)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| format!("dead-letter file {}: {e}", path.display()))
                })
                .await
                .map_err(|e| e.to_string())?
            }
            DeadLetter::Kafka { producer, topic } => {
                let sends = messages.iter().map(|m| async move {
                    let body = serde_json::to_vec(m).map_err(|e| e.to_string())?;
                    let key = format!("{}@{}", m.partition, m.position);
                    producer
                        .send(
                            FutureRecord::to(topic).key(&key).payload(&body),
                            Duration::from_secs(30),
                        )
                        .await
                        .map(|_| ())
                        .map_err(|(e, _)| format!("dead-letter topic {topic:?}: {e}"))
                });
                futures::future::try_join_all(sends).await.map(|_| ())
            }
        }
    }
}
