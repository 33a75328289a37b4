//! What is predicted: the target column's values, the problem type they make (or that the
//! caller chose), and for classification the classes (the positive one last, for binary).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result, quote};

use crate::frame::{ColumnKind, Frame};

/// SageMaker Autopilot's problem types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProblemType {
    Regression,
    BinaryClassification,
    MulticlassClassification,
}

impl ProblemType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Regression => "Regression",
            Self::BinaryClassification => "BinaryClassification",
            Self::MulticlassClassification => "MulticlassClassification",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<Self> {
        [
            Self::Regression,
            Self::BinaryClassification,
            Self::MulticlassClassification,
        ]
        .into_iter()
        .find(|p| p.name() == text)
        .ok_or_else(|| {
            Error::validation(format!(
                "{field} {} is not one of Regression, BinaryClassification, MulticlassClassification",
                quote(text)
            ))
        })
    }

    pub fn is_classification(self) -> bool {
        self != Self::Regression
    }
}

/// A whole-number target with at most this many distinct values is taken for classes.
pub const MAX_INFERRED_INTEGER_CLASSES: usize = 10;
/// The most classes a classification target may have.
pub const MAX_CLASSES: usize = 100;

/// The target of a training set.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub problem: ProblemType,
    /// Per kept row: the value (regression) or the class's index into `classes`.
    pub y: Vec<f64>,
    /// Classification's classes as text; for binary, the positive class is the second.
    pub classes: Vec<String>,
    /// The frame's rows that have a target value, in order.
    pub rows: Vec<usize>,
    /// How many rows had no target value (they are left out).
    pub missing: usize,
}

impl Target {
    /// The target column `name` of `frame`, with `problem` or the problem type its values make.
    pub fn from_frame(frame: &Frame, name: &str, problem: Option<ProblemType>) -> Result<Self> {
        let column = frame.require("TargetAttributeName", name)?;
        let rows: Vec<usize> = (0..frame.rows)
            .filter(|&r| !column.values[r].is_nan())
            .collect();
        let missing = frame.rows - rows.len();
        if rows.is_empty() {
            return Err(Error::validation(format!(
                "TargetAttributeName {}: the column has no values in any of the {} rows",
                quote(name),
                frame.rows
            )));
        }
        // Distinct values, with their counts, in value order (codes for categories).
        let mut counts: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
        for &r in &rows {
            let v = column.values[r];
            counts.entry(order_key(v)).or_insert((v, 0)).1 += 1;
        }
        let distinct = counts.len();
        if distinct == 1 {
            return Err(Error::validation(format!(
                "TargetAttributeName {}: every row has the same value ({}); there is nothing to predict",
                quote(name),
                quote(&column.display(rows[0]))
            )));
        }
        let numeric = matches!(column.kind, ColumnKind::Number | ColumnKind::Integer);
        let inferred = match column.kind {
            _ if distinct == 2 => ProblemType::BinaryClassification,
            ColumnKind::Category | ColumnKind::Boolean => ProblemType::MulticlassClassification,
            ColumnKind::Integer if distinct <= MAX_INFERRED_INTEGER_CLASSES => {
                ProblemType::MulticlassClassification
            }
            _ => ProblemType::Regression,
        };
        let problem = problem.unwrap_or(inferred);
        match problem {
            ProblemType::Regression if !numeric => {
                return Err(Error::validation(format!(
                    "ProblemType Regression needs a numeric target; {} holds text or booleans",
                    quote(name)
                )));
            }
            ProblemType::BinaryClassification if distinct != 2 => {
                return Err(Error::validation(format!(
                    "ProblemType BinaryClassification needs a target with two values; {} has {distinct}",
                    quote(name)
                )));
            }
            ProblemType::MulticlassClassification if distinct > MAX_CLASSES => {
                return Err(Error::validation(format!(
                    "TargetAttributeName {} has {distinct} distinct values, more than the {MAX_CLASSES} \
                     classes a classification may have; predict it as Regression if it is a number",
                    quote(name)
                )));
            }
            _ => {}
        }
        if problem == ProblemType::Regression {
            let y = rows.iter().map(|&r| column.values[r]).collect();
            return Ok(Self {
                name: name.to_string(),
                problem,
                y,
                classes: Vec::new(),
                rows,
                missing,
            });
        }
        // Classes in value order, except that binary text targets put their rarer class
        // second (the positive one); numbers and booleans keep the larger value positive.
        let mut classes: Vec<(f64, usize)> = counts.values().copied().collect();
        if problem == ProblemType::BinaryClassification && column.kind == ColumnKind::Category {
            let text = |v: f64| column.levels[v as usize].clone();
            classes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| text(a.0).cmp(&text(b.0))));
        } else if column.kind == ColumnKind::Category {
            let text = |v: f64| column.levels[v as usize].clone();
            classes.sort_by_key(|a| text(a.0));
        }
        let index: BTreeMap<u64, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, (v, _))| (order_key(*v), i))
            .collect();
        let y = rows
            .iter()
            .map(|&r| index[&order_key(column.values[r])] as f64)
            .collect();
        let label = |v: f64| match column.kind {
            ColumnKind::Category => column.levels[v as usize].clone(),
            ColumnKind::Boolean => (v != 0.0).to_string(),
            ColumnKind::Integer | ColumnKind::Time => format!("{}", v as i64),
            ColumnKind::Number => format!("{v}"),
        };
        Ok(Self {
            name: name.to_string(),
            problem,
            y,
            classes: classes.iter().map(|(v, _)| label(*v)).collect(),
            rows,
            missing,
        })
    }
}

/// A key that orders finite floats as numbers.
fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if v.is_sign_negative() {
        !bits
    } else {
        bits | (1 << 63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;

    fn frame(column: Column) -> Frame {
        Frame::new(vec![column]).unwrap()
    }

    #[test]
    fn the_values_decide_the_problem_type() {
        let numbers = frame(Column::number("y", vec![1.5, 2.5, 3.0, f64::NAN]));
        let t = Target::from_frame(&numbers, "y", None).unwrap();
        assert_eq!(
            (t.problem, t.missing, t.rows.len()),
            (ProblemType::Regression, 1, 3)
        );

        let churn = frame(Column::category(
            "churn",
            [Some("no"), Some("yes"), Some("no"), Some("no")],
        ));
        let t = Target::from_frame(&churn, "churn", None).unwrap();
        assert_eq!(t.problem, ProblemType::BinaryClassification);
        assert_eq!(t.classes, ["no", "yes"], "the rarer class is positive");
        assert_eq!(t.y, [0.0, 1.0, 0.0, 0.0]);

        let mut grades = Column::number("grade", vec![3.0, 1.0, 2.0, 1.0]);
        grades.kind = ColumnKind::Integer;
        let t = Target::from_frame(&frame(grades), "grade", None).unwrap();
        assert_eq!(t.problem, ProblemType::MulticlassClassification);
        assert_eq!(t.classes, ["1", "2", "3"]);
        assert_eq!(t.y, [2.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn targets_that_cannot_be_learned_are_refused_by_name() {
        let same = frame(Column::category("y", [Some("a"), Some("a")]));
        let err = Target::from_frame(&same, "y", None).unwrap_err();
        assert!(
            err.message().contains("same value ('a')"),
            "{}",
            err.message()
        );
        let empty = frame(Column::number("y", vec![f64::NAN; 3]));
        let err = Target::from_frame(&empty, "y", None).unwrap_err();
        assert!(err.message().contains("no values"), "{}", err.message());
        let text = frame(Column::category("y", [Some("a"), Some("b"), Some("c")]));
        let err = Target::from_frame(&text, "y", Some(ProblemType::Regression)).unwrap_err();
        assert!(
            err.message().starts_with("ProblemType Regression"),
            "{}",
            err.message()
        );
        let err =
            Target::from_frame(&text, "y", Some(ProblemType::BinaryClassification)).unwrap_err();
        assert!(err.message().contains("has 3"), "{}", err.message());
    }
}
