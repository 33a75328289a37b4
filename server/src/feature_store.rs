//! The feature store's operations, in domain terms: one implementation of the semantics that
//! every API (gRPC now, the SageMaker-compatible HTTP API later) translates to and from.
//!
//! Writes block on RocksDB (and on fsync with `wal_sync = "always"`); async callers run them on
//! the blocking pool.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::{Error, Result, quote};
use crate::listing::{self, ListQuery, Page};
use crate::model::record::{
    SharedNames, ValidRecord, canonical_identifier, resolve_targets, validate_put, validate_values,
};
use crate::model::{FeatureGroup, FeatureGroupSpec, FeatureSpec, PutRequest, TargetStore, Value};
use crate::offline::OfflineStore;
use crate::offline::catalog::CatalogTable;
use crate::online::codec::{self, ValueRef};
use crate::online::store::{DeleteRequest, DeletionMode, LiveRecord};
use crate::online::{OnlineStore, WriteOutcome};
use crate::registry::{Registry, TtlUpdate, feature_ordinal};
use crate::sources::{self, Position};
use crate::time::{self, EpochMillis};

/// Most records one PutRecords call may carry.
pub const MAX_PUT_BATCH_RECORDS: usize = 10_000;
/// Most identifiers one BatchGetRecord may carry, across at most as many groups.
pub const MAX_BATCH_GET_IDENTIFIERS: usize = 100;

/// The features a read asks for, by ordinal; `None` for all of them.
type Wanted = Option<Arc<HashSet<u16>>>;

/// A record validated against its group, ready to write.
pub type ValidatedPut = (Arc<FeatureGroup>, ValidRecord);

/// A BatchGetRecord entry's group and the features it asks for.
type ResolvedEntry = (Arc<FeatureGroup>, Wanted);

/// A record as a reader sees it: the stored record and the features asked for. Values are
/// decoded only as a response is built ([`RecordView::for_each`]), borrowed from the stored
/// bytes, so the gRPC API can encode its response without building owned values first.
#[derive(Debug, Clone)]
pub struct RecordView {
    group: Arc<FeatureGroup>,
    wanted: Wanted,
    stored: Vec<u8>,
    pub expires_at_ms: Option<EpochMillis>,
}

impl RecordView {
    fn new(group: Arc<FeatureGroup>, wanted: Wanted, record: LiveRecord) -> Self {
        Self {
            group,
            wanted,
            expires_at_ms: record.header.expires_at_ms,
            stored: record.stored,
        }
    }

    /// Calls `f` with each returned feature's name and value, in definition order. Fails, and
    /// calls `f` for nothing, if the stored record is corrupt.
    pub fn for_each(&self, mut f: impl FnMut(&str, ValueRef<'_>)) -> Result<()> {
        codec::visit(&self.stored, |ordinal, value| {
            if self.wanted.as_ref().is_none_or(|w| w.contains(&ordinal))
                && let Some(feature) = self.group.features.get(usize::from(ordinal))
            {
                f(&feature.name, value);
            }
        })
    }

    /// Size of the stored record, in bytes.
    pub fn stored_len(&self) -> usize {
        self.stored.len()
    }

    /// (feature name, value) of each returned feature, in definition order.
    pub fn values(&self) -> Result<Vec<(String, Value)>> {
        let mut values = Vec::new();
        self.for_each(|name, value| values.push((name.to_string(), value.to_value())))?;
        Ok(values)
    }
}

impl PartialEq for RecordView {
    /// The same features, values and expiry.
    fn eq(&self, other: &Self) -> bool {
        self.expires_at_ms == other.expires_at_ms
            && matches!((self.values(), other.values()), (Ok(a), Ok(b)) if a == b)
    }
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

pub struct FeatureStore {
    registry: Registry,
    online: OnlineStore,
    offline: OfflineStore,
    /// Source writes compare stored positions and write new ones: one at a time.
    source_writes: parking_lot::Mutex<()>,
}

impl FeatureStore {
    pub fn new(registry: Registry, online: OnlineStore, offline: OfflineStore) -> Self {
        Self {
            registry,
            online,
            offline,
            source_writes: parking_lot::Mutex::new(()),
        }
    }

    pub fn offline(&self) -> &OfflineStore {
        &self.offline
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn online(&self) -> &OnlineStore {
        &self.online
    }

    // --- feature groups -----------------------------------------------------------------------

    pub fn create_feature_group(&self, spec: FeatureGroupSpec) -> Result<Arc<FeatureGroup>> {
        // A key the server cannot use would make every write to the group fail: refuse it now.
        let provider = self.online.data_keys().provider();
        if let Some(key_id) = spec.online.as_ref().and_then(|o| o.kms_key_id.as_deref()) {
            provider.check_key_id("OnlineStoreConfig.SecurityConfig.KmsKeyId", key_id)?;
        }
        if let Some(key_id) = spec.offline.as_ref().and_then(|o| o.kms_key_id.as_deref()) {
            provider.check_key_id("OfflineStoreConfig.S3StorageConfig.KmsKeyId", key_id)?;
        }
        self.registry.create(spec)
    }

    pub fn describe_feature_group(&self, name: &str) -> Result<Arc<FeatureGroup>> {
        self.registry.get(name)
    }

    /// The catalog entry of the group's offline store.
    pub fn offline_catalog(&self, name: &str) -> Result<CatalogTable> {
        let group = self.registry.get(name)?;
        if !group.has_offline_store() {
            return Err(Error::validation(format!(
                "feature group '{}' has no offline store (OfflineStoreConfig was not given at creation)",
                group.name
            )));
        }
        Ok(self.offline.catalog_table(&group))
    }

    pub fn list_feature_groups(&self, query: &ListQuery) -> Result<Page> {
        listing::list(self.registry.all(), query, |g| {
            self.offline.status(g).name()
        })
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
            self.online.delete_group_records(batch, group_id);
            self.online.staging().watermark()
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
        self.registry.update_feature_metadata(
            group_name,
            feature_name,
            description,
            additions,
            removals,
        )
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

    /// One PutRecord; its errors carry no record index.
    pub fn put_record(&self, group_name: &str, request: PutRequest) -> Result<WriteOutcome> {
        let _gate = self.registry.write_gate();
        let group = self.registry.get(group_name)?;
        let record = validate_put(&group, request)?;
        let outcomes = self.online.put_records(vec![(group, record)], &[])?;
        outcomes
            .first()
            .copied()
            .ok_or_else(|| Error::internal("a one-record write returned no outcome"))
    }

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

    // --- stream sources -----------------------------------------------------------------------

    /// Writes records read from stream `source` together with the positions they advance, in
    /// one atomic write ([`crate::sources`]). A record at or before its partition's stored
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

    /// A page of the group's record identifiers, in key order after `after`, and whether more
    /// follow (ListRecords).
    pub fn list_record_identifiers(
        &self,
        group_name: &str,
        after: Option<&str>,
        limit: usize,
        include_deleted: bool,
    ) -> Result<(Vec<String>, bool)> {
        let group = self.registry.get(group_name)?;
        require_online_store(&group)?;
        self.online
            .list_identifiers(&group, after, limit, include_deleted)
    }

    pub fn get_record(
        &self,
        group_name: &str,
        identifier: &str,
        feature_names: &[String],
    ) -> Result<Option<RecordView>> {
        let group = self.registry.get(group_name)?;
        require_online_store(&group)?;
        let identifier = canonical_identifier(&group, identifier)?;
        let wanted = wanted_ordinals(&group, feature_names)?;
        let record = self.online.get_record(&group, &identifier)?;
        Ok(record.map(|r| RecordView::new(group, wanted, r)))
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
        // Resolve each entry once; its failure becomes an error for each of its identifiers.
        let resolved: Vec<Result<ResolvedEntry>> = entries
            .iter()
            .map(|entry| {
                let group = self.registry.get(&entry.group_name)?;
                require_online_store(&group)?;
                let wanted = wanted_ordinals(&group, &entry.feature_names)?;
                Ok((group, wanted))
            })
            .collect();
        let mut items: Vec<BatchGetItem> = Vec::with_capacity(total);
        let mut lookups: Vec<Lookup<'_>> = Vec::with_capacity(total);
        for (entry, resolved) in entries.iter().zip(&resolved) {
            for identifier in &entry.identifiers {
                let outcome =
                    resolved
                        .as_ref()
                        .map_err(Error::clone)
                        .and_then(|(group, wanted)| {
                            let canonical = canonical_identifier(group, identifier)?;
                            Ok((group, wanted, canonical))
                        });
                match outcome {
                    Ok((group, wanted, canonical)) => {
                        lookups.push(Lookup {
                            slot: items.len(),
                            group_name: &entry.group_name,
                            group,
                            wanted,
                            identifier: canonical,
                        });
                        items.push(BatchGetItem::Missing);
                    }
                    Err(e) => items.push(BatchGetItem::Failed {
                        group_name: entry.group_name.clone(),
                        identifier: identifier.clone(),
                        code: batch_error_code(&e),
                        message: e.message().to_string(),
                    }),
                }
            }
        }
        let keys: Vec<(u64, &str)> = lookups
            .iter()
            .map(|l| (l.group.id, l.identifier.as_str()))
            .collect();
        let results = self.online.multi_get(&keys);
        for (lookup, result) in lookups.iter().zip(results) {
            items[lookup.slot] = match result {
                Ok(None) => BatchGetItem::Missing,
                Ok(Some(record)) => BatchGetItem::Found {
                    group_name: lookup.group_name.to_string(),
                    identifier: lookup.identifier.clone(),
                    record: RecordView::new(lookup.group.clone(), lookup.wanted.clone(), record),
                },
                Err(e) => {
                    tracing::error!(group = %lookup.group.name, error = %e, "batch get failed");
                    BatchGetItem::Failed {
                        group_name: lookup.group_name.to_string(),
                        identifier: lookup.identifier.clone(),
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
            event_time_text: event_time.to_string(),
            mode,
            online: targets.online,
            offline: targets.offline,
        };
        self.online.delete_record(&group, &request)
    }
}

/// Runs a blocking domain operation (a write: RocksDB, and fsync with `wal_sync = "always"`)
/// on the blocking pool, for the async APIs.
pub async fn blocking<T: Send + 'static>(
    store: &Arc<FeatureStore>,
    op: impl FnOnce(&FeatureStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .map_err(|e| Error::internal(format!("write task failed: {e}")))?
}

/// One BatchGetRecord identifier that resolved to an online key.
struct Lookup<'a> {
    /// Where its result goes in the response.
    slot: usize,
    /// As the request named the group (a name or an ARN), echoed in the response.
    group_name: &'a str,
    group: &'a Arc<FeatureGroup>,
    wanted: &'a Wanted,
    identifier: String,
}

/// Reads are served by the online store; a group without one has nothing to read.
fn require_online_store(group: &FeatureGroup) -> Result<()> {
    if group.has_online_store() {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "feature group '{}' has no online store to read from (OnlineStoreConfig.EnableOnlineStore is off)",
            group.name
        )))
    }
}

/// `None` means every feature; unknown names are a validation error.
fn wanted_ordinals(group: &FeatureGroup, names: &[String]) -> Result<Wanted> {
    if names.is_empty() {
        return Ok(None);
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            feature_ordinal(group, name)
                .map_err(|e| Error::validation(e.message()).at(format!("FeatureNames[{i}]")))
        })
        .collect::<Result<HashSet<u16>>>()
        .map(|w| Some(Arc::new(w)))
}

/// A per-identifier BatchGetRecord error code, as the SageMaker runtime names it.
fn batch_error_code(error: &Error) -> &'static str {
    error.to_aws(crate::error::AwsApi::Runtime).1
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{ServerArgs, WalSync};
    use crate::model::{
        Collection, FeatureType, OfflineStoreConfig, OnlineStoreConfig, StorageType, TableFormat,
        TtlDuration, TtlUnit,
    };
    use crate::offline::staging;
    use crate::time::ManualClock;

    const START_MS: i64 = 1_700_000_000_000;

    pub(crate) fn open(dir: &std::path::Path, clock: Arc<dyn crate::time::Clock>) -> FeatureStore {
        open_with(dir, clock, ServerArgs::default())
    }

    /// As [`open`], with the settings of `args` (its data dir and WAL sync are the test's).
    pub(crate) fn open_with(
        dir: &std::path::Path,
        clock: Arc<dyn crate::time::Clock>,
        args: ServerArgs,
    ) -> FeatureStore {
        let args = ServerArgs {
            data_dir: Some(dir.to_path_buf()),
            wal_sync: Some(WalSync::Periodic),
            ..args
        };
        let config = args.resolve().unwrap();
        let keys = crate::server::local_keys(&config).unwrap();
        let store = crate::server::open_store(&config, clock, keys).unwrap();
        Arc::try_unwrap(store)
            .ok()
            .expect("a fresh store has one owner")
    }

    pub(crate) fn spec(ttl_seconds: Option<u64>, offline: bool) -> FeatureGroupSpec {
        let f = |name: &str, feature_type| FeatureSpec {
            name: name.into(),
            feature_type,
            collection: Collection::Scalar,
        };
        FeatureGroupSpec {
            name: "g".into(),
            record_identifier_feature_name: "id".into(),
            event_time_feature_name: "ts".into(),
            features: vec![
                f("id", FeatureType::Integral),
                f("ts", FeatureType::Fractional),
                f("v", FeatureType::String),
            ],
            online: Some(OnlineStoreConfig {
                ttl: ttl_seconds.map(|value| TtlDuration {
                    unit: TtlUnit::Seconds,
                    value,
                }),
                storage_type: StorageType::Standard,
                kms_key_id: None,
            }),
            offline: offline.then_some(OfflineStoreConfig {
                s3_uri: None,
                kms_key_id: None,
                disable_glue_table_creation: false,
                data_catalog: None,
                table_format: TableFormat::Glue,
            }),
            role_arn: None,
            description: None,
            tags: vec![],
        }
    }

    /// Adds an Integral feature to group `g`.
    pub(crate) fn add_integral_feature(store: &FeatureStore, name: &str) {
        let feature = FeatureSpec {
            name: name.into(),
            feature_type: FeatureType::Integral,
            collection: Collection::Scalar,
        };
        store
            .update_feature_group("g", vec![feature], TtlUpdate::Keep)
            .unwrap();
    }

    pub(crate) fn put(id: i64, event_time_ms: i64) -> (String, PutRequest) {
        (
            "g".into(),
            PutRequest {
                record: vec![
                    ("id".into(), Value::Integral(id)),
                    (
                        "ts".into(),
                        Value::Fractional(event_time_ms as f64 / 1000.0),
                    ),
                    ("v".into(), Value::String(format!("v{id}"))),
                ],
                target_stores: vec![],
                ttl: None,
            },
        )
    }

    /// A record validated against a group that is deleted (and created again under the same
    /// name) before the write is refused, and writes nothing; one validated before the group
    /// gained a feature is still written.
    #[test]
    fn validated_puts_are_checked_against_the_current_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), ManualClock::new(START_MS));
        store.create_feature_group(spec(None, false)).unwrap();

        let (group, request) = put(1, START_MS);
        let before_update = store.validate_put(&group, request).unwrap();
        add_integral_feature(&store, "extra");
        let outcomes = store.write_validated_each(vec![Ok(before_update)]).unwrap();
        assert!(
            matches!(outcomes[..], [Ok(WriteOutcome::Applied)]),
            "{outcomes:?}"
        );

        let (group, request) = put(2, START_MS);
        let stale = store.validate_put(&group, request).unwrap();
        store.delete_feature_group("g").unwrap();
        store.create_feature_group(spec(None, false)).unwrap();
        let outcomes = store.write_validated_each(vec![Ok(stale)]).unwrap();
        let err = outcomes[0].clone().unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::NotFound);
        assert!(err.message().contains("was deleted"), "{err}");
        assert_eq!(store.get_record("g", "2", &[]).unwrap(), None);
    }

    fn source_record(partition: &str, position: u64, id: i64, event_time_ms: i64) -> SourceRecord {
        let (group, request) = put(id, event_time_ms);
        SourceRecord {
            partition: partition.into(),
            position: position.to_string(),
            values: SourceValues::Record { group, request },
        }
    }

    /// Source records are written once: a retried or replayed batch is skipped up to the stored
    /// position, records past it are written, invalid ones refused alone, and positions (also
    /// those of messages with no record) never move back. A store reopened after the write
    /// has both the records and the positions: they were one write.
    #[test]
    fn source_records_are_written_once_with_their_positions() {
        let dir = tempfile::tempdir().unwrap();
        let staged = {
            let store = open(dir.path(), ManualClock::new(START_MS));
            store.create_feature_group(spec(None, true)).unwrap();
            let first = vec![
                source_record("t/0", 10, 1, START_MS),
                source_record("t/0", 11, 2, START_MS),
                source_record("t/1", 5, 1, START_MS + 1000),
            ];
            let written = store
                .put_source_records(
                    "orders",
                    first.clone(),
                    vec![("t/2".into(), "7".into())],
                    None,
                )
                .unwrap();
            assert!(
                written
                    .results
                    .iter()
                    .all(|r| matches!(r, SourceRecordResult::Written(_))),
                "{:?}",
                written.results
            );
            let positions = |w: &SourceWrite| {
                let mut p: Vec<(String, String)> = w
                    .positions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect();
                p.sort();
                p
            };
            let want = vec![
                ("t/0".to_string(), "11".to_string()),
                ("t/1".to_string(), "5".to_string()),
                ("t/2".to_string(), "7".to_string()),
            ];
            assert_eq!(positions(&written), want);

            // The same batch again (a retry after a lost answer): nothing is written twice.
            let again = store
                .put_source_records("orders", first, vec![], None)
                .unwrap();
            assert!(
                again
                    .results
                    .iter()
                    .all(|r| matches!(r, SourceRecordResult::AlreadyApplied)),
                "{:?}",
                again.results
            );
            // Overlapping: 11 was applied, 12 is new; an invalid record is refused alone; a
            // lower explicit position does not move the stored one back.
            let mut bad = source_record("t/0", 13, 3, START_MS);
            if let SourceValues::Record { request, .. } = &mut bad.values {
                request.record[2].1 = Value::Integral(5);
            }
            let next = store
                .put_source_records(
                    "orders",
                    vec![
                        source_record("t/0", 11, 2, START_MS),
                        source_record("t/0", 12, 2, START_MS + 5000),
                        bad,
                    ],
                    vec![("t/2".into(), "3".into())],
                    None,
                )
                .unwrap();
            assert!(matches!(
                next.results[0],
                SourceRecordResult::AlreadyApplied
            ));
            assert!(matches!(
                next.results[1],
                SourceRecordResult::Written(WriteOutcome::Applied)
            ));
            let SourceRecordResult::Refused(e) = &next.results[2] else {
                panic!("{:?}", next.results[2]);
            };
            assert!(e.message().contains("Records[2]"), "{e}");
            assert!(e.message().contains('v'), "{e}");
            // Other sources are independent.
            assert!(store.source_positions("other").unwrap().is_empty());
            store.online().staging().pending_rows()
        };
        // Reopened: the records and positions are there, and the offline staging area holds
        // each written record once (three, then one more).
        let store = open(dir.path(), ManualClock::new(START_MS));
        let mut positions: Vec<(String, String)> = store
            .source_positions("orders")
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        positions.sort();
        assert_eq!(
            positions,
            vec![
                ("t/0".to_string(), "13".to_string()),
                ("t/1".to_string(), "5".to_string()),
                ("t/2".to_string(), "7".to_string()),
            ]
        );
        assert_eq!(staged, 4);
        let record = store.get_record("g", "2", &[]).unwrap().unwrap();
        let ts = record.values().unwrap();
        assert!(ts.contains(&(
            "ts".into(),
            Value::Fractional((START_MS + 5000) as f64 / 1000.0)
        )));
    }

    /// Records in the shared form (group and features named once per call) are written as
    /// the named form writes them, each checked alone: a value for an unknown feature, a value
    /// of the wrong type or a missing identifier refuses that record only, naming it.
    #[test]
    fn shared_form_source_records_are_checked_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), ManualClock::new(START_MS));
        store.create_feature_group(spec(None, true)).unwrap();
        let shared = |features: &[&str]| SharedFeatures {
            group: "g".into(),
            features: features.iter().map(|f| f.to_string()).collect(),
        };
        let record = |position: u64, values: Vec<Option<Value>>| SourceRecord {
            partition: "t/0".into(),
            position: position.to_string(),
            values: SourceValues::Shared(values),
        };
        let ts = |ms: i64| Some(Value::Fractional(ms as f64 / 1000.0));
        let written = store
            .put_source_records(
                "s",
                vec![
                    record(1, vec![Some(Value::Integral(1)), ts(START_MS), None, None]),
                    record(
                        2,
                        vec![
                            Some(Value::Integral(2)),
                            ts(START_MS),
                            Some(Value::String("b".into())),
                            None,
                        ],
                    ),
                    record(3, vec![Some(Value::Integral(3)), ts(START_MS), None, ts(1)]),
                    record(
                        4,
                        vec![
                            Some(Value::Integral(4)),
                            ts(START_MS),
                            Some(Value::Integral(7)),
                            None,
                        ],
                    ),
                    record(5, vec![None, ts(START_MS), None, None]),
                    record(6, vec![Some(Value::Integral(6)), ts(START_MS)]),
                ],
                vec![],
                Some(shared(&["id", "ts", "v", "nope"])),
            )
            .unwrap();
        let refused = |k: usize| match &written.results[k] {
            SourceRecordResult::Refused(e) => e.message().to_string(),
            other => panic!("record {k}: {other:?}"),
        };
        assert!(matches!(
            written.results[0],
            SourceRecordResult::Written(WriteOutcome::Applied)
        ));
        assert!(matches!(
            written.results[1],
            SourceRecordResult::Written(WriteOutcome::Applied)
        ));
        let e = refused(2);
        assert!(e.contains("Records[2]") && e.contains("'nope'"), "{e}");
        let e = refused(3);
        assert!(e.contains("Records[3]") && e.contains("'v'"), "{e}");
        let e = refused(4);
        assert!(e.contains("record identifier"), "{e}");
        let e = refused(5);
        assert!(e.contains("2 values for 4 FeatureNames"), "{e}");
        let two = store.get_record("g", "2", &[]).unwrap().unwrap();
        assert!(
            two.values()
                .unwrap()
                .contains(&("v".into(), Value::String("b".into())))
        );
        assert!(store.get_record("g", "1", &[]).unwrap().is_some());
        assert!(store.get_record("g", "3", &[]).unwrap().is_none());
        assert_eq!(store.online().staging().pending_rows(), 2);

        // Shared records need the shared features; a missing group refuses each record.
        let written = store
            .put_source_records("s", vec![record(7, vec![None])], vec![], None)
            .unwrap();
        let e = refused_message(&written.results[0]);
        assert!(e.contains("FeatureGroupName and FeatureNames"), "{e}");
        let mut missing = shared(&["id"]);
        missing.group = "absent".into();
        let written = store
            .put_source_records("s", vec![record(8, vec![None])], vec![], Some(missing))
            .unwrap();
        let e = refused_message(&written.results[0]);
        assert!(e.contains("Records[0]") && e.contains("absent"), "{e}");
    }

    fn refused_message(result: &SourceRecordResult) -> String {
        match result {
            SourceRecordResult::Refused(e) => e.message().to_string(),
            other => panic!("{other:?}"),
        }
    }

    /// Malformed source writes are refused whole, naming the field.
    #[test]
    fn malformed_source_writes_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), ManualClock::new(START_MS));
        store.create_feature_group(spec(None, false)).unwrap();
        let err = |source: &str, records: Vec<SourceRecord>, positions: Vec<(String, String)>| {
            store
                .put_source_records(source, records, positions, None)
                .unwrap_err()
                .message()
                .to_string()
        };
        assert!(err("", vec![], vec![]).contains("Source"));
        let mut r = source_record("t/0", 1, 1, START_MS);
        r.position = "-4".into();
        let e = err("s", vec![r], vec![]);
        assert!(e.contains("Records[0]: Position '-4'"), "{e}");
        let e = err(
            "s",
            vec![
                source_record("t/0", 5, 1, START_MS),
                source_record("t/0", 5, 2, START_MS),
            ],
            vec![],
        );
        assert!(
            e.contains("Records[1].Position") && e.contains("source order"),
            "{e}"
        );
        let e = err("s", vec![], vec![("".into(), "1".into())]);
        assert!(
            e.contains("Positions[0]: Partition must not be empty"),
            "{e}"
        );
        // Nothing was stored by the refused calls.
        assert!(store.source_positions("s").unwrap().is_empty());
        assert_eq!(store.get_record("g", "1", &[]).unwrap(), None);
    }

    #[test]
    fn ttl_is_enforced_at_read_time_and_purged_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START_MS);
        let store = open(dir.path(), clock.clone());
        store.create_feature_group(spec(Some(60), false)).unwrap();
        store
            .put_records(vec![put(1, START_MS), put(2, START_MS + 30_000)])
            .unwrap();

        let view = store.get_record("g", "1", &[]).unwrap().unwrap();
        assert_eq!(view.expires_at_ms, Some(START_MS + 60_000));
        clock.advance_ms(60_000);
        assert_eq!(
            store.get_record("g", "1", &[]).unwrap(),
            None,
            "expired exactly at event time + TTL"
        );
        assert!(store.get_record("g", "2", &[]).unwrap().is_some());

        // Not yet purged from disk, but never returned; the purge removes exactly the expired one.
        assert_eq!(store.online().purge_expired().unwrap(), 1);
        assert_eq!(store.online().purge_expired().unwrap(), 0);
        clock.advance_ms(30_000);
        assert_eq!(store.online().purge_expired().unwrap(), 1);
    }

    #[test]
    fn record_headers_are_filled_at_open_for_a_database_written_without_them() {
        use crate::db::{CF_RECORD_HEADERS, cf};
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START_MS);
        {
            let store = open(dir.path(), clock.clone());
            store.create_feature_group(spec(Some(60), false)).unwrap();
            store
                .put_records(vec![put(1, START_MS), put(2, START_MS)])
                .unwrap();
            // As a database from before the column family: records, no headers, no mark.
            let db = store.online().db();
            let headers = cf(db, CF_RECORD_HEADERS);
            let keys: Vec<Box<[u8]>> = db
                .iterator_cf(headers, rocksdb::IteratorMode::Start)
                .map(|item| item.unwrap().0)
                .collect();
            assert_eq!(keys.len(), 3, "two headers and the completion mark");
            for key in keys {
                db.delete_cf(headers, key).unwrap();
            }
        }
        let store = open(dir.path(), clock.clone());
        // The filled headers make an older write historic, and a newer one applied.
        assert_eq!(
            store
                .put_records(vec![put(1, START_MS - 1000), put(2, START_MS + 1000)])
                .unwrap(),
            vec![WriteOutcome::Historic, WriteOutcome::Applied]
        );
        // The TTL purge scans the headers: record 1 expires, record 2 (rewritten) later.
        clock.advance_ms(60_000);
        assert_eq!(store.online().purge_expired().unwrap(), 1);
        // A hard delete removes the header too: an older put is then applied.
        store
            .delete_record("g", "2", "1700000002", &[], DeletionMode::Hard)
            .unwrap();
        assert_eq!(
            store.put_records(vec![put(2, START_MS - 5000)]).unwrap(),
            vec![WriteOutcome::Applied]
        );
    }

    #[test]
    fn every_accepted_write_is_staged_for_the_offline_store_in_the_same_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), ManualClock::new(START_MS));
        store.create_feature_group(spec(None, true)).unwrap();
        let outcomes = store
            .put_records(vec![put(1, START_MS), put(1, START_MS - 1000)])
            .unwrap();
        assert_eq!(
            outcomes,
            vec![WriteOutcome::Applied, WriteOutcome::Historic]
        );
        store
            .delete_record("g", "1", "1700000001", &[], DeletionMode::Soft)
            .unwrap();
        store
            .delete_record("g", "1", "1700000002", &[], DeletionMode::Hard)
            .unwrap();
        store.put_records(vec![put(1, START_MS + 5000)]).unwrap();
        // A rejected write stages nothing.
        let rejected = store.delete_record("g", "1", "1600000000", &[], DeletionMode::Hard);
        assert_eq!(
            rejected.unwrap_err().kind(),
            crate::error::ErrorKind::Conflict
        );
        let rows = staging::read_all(store.online().db(), store.online().data_keys()).unwrap();
        let summary: Vec<(bool, i64)> = rows
            .iter()
            .map(|(_, r)| (r.is_deleted, r.event_time_ms))
            .collect();
        assert_eq!(
            summary,
            vec![
                (false, START_MS),
                (false, START_MS - 1000),
                (true, START_MS + 1000),
                (true, START_MS + 2000),
                (false, START_MS + 5000),
            ]
        );
        let sequences: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
        assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
        // The marker holds the identifier and the delete's event time, typed as the group says.
        assert_eq!(
            rows[2].1.values,
            vec![
                (0, Value::Integral(1)),
                (1, Value::Fractional(1_700_000_001.0))
            ]
        );
    }

    #[test]
    fn staging_sequence_and_registry_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path(), ManualClock::new(START_MS));
            store.create_feature_group(spec(None, true)).unwrap();
            store.put_records(vec![put(1, START_MS)]).unwrap();
        }
        let store = open(dir.path(), ManualClock::new(START_MS));
        store.put_records(vec![put(2, START_MS)]).unwrap();
        let sequences: Vec<u64> =
            staging::read_all(store.online().db(), store.online().data_keys())
                .unwrap()
                .into_iter()
                .map(|(s, _)| s)
                .collect();
        assert_eq!(sequences, vec![0, 1]);
        assert_eq!(store.describe_feature_group("g").unwrap().id, 1);
    }

    #[test]
    fn a_registry_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path(), ManualClock::new(START_MS));
            let db = store.online().db();
            db.put_cf(
                crate::db::cf(db, crate::db::CF_REGISTRY),
                b"meta/format_version",
                b"99",
            )
            .unwrap();
        }
        let args = ServerArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..ServerArgs::default()
        };
        let config = args.resolve().unwrap();
        let err = crate::server::open_store(
            &config,
            ManualClock::new(0),
            crate::server::local_keys(&config).unwrap(),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("newer than this server's"),
            "{err}"
        );
    }
}
