//! Writes from stream sources (Kafka, Kinesis): records written together with the source
//! positions they advance, in one atomic write, so that each message is applied exactly once.

use std::sync::Arc;

use quiver_storage::online::WriteOutcome;
use quiver_storage::sources::{self, Position};
use quiver_types::error::{Error, Result};
use quiver_types::model::record::{SharedNames, ValidRecord, validate_put, validate_values};
use quiver_types::model::{FeatureGroup, PutRequest, Value};

use crate::FeatureStore;
use crate::writes::MAX_PUT_BATCH_RECORDS;

/// One record read from a stream source, at `position` of `partition`.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub partition: String,
    pub position: String,
    pub values: SourceValues,
}

/// A source record's group and values, in one of two forms.
#[derive(Debug, Clone)]
pub enum SourceValues {
    /// A PutRecord of its own, naming its group and each feature.
    Record { group: String, request: PutRequest },
    /// The values of the call's [`SharedFeatures`], in their order; `None`: absent.
    Shared(Vec<Option<Value>>),
}

/// The group and features named once for a call's [`SourceValues::Shared`] records.
#[derive(Debug, Clone)]
pub struct SharedFeatures {
    pub group: String,
    pub features: Vec<String>,
}

/// What became of one [`SourceRecord`].
#[derive(Debug, Clone)]
pub enum SourceRecordResult {
    Written(WriteOutcome),
    /// At or before its partition's stored position: written by an earlier call.
    AlreadyApplied,
    /// Invalid for its group; the batch's other records were written.
    Refused(Error),
}

/// The answer to [`FeatureStore::put_source_records`].
#[derive(Debug, Clone)]
pub struct SourceWrite {
    pub results: Vec<SourceRecordResult>,
    /// The stored positions of the partitions the call named, after it.
    pub positions: Vec<(String, Position)>,
}

impl FeatureStore {
    /// Writes records read from stream `source` together with the positions they advance, in
    /// one atomic write ([`quiver_storage::sources`]). A record at or before its partition's stored
    /// position is skipped as already applied; an invalid one is refused on its own; the
    /// stored position of each partition named moves to the highest of the stored one, the
    /// records' and `positions` (which also cover messages that produced no record), never
    /// back. Refused as a whole (nothing written) when the request is malformed or the offline
    /// store is too far behind to accept rows.
    pub fn put_source_records(
        &self,
        source: &str,
        records: Vec<SourceRecord>,
        positions: Vec<(String, String)>,
        shared: Option<SharedFeatures>,
    ) -> Result<SourceWrite> {
        sources::validate_name("Source", source)?;
        if records.len() > MAX_PUT_BATCH_RECORDS {
            return Err(Error::limit(format!(
                "Records holds {} records; at most {MAX_PUT_BATCH_RECORDS} per call",
                records.len()
            )));
        }
        // Where each partition named ends up; record positions must rise within a partition.
        let mut targets: Vec<(String, Position)> = Vec::new();
        let mut raise = |partition: &str, position: Position| match targets
            .iter_mut()
            .find(|(p, _)| p == partition)
        {
            Some((_, at)) if *at < position => *at = position,
            Some(_) => {}
            None => targets.push((partition.to_string(), position)),
        };
        let mut record_positions = Vec::with_capacity(records.len());
        let mut last: std::collections::HashMap<&str, Position> = Default::default();
        for (i, record) in records.iter().enumerate() {
            let at = |e: Error| e.at(format!("Records[{i}]"));
            sources::validate_name("Partition", &record.partition).map_err(at)?;
            let position = Position::parse("Position", &record.position).map_err(at)?;
            if let Some(previous) = last.get(record.partition.as_str())
                && *previous >= position
            {
                return Err(Error::validation(format!(
                    "Records[{i}].Position {position} is not after the partition's previous \
                     record ({previous}): records must be in source order"
                )));
            }
            last.insert(&record.partition, position.clone());
            raise(&record.partition, position.clone());
            record_positions.push(position);
        }
        for (i, (partition, position)) in positions.iter().enumerate() {
            let at = |e: Error| e.at(format!("Positions[{i}]"));
            sources::validate_name("Partition", partition).map_err(at)?;
            raise(
                partition,
                Position::parse("Position", position).map_err(at)?,
            );
        }

        // Validated before the source lock, so concurrent writes for other partitions wait
        // only for each other's storage writes. (A record found already applied below was
        // validated for nothing; that is rare, after a crash or a rebalance.)
        let _gate = self.registry.write_gate();
        // The shared features are looked up once for all the records that use them.
        let shared = shared.map(|s| {
            let group = self.registry.get(&s.group)?;
            let names = SharedNames::new(&group, s.features);
            Ok((group, names))
        });
        type Valid = Result<(Arc<FeatureGroup>, ValidRecord)>;
        let (record_partitions, validated): (Vec<String>, Vec<Valid>) = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let valid = match record.values {
                    SourceValues::Record { group, request } => self
                        .registry
                        .get(&group)
                        .and_then(|group| Ok((group.clone(), validate_put(&group, request)?))),
                    SourceValues::Shared(values) => match &shared {
                        Some(Ok((group, names))) => validate_values(group, names, values)
                            .map(|valid| (group.clone(), valid)),
                        Some(Err(e)) => Err(Error::clone(e)),
                        None => Err(Error::validation(
                            "Values needs the request's FeatureGroupName and FeatureNames",
                        )),
                    },
                };
                (
                    record.partition,
                    valid.map_err(|e| e.at(format!("Records[{i}]"))),
                )
            })
            .unzip();
        let _source = self.source_writes.lock();
        let db = self.online.db();
        let mut stored = Vec::with_capacity(targets.len());
        for (partition, _) in &targets {
            stored.push(sources::read(db, source, partition)?);
        }
        let stored_of = |partition: &str| {
            targets
                .iter()
                .position(|(p, _)| p == partition)
                .and_then(|k| stored[k].as_ref())
        };
        let mut results = Vec::with_capacity(validated.len());
        let mut writes = Vec::new();
        let mut slots = Vec::new();
        for ((partition, position), valid) in record_partitions
            .iter()
            .zip(record_positions)
            .zip(validated)
        {
            if stored_of(partition).is_some_and(|s| position <= *s) {
                results.push(SourceRecordResult::AlreadyApplied);
                continue;
            }
            match valid {
                Ok(write) => {
                    slots.push(results.len());
                    writes.push(write);
                    // Replaced by the write's outcome below.
                    results.push(SourceRecordResult::AlreadyApplied);
                }
                Err(e) => results.push(SourceRecordResult::Refused(e)),
            }
        }
        let mut updates = Vec::new();
        let mut after = Vec::with_capacity(targets.len());
        for ((partition, target), stored) in targets.into_iter().zip(stored) {
            match stored {
                Some(stored) if stored >= target => after.push((partition, stored)),
                _ => {
                    updates.push((
                        sources::key(source, &partition),
                        target.as_str().to_string(),
                    ));
                    after.push((partition, target));
                }
            }
        }
        if !writes.is_empty() || !updates.is_empty() {
            let outcomes = self.online.put_records(writes, &updates)?;
            for (slot, outcome) in slots.into_iter().zip(outcomes) {
                results[slot] = SourceRecordResult::Written(outcome);
            }
        }
        Ok(SourceWrite {
            results,
            positions: after,
        })
    }

    /// The stored positions of `source`, by partition.
    pub fn source_positions(&self, source: &str) -> Result<Vec<(String, Position)>> {
        sources::validate_name("Source", source)?;
        sources::list(self.online.db(), source)
    }
}
