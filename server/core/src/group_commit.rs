//! Group commit for PutRecord: the puts that arrive while a write is in progress are applied
//! together in the next one, by one writer thread.
//!
//! Each PutRecord on its own costs a hand-off to a blocking thread, a RocksDB write (and with
//! `wal_sync = "always"` an fsync) and the wake-ups in between; under concurrent load those
//! context switches were most of the server's CPU per put (docs/benchmarks.md). Here the writer
//! takes every queued put at once and applies them with [`FeatureStore::write_validated_each`]:
//! one atomic RocksDB write, one WAL append and sync, each put still answered on its own
//! (one for a lagging offline store fails only itself). A put is acknowledged only after the
//! write holding it has committed, as before.
//!
//! Validation (types, limits, identifier, event time) runs on the caller's thread before a put
//! is queued, so the writer does only what must be serialized and an invalid put never waits.
//!
//! An idle server adds no delay: the writer applies whatever is queued as soon as it is free,
//! so a lone put is written alone, at once.
//!
//! Answering a put wakes the task waiting for it; from the writer thread, a wake-up of a task on
//! a gRPC serving thread is a system call (an eventfd write) per put, one per put on the writer's
//! critical path. So a serving thread that runs [`relay_replies`] gets its puts' outcomes in one
//! message per write, and answers them on its own thread, where a wake-up is a queue push.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::{FeatureStore, ValidatedPut};
use quiver_storage::online::WriteOutcome;
use quiver_types::error::{Error, Result};
use quiver_types::model::PutRequest;

/// Most puts applied in one write.
const MAX_GROUP: usize = 512;

type Reply = oneshot::Sender<Result<WriteOutcome>>;

struct Job {
    put: ValidatedPut,
    reply: Reply,
    /// The caller's thread's relay, if it runs one.
    relay: Option<Relay>,
}

/// Carries a write's answers for one thread's puts to that thread.
type Relay = tokio::sync::mpsc::UnboundedSender<Vec<(Reply, Result<WriteOutcome>)>>;

thread_local! {
    static RELAY: std::cell::RefCell<Option<Relay>> = const { std::cell::RefCell::new(None) };
}

/// Has the puts made on this thread answered through one message per write; runs as long as
/// the runtime it is spawned on. Spawn it on a single-threaded runtime (a gRPC serving thread)
/// before that thread's first put.
pub fn relay_replies() -> impl std::future::Future<Output = ()> {
    let (relay, mut batches) = tokio::sync::mpsc::unbounded_channel();
    RELAY.with(|r| *r.borrow_mut() = Some(relay));
    async move {
        while let Some(batch) = batches.recv().await {
            for (reply, outcome) in batch {
                // The caller may have gone (its request was cancelled); the write stands.
                let _ = reply.send(outcome);
            }
        }
    }
}

/// The queue of puts and its writer thread; clones share them. The thread ends (and is joined)
/// when the last clone is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<FeatureStore>,
    queue: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub fn start(store: Arc<FeatureStore>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let writer = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("quiver-writer".into())
                .spawn(move || write_loop(&store, &jobs))?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                queue: Some(queue),
                writer: Some(writer),
            }),
        })
    }

    /// Validates one put here, then has the writer apply it; resolves once it has committed
    /// (or failed).
    pub async fn put_record<N: AsRef<str>>(
        &self,
        group_name: &str,
        put: PutRequest<N>,
    ) -> Result<WriteOutcome> {
        let put = self.inner.store.validate_put(group_name, put)?;
        let (reply, outcome) = oneshot::channel();
        let relay = RELAY.with(|r| r.borrow().clone());
        let job = Job { put, reply, relay };
        let stopped = || Error::unavailable("the server is shutting down");
        let queue = self.inner.queue.as_ref().ok_or_else(stopped)?;
        queue.send(job).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has answered every queued put.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the group-commit writer thread panicked");
        }
    }
}

fn write_loop(store: &FeatureStore, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|job| (Ok(job.put), (job.reply, job.relay)))
            .unzip();
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.write_validated_each(requests)
        }))
        .unwrap_or_else(|_| Err(Error::internal("the write panicked; see the server log")));
        let outcomes: Vec<Result<WriteOutcome>> = match applied {
            Ok(outcomes) => outcomes,
            Err(e) => replies.iter().map(|_| Err(e.clone())).collect(),
        };
        answer(replies.into_iter().zip(outcomes));
    }
}

/// The answers one relaying thread gets in one message.
type RelayedAnswers = Vec<(Reply, Result<WriteOutcome>)>;

/// Sends each outcome: one message per relaying thread, the others directly.
fn answer(answers: impl Iterator<Item = ((Reply, Option<Relay>), Result<WriteOutcome>)>) {
    let mut relayed: Vec<(Relay, RelayedAnswers)> = Vec::new();
    for ((reply, relay), outcome) in answers {
        match relay {
            Some(relay) => match relayed.iter_mut().find(|(r, _)| r.same_channel(&relay)) {
                Some((_, batch)) => batch.push((reply, outcome)),
                None => relayed.push((relay, vec![(reply, outcome)])),
            },
            // The caller may have gone (its request was cancelled); the write stands.
            None => {
                let _ = reply.send(outcome);
            }
        }
    }
    for (relay, batch) in relayed {
        // A relay ends with its thread's runtime, whose puts then have nobody to answer.
        let _ = relay.send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{open, put, spec};
    use quiver_types::model::Value;
    use quiver_types::time::ManualClock;

    const START_MS: i64 = 1_700_000_000_000;

    /// Many concurrent puts, grouped: each is answered with its own outcome, an invalid one fails
    /// alone, and the store ends with the newest record per identifier.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_are_grouped_and_answered_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path(), ManualClock::new(START_MS)));
        store.create_feature_group(spec(None, true)).unwrap();
        let commits = GroupCommit::start(store.clone()).unwrap();

        let mut tasks = Vec::new();
        for n in 0..400_i64 {
            let commits = commits.clone();
            tasks.push(tokio::spawn(async move {
                // 20 identifiers, each written 20 times at distinct event times.
                let (group, mut request) = put(n % 20, START_MS - 1_000_000 + n * 1000);
                if n % 50 == 7 {
                    request.record[2].1 = Value::Integral(n); // `v` is a String feature
                }
                (n, commits.put_record(&group, request).await)
            }));
        }
        for task in tasks {
            let (n, outcome) = task.await.unwrap();
            if n % 50 == 7 {
                let e = outcome.unwrap_err();
                assert!(e.message().contains("'v'"), "{n}: {e}");
            } else {
                // Every valid put is newer than the ones before it for its identifier, but
                // concurrent puts may be applied in either order.
                assert!(outcome.is_ok(), "{n}: {outcome:?}");
            }
        }
        for id in 0..20_i64 {
            let newest = (0..400_i64)
                .filter(|n| n % 20 == id && n % 50 != 7)
                .max()
                .unwrap();
            let view = store
                .get_record("g", &id.to_string(), &[])
                .unwrap()
                .unwrap();
            let ts = view.values().unwrap()[1].1.clone();
            let expected = (START_MS - 1_000_000 + newest * 1000) as f64 / 1000.0;
            assert_eq!(ts, Value::Fractional(expected), "identifier {id}");
        }
        drop(commits);
        assert_eq!(Arc::strong_count(&store), 1, "the writer thread has ended");
    }

    /// On a thread that relays its replies, as the gRPC serving threads do, every put is
    /// answered with its own outcome, and puts from another thread are answered directly.
    #[test]
    fn relayed_replies_reach_each_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path(), ManualClock::new(START_MS)));
        store.create_feature_group(spec(None, true)).unwrap();
        let commits = GroupCommit::start(store.clone()).unwrap();
        let elsewhere = {
            let commits = commits.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let (group, request) = put(1000, START_MS);
                    commits.put_record(&group, request).await
                })
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::spawn(relay_replies());
            let puts = (0..200_i64).map(|n| {
                let commits = commits.clone();
                tokio::spawn(async move {
                    let (group, mut request) = put(n, START_MS + n);
                    if n % 40 == 3 {
                        request.record[2].1 = Value::Integral(n); // `v` is a String feature
                    }
                    (n, commits.put_record(&group, request).await)
                })
            });
            for task in puts.collect::<Vec<_>>() {
                let (n, outcome) = task.await.unwrap();
                if n % 40 == 3 {
                    assert!(outcome.unwrap_err().message().contains("'v'"), "{n}");
                } else {
                    assert_eq!(outcome.unwrap(), WriteOutcome::Applied, "{n}");
                }
            }
        });
        assert_eq!(elsewhere.join().unwrap().unwrap(), WriteOutcome::Applied);
        for id in (0..200_i64).filter(|n| n % 40 != 3).chain([1000]) {
            assert!(
                store
                    .get_record("g", &id.to_string(), &[])
                    .unwrap()
                    .is_some()
            );
        }
    }
}
