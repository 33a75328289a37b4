//! The `quiver` command-line tool's parts: reading SageMaker-shaped specs ([`spec`]), reading
//! CSV and Parquet rows ([`rows`]), inferring feature definitions ([`infer`]), converting cells
//! to typed values ([`values`]), bulk ingest ([`ingest`]), printing results ([`output`]) and
//! administering principals and policies ([`auth`]).

pub mod auth;
pub mod infer;
pub mod ingest;
pub mod output;
pub mod rows;
pub mod spec;
pub mod values;
