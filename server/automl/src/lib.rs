//! Quiver's AutoML: from a table and the column to predict, the most accurate model a time
//! budget allows, with reports on the data and the model (docs/automl.md).
//!
//! - [`frame`]: the table as learners see it, read from Arrow record batches;
//! - [`problem`]: the target column and the problem type it makes;
//! - [`metrics`]: Autopilot's objective metrics and the others reported;
//! - [`prepare`]: automatic cleaning, reported step by step, and the recipe that repeats it;
//! - [`learners`]: gradient boosting (perpetual), linear models (smartcore) and random trees,
//!   fitted and kept;
//! - [`forest`]: gradient boosting flattened for fast prediction, equal to perpetual's own;
//! - [`random_trees`]: random forests and extra trees, grown here, predicted as flattened
//!   gradient boosting is;
//! - [`search`]: cross-validated candidates within a time budget, and their greedy ensemble;
//! - [`explain`]: feature importance, each feature's mean |SHAP| under the ensemble;
//! - [`report`]: the data exploration and model quality reports;
//! - [`html`]: the reports as one self-contained HTML page with SVG charts;
//! - [`training`]: one build end to end, and the trained model's predictions;
//! - [`jobs`]: builds as background jobs on a bounded pool, their records and models kept as
//!   files, and their data read through the host's [`jobs::DataLoader`].
//!
//! The crate reads no store and speaks no wire format: its host reads the data (a feature
//! group, a training set, a query, a file) into record batches, and serves the APIs. It keeps
//! only its jobs' files, in the directory it is given.

pub mod explain;
pub mod forest;
pub mod frame;
pub mod html;
pub mod jobs;
pub mod learners;
pub mod metrics;
pub mod prepare;
pub mod problem;
pub mod random_trees;
pub mod report;
pub mod search;
pub mod training;
