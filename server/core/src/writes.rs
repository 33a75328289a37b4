//! Writes: PutRecord(s) validated and applied atomically, BatchWriteRecord's record-by-record
//! answers (the path [`crate::group_commit`] takes), and DeleteRecord.

use std::sync::Arc;

use quiver_storage::online::WriteOutcome;
use quiver_storage::online::store::{DeleteRequest, DeletionMode};
use quiver_types::error::{Error, Result, quote};
use quiver_types::model::record::{
    ValidRecord, canonical_identifier, resolve_targets, validate_put,
};
use quiver_types::model::{FeatureGroup, PutRequest, TargetStore};
use quiver_types::time;

use crate::FeatureStore;

/// Most records one PutRecords call may carry.
pub const MAX_PUT_BATCH_RECORDS: usize = 10_000;

/// A record validated against its group, ready to write.
pub type ValidatedPut = (Arc<FeatureGroup>, ValidRecord);

impl FeatureStore {
    /// Validates every record, then applies them all in one atomic write: either every record is
    /// accepted or none is. An error names the failing record's index (`Records[7]: ...`).
    pub fn put_records(&self, requests: Vec<(String, PutRequest)>) -> Result<Vec<WriteOutcome>> {
        if requests.is_empty() {
            return Err(Error::validation("Records must hold at least one record"));
        }
        if requests.len() > MAX_PUT_BATCH_RECORDS {
            return Err(Error::limit(format!(
                "Records holds {} records; at most {MAX_PUT_BATCH_RECORDS} per call",
                requests.len()
            )));
        }
        let _gate = self.registry.write_gate();
        let mut writes = Vec::with_capacity(requests.len());
        for (i, (group_name, request)) in requests.into_iter().enumerate() {
            let at = |e: Error| e.at(format!("Records[{i}]"));
            let group = self.registry.get(&group_name).map_err(at)?;
            let record = validate_put(&group, request).map_err(at)?;
            writes.push((group, record));
        }
        self.online.put_records(writes, &[])
    }

    /// Validates a record against its group's current definition, without writing it: the
    /// CPU-bound half of a put, which callers run on their own threads before handing the
    /// record to [`crate::group_commit`]'s single writer.
    pub fn validate_put<N: AsRef<str>>(
        &self,
        group_name: &str,
        request: PutRequest<N>,
    ) -> Result<ValidatedPut> {
        let group = self.registry.get(group_name)?;
        let record = validate_put(&group, request)?;
        Ok((group, record))
    }

    /// Validates each record on its own and writes the valid ones in one atomic write; an invalid
    /// record fails only its own slot (BatchWriteRecord), as does one for the offline store while
    /// that is behind. A storage failure fails the call.
    pub fn put_records_each(
        &self,
        requests: Vec<(String, PutRequest)>,
    ) -> Result<Vec<Result<WriteOutcome>>> {
        let validated = requests
            .into_iter()
            .map(|(group_name, request)| self.validate_put(&group_name, request))
            .collect();
        self.write_validated_each(validated)
    }

    /// Writes the validated records in one atomic write, each answered on its own; an `Err`
    /// slot stays as it is. A record whose group was deleted (or deleted and created again)
    /// since it was validated is refused: the group it was validated against is gone. One
    /// validated before the group gained features is still valid (features are only added).
    pub fn write_validated_each(
        &self,
        validated: Vec<Result<ValidatedPut>>,
    ) -> Result<Vec<Result<WriteOutcome>>> {
        let _gate = self.registry.write_gate();
        let mut results: Vec<Result<WriteOutcome>> = Vec::with_capacity(validated.len());
        let mut writes = Vec::with_capacity(validated.len());
        let mut slots = Vec::with_capacity(validated.len());
        for write in validated {
            let current = write.and_then(|(group, record)| match self.registry.get(&group.name) {
                Ok(now) if now.id == group.id => Ok((group, record)),
                Ok(_) | Err(_) => Err(Error::not_found(format!(
                    "feature group {} was deleted while the record was being written",
                    quote(&group.name)
                ))),
            });
            match current {
                Ok(write) => {
                    slots.push(results.len());
                    writes.push(write);
                    // Replaced by the write's outcome below.
                    results.push(Ok(WriteOutcome::OfflineOnly));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        // With the offline store behind, only the records that go there are refused.
        if let Err(behind) = self.online.staging().admit() {
            let mut kept = Vec::with_capacity(writes.len());
            let mut kept_slots = Vec::with_capacity(slots.len());
            for (write, slot) in writes.into_iter().zip(slots) {
                if write.1.targets.offline {
                    results[slot] = Err(behind.clone());
                } else {
                    kept.push(write);
                    kept_slots.push(slot);
                }
            }
            (writes, slots) = (kept, kept_slots);
        }
        if !writes.is_empty() {
            for (slot, outcome) in slots.into_iter().zip(self.online.put_records(writes, &[])?) {
                results[slot] = Ok(outcome);
            }
        }
        Ok(results)
    }

    pub fn delete_record(
        &self,
        group_name: &str,
        identifier: &str,
        event_time: &str,
        target_stores: &[TargetStore],
        mode: DeletionMode,
    ) -> Result<()> {
        let _gate = self.registry.write_gate();
        let group = self.registry.get(group_name)?;
        let identifier = canonical_identifier(&group, identifier)?;
        let event_time_ms = time::parse_any(event_time).map_err(|rule| {
            Error::validation(format!("EventTime {}: {rule}", quote(event_time)))
        })?;
        let targets = resolve_targets(&group, target_stores)?;
        let request = DeleteRequest {
            identifier,
            event_time_ms,
            event_time_text: event_time.to_string(),
            mode,
            online: targets.online,
            offline: targets.offline,
        };
        self.online.delete_record(&group, &request)
    }
}
