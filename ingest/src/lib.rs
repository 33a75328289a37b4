//! Quiver's stream ingest: workers that read Kafka topics and Kinesis streams and write their
//! messages into a feature group, exactly once in both stores.
//!
//! Where things live: the configuration in [`config`]; payload-to-record mapping in
//! [`mapping`]; batching, dead letters and the write with positions in [`worker`] (shared by
//! every source), over [`sink`] (the server's API) and [`dead_letter`]; Kafka's consumer-group
//! side in [`kafka`]; Kinesis shards and resharding in [`kinesis`].

pub mod config;
pub mod dead_letter;
pub mod kafka;
pub mod kinesis;
pub mod mapping;
pub mod sink;
pub mod worker;
