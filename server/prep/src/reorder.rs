//! The order a fitted recipe runs in. Steps that add columns row by row (one-hot encodings,
//! date parts, text statistics) run as late as they can: after the steps that sort rows or
//! compute windows over them (lags, rolling aggregates, group aggregates appended,
//! deduplication) and after filters, wherever neither step reads or writes a column the other
//! writes. The output is the same, column order included ([`crate::compile`] selects the
//! recipe's own order at the end); what changes is that sorts and windows carry fewer columns
//! (DataFusion's streaming windows copy every column of each partition they buffer) and the
//! new columns are computed for the rows that remain.
//!
//! Only a fitted recipe is reordered: each step learned on the table it stands after in the
//! recipe, and the reordered one learns nothing more.

use std::collections::BTreeSet;

use arrow::datatypes::Schema;

use crate::recipe::{EncodeMethod, MissingAction, OnError, OutlierAction, Step};

/// How a step touches the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    kind: Kind,
    /// The columns it reads.
    reads: BTreeSet<String>,
    /// The columns it adds, replaces or removes.
    writes: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Each output row from one input row, every row kept; `adds` when it makes columns.
    Map { adds: bool },
    /// Selects or orders rows, or adds columns computed over several rows, and keeps every
    /// column it does not write.
    Rows,
    /// Anything else: nothing moves past it.
    Barrier,
}

fn names(columns: &[String]) -> BTreeSet<String> {
    columns.iter().cloned().collect()
}

/// What `step` does, from its fields and the schemas before and after it; `reads` is what a
/// filter's expression reads (the caller parses it).
pub fn effect(step: &Step, before: &Schema, after: &Schema, reads: Option<Vec<String>>) -> Effect {
    let named = |schema: &Schema| -> BTreeSet<String> {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    };
    let (before_names, after_names) = (named(before), named(after));
    let changed: BTreeSet<String> = before_names
        .symmetric_difference(&after_names)
        .cloned()
        .collect();
    let added = after_names.difference(&before_names).next().is_some();
    // (kind, reads, replaces in place)
    let map = |reads: BTreeSet<String>, replaces: BTreeSet<String>| {
        (Kind::Map { adds: added }, reads, replaces)
    };
    let rows = |reads: BTreeSet<String>| (Kind::Rows, reads, BTreeSet::new());
    let barrier = (Kind::Barrier, BTreeSet::new(), BTreeSet::new());
    let (kind, reads, replaces) = match step {
        Step::Cast { columns, on_error } if *on_error == OnError::Null => {
            let columns: BTreeSet<String> = columns.keys().cloned().collect();
            map(columns.clone(), columns)
        }
        Step::Missing {
            columns, action, ..
        } => match action {
            MissingAction::Drop => rows(names(columns)),
            MissingAction::ForwardFill => barrier,
            _ => map(names(columns), names(columns)),
        },
        Step::Outliers {
            columns, action, ..
        } => match action {
            OutlierAction::Clip => map(names(columns), names(columns)),
            OutlierAction::Remove => rows(names(columns)),
        },
        Step::Encode {
            columns, method, ..
        } if *method != EncodeMethod::TargetMean => map(names(columns), names(columns)),
        Step::Scale { columns, .. } | Step::Bin { columns, .. } | Step::Text { columns, .. } => {
            map(names(columns), names(columns))
        }
        Step::TextStats { columns, .. } => map(names(columns), BTreeSet::new()),
        Step::Datetime { column, .. } | Step::RegexExtract { column, .. } => {
            map(names(std::slice::from_ref(column)), BTreeSet::new())
        }
        Step::RegexReplace { column, .. } | Step::ParseJson { column, .. } => {
            let column = names(std::slice::from_ref(column));
            map(column.clone(), column)
        }
        Step::Filter { .. } => match reads {
            Some(reads) => rows(reads.into_iter().collect()),
            None => barrier,
        },
        Step::Sort { by } => rows(by.iter().map(|k| k.column.clone()).collect()),
        Step::Deduplicate { key, order_by, .. } if !key.is_empty() => {
            let mut reads = names(key);
            reads.extend(order_by.iter().cloned());
            rows(reads)
        }
        Step::Lag {
            columns, key, time, ..
        }
        | Step::Rolling {
            columns, key, time, ..
        } => {
            let mut reads = names(columns);
            reads.extend(key.iter().cloned());
            reads.insert(time.clone());
            rows(reads)
        }
        Step::GroupBy {
            key,
            aggregates,
            append: true,
        } => {
            let mut reads = names(key);
            reads.extend(aggregates.iter().map(|a| a.column.clone()));
            rows(reads)
        }
        _ => barrier,
    };
    let mut writes = replaces;
    writes.extend(changed);
    Effect {
        kind,
        reads,
        writes,
    }
}

/// Whether `a` then `b` gives what `b` then `a` gives: `a` maps rows, `b` is no barrier, and
/// neither reads or writes what the other writes.
fn commutes(a: &Effect, b: &Effect) -> bool {
    matches!(a.kind, Kind::Map { .. })
        && b.kind != Kind::Barrier
        && a.writes.is_disjoint(&b.reads)
        && a.writes.is_disjoint(&b.writes)
        && a.reads.is_disjoint(&b.writes)
}

/// The order to run the steps in: each step that adds columns row by row moves past the steps
/// after it while it commutes with them (the later of two such steps first, so both move as
/// far as they can). Barriers keep their positions.
pub fn sink(effects: &[Effect]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..effects.len()).collect();
    for step in (0..effects.len()).rev() {
        if effects[step].kind != (Kind::Map { adds: true }) {
            continue;
        }
        let mut at = order.iter().position(|&s| s == step).unwrap_or(0);
        while at + 1 < order.len() && commutes(&effects[step], &effects[order[at + 1]]) {
            order.swap(at, at + 1);
            at += 1;
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(kind: Kind, reads: &[&str], writes: &[&str]) -> Effect {
        Effect {
            kind,
            reads: reads.iter().map(|s| s.to_string()).collect(),
            writes: writes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_one_hot_encoding_moves_past_windows_that_do_not_read_it_and_stops_at_one_that_does() {
        let one_hot = effect(Kind::Map { adds: true }, &["c"], &["c", "c_a", "c_b"]);
        let scale = effect(Kind::Map { adds: false }, &["x"], &["x"]);
        let lag = effect(Kind::Rows, &["x", "k", "t"], &["x_lag_1"]);
        let reads_it = effect(Kind::Rows, &["c_a"], &[]);
        let order = sink(&[
            one_hot.clone(),
            scale.clone(),
            lag.clone(),
            reads_it.clone(),
        ]);
        assert_eq!(order, vec![1, 2, 0, 3]);
        // A barrier stops it, and keeps its place.
        let join = effect(Kind::Barrier, &[], &[]);
        assert_eq!(sink(&[one_hot.clone(), join, lag.clone()]), vec![0, 1, 2]);
        // A map that does not add columns stays where it is.
        assert_eq!(sink(&[scale, lag.clone()]), vec![0, 1]);
        // A map writing what the rows step reads stays before it.
        let date = effect(Kind::Map { adds: true }, &["t"], &["t"]);
        assert_eq!(sink(&[date, lag]), vec![0, 1]);
    }
}
