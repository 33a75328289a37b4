//! Planning a build: each joined group's history as a DataFusion plan with its filters, and
//! the merge that joins it to the base.

use arrow::datatypes::{DataType, Schema};

use quiver_offline::parquet::{API_INVOCATION_TIME, IS_DELETED, WRITE_TIME};
use quiver_types::error::{Error, Result, quote};
use quiver_types::model::{FeatureGroup, FeatureType};
use quiver_types::time::{self, EpochMillis};

#[allow(unused_imports)]
use super::*;

pub(super) const HOUR_MS: i64 = 3_600_000;

/// Where a build's own tables live: a catalog of the build's session only.
pub const SCRATCH_CATALOG: &str = "dataset";
pub const SCRATCH_SCHEMA: &str = "build";
/// The base table, as the build's SQL names it.
pub const BASE_TABLE: &str = "dataset.build.base";

pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `expr` (of type `data_type`) as epoch milliseconds: timestamps and dates, ISO-8601 text, or
/// epoch seconds as numbers. `None` for other types.
pub(super) fn millis_expr(expr: &str, data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Timestamp(..)
        | DataType::Date32
        | DataType::Date64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => format!("CAST(to_timestamp_millis({expr}) AS BIGINT)"),
        DataType::Float64 | DataType::Float32 => format!("CAST(round({expr} * 1000) AS BIGINT)"),
        DataType::Int64 | DataType::Int32 | DataType::UInt32 | DataType::Int16 => {
            format!("CAST({expr} AS BIGINT) * 1000")
        }
        _ => return None,
    })
}

/// How one joined group is built: its history as the merge reads it, the base's key columns
/// for it, and its output columns.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// The group's history (filtered by `as_of` and the event-time range) with the columns of
    /// [`pit_merge`](super::pit_merge) (`__id`, `__et`, `__api`, `__write`, `__deleted`, then
    /// the features).
    pub history_sql: String,
    /// The same sorted by (identifier, event time).
    pub sorted_history_sql: String,
    /// Key columns added to the base: the identifier as the group's identifier type, and the
    /// time in epoch milliseconds.
    pub key_id: String,
    pub key_time: String,
    /// The column the merge adds: the matched row's event time (epoch milliseconds).
    pub match_time: String,
    /// (feature, output column) pairs.
    pub outputs: Vec<(String, String)>,
}

/// A dataset build's plan: the base with every group's key columns added, and per group how
/// to merge it.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub keyed_base_sql: String,
    pub groups: Vec<GroupPlan>,
}

/// Plans a dataset build over [`BASE_TABLE`] (whose schema is `base`) and the groups' history
/// tables: validates the request against both and writes the SQL of each input.
pub fn plan(
    base: &Schema,
    groups: &[(JoinedGroup, std::sync::Arc<FeatureGroup>)],
    options: &DatasetOptions,
) -> Result<BuildPlan> {
    if groups.is_empty() {
        return Err(Error::validation(
            "FeatureGroups must name at least one feature group",
        ));
    }
    let mut taken: Vec<String> = base.fields().iter().map(|f| f.name().clone()).collect();
    let mut keys = vec!["b.*".to_string()];
    // As in the SageMaker SDK's DatasetBuilder, the event-time range applies to the base rows'
    // times as well (a base row without a time is then left out).
    let mut base_range = vec!["TRUE".to_string()];
    let mut plans = Vec::new();
    for (i, (joined, group)) in groups.iter().enumerate() {
        let at = |e: Error| e.at(format!("FeatureGroups[{i}]"));
        let column_type = |name: &str, what: &str| {
            base.field_with_name(name)
                .map(|f| f.data_type().clone())
                .map_err(|_| {
                    let columns: Vec<&str> =
                        base.fields().iter().map(|f| f.name().as_str()).collect();
                    at(Error::validation(format!(
                        "{what} {} is not a column of the base table (its columns: {})",
                        quote(name),
                        columns.join(", ")
                    )))
                })
        };
        column_type(&joined.base_identifier_column, "BaseIdentifierColumn")?;
        let time_type = column_type(&joined.base_event_time_column, "BaseEventTimeColumn")?;
        let base_time = millis_expr(
            &format!("b.{}", ident(&joined.base_event_time_column)),
            &time_type,
        )
        .ok_or_else(|| {
            at(Error::validation(format!(
                "BaseEventTimeColumn {} is {time_type}; it must be a timestamp, ISO-8601 text or epoch seconds",
                quote(&joined.base_event_time_column)
            )))
        })?;

        let id_feature = &group.record_identifier_feature_name;
        let et_feature = &group.event_time_feature_name;
        let features: Vec<String> = if joined.features.is_empty() {
            group
                .features
                .iter()
                .map(|f| f.name.clone())
                .filter(|n| n != id_feature && n != et_feature)
                .collect()
        } else {
            if let Some(unknown) = joined.features.iter().find(|n| group.feature(n).is_none()) {
                return Err(at(Error::validation(format!(
                    "FeatureNames: {} is not a feature of feature group {}",
                    quote(unknown),
                    quote(&group.name)
                ))));
            }
            joined.features.clone()
        };
        let id_type = match group.feature(id_feature).map(|f| f.feature_type) {
            Some(FeatureType::Integral) => "BIGINT",
            _ => "VARCHAR",
        };
        let et_ms = match group.feature(et_feature).map(|f| f.feature_type) {
            Some(FeatureType::String) => {
                format!("CAST(to_timestamp_millis({}) AS BIGINT)", ident(et_feature))
            }
            _ => format!("CAST(round({} * 1000) AS BIGINT)", ident(et_feature)),
        };

        // Output names: the feature's own, or `<group>.<feature>` when that is taken.
        let mut outputs = Vec::new();
        for f in &features {
            let name = if taken.contains(f) {
                format!("{}.{f}", group.name)
            } else {
                f.clone()
            };
            taken.push(name.clone());
            outputs.push((f.clone(), name));
        }
        let (key_id, key_time, match_time) = (
            format!("__quiver_id_{i}"),
            format!("__quiver_time_{i}"),
            format!("__quiver_match_time_{i}"),
        );
        if let Some(clash) = [&key_id, &key_time, &match_time]
            .into_iter()
            .find(|k| taken.contains(k))
        {
            return Err(Error::validation(format!(
                "the base table has a column named {}, which dataset builds reserve",
                quote(clash)
            )));
        }
        if let Some(ms) = options.event_time_start_ms {
            base_range.push(format!("{} >= {ms}", ident(&key_time)));
        }
        if let Some(ms) = options.event_time_end_ms {
            base_range.push(format!("{} <= {ms}", ident(&key_time)));
        }
        keys.push(format!(
            "CAST(b.{id} AS {id_type}) AS {key_id}, {base_time} AS {key_time}",
            id = ident(&joined.base_identifier_column),
            key_id = ident(&key_id),
            key_time = ident(&key_time),
        ));

        let mut filters = vec!["TRUE".to_string()];
        if let Some(ms) = options.as_of_ms {
            filters.push(format!("__write <= {ms}"));
        }
        let mut range = Vec::new();
        if let Some(ms) = options.event_time_start_ms {
            range.push(format!("__et >= {ms}"));
        }
        if let Some(ms) = options.event_time_end_ms {
            range.push(format!("__et <= {ms}"));
        }
        // As in the SageMaker SDK's DatasetBuilder, delete markers outside the range still
        // hide rows unless the range has both ends. (Markers before its start can hide only
        // rows before it, so only those after an open-started range's end are kept.)
        let both_ends =
            options.event_time_start_ms.is_some() && options.event_time_end_ms.is_some();
        let markers_beyond_end =
            !options.include_deleted_records && !both_ends && options.event_time_end_ms.is_some();
        if !range.is_empty() {
            let range = range.join(" AND ");
            filters.push(if markers_beyond_end {
                format!("(({range}) OR __deleted)")
            } else {
                range
            });
        }
        // The same range on the event-time feature itself, an hour wider, prunes the hour
        // partitions outside it (the exact filter above decides the rows).
        let string_time =
            group.feature(et_feature).map(|f| f.feature_type) == Some(FeatureType::String);
        let prune = |ms: EpochMillis| {
            if string_time {
                format!("'{}'", time::format_iso8601(ms))
            } else {
                format!("{:.3}", ms as f64 / 1000.0)
            }
        };
        let mut pruning = vec!["TRUE".to_string()];
        if let Some(ms) = options.event_time_start_ms {
            pruning.push(format!(
                "{} >= {}",
                ident(et_feature),
                prune(ms.saturating_sub(HOUR_MS))
            ));
        }
        if let Some(ms) = options.event_time_end_ms.filter(|_| !markers_beyond_end) {
            pruning.push(format!(
                "{} <= {}",
                ident(et_feature),
                prune(ms.saturating_add(HOUR_MS))
            ));
        }
        let feature_cols: String = features
            .iter()
            .enumerate()
            .map(|(k, f)| format!(", {} AS __f{k}", ident(f)))
            .collect();
        let history_sql = format!(
            "SELECT * FROM (SELECT {id} AS __id, {et_ms} AS __et, \
             CAST({api} AS BIGINT) AS __api, \
             COALESCE(CAST({write} AS BIGINT), {unwritten}) AS __write, \
             {deleted} AS __deleted{feature_cols} FROM quiver.public.{table} WHERE {pruning}) \
             WHERE {filters}",
            id = ident(id_feature),
            api = ident(API_INVOCATION_TIME),
            write = ident(WRITE_TIME),
            deleted = ident(IS_DELETED),
            // Rows not yet in a file (null `write_time`) are written after every row that
            // is: last among equals, and never within an `as_of`.
            unwritten = i64::MAX,
            table = ident(&group.name),
            filters = filters.join(" AND "),
            pruning = pruning.join(" AND "),
        );
        let sorted_history_sql =
            format!("{history_sql} ORDER BY __id ASC NULLS FIRST, __et ASC NULLS FIRST");
        plans.push(GroupPlan {
            history_sql,
            sorted_history_sql,
            key_id,
            key_time,
            match_time,
            outputs,
        });
    }
    Ok(BuildPlan {
        keyed_base_sql: format!(
            "SELECT * FROM (SELECT {} FROM {BASE_TABLE} b) WHERE {}",
            keys.join(", "),
            base_range.join(" AND ")
        ),
        groups: plans,
    })
}
