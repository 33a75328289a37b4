//! `--rate`: requests offered at a fixed rate (an open loop), as inference traffic arrives.
//!
//! A closed loop (each worker sends its next request when its last is answered) measures the
//! most a server answers, and the latency at that saturation: by Little's law, 50 requests in
//! flight at 60k/s wait 0.83 ms on average whatever the server does with them. Users see the
//! latency at the rate their traffic arrives. The pacer releases the requests due every
//! millisecond (tokio's timer resolution, so they arrive in bursts of rate / 1000), and the
//! workers (at most `--concurrency` in flight) take them in order. A request's latency counts
//! from its release, so when every worker is busy the time it waits for one is part of its
//! latency: a server that falls behind is not excused by the load generator slowing down with
//! it (what Gil Tene calls coordinated omission).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

/// The released requests not yet taken by a worker, oldest first.
pub struct Schedule {
    /// When each was released; `None` tells a worker that the run is over.
    due: Mutex<VecDeque<Option<Instant>>>,
    /// One permit per entry of `due`.
    released: Semaphore,
}

impl Schedule {
    pub fn new() -> Self {
        Self {
            due: Mutex::new(VecDeque::new()),
            released: Semaphore::new(0),
        }
    }

    /// Waits for the next released request and returns when it was released, or `None` once
    /// the run is over and every request released before has been taken.
    pub async fn next(&self) -> Option<Instant> {
        let permit = self.released.acquire().await.ok()?;
        permit.forget();
        let mut due = self.due.lock().expect("pacer queue lock");
        // One permit per entry, so an entry is there.
        due.pop_front().flatten()
    }

    fn release(&self, entries: impl IntoIterator<Item = Option<Instant>>) {
        let mut due = self.due.lock().expect("pacer queue lock");
        let before = due.len();
        due.extend(entries);
        let added = due.len() - before;
        drop(due);
        self.released.add_permits(added);
    }
}

/// Releases `rate` requests per second from `started` until `total` have been released, then
/// tells each of the `workers` to stop.
pub async fn run(
    schedule: std::sync::Arc<Schedule>,
    rate: f64,
    started: Instant,
    total: u64,
    workers: usize,
) {
    let mut released = 0u64;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    // A late tick releases everything due by then; there is no point in catching up ticks.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    while released < total {
        ticks.tick().await;
        let now = Instant::now();
        let due = ((now - started).as_secs_f64() * rate) as u64;
        let due = due.min(total);
        if due > released {
            schedule.release((released..due).map(|_| Some(now)));
            released = due;
        }
    }
    schedule.release((0..workers).map(|_| None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "current_thread")]
    async fn releases_the_rate_then_stops_every_worker() {
        let schedule = Arc::new(Schedule::new());
        let started = Instant::now();
        let pacer = tokio::spawn(run(schedule.clone(), 2000.0, started, 50, 3));
        let mut taken = 0;
        while let Some(due) = schedule.next().await {
            assert!(due >= started);
            taken += 1;
        }
        assert_eq!(taken, 50);
        // 50 requests at 2000/s are released over 25 ms.
        assert!(started.elapsed() >= Duration::from_millis(24));
        // The other two workers are told to stop too.
        assert_eq!(schedule.next().await, None);
        assert_eq!(schedule.next().await, None);
        pacer.await.unwrap();
    }
}
