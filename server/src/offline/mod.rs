//! The offline store: the history of every accepted write. For now it owns the durable staging
//! area that the write path feeds atomically; the flusher that turns staged rows into Parquet
//! files arrives with the offline-store issue and reads what [`staging`] writes.

pub mod staging;
