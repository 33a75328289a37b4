//! Quiver's stream ingest: workers that read Kafka topics and Kinesis streams and write their
//! messages into a feature group, exactly once in both stores.
//!
//! Where things live: the configuration in [`config`]; payload-to-record mapping in [`mapping`].

pub mod config;
pub mod mapping;
