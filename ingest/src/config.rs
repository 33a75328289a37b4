//! The ingest configuration (TOML): the server to write to and one `[[source]]` table per
//! source. docs/ingest.md documents every key.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{IngestError, Result};
use crate::mapping::{EventTimeFormat, MappingConfig, UnknownFields};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// The Quiver server's gRPC endpoint (`http://host:port`); the standalone worker only.
    #[serde(default = "default_server")]
    pub server: String,
    /// Where the worker serves Prometheus metrics (`/metrics`); none by default. Port 0
    /// picks a free port (the log says which).
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

fn default_server() -> String {
    "http://127.0.0.1:50051".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name: its positions are stored under it, so two workers with the same name
    /// share (and never duplicate) one source's progress. Renaming a source starts it afresh.
    pub name: String,
    /// The target feature group.
    pub feature_group: String,
    /// The payload format; `json` (one JSON object per message).
    #[serde(default)]
    pub format: PayloadFormat,
    /// Payload field -> feature name, for fields not named as their feature.
    #[serde(default)]
    pub fields: HashMap<String, String>,
    /// The payload field holding the identifier; default: the group's identifier feature.
    pub record_identifier_field: Option<String>,
    /// The payload field holding the event time; default: the group's event-time feature.
    pub event_time_field: Option<String>,
    #[serde(default)]
    pub event_time_format: EventTimeFormat,
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// Most records per write.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill, in milliseconds.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    pub kafka: Option<KafkaConfig>,
    pub kinesis: Option<KinesisConfig>,
    /// Where bad messages go; default: a file `dead-letter/<name>.jsonl` under the working
    /// directory.
    pub dead_letter: Option<DeadLetterConfig>,
}

impl SourceConfig {
    /// Where the source reads, as the lineage graph names it: `kafka://<brokers>/<topic>` per
    /// topic, `kinesis://<region>/<stream>` (`kinesis://<stream>` without a region).
    pub fn source_uris(&self) -> Vec<String> {
        let mut uris = Vec::new();
        if let Some(kafka) = &self.kafka {
            for topic in &kafka.topics {
                uris.push(format!("kafka://{}/{topic}", kafka.brokers));
            }
        }
        if let Some(kinesis) = &self.kinesis {
            uris.push(match &kinesis.region {
                Some(region) => format!("kinesis://{region}/{}", kinesis.stream),
                None => format!("kinesis://{}", kinesis.stream),
            });
        }
        uris
    }
}

fn default_batch_size() -> usize {
    1000
}

fn default_linger_ms() -> u64 {
    50
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    #[default]
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub topics: Vec<String>,
    /// The consumer group (`group.id`); default: the source's name.
    pub group_id: Option<String>,
    /// Passed to librdkafka as they are: TLS (`security.protocol`, `ssl.ca.location`, ...),
    /// SASL (`sasl.mechanisms`, `sasl.username`, ...), tuning.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    pub stream: String,
    pub region: Option<String>,
    /// An endpoint override (a local Kinesis-compatible server).
    pub endpoint: Option<String>,
    /// Where a source with no stored positions starts: `trim_horizon` (default: each shard
    /// from its oldest record) or `latest` (each open shard from its tip; closed shards are
    /// skipped). Shards that appear later are always read from their oldest record.
    #[serde(default)]
    pub starting_position: StartingPosition,
    /// How often the stream's shards are listed (new shards after a split or merge).
    #[serde(default = "default_discovery_ms")]
    pub shard_discovery_interval_ms: u64,
    /// How long a caught-up shard's reader waits before asking again. A shard serves five
    /// reads a second to all its consumers together.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Most records per GetRecords call (the API allows 10000).
    #[serde(default = "default_max_records")]
    pub max_records: i32,
}

fn default_discovery_ms() -> u64 {
    10_000
}

fn default_poll_ms() -> u64 {
    500
}

fn default_max_records() -> i32 {
    10_000
}

impl KinesisConfig {
    pub fn shard_discovery_interval(&self) -> Duration {
        Duration::from_millis(self.shard_discovery_interval_ms.max(100))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartingPosition {
    #[default]
    TrimHorizon,
    Latest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// Appends one JSON line per bad message.
    File { path: PathBuf },
    /// Produces each bad message to a topic of the source's brokers (or `brokers`).
    Kafka {
        topic: String,
        brokers: Option<String>,
    },
    /// Puts each bad message to a Kinesis stream, by default at the region and endpoint of
    /// the source's `[source.kinesis]` (else the environment's).
    Kinesis {
        stream: String,
        region: Option<String>,
        endpoint: Option<String>,
    },
}

impl SourceConfig {
    /// How this source's payloads map to features.
    pub fn mapping(&self) -> MappingConfig {
        MappingConfig {
            fields: self.fields.clone(),
            record_identifier_field: self.record_identifier_field.clone(),
            event_time_field: self.event_time_field.clone(),
            event_time_format: self.event_time_format,
            unknown_fields: self.unknown_fields,
        }
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// Checks what the types cannot: one source kind, sane sizes, names.
    pub fn validate(&self) -> Result<()> {
        let at = |problem: String| {
            Err(IngestError::Config(format!(
                "source {:?}: {problem}",
                self.name
            )))
        };
        if self.name.is_empty() {
            return Err(IngestError::Config(
                "a source's name must not be empty".into(),
            ));
        }
        match (&self.kafka, &self.kinesis) {
            (Some(_), Some(_)) => {
                return at("has both [kafka] and [kinesis]; one source reads one".into());
            }
            (None, None) => return at("needs a [source.kafka] or [source.kinesis] table".into()),
            _ => {}
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return at(format!(
                "batch_size {} must be within 1..=10000",
                self.batch_size
            ));
        }
        if let Some(kafka) = &self.kafka {
            if kafka.topics.is_empty() {
                return at("kafka.topics must name at least one topic".into());
            }
            if kafka.brokers.trim().is_empty() {
                return at("kafka.brokers must not be empty".into());
            }
        }
        if let Some(kinesis) = &self.kinesis {
            if kinesis.stream.trim().is_empty() {
                return at("kinesis.stream must not be empty".into());
            }
            if !(1..=10_000).contains(&kinesis.max_records) {
                return at(format!(
                    "kinesis.max_records {} must be within 1..=10000",
                    kinesis.max_records
                ));
            }
        }
        Ok(())
    }
}

impl IngestConfig {
    /// Parses and checks a configuration file's text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: IngestConfig =
            toml::from_str(text).map_err(|e| IngestError::Config(e.to_string()))?;
        validate_sources(&config.sources)?;
        Ok(config)
    }
}

/// Checks each source, and that no two share a name (their positions would mix).
pub fn validate_sources(sources: &[SourceConfig]) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for source in sources {
        source.validate()?;
        if !names.insert(&source.name) {
            return Err(IngestError::Config(format!(
                "two sources are named {:?}",
                source.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_documented_configuration_parses() {
        let config = IngestConfig::parse(
            r#"
            server = "http://127.0.0.1:7000"
            [[source]]
            name = "orders"
            feature_group = "orders"
            record_identifier_field = "id"
            event_time_format = "unix_millis"
            fields = { amount_usd = "amount" }
            batch_size = 500
            linger_ms = 20
            dead_letter = { kind = "kafka", topic = "orders-dlq" }
            [source.kafka]
            brokers = "localhost:9092"
            topics = ["orders"]
            properties = { "security.protocol" = "SASL_SSL", "sasl.mechanisms" = "SCRAM-SHA-512" }

            [[source]]
            name = "clicks"
            feature_group = "clicks"
            [source.kinesis]
            stream = "clicks"
            endpoint = "http://127.0.0.1:5000"
            starting_position = "latest"
            "#,
        )
        .unwrap();
        assert_eq!(config.sources.len(), 2);
        let orders = &config.sources[0];
        assert_eq!(orders.batch_size, 500);
        assert_eq!(orders.mapping().fields["amount_usd"], "amount");
        assert_eq!(
            orders.kafka.as_ref().unwrap().properties["security.protocol"],
            "SASL_SSL"
        );
        assert!(matches!(
            orders.dead_letter,
            Some(DeadLetterConfig::Kafka { .. })
        ));
        let clicks = &config.sources[1];
        assert_eq!(clicks.batch_size, 1000);
        assert_eq!(
            clicks.kinesis.as_ref().unwrap().starting_position,
            StartingPosition::Latest
        );
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let err = |text: &str| match IngestConfig::parse(text).unwrap_err() {
            IngestError::Config(message) => message,
            other => panic!("not a configuration error: {other:?}"),
        };
        assert!(
            err("[[source]]\nname = \"a\"\nfeature_group = \"g\"\n")
                .contains("needs a [source.kafka]")
        );
        assert!(
            err("[[source]]\nname = \"a\"\nfeature_group = \"g\"\nbatch_size = 0\n[source.kafka]\nbrokers = \"b\"\ntopics = [\"t\"]\n")
                .contains("batch_size")
        );
        assert!(
            err("[[source]]\nname = \"a\"\nfeature_group = \"g\"\nbogus = 1\n").contains("bogus")
        );
        assert!(
            err("[[source]]\nname = \"a\"\nfeature_group = \"g\"\n[source.kafka]\nbrokers = \"b\"\ntopics = []\n")
                .contains("kafka.topics")
        );
    }
}
