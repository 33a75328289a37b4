//! The feature store's operations, in domain terms: one implementation of the semantics that
//! every API (gRPC now, the SageMaker-compatible HTTP API later) translates to and from.
//!
//! Writes block on RocksDB (and on fsync with `wal_sync = "always"`); async callers run them on
//! the blocking pool.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::{Error, Result, quote};
use crate::listing::{self, ListQuery, Page};
use crate::model::record::{canonical_identifier, resolve_targets, validate_put};
use crate::model::{FeatureGroup, FeatureGroupSpec, FeatureSpec, PutRequest, TargetStore, Value};
use crate::online::store::{DeleteRequest, DeletionMode};
use crate::online::{OnlineStore, WriteOutcome};
use crate::registry::{Registry, TtlUpdate, feature_ordinal};
use crate::time::{self, EpochMillis};

/// Most records one PutRecords call may carry.
pub const MAX_PUT_BATCH_RECORDS: usize = 10_000;
/// Most identifiers one BatchGetRecord may carry, across at most as many groups.
pub const MAX_BATCH_GET_IDENTIFIERS: usize = 100;

/// A record as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    /// (feature name, value), in definition order.
    pub values: Vec<(String, Value)>,
    pub expires_at_ms: Option<EpochMillis>,
}

/// One BatchGetRecord entry: a group, its identifiers, and optionally the features to return.
#[derive(Debug, Clone)]
pub struct BatchGetEntry {
    pub group_name: String,
    pub identifiers: Vec<String>,
    pub feature_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchGetItem {
    Found {
        group_name: String,
        identifier: String,
        record: RecordView,
    },
    /// No live record: absent from the response, as in SageMaker.
    Missing,
    Failed {
        group_name: String,
        identifier: String,
        code: &'static str,
        message: String,
    },
}

pub struct FeatureStore {
    registry: Registry,
    online: OnlineStore,
}

impl FeatureStore {
    pub fn new(registry: Registry, online: OnlineStore) -> Self {
        Self { registry, online }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn online(&self) -> &OnlineStore {
        &self.online
    }

    // --- feature groups -----------------------------------------------------------------------

    pub fn create_feature_group(&self, spec: FeatureGroupSpec) -> Result<Arc<FeatureGroup>> {
        self.registry.create(spec)
    }

    pub fn describe_feature_group(&self, name: &str) -> Result<Arc<FeatureGroup>> {
        self.registry.get(name)
    }

    pub fn list_feature_groups(&self, query: &ListQuery) -> Result<Page> {
        listing::list(self.registry.all(), query)
    }

    pub fn update_feature_group(
        &self,
        name: &str,
        additions: Vec<FeatureSpec>,
        ttl: TtlUpdate,
    ) -> Result<Arc<FeatureGroup>> {
        self.registry.update(name, additions, ttl)
    }

    /// Deletes the group's definition and online records in one atomic write.
    pub fn delete_feature_group(&self, name: &str) -> Result<()> {
        self.registry.delete(name, |batch, group_id| {
            self.online.delete_group_records(batch, group_id)
        })
    }

    pub fn update_feature_metadata(
        &self,
        group_name: &str,
        feature_name: &str,
        description: Option<String>,
        additions: Vec<(String, String)>,
        removals: Vec<String>,
    ) -> Result<()> {
        self.registry
            .update_feature_metadata(group_name, feature_name, description, additions, removals)
    }

    /// The group and the ordinal of the named feature.
    pub fn describe_feature_metadata(
        &self,
        group_name: &str,
        feature_name: &str,
    ) -> Result<(Arc<FeatureGroup>, u16)> {
        let group = self.registry.get(group_name)?;
        let ordinal = feature_ordinal(&group, feature_name)?;
        Ok((group, ordinal))
    }

    // --- records ------------------------------------------------------------------------------

    /// Validates every record, then applies them all in one atomic write: either every record is
    /// accepted or none is. An error names the failing record's index.
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
        let single = requests.len() == 1;
        let _gate = self.registry.write_gate();
        let mut writes = Vec::with_capacity(requests.len());
        for (i, (group_name, request)) in requests.into_iter().enumerate() {
            let at = |e: Error| if single { e } else { e.at(format!("Records[{i}]")) };
            let group = self.registry.get(&group_name).map_err(at)?;
            let record = validate_put(&group, request).map_err(at)?;
            writes.push((group, record));
        }
        self.online.put_records(&writes)
    }

    pub fn get_record(
        &self,
        group_name: &str,
        identifier: &str,
        feature_names: &[String],
    ) -> Result<Option<RecordView>> {
        let group = self.registry.get(group_name)?;
        let identifier = canonical_identifier(&group, identifier)?;
        let wanted = wanted_ordinals(&group, feature_names)?;
        let record = self.online.get_record(&group, &identifier, |ordinal| {
            wanted.as_ref().is_none_or(|w| w.contains(&ordinal))
        })?;
        Ok(record.map(|r| view(&group, r.values, r.header.expires_at_ms)))
    }

    /// Looks up every identifier with one multi-get; per-identifier failures are reported, not
    /// raised, so one bad entry does not fail the others.
    pub fn batch_get_record(&self, entries: &[BatchGetEntry]) -> Result<Vec<BatchGetItem>> {
        let total: usize = entries.iter().map(|e| e.identifiers.len()).sum();
        if total == 0 {
            return Err(Error::validation(
                "Identifiers must name at least one record identifier",
            ));
        }
        if total > MAX_BATCH_GET_IDENTIFIERS || entries.len() > MAX_BATCH_GET_IDENTIFIERS {
            return Err(Error::limit(format!(
                "BatchGetRecord asks for {total} record identifiers across {} feature groups; the limit is {MAX_BATCH_GET_IDENTIFIERS} of each",
                entries.len()
            )));
        }
        // Resolve each entry; failures become per-identifier errors.
        let mut items: Vec<BatchGetItem> = Vec::with_capacity(total);
        // (slot in `items`, entry, group, wanted features, canonical identifier)
        let mut lookups: Vec<(usize, &BatchGetEntry, Arc<FeatureGroup>, Option<HashSet<u16>>, String)> =
            Vec::new();
        for entry in entries {
            let resolved = self.registry.get(&entry.group_name).and_then(|group| {
                let wanted = wanted_ordinals(&group, &entry.feature_names)?;
                Ok((group, wanted))
            });
            for identifier in &entry.identifiers {
                let failure = |e: Error| BatchGetItem::Failed {
                    group_name: entry.group_name.clone(),
                    identifier: identifier.clone(),
                    code: batch_error_code(&e),
                    message: e.message().to_string(),
                };
                match &resolved {
                    Err(e) => items.push(failure(e.clone())),
                    Ok((group, wanted)) => match canonical_identifier(group, identifier) {
                        Err(e) => items.push(failure(e)),
                        Ok(canonical) => {
                            lookups.push((items.len(), entry, group.clone(), wanted.clone(), canonical));
                            items.push(BatchGetItem::Missing);
                        }
                    },
                }
            }
        }
        let keys: Vec<(u64, &str)> = lookups
            .iter()
            .map(|(_, _, group, _, id)| (group.id, id.as_str()))
            .collect();
        let results = self.online.multi_get(&keys);
        for ((slot, entry, group, wanted, identifier), result) in lookups.iter().zip(results) {
            let original = entry.group_name.clone();
            items[*slot] = match result {
                Ok(None) => BatchGetItem::Missing,
                Ok(Some(record)) => {
                    let values = record
                        .values
                        .into_iter()
                        .filter(|(o, _)| wanted.as_ref().is_none_or(|w| w.contains(o)))
                        .collect();
                    BatchGetItem::Found {
                        group_name: original,
                        identifier: identifier.clone(),
                        record: view(group, values, record.header.expires_at_ms),
                    }
                }
                Err(e) => {
                    tracing::error!(group = %group.name, error = %e, "batch get failed");
                    BatchGetItem::Failed {
                        group_name: original,
                        identifier: identifier.clone(),
                        code: "InternalFailure",
                        message: e.message().to_string(),
                    }
                }
            };
        }
        Ok(items)
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
            mode,
            online: targets.online,
            offline: targets.offline,
        };
        self.online.delete_record(&group, &request)
    }
}

/// `None` means every feature; unknown names are a validation error.
fn wanted_ordinals(group: &FeatureGroup, names: &[String]) -> Result<Option<HashSet<u16>>> {
    if names.is_empty() {
        return Ok(None);
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| feature_ordinal(group, name).map_err(|e| Error::validation(e.message()).at(format!("FeatureNames[{i}]"))))
        .collect::<Result<HashSet<u16>>>()
        .map(Some)
}

fn view(group: &FeatureGroup, values: Vec<(u16, Value)>, expires_at_ms: Option<EpochMillis>) -> RecordView {
    RecordView {
        values: values
            .into_iter()
            .filter_map(|(ordinal, value)| {
                group
                    .features
                    .get(usize::from(ordinal))
                    .map(|f| (f.name.clone(), value))
            })
            .collect(),
        expires_at_ms,
    }
}

fn batch_error_code(error: &Error) -> &'static str {
    use crate::error::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => "ResourceNotFound",
        ErrorKind::Validation | ErrorKind::LimitExceeded | ErrorKind::Conflict | ErrorKind::AlreadyExists => {
            "ValidationError"
        }
        ErrorKind::Unavailable => "ServiceUnavailable",
        ErrorKind::Internal => "InternalFailure",
    }
}
