//! Quiver's stream ingest: workers that read Kafka topics and Kinesis streams and write their
//! messages into a feature group, exactly once in both stores.
//!
//! Where things live: the configuration in [`config`]; the one error type in [`error`]; payload-to-record mapping in
//! [`mapping`]; batching, dead letters and the write with positions in [`worker`] (shared by
//! every source), over [`sink`] (the server's API) and [`dead_letter`]; Kafka's consumer-group
//! side in [`kafka`]; Kinesis shards and resharding in [`kinesis`]. [`run`] runs a
//! configuration's sources, for the `quiver-ingest` binary and inside `quiver-server`.

pub mod config;
pub mod dead_letter;
pub mod error;
pub mod kafka;
pub mod kinesis;
pub mod kinesis_client;
pub mod mapping;
pub mod sink;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::SourceConfig;
use crate::error::IngestError;
use crate::sink::SharedSink;
use crate::worker::Pipeline;

/// What to do when a source's worker fails (a missing feature group, a stream that is not
/// there, access denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop every source and return the error (the standalone worker: its supervisor restarts
    /// it).
    Stop,
    /// Log it and start the source again, after this long at first, doubling to a minute
    /// (inside the server, which keeps serving).
    Restart(Duration),
}

/// Runs one worker per source against `sink` until `shutdown` turns true (each writes the
/// batch in hand first).
pub async fn run(
    sources: Vec<SourceConfig>,
    sink: SharedSink,
    shutdown: watch::Receiver<bool>,
    on_failure: OnFailure,
) -> Result<(), IngestError> {
    let mut workers = tokio::task::JoinSet::new();
    for source in sources {
        let (sink, mut shutdown) = (sink.clone(), shutdown.clone());
        workers.spawn(async move {
            let mut wait = match on_failure {
                OnFailure::Restart(first) => first,
                OnFailure::Stop => Duration::ZERO,
            };
            loop {
                let result = run_source(&source, sink.clone(), shutdown.clone()).await;
                match (result, on_failure) {
                    (Ok(()), _) => return Ok(()),
                    (Err(e), OnFailure::Stop) => return Err(e),
                    (Err(e), OnFailure::Restart(_)) => {
                        tracing::error!("{e}; starting the source again in {wait:?}");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                        }
                        wait = (wait * 2).min(Duration::from_secs(60));
                    }
                }
            }
        });
    }
    let mut failed = None;
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("{e}");
                failed.get_or_insert(e);
            }
            Err(e) => {
                failed.get_or_insert(IngestError::Task(e.to_string()));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

async fn run_source(
    source: &SourceConfig,
    sink: SharedSink,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    // Waiting for the server (or the group) must not hold a shutdown up.
    let pipeline = tokio::select! {
        pipeline = Pipeline::new(source, sink) => Arc::new(pipeline?),
        _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
    };
    match (&source.kafka, &source.kinesis) {
        (Some(kafka), _) => kafka::run(source, kafka, pipeline, shutdown).await,
        (None, Some(kinesis)) => kinesis::run(source, kinesis, pipeline, shutdown).await,
        (None, None) => Err(IngestError::Config(format!(
            "source {:?} names no stream",
            source.name
        ))),
    }
}
