//! The recipe document: a versioned JSON list of typed steps over a source. This module owns the
//! format (what a user writes, what the server stores and lists) and the checks that need no data
//! (names, counts, fractions); the checks against the table's columns are the compiler's
//! (`compile.rs`), which sees each step's input.
//!
//! Steps that learn from data (fill values, bounds, encodings, scales, bin edges, time cuts) keep
//! what they learned in the step's `learned` field: a recipe run once is stored fitted, and a
//! replay on new data applies the same transformation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result, quote};

/// The recipe format this server writes; older versions are converted on load (there are none yet).
pub const FORMAT_VERSION: u32 = 1;
/// At most this many steps in a recipe.
pub const MAX_STEPS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The format's version ([`FORMAT_VERSION`]).
    #[serde(default = "format_version")]
    pub format: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The table the first step reads.
    pub source: Source,
    pub steps: Vec<Step>,
}

fn format_version() -> u32 {
    FORMAT_VERSION
}

/// Where a recipe's data comes from; the host resolves it into a table (and authorizes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A CSV, Parquet or JSON (newline-delimited) file or folder: `file:///path`, a path, or
    /// `s3://bucket/key`. The format is the extension's unless named.
    File {
        uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<FileFormat>,
    },
    /// A feature group's latest records, or its offline history (`history: true`).
    FeatureGroup {
        name: String,
        #[serde(default)]
        history: bool,
    },
    /// An SQL query over the offline store.
    Query { sql: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Csv,
    Parquet,
    Json,
}

impl FileFormat {
    /// The format a file's name says, if it says one.
    pub fn of_path(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        let lower = lower.trim_end_matches('/');
        [
            (".csv", Self::Csv),
            (".parquet", Self::Parquet),
            (".json", Self::Json),
            (".jsonl", Self::Json),
            (".ndjson", Self::Json),
        ]
        .into_iter()
        .find(|(ext, _)| lower.ends_with(ext))
        .map(|(_, f)| f)
    }
}

/// One transform. Every field a step names is checked against its input table when the recipe
/// is compiled, and a failure names the step (by position and kind) and the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Joins another source on key columns. The other side's columns that clash with this
    /// table's get `suffix` (default `_right`), except the keys of an inner or left join.
    Join {
        with: Source,
        how: JoinKind,
        on: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suffix: Option<String>,
    },
    /// Appends another source's rows (columns matched by name; missing ones are null).
    Concat {
        with: Source,
    },
    Select {
        columns: Vec<String>,
    },
    Drop {
        columns: Vec<String>,
    },
    Rename {
        columns: BTreeMap<String, String>,
    },
    /// Casts columns to `string`, `integer` (int64), `int32`, `double`, `float`, `boolean`,
    /// `timestamp` or `date`. Values that do not convert become null (`on_error: "null"`, the
    /// default, counted as invalid by the report) or fail the run (`"fail"`).
    Cast {
        columns: BTreeMap<String, String>,
        #[serde(default)]
        on_error: OnError,
    },
    /// Puts these columns first, in this order; the rest keep theirs.
    Reorder {
        columns: Vec<String>,
    },
    /// Keeps the rows where an SQL expression is true.
    Filter {
        expression: String,
    },
    Sort {
        by: Vec<SortKey>,
    },
    /// Keeps one row per key (all columns when `key` is empty): the first or last by `order_by`
    /// (any one when it is not given).
    Deduplicate {
        #[serde(default)]
        key: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_by: Option<String>,
        #[serde(default)]
        keep: Keep,
    },
    /// Missing values: drop the rows, fill them, or add an indicator column (`<column>_missing`).
    Missing {
        columns: Vec<String>,
        action: MissingAction,
        /// `fill_constant`'s value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<serde_json::Value>,
        /// `forward_fill`: the series key and its time order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        key: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<String>,
        /// `fill_mean` / `fill_median` / `fill_mode`: each column's fill value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learned: Option<BTreeMap<String, serde_json::Value>>,
    },
    /// Values beyond bounds: clipped to them or their rows removed. `std_dev`: mean ± t·std
    /// (t = 3); `robust`: median ± t·RSTD, RSTD the standard deviation of the values clipped to
    /// their 5th and 95th percentiles (t = 5, Data Wrangler's definition); `quantile`: the
    /// `lower` and `upper` quantiles (0.01, 0.99).
    Outliers {
        columns: Vec<String>,
        method: OutlierMethod,
        action: OutlierAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper: Option<f64>,
        /// Each column's [low, high] bounds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learned: Option<BTreeMap<String, [f64; 2]>>,
    },
    /// Categories as numbers. `ordinal`: each level's index by frequency (unseen: -1);
    /// `one_hot`: a 0/1 column per level (`<column>_<level>`) for the `max_levels` commonest
    /// (default 20), the rest in `<column>_other`; `frequency`: the level's share of rows
    /// (unseen: 0); `target_mean`: the target's mean for the level, smoothed towards the overall
    /// mean, fitted out of fold (each row's value from the other `folds` folds) so that a model
    /// trained on the output does not see its own target.
    Encode {
        columns: Vec<String>,
        method: EncodeMethod,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_levels: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        folds: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        smoothing: Option<f64>,
        /// Keep the original column beside its encoding.
        #[serde(default)]
        keep_original: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learned: Option<BTreeMap<String, Encoding>>,
    },
    /// `standard`: (x − mean) / std; `min_max`: (x − min) / (max − min); `robust`:
    /// (x − median) / IQR.
    Scale {
        columns: Vec<String>,
        method: ScaleMethod,
        /// Each column's [center, scale].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learned: Option<BTreeMap<String, [f64; 2]>>,
    },
    /// A bin number (0 to bins − 1) in `<column>_bin`: bins of equal width or equal counts.
    Bin {
        columns: Vec<String>,
        method: BinMethod,
        bins: usize,
        /// Each column's interior edges.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learned: Option<BTreeMap<String, Vec<f64>>>,
    },
    /// Parts of a date or timestamp as columns `<column>_<part>`, and cyclic parts as
    /// `<column>_<part>_sin` / `_cos`.
    Datetime {
        column: String,
        #[serde(default)]
        parts: Vec<DatePart>,
        #[serde(default)]
        cyclic: Vec<DatePart>,
    },
    /// Text statistics as columns `<column>_length` / `<column>_words`.
    TextStats {
        columns: Vec<String>,
        stats: Vec<TextStat>,
    },
    /// Rewrites text in place: lower / upper case, trimmed.
    Text {
        columns: Vec<String>,
        operation: TextOperation,
    },
    /// A regular expression's capture `group` (default 1; 0 is the whole match) of `column`,
    /// into `output` (null where it does not match).
    RegexExtract {
        column: String,
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<usize>,
        output: String,
    },
    /// Replaces every match of a regular expression in place (`$1` names a group).
    RegexReplace {
        column: String,
        pattern: String,
        replacement: String,
    },
    /// Fields of a JSON text column as text columns: output name to path (`a.b`, `items.0.id`).
    ParseJson {
        column: String,
        fields: BTreeMap<String, String>,
    },
    /// A row per element of a list column (rows with an empty or null list are dropped).
    Explode {
        column: String,
    },
    /// Earlier values in each key's time order, as `<column>_lag_<n>`.
    Lag {
        columns: Vec<String>,
        key: Vec<String>,
        time: String,
        lags: Vec<u32>,
    },
    /// Aggregates over each row's last `window` rows (itself included) in its key's time order,
    /// as `<column>_rolling_<function>_<window>`.
    Rolling {
        columns: Vec<String>,
        key: Vec<String>,
        time: String,
        window: u32,
        functions: Vec<Aggregate>,
    },
    /// Aggregates by key: a table of one row per key, or (`append: true`) the key's aggregates
    /// added to each of its rows.
    GroupBy {
        key: Vec<String>,
        aggregates: Vec<AggregateColumn>,
        #[serde(default)]
        append: bool,
    },
    /// `first`: the first `rows`; `random`: a `fraction` (or `rows`) chosen by a seeded hash
    /// of each row, the same every run; `stratified`: the same fraction of each value of
    /// `column`.
    Sample {
        method: SampleMethod,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fraction: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<String>,
        #[serde(default)]
        seed: u64,
    },
    /// Labels each row with the split it falls in (column `output`, default `split`):
    /// `random` by a seeded hash of the row, `key` by a hash of `column` (a key's rows stay
    /// together), `time` by `column`'s value (earliest rows first; the cut times are learned).
    Split {
        method: SplitMethod,
        /// Split names and their shares of the rows, in order (shares summing to 1).
        splits: Vec<(String, f64)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        #[serde(default)]
        seed: u64,
        /// `time`: the cut values (as text) between consecutive splits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learned: Option<Vec<String>>,
    },
    /// Any SQL query over the current table, which it names `input`.
    Sql {
        query: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Semi,
    Anti,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Null,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    pub column: String,
    #[serde(default)]
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    #[default]
    First,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingAction {
    Drop,
    FillConstant,
    FillMean,
    FillMedian,
    FillMode,
    ForwardFill,
    Indicator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierMethod {
    StdDev,
    Robust,
    Quantile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierAction {
    Clip,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodeMethod {
    Ordinal,
    OneHot,
    Frequency,
    TargetMean,
}

/// What an encoding learned of one column: its levels (commonest first) and each level's value
/// (frequency or smoothed target mean; empty for ordinal and one-hot), and the value of a level
/// it did not see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoding {
    pub levels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen: Option<f64>,
    /// One-hot: there were more levels than the cap (an `_other` column exists).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub other: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMethod {
    Standard,
    MinMax,
    Robust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinMethod {
    EqualWidth,
    Quantile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    DayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    Second,
    Epoch,
}

impl DatePart {
    pub fn name(self) -> &'static str {
        match self {
            Self::Year => "year",
            Self::Quarter => "quarter",
            Self::Month => "month",
            Self::Week => "week",
            Self::Day => "day",
            Self::DayOfWeek => "day_of_week",
            Self::DayOfYear => "day_of_year",
            Self::Hour => "hour",
            Self::Minute => "minute",
            Self::Second => "second",
            Self::Epoch => "epoch",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextStat {
    Length,
    Words,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextOperation {
    Lower,
    Upper,
    Trim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    StdDev,
    Median,
    CountDistinct,
}

impl Aggregate {
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Min => "min",
            Self::Max => "max",
            Self::StdDev => "std_dev",
            Self::Median => "median",
            Self::CountDistinct => "count_distinct",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateColumn {
    pub column: String,
    pub function: Aggregate,
    /// The output column's name (default `<column>_<function>`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleMethod {
    First,
    Random,
    Stratified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    Random,
    Key,
    Time,
}

impl Step {
    /// The step's kind as written in a recipe (`fill_missing`, `one_hot` ...), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Concat { .. } => "concat",
            Self::Select { .. } => "select",
            Self::Drop { .. } => "drop",
            Self::Rename { .. } => "rename",
            Self::Cast { .. } => "cast",
            Self::Reorder { .. } => "reorder",
            Self::Filter { .. } => "filter",
            Self::Sort { .. } => "sort",
            Self::Deduplicate { .. } => "deduplicate",
            Self::Missing { .. } => "missing",
            Self::Outliers { .. } => "outliers",
            Self::Encode { .. } => "encode",
            Self::Scale { .. } => "scale",
            Self::Bin { .. } => "bin",
            Self::Datetime { .. } => "datetime",
            Self::TextStats { .. } => "text_stats",
            Self::Text { .. } => "text",
            Self::RegexExtract { .. } => "regex_extract",
            Self::RegexReplace { .. } => "regex_replace",
            Self::ParseJson { .. } => "parse_json",
            Self::Explode { .. } => "explode",
            Self::Lag { .. } => "lag",
            Self::Rolling { .. } => "rolling",
            Self::GroupBy { .. } => "group_by",
            Self::Sample { .. } => "sample",
            Self::Split { .. } => "split",
            Self::Sql { .. } => "sql",
        }
    }

    /// The other source a join or concatenation reads.
    pub fn other_source(&self) -> Option<&Source> {
        match self {
            Self::Join { with, .. } | Self::Concat { with } => Some(with),
            _ => None,
        }
    }

    /// Forgets what the step learned, so that the next run fits it again.
    pub fn forget(&mut self) {
        match self {
            Self::Missing { learned, .. } => *learned = None,
            Self::Outliers { learned, .. } | Self::Scale { learned, .. } => *learned = None,
            Self::Encode { learned, .. } => *learned = None,
            Self::Bin { learned, .. } => *learned = None,
            Self::Split { learned, .. } => *learned = None,
            _ => {}
        }
    }
}

/// A recipe name: 1 to 63 letters, digits and hyphens, starting with a letter or digit (as a
/// SageMaker resource name).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "name {}: a recipe name is 1 to 63 letters, digits and hyphens, not starting with a hyphen",
            quote(name)
        )))
    }
}

impl Recipe {
    /// Reads a recipe document, naming the field that is wrong (`steps[2].action: unknown
    /// variant ...`).
    pub fn from_json(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let recipe: Recipe = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            let path = step_field(text, &path, &message).unwrap_or(path);
            Error::validation(format!("{path}: {message}"))
        })?;
        recipe.check()?;
        Ok(recipe)
    }

    pub fn to_json(&self) -> String {
        // A recipe is plain data (strings, numbers, maps with string keys): it always serializes.
        serde_json::to_string_pretty(self).expect("a recipe serializes")
    }

    /// The checks that need no data.
    pub fn check(&self) -> Result<()> {
        if self.format != FORMAT_VERSION {
            return Err(Error::validation(format!(
                "format: version {} is not one this server reads (it reads {FORMAT_VERSION})",
                self.format
            )));
        }
        check_name(&self.name)?;
        if self.steps.len() > MAX_STEPS {
            return Err(Error::validation(format!(
                "steps: {} steps, more than the {MAX_STEPS} a recipe may have",
                self.steps.len()
            )));
        }
        check_source("source", &self.source)?;
        for (i, step) in self.steps.iter().enumerate() {
            step.check()
                .map_err(|e| Error::validation(format!("{}: {}", at(i, step), e.message())))?;
        }
        Ok(())
    }

    /// Forgets everything the steps learned.
    pub fn forget(&mut self) {
        self.steps.iter_mut().for_each(Step::forget);
    }
}

/// A step's fields are read through its `step` tag, which loses their path: for an unknown
/// variant (`unknown variant `sideways``), the field of the step at `path` that holds that
/// value (`steps[0].method`).
fn step_field(text: &str, path: &str, message: &str) -> Option<String> {
    let index: usize = path
        .strip_prefix("steps[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    let value = message
        .strip_prefix("unknown variant `")?
        .split('`')
        .next()?;
    let doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let step = doc.get("steps")?.get(index)?.as_object()?;
    let field = step
        .iter()
        .find(|(key, v)| key.as_str() != "step" && v.as_str() == Some(value))?
        .0;
    Some(format!("{path}.{field}"))
}

/// How messages name step `i`: `steps[3] (encode)`.
pub fn at(i: usize, step: &Step) -> String {
    format!("steps[{i}] ({})", step.kind())
}

fn check_source(field: &str, source: &Source) -> Result<()> {
    let empty = match source {
        Source::File { uri, .. } => uri.trim().is_empty(),
        Source::FeatureGroup { name, .. } => name.trim().is_empty(),
        Source::Query { sql } => sql.trim().is_empty(),
    };
    if empty {
        return Err(Error::validation(format!("{field}: empty")));
    }
    Ok(())
}

fn nonempty<T>(field: &str, items: &[T]) -> Result<()> {
    if items.is_empty() {
        Err(Error::validation(format!("{field}: names no column")))
    } else {
        Ok(())
    }
}

fn fraction(field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{field}: {value} is not a fraction in (0, 1]"
        )))
    }
}

impl Step {
    fn check(&self) -> Result<()> {
        match self {
            Self::Join {
                with, on, suffix, ..
            } => {
                check_source("with", with)?;
                nonempty("on", on)?;
                if suffix.as_deref() == Some("") {
                    return Err(Error::validation("suffix: empty"));
                }
            }
            Self::Concat { with } => check_source("with", with)?,
            Self::Select { columns } | Self::Reorder { columns } | Self::Drop { columns } => {
                nonempty("columns", columns)?
            }
            Self::Rename { columns } | Self::Cast { columns, .. } => {
                if columns.is_empty() {
                    return Err(Error::validation("columns: names no column"));
                }
            }
            Self::Filter { expression } => {
                if expression.trim().is_empty() {
                    return Err(Error::validation("expression: empty"));
                }
            }
            Self::Sort { by } => nonempty("by", by)?,
            Self::Deduplicate { .. } => {}
            Self::Missing {
                columns,
                action,
                value,
                time,
                ..
            } => {
                nonempty("columns", columns)?;
                match action {
                    MissingAction::FillConstant => match value {
                        None | Some(serde_json::Value::Null) => {
                            return Err(Error::validation(
                                "value: fill_constant needs a value to fill with",
                            ));
                        }
                        Some(serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
                            return Err(Error::validation(
                                "value: a fill value is a number, a string or a boolean",
                            ));
                        }
                        _ => {}
                    },
                    MissingAction::ForwardFill if time.is_none() => {
                        return Err(Error::validation(
                            "time: forward_fill needs the column that orders the rows",
                        ));
                    }
                    _ => {}
                }
            }
            Self::Outliers {
                columns,
                method,
                threshold,
                lower,
                upper,
                ..
            } => {
                nonempty("columns", columns)?;
                if let Some(t) = threshold
                    && !(t.is_finite() && *t > 0.0)
                {
                    return Err(Error::validation(format!(
                        "threshold: {t} is not a positive number"
                    )));
                }
                if *method == OutlierMethod::Quantile {
                    let (lo, hi) = (lower.unwrap_or(0.01), upper.unwrap_or(0.99));
                    if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo >= hi {
                        return Err(Error::validation(format!(
                            "lower, upper: {lo} and {hi} are not quantiles with lower < upper"
                        )));
                    }
                }
            }
            Self::Encode {
                columns,
                method,
                max_levels,
                target,
                folds,
                smoothing,
                ..
            } => {
                nonempty("columns", columns)?;
                if *max_levels == Some(0) {
                    return Err(Error::validation("max_levels: 0; at least 1"));
                }
                if *method == EncodeMethod::TargetMean && target.is_none() {
                    return Err(Error::validation(
                        "target: target_mean needs the target column",
                    ));
                }
                if let Some(k) = folds
                    && !(2..=20).contains(k)
                {
                    return Err(Error::validation(format!("folds: {k}; 2 to 20")));
                }
                if let Some(s) = smoothing
                    && !(s.is_finite() && *s >= 0.0)
                {
                    return Err(Error::validation(format!(
                        "smoothing: {s} is not a number of rows >= 0"
                    )));
                }
            }
            Self::Scale { columns, .. } => nonempty("columns", columns)?,
            Self::Bin { columns, bins, .. } => {
                nonempty("columns", columns)?;
                if !(2..=1000).contains(bins) {
                    return Err(Error::validation(format!("bins: {bins}; 2 to 1000")));
                }
            }
            Self::Datetime { parts, cyclic, .. } => {
                if parts.is_empty() && cyclic.is_empty() {
                    return Err(Error::validation("parts, cyclic: name at least one part"));
                }
                if let Some(p) = cyclic
                    .iter()
                    .find(|p| matches!(p, DatePart::Year | DatePart::Epoch))
                {
                    return Err(Error::validation(format!(
                        "cyclic: {} does not repeat",
                        p.name()
                    )));
                }
            }
            Self::TextStats { columns, stats } => {
                nonempty("columns", columns)?;
                if stats.is_empty() {
                    return Err(Error::validation("stats: names no statistic"));
                }
            }
            Self::Text { columns, .. } => nonempty("columns", columns)?,
            Self::RegexExtract { pattern, .. } | Self::RegexReplace { pattern, .. } => {
                if pattern.is_empty() {
                    return Err(Error::validation("pattern: empty"));
                }
            }
            Self::ParseJson { fields, .. } => {
                if fields.is_empty() {
                    return Err(Error::validation("fields: names no field"));
                }
            }
            Self::Explode { .. } => {}
            Self::Lag { columns, lags, .. } => {
                nonempty("columns", columns)?;
                if lags.is_empty() || lags.contains(&0) {
                    return Err(Error::validation(
                        "lags: list the lags, each at least 1 row",
                    ));
                }
            }
            Self::Rolling {
                columns,
                window,
                functions,
                ..
            } => {
                nonempty("columns", columns)?;
                if *window == 0 {
                    return Err(Error::validation("window: 0 rows; at least 1"));
                }
                if functions.is_empty() {
                    return Err(Error::validation("functions: names no aggregate"));
                }
            }
            Self::GroupBy {
                key, aggregates, ..
            } => {
                nonempty("key", key)?;
                if aggregates.is_empty() {
                    return Err(Error::validation("aggregates: names no aggregate"));
                }
            }
            Self::Sample {
                method,
                rows,
                fraction: share,
                column,
                ..
            } => {
                match (method, rows, share) {
                    (SampleMethod::First, None, _) => {
                        return Err(Error::validation("rows: first needs a number of rows"));
                    }
                    (SampleMethod::Random, None, None) | (SampleMethod::Stratified, _, None) => {
                        return Err(Error::validation(
                            "fraction: the share of rows to keep, in (0, 1]",
                        ));
                    }
                    _ => {}
                }
                if let Some(f) = share {
                    fraction("fraction", *f)?;
                }
                if *method == SampleMethod::Stratified && column.is_none() {
                    return Err(Error::validation(
                        "column: stratified sampling needs the column whose values it keeps in proportion",
                    ));
                }
            }
            Self::Split {
                method,
                splits,
                column,
                output,
                ..
            } => {
                if splits.len() < 2 {
                    return Err(Error::validation("splits: at least two"));
                }
                for (name, share) in splits {
                    if name.is_empty() {
                        return Err(Error::validation("splits: a split without a name"));
                    }
                    fraction(&format!("splits.{name}"), *share)?;
                }
                let total: f64 = splits.iter().map(|(_, s)| s).sum();
                if (total - 1.0).abs() > 1e-9 {
                    return Err(Error::validation(format!(
                        "splits: the shares sum to {total}, not 1"
                    )));
                }
                if *method != SplitMethod::Random && column.is_none() {
                    return Err(Error::validation(
                        "column: a split by key or time needs its column",
                    ));
                }
                if output.as_deref() == Some("") {
                    return Err(Error::validation("output: empty"));
                }
            }
            Self::Sql { query } => {
                if query.trim().is_empty() {
                    return Err(Error::validation("query: empty"));
                }
            }
        }
        Ok(())
    }
}
