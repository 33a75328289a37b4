//! Data preparation (Data Wrangler's job, in the server): a recipe is an ordered, versioned list
//! of typed steps over a source that compiles to one DataFusion plan, previews on a sample, and
//! runs on the whole data. Steps that learn from data keep what they learned in the recipe, so
//! a replay on new data transforms it as the first run did.
//!
//! - `recipe.rs`: the document (sources, steps, what steps learned) and its data-free checks;
//! - `compile.rs`: the recipe as a chain of SQL tables, checked and fitted step by step;
//! - `steps/`: each step's SQL;
//! - `report.rs`: the data quality and insights report (AutoML's data exploration reused);
//! - `run.rs`: sources resolved into a recipe's own context, previews and runs;
//! - `store.rs`: stored recipes and their versions;
//! - `runs.rs`: runs in the background into a file or a feature group, exactly once;
//! - `series.rs`: a key's lags, rolling and group aggregates and deduplication computed
//!   natively in a run;
//! - `udf.rs`: the SQL functions recipes use beyond DataFusion's.
//!
//! This crate reads no store itself: the host resolves feature groups and queries ([`Sources`]).

pub mod compile;
pub mod recipe;
pub mod reorder;
pub mod report;
pub mod run;
pub mod runs;
pub mod series;
mod steps;
pub mod store;
pub mod udf;

pub use compile::{Compiled, compile};
pub use recipe::{Recipe, Source, Step};
pub use run::{FileSources, Preview, Sources, preview, run_to_file, start};
