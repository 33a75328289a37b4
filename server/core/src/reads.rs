//! Reads from the online store: GetRecord, BatchGetRecord and ListRecords, answered as
//! [`RecordView`]s that decode values only as a response is built.

use std::collections::HashSet;
use std::sync::Arc;

use quiver_storage::online::codec::{self, ValueRef};
use quiver_storage::online::store::LiveRecord;
use quiver_storage::registry::feature_ordinal;
use quiver_types::error::{Error, Result};
use quiver_types::model::record::canonical_identifier;
use quiver_types::model::{FeatureGroup, Value};
use quiver_types::time::EpochMillis;

use crate::FeatureStore;

/// Most identifiers one BatchGetRecord may carry, across at most as many groups.
pub const MAX_BATCH_GET_IDENTIFIERS: usize = 100;

/// The features a read asks for, by ordinal; `None` for all of them.
type Wanted = Option<Arc<HashSet<u16>>>;

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

impl FeatureStore {
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
        let keys: Vec<(&FeatureGroup, &str)> = lookups
            .iter()
            .map(|l| (l.group.as_ref(), l.identifier.as_str()))
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
    error.to_aws(quiver_types::error::AwsApi::Runtime).1
}
