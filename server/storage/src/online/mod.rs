//! The online store: the latest record per identifier, in RocksDB, for low-latency reads.

pub mod codec;
pub mod keys;
pub mod locks;
pub mod store;

pub use store::{OnlineStore, WriteFault, WriteOutcome};
