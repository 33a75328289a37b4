//! Quiver's AutoML: from a table and the column to predict, the most accurate model a time
//! budget allows, with reports on the data and the model (docs/automl.md).
//!
//! - [`frame`]: the table as learners see it, read from Arrow record batches;
//! - [`problem`]: the target column and the problem type it makes;
//! - [`metrics`]: Autopilot's objective metrics and the others reported;
//! - [`prepare`]: automatic cleaning, reported step by step, and the recipe that repeats it;
//! - [`learners`]: gradient boosting (perpetual) and linear models (smartcore), fitted and kept;
//! - [`search`]: cross-validated candidates within a time budget, and their greedy ensemble;
//! - [`report`]: the data exploration and model quality reports;
//! - [`training`]: one build end to end, and the trained model's predictions.
//!
//! The crate holds no I/O: callers read the data (a feature group, a training set, a query,
//! a file) into record batches and store what it returns.

pub mod frame;
pub mod learners;
pub mod metrics;
pub mod prepare;
pub mod problem;
pub mod report;
pub mod search;
pub mod training;
