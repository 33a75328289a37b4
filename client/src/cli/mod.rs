//! The `quiver` command-line tool's parts, one module per command family (`main.rs` only
//! parses the arguments and dispatches): feature groups ([`group`]), records ([`records`]),
//! SQL ([`sql`]), training datasets ([`dataset`]), bulk ingest and stream-source status
//! ([`ingest`]), principals and policies ([`auth`]), backups and restores ([`admin`]), the lineage graph ([`lineage`]), AutoML
//! jobs and predictions ([`automl`]); and what
//! they share: reading
//! SageMaker-shaped specs ([`spec`]), reading CSV and Parquet rows ([`rows`]), inferring
//! feature definitions ([`infer`]), converting cells to typed values ([`values`]) and printing
//! results ([`output`]).

pub mod admin;
pub mod auth;
pub mod automl;
pub mod dataset;
pub mod group;
pub mod infer;
pub mod ingest;
pub mod lineage;
pub mod output;
pub mod prep;
pub mod records;
pub mod rows;
pub mod spec;
pub mod sql;
pub mod values;
