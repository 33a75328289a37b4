//! Automatic cleaning: from a table and its target to the features the learners train on,
//! each step reported as Canvas reports it, and kept as a [`Recipe`] that turns any later
//! table (a batch to predict, one record, the online store's record) into the same features.
//!
//! Steps, in order: columns chosen (the caller's, less the record identifier and event time
//! unless named); duplicate rows removed; constant and identifier-like columns dropped; dates
//! expanded into parts; text kept as categories (the most frequent levels, the rest as one
//! "other" level); outliers clipped (beyond three interquartile ranges of the quartiles).
//! Missing values stay missing: gradient boosting splits on them, and the linear models impute
//! them (with an indicator) themselves.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result, quote};

use crate::frame::{Column, ColumnKind, Frame};
use crate::problem::Target;

/// The most levels a category keeps; rarer ones become one "other" level.
pub const MAX_LEVELS: usize = 200;
/// A text column whose values are nearly all distinct is an identifier, not a feature.
const IDENTIFIER_DISTINCT_SHARE: f64 = 0.95;
/// Beyond how many interquartile ranges from the quartiles a value is clipped.
const OUTLIER_IQRS: f64 = 3.0;

/// What the caller says about the columns.
#[derive(Debug, Clone, Default)]
pub struct ColumnChoice {
    /// Only these columns (with the target), when given.
    pub use_columns: Option<Vec<String>>,
    /// Never these.
    pub drop_columns: Vec<String>,
    /// Dropped unless named in `use_columns`: a feature group's record identifier and event
    /// time, which identify rows rather than describe them.
    pub identifying: Vec<String>,
}

/// One cleaning step, as the data report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `ColumnsChosen`, `DuplicateRowsRemoved`, `ConstantColumnDropped`,
    /// `IdentifierColumnDropped`, `DateExpanded`, `RareLevelsGrouped`, `OutliersClipped`,
    /// `MissingValues`, `MissingTargetRowsRemoved`.
    pub step: String,
    /// The column concerned, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub detail: String,
}

/// How one feature is made from its source column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Transform {
    /// The number, clipped to `[low, high]` when outliers were found.
    Number { clip: Option<(f64, f64)> },
    /// The category's code among the training levels; unseen levels become `other` (or
    /// missing without one).
    Category {
        levels: Vec<String>,
        other: Option<usize>,
    },
    /// A part of a date or time.
    DatePart(DatePart),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatePart {
    Year,
    Month,
    Day,
    Weekday,
    Hour,
    EpochSeconds,
}

/// A feature of the trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    /// The column of the input it is made from.
    pub source: String,
    pub transform: Transform,
}

impl Feature {
    pub fn is_categorical(&self) -> bool {
        matches!(self.transform, Transform::Category { .. })
    }
}

/// Turns a table into the model's features, the same way at training and prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub features: Vec<Feature>,
}

/// The features as learners take them: one column of values per feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub columns: Vec<Vec<f64>>,
    /// Per column: whether its values are category codes.
    pub categorical: Vec<bool>,
}

impl Matrix {
    pub fn take(&self, rows: &[usize]) -> Self {
        Self {
            rows: rows.len(),
            columns: self
                .columns
                .iter()
                .map(|c| rows.iter().map(|&r| c[r]).collect())
                .collect(),
            categorical: self.categorical.clone(),
        }
    }
}

/// What cleaning made of a training table.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub recipe: Recipe,
    pub matrix: Matrix,
    /// The target of the rows kept.
    pub y: Vec<f64>,
    pub steps: Vec<Step>,
}

/// Cleans `frame` for predicting `target`.
pub fn prepare(frame: &Frame, target: &Target, choice: &ColumnChoice) -> Result<Prepared> {
    let mut steps = Vec::new();
    let columns = choose_columns(frame, &target.name, choice, &mut steps)?;
    if target.missing > 0 {
        steps.push(Step {
            step: "MissingTargetRowsRemoved".into(),
            column: Some(target.name.clone()),
            detail: format!(
                "{} rows without a target value were left out",
                target.missing
            ),
        });
    }
    // Rows with a target, duplicates (the same features and target) removed.
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(target.rows.len());
    let mut y = Vec::with_capacity(target.rows.len());
    for (i, &r) in target.rows.iter().enumerate() {
        let key: Vec<u64> = columns
            .iter()
            .map(|c| c.values[r].to_bits())
            .chain(std::iter::once(target.y[i].to_bits()))
            .collect();
        if seen.insert(key) {
            rows.push(r);
            y.push(target.y[i]);
        }
    }
    let duplicates = target.rows.len() - rows.len();
    if duplicates > 0 {
        steps.push(Step {
            step: "DuplicateRowsRemoved".into(),
            column: None,
            detail: format!("{duplicates} rows repeated another row exactly and were removed"),
        });
    }
    let mut features = Vec::new();
    for column in columns {
        let values: Vec<f64> = rows.iter().map(|&r| column.values[r]).collect();
        features.extend(features_of(column, &values, &mut steps));
    }
    if features.is_empty() {
        return Err(Error::validation(format!(
            "no column is left to learn {} from (see the cleaning steps: {})",
            quote(&target.name),
            steps
                .iter()
                .map(|s| format!("{} {}", s.step, s.column.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let recipe = Recipe { features };
    let matrix = recipe.apply(&frame.take(&rows))?;
    Ok(Prepared {
        recipe,
        matrix,
        y,
        steps,
    })
}

fn choose_columns<'a>(
    frame: &'a Frame,
    target: &str,
    choice: &ColumnChoice,
    steps: &mut Vec<Step>,
) -> Result<Vec<&'a Column>> {
    for name in &choice.drop_columns {
        frame.require("DropColumns", name)?;
    }
    if let Some(names) = &choice.use_columns {
        for name in names {
            frame.require("UseColumns", name)?;
        }
    }
    let named = |name: &str| {
        choice
            .use_columns
            .as_ref()
            .is_some_and(|u| u.iter().any(|n| n == name))
    };
    let mut chosen = Vec::new();
    let mut dropped = Vec::new();
    for column in &frame.columns {
        let name = column.name.as_str();
        let keep = name != target
            && !choice.drop_columns.iter().any(|d| d == name)
            && choice.use_columns.as_ref().is_none_or(|_| named(name))
            && (named(name) || !choice.identifying.iter().any(|i| i == name));
        if keep {
            chosen.push(column);
        } else if name != target {
            dropped.push(name);
        }
    }
    steps.push(Step {
        step: "ColumnsChosen".into(),
        column: None,
        detail: format!(
            "{} columns used; {}",
            chosen.len(),
            if dropped.is_empty() {
                "none left out".to_string()
            } else {
                format!("left out: {}", dropped.join(", "))
            }
        ),
    });
    Ok(chosen)
}

/// The features made from one column (none when it is dropped), with their steps.
fn features_of(column: &Column, values: &[f64], steps: &mut Vec<Step>) -> Vec<Feature> {
    let name = &column.name;
    let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let missing = values.len() - present.len();
    if missing > 0 {
        steps.push(Step {
            step: "MissingValues".into(),
            column: Some(name.clone()),
            detail: format!(
                "{missing} of {} values missing ({:.1}%): kept missing for gradient boosting, \
                 imputed with an indicator for linear models",
                values.len(),
                100.0 * missing as f64 / values.len().max(1) as f64
            ),
        });
    }
    let distinct: HashSet<u64> = present.iter().map(|v| v.to_bits()).collect();
    if distinct.len() <= 1 {
        steps.push(Step {
            step: "ConstantColumnDropped".into(),
            column: Some(name.clone()),
            detail: "every row has the same value (or none)".into(),
        });
        return Vec::new();
    }
    let feature = |transform| Feature {
        name: name.clone(),
        source: name.clone(),
        transform,
    };
    match column.kind {
        ColumnKind::Category => {
            if present.len() >= 50
                && distinct.len() as f64 >= IDENTIFIER_DISTINCT_SHARE * present.len() as f64
            {
                steps.push(Step {
                    step: "IdentifierColumnDropped".into(),
                    column: Some(name.clone()),
                    detail: format!(
                        "{} distinct values in {} rows: it names rows rather than describing them",
                        distinct.len(),
                        present.len()
                    ),
                });
                return Vec::new();
            }
            let mut counts: HashMap<usize, usize> = HashMap::new();
            for v in &present {
                *counts.entry(*v as usize).or_default() += 1;
            }
            let mut by_count: Vec<(usize, usize)> = counts.into_iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut levels: Vec<String> = by_count
                .iter()
                .take(MAX_LEVELS)
                .map(|(code, _)| column.levels[*code].clone())
                .collect();
            let other = if by_count.len() > MAX_LEVELS {
                let rare = by_count.len() - MAX_LEVELS;
                steps.push(Step {
                    step: "RareLevelsGrouped".into(),
                    column: Some(name.clone()),
                    detail: format!(
                        "{} levels: the {rare} rarest are grouped as one level",
                        by_count.len()
                    ),
                });
                levels.push("(other)".into());
                Some(levels.len() - 1)
            } else {
                None
            };
            vec![feature(Transform::Category { levels, other })]
        }
        ColumnKind::Time => {
            steps.push(Step {
                step: "DateExpanded".into(),
                column: Some(name.clone()),
                detail: "expanded into year, month, day, weekday and hour, with the time itself"
                    .into(),
            });
            [
                DatePart::Year,
                DatePart::Month,
                DatePart::Day,
                DatePart::Weekday,
                DatePart::Hour,
                DatePart::EpochSeconds,
            ]
            .into_iter()
            .map(|part| Feature {
                name: format!("{name}.{}", part_name(part)),
                source: name.clone(),
                transform: Transform::DatePart(part),
            })
            .collect()
        }
        ColumnKind::Boolean => vec![feature(Transform::Number { clip: None })],
        ColumnKind::Number | ColumnKind::Integer => {
            let clip = outlier_bounds(&present);
            if let Some((low, high)) = clip {
                let clipped = present.iter().filter(|v| **v < low || **v > high).count();
                if clipped > 0 {
                    steps.push(Step {
                        step: "OutliersClipped".into(),
                        column: Some(name.clone()),
                        detail: format!(
                            "{clipped} values outside [{low:.6}, {high:.6}] (3 interquartile ranges beyond the quartiles) clipped to it"
                        ),
                    });
                } else {
                    return vec![feature(Transform::Number { clip: None })];
                }
            }
            vec![feature(Transform::Number { clip })]
        }
    }
}

fn part_name(part: DatePart) -> &'static str {
    match part {
        DatePart::Year => "year",
        DatePart::Month => "month",
        DatePart::Day => "day",
        DatePart::Weekday => "weekday",
        DatePart::Hour => "hour",
        DatePart::EpochSeconds => "epoch_seconds",
    }
}

/// `[Q1 - 3 IQR, Q3 + 3 IQR]`, when the interquartile range is not zero.
fn outlier_bounds(present: &[f64]) -> Option<(f64, f64)> {
    if present.len() < 20 {
        return None;
    }
    let mut sorted = present.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let (q1, q3) = (q(0.25), q(0.75));
    let iqr = q3 - q1;
    (iqr > 0.0).then_some((q1 - OUTLIER_IQRS * iqr, q3 + OUTLIER_IQRS * iqr))
}

impl Recipe {
    /// The features of `frame`'s rows. A source column the frame lacks is refused by name.
    pub fn apply(&self, frame: &Frame) -> Result<Matrix> {
        let mut columns = Vec::with_capacity(self.features.len());
        let mut categorical = Vec::with_capacity(self.features.len());
        let mut remaps: HashMap<&str, Vec<f64>> = HashMap::new();
        for feature in &self.features {
            let source = frame.column(&feature.source).ok_or_else(|| {
                Error::validation(format!(
                    "the model reads column {}, which the data to predict lacks",
                    quote(&feature.source)
                ))
            })?;
            let values = match &feature.transform {
                Transform::Number { clip } => source
                    .values
                    .iter()
                    .map(|v| match clip {
                        Some((low, high)) if !v.is_nan() => v.clamp(*low, *high),
                        _ => *v,
                    })
                    .collect(),
                Transform::Category { levels, other } if source.kind != ColumnKind::Category => {
                    // Numbers or booleans where the model saw text: matched by their text.
                    let other = other.map_or(f64::NAN, |o| o as f64);
                    (0..frame.rows)
                        .map(|r| {
                            if source.values[r].is_nan() {
                                f64::NAN
                            } else {
                                let text = source.display(r);
                                levels
                                    .iter()
                                    .position(|l| *l == text)
                                    .map_or(other, |i| i as f64)
                            }
                        })
                        .collect()
                }
                Transform::Category { levels, other } => {
                    // The frame's own codes, mapped to the training levels by their text.
                    let remap = remaps.entry(feature.source.as_str()).or_insert_with(|| {
                        let index: HashMap<&str, usize> = levels
                            .iter()
                            .enumerate()
                            .map(|(i, l)| (l.as_str(), i))
                            .collect();
                        let other = other.map_or(f64::NAN, |o| o as f64);
                        source
                            .levels
                            .iter()
                            .map(|l| index.get(l.as_str()).map_or(other, |i| *i as f64))
                            .collect()
                    });
                    source
                        .values
                        .iter()
                        .map(|v| if v.is_nan() { *v } else { remap[*v as usize] })
                        .collect()
                }
                Transform::DatePart(part) => {
                    source.values.iter().map(|v| date_part(*v, *part)).collect()
                }
            };
            columns.push(values);
            categorical.push(feature.is_categorical());
        }
        Ok(Matrix {
            rows: frame.rows,
            columns,
            categorical,
        })
    }
}

/// A part of the time `seconds` after the epoch (UTC).
fn date_part(seconds: f64, part: DatePart) -> f64 {
    if seconds.is_nan() {
        return f64::NAN;
    }
    let secs = seconds.floor() as i64;
    let days = secs.div_euclid(86_400);
    match part {
        DatePart::EpochSeconds => seconds,
        DatePart::Hour => (secs.rem_euclid(86_400) / 3_600) as f64,
        // 1970-01-01 was a Thursday; Monday is 0.
        DatePart::Weekday => (days + 3).rem_euclid(7) as f64,
        DatePart::Year | DatePart::Month | DatePart::Day => {
            let (y, m, d) = civil_from_days(days);
            match part {
                DatePart::Year => y as f64,
                DatePart::Month => m as f64,
                _ => d as f64,
            }
        }
    }
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Target;

    fn frame() -> Frame {
        let n = 60;
        let mut time = Column::number(
            "signup",
            (0..n)
                .map(|i| 1_700_000_000.0 + i as f64 * 86_400.0)
                .collect(),
        );
        time.kind = ColumnKind::Time;
        let mut spend: Vec<f64> = (0..n).map(|i| (i % 10) as f64).collect();
        spend[5] = 1_000.0;
        spend[7] = f64::NAN;
        Frame::new(vec![
            Column::category(
                "customer_id",
                (0..n)
                    .map(|i| Some(format!("c{i}")))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|s| s.as_deref()),
            ),
            Column::number("spend", spend),
            Column::number("flat", vec![1.0; n]),
            Column::category(
                "city",
                (0..n).map(|i| Some(if i % 3 == 0 { "Lima" } else { "Oslo" })),
            ),
            time,
            Column::number("churned", (0..n).map(|i| (i % 2) as f64).collect()),
        ])
        .unwrap()
    }

    #[test]
    fn cleaning_drops_expands_clips_and_reports() {
        let frame = frame();
        let target = Target::from_frame(&frame, "churned", None).unwrap();
        let prepared = prepare(&frame, &target, &ColumnChoice::default()).unwrap();
        let names: Vec<&str> = prepared
            .recipe
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "spend",
                "city",
                "signup.year",
                "signup.month",
                "signup.day",
                "signup.weekday",
                "signup.hour",
                "signup.epoch_seconds"
            ]
        );
        let steps: Vec<(&str, Option<&str>)> = prepared
            .steps
            .iter()
            .map(|s| (s.step.as_str(), s.column.as_deref()))
            .collect();
        for expected in [
            ("IdentifierColumnDropped", Some("customer_id")),
            ("ConstantColumnDropped", Some("flat")),
            ("OutliersClipped", Some("spend")),
            ("MissingValues", Some("spend")),
            ("DateExpanded", Some("signup")),
        ] {
            assert!(steps.contains(&expected), "{expected:?} in {steps:?}");
        }
        let spend = &prepared.matrix.columns[0];
        assert!(spend[5] < 1_000.0, "clipped: {}", spend[5]);
        assert!(spend[7].is_nan(), "missing stays missing");
        // 2023-11-14 22:13:20 UTC was a Tuesday.
        let year = &prepared.matrix.columns[2];
        assert_eq!(year[0], 2023.0);
        assert_eq!(prepared.matrix.columns[5][0], 1.0);
        assert_eq!(prepared.matrix.columns[6][0], 22.0);
    }

    #[test]
    fn the_recipe_maps_new_data_by_level_text_and_names_what_is_missing() {
        let frame = frame();
        let target = Target::from_frame(&frame, "churned", None).unwrap();
        let prepared = prepare(
            &frame,
            &target,
            &ColumnChoice {
                use_columns: Some(vec!["city".into()]),
                ..ColumnChoice::default()
            },
        )
        .unwrap();
        let lima = prepared.matrix.columns[0][0];
        // New data whose codes differ: Oslo first, then an unseen city.
        let new = Frame::new(vec![Column::category(
            "city",
            [Some("Oslo"), Some("Lima"), Some("Quito"), None],
        )])
        .unwrap();
        let matrix = prepared.recipe.apply(&new).unwrap();
        assert_eq!(matrix.columns[0][1], lima);
        assert_ne!(matrix.columns[0][0], lima);
        assert!(matrix.columns[0][2].is_nan() && matrix.columns[0][3].is_nan());
        // A number where the model saw text is matched by its text (and refused by nothing).
        let numeric = Frame::new(vec![Column::number("city", vec![7.0])]).unwrap();
        assert!(prepared.recipe.apply(&numeric).unwrap().columns[0][0].is_nan());
        let json: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(r#"[{"city": "Lima"}, {"city": null}, {}]"#).unwrap();
        let rows = Frame::from_json_rows(&json).unwrap();
        let matrix = prepared.recipe.apply(&rows).unwrap();
        assert_eq!(matrix.columns[0][0], lima);
        assert!(matrix.columns[0][1].is_nan() && matrix.columns[0][2].is_nan());
        let bad: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(r#"[{"city": [1]}]"#).unwrap();
        let err = Frame::from_json_rows(&bad).unwrap_err();
        assert!(
            err.message().starts_with("rows[0].city"),
            "{}",
            err.message()
        );
        let err = prepared
            .recipe
            .apply(&Frame::new(vec![Column::number("x", vec![1.0])]).unwrap())
            .unwrap_err();
        assert!(err.message().contains("'city'"), "{}", err.message());
        let err = prepare(
            &frame,
            &target,
            &ColumnChoice {
                drop_columns: vec!["nope".into()],
                ..ColumnChoice::default()
            },
        )
        .unwrap_err();
        assert!(
            err.message().starts_with("DropColumns 'nope'"),
            "{}",
            err.message()
        );
    }
}
