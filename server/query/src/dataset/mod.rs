//! Training datasets: a base table joined with feature groups' histories, point-in-time
//! correct when asked, with the options of the SageMaker SDK's DatasetBuilder plus a maximum
//! feature age (Feast's TTL lookback). Written as Parquet with a manifest.
//!
//! A build ([`plan`], then [`run`]) takes the joined groups in turn: the base rows, sorted by
//! the group's identifier, are merged with the group's history in (identifier, event time)
//! order, in one streaming pass ([`pit_merge`]): the history indexed in memory when it fits,
//! else sorted with spilling within the query memory budget (`query_memory_mb`), so inputs
//! larger than memory complete.
//!
//! The rules are the SageMaker SDK's DatasetBuilder's (its generated SQL, compared row for row
//! in `tests/tests/datasets.rs`). "Ordered" means by event time, then `api_invocation_time`,
//! then `write_time` (rows not yet in a file last). Per joined group, in this order:
//! 1. `as_of`: only rows written (`write_time`) at or before it;
//! 2. the event-time range: only rows whose event time is within it (both ends inclusive);
//!    delete markers outside it still count unless it has both ends; base rows whose time is
//!    outside it are left out;
//! 3. delete markers never match; unless deleted records are included, the identifier's latest
//!    marker hides every row ordered at or before it;
//! 4. unless duplicates are included: one row per (identifier, event time), the latest
//!    `api_invocation_time`, then `write_time`;
//! 5. the join: each base row with the rows of its identifier; point-in-time, only those with
//!    event time at or before the base row's; with a maximum age, only those at most that much
//!    older than the base row;
//! 6. with `most_recent`, per base row only the N latest of those (ordered, descending).
//!
//! Every base row is kept (a left join) unless `inner_join`: one without a match has nulls for
//! the group's features; one with several matches appears once per match (per group). Last,
//! with `most_recent_per_identifier` (the SDK's `number_of_recent_records`), per base
//! identifier only the N rows with the latest base time, then latest matched event times.

mod plan;
mod request;
mod run;
#[cfg(test)]
mod tests;

pub use plan::*;
pub use request::*;
pub use run::*;
