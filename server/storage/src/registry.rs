//! The feature-group registry: durable definitions in RocksDB's `registry` column family, cached
//! in memory for the request path.
//!
//! On-disk format (version [`REGISTRY_FORMAT_VERSION`]): `meta/format_version` holds the version
//! as decimal text; `meta/next_group_id` the next internal id (u64 LE); `group/<name>` a JSON
//! [`PersistedGroup`]; `retired/<id u64 BE>` a JSON [`RetiredGroup`], the definition of a deleted
//! group whose accepted offline rows are still being written. A server refuses to open a
//! registry newer than it understands.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use rocksdb::{DB, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::db::{CF_REGISTRY, cf};
use quiver_types::error::{Error, Result, quote};
use quiver_types::model::arn::{ArnContext, resolve_name};
use quiver_types::model::validate;
use quiver_types::model::{Feature, FeatureGroup, FeatureGroupSpec, FeatureSpec, TtlUpdate};
use quiver_types::time::Clock;

pub const REGISTRY_FORMAT_VERSION: u32 = 1;
const KEY_FORMAT_VERSION: &[u8] = b"meta/format_version";
const KEY_NEXT_GROUP_ID: &[u8] = b"meta/next_group_id";
const GROUP_PREFIX: &str = "group/";
const RETIRED_PREFIX: &str = "retired/";

/// A deleted group kept until the offline flusher has written every row staged before the delete.
#[derive(Debug, Serialize, Deserialize)]
struct RetiredGroup {
    format_version: u32,
    group: FeatureGroup,
    /// Every staged row of the group has a sequence below this.
    staged_before: u64,
}

/// A group as stored, with the format version it was written in.
#[derive(Debug, Serialize, Deserialize)]
struct PersistedGroup {
    format_version: u32,
    group: FeatureGroup,
}

pub struct Registry {
    db: Arc<DB>,
    arns: ArnContext,
    clock: Arc<dyn Clock>,
    /// Keyed by the lower-cased name: names are unique ignoring case, and lookups (by name or by
    /// ARN, whose name part is lower-case) ignore case too.
    groups: RwLock<HashMap<String, Arc<FeatureGroup>>>,
    /// Deleted groups the offline flusher still needs, by id, with their `staged_before`.
    retired: RwLock<HashMap<u64, (Arc<FeatureGroup>, u64)>>,
    /// Record writes hold this shared while they resolve their group and commit; UpdateFeatureGroup
    /// and DeleteFeatureGroup hold it exclusively, so no write lands for a group being deleted or
    /// validates against a definition that is changing under it.
    ddl: RwLock<()>,
    /// Serialises creations so the name check and id allocation are atomic.
    create_lock: parking_lot::Mutex<()>,
}

impl Registry {
    pub fn open(db: Arc<DB>, arns: ArnContext, clock: Arc<dyn Clock>) -> Result<Self> {
        let registry_cf = cf(&db, CF_REGISTRY);
        match db
            .get_cf(registry_cf, KEY_FORMAT_VERSION)
            .map_err(|e| Error::storage("reading the registry format version", e))?
        {
            None => db
                .put_cf(
                    registry_cf,
                    KEY_FORMAT_VERSION,
                    REGISTRY_FORMAT_VERSION.to_string(),
                )
                .map_err(|e| Error::storage("writing the registry format version", e))?,
            Some(bytes) => {
                let version: u32 = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::internal("registry format version is unreadable"))?;
                if version > REGISTRY_FORMAT_VERSION {
                    return Err(Error::internal(format!(
                        "the data dir holds a registry in format {version}, newer than this server's {REGISTRY_FORMAT_VERSION}: upgrade quiver-server"
                    )));
                }
            }
        }
        let mut groups = HashMap::new();
        for item in db.prefix_iterator_cf(registry_cf, GROUP_PREFIX.as_bytes()) {
            let (key, value) = item.map_err(|e| Error::storage("loading feature groups", e))?;
            if !key.starts_with(GROUP_PREFIX.as_bytes()) {
                break;
            }
            let group = decode_group(&value)?;
            groups.insert(group.name.to_ascii_lowercase(), Arc::new(group));
        }
        let mut retired = HashMap::new();
        for item in db.prefix_iterator_cf(registry_cf, RETIRED_PREFIX.as_bytes()) {
            let (key, value) = item.map_err(|e| Error::storage("loading deleted groups", e))?;
            if !key.starts_with(RETIRED_PREFIX.as_bytes()) {
                break;
            }
            let entry: RetiredGroup = serde_json::from_slice(&value)
                .map_err(|e| Error::internal(format!("stored deleted group is unreadable: {e}")))?;
            let group = entry.group.index();
            retired.insert(group.id, (Arc::new(group), entry.staged_before));
        }
        tracing::info!(groups = groups.len(), "feature-group registry loaded");
        Ok(Self {
            db,
            arns,
            clock,
            groups: RwLock::new(groups),
            retired: RwLock::new(retired),
            ddl: RwLock::new(()),
            create_lock: parking_lot::Mutex::new(()),
        })
    }

    pub fn arns(&self) -> &ArnContext {
        &self.arns
    }

    /// Held by record writes for as long as they use a group definition.
    pub fn write_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.ddl.read()
    }

    fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.ddl.write()
    }

    /// Looks a group up by name or by ARN.
    pub fn get(&self, name_or_arn: &str) -> Result<Arc<FeatureGroup>> {
        let name = resolve_name(name_or_arn);
        self.groups
            .read()
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!("feature group {} does not exist", quote(name)))
            })
    }

    pub fn all(&self) -> Vec<Arc<FeatureGroup>> {
        self.groups.read().values().cloned().collect()
    }

    /// A group by internal id, including a deleted group whose offline rows are still pending.
    pub fn by_id(&self, id: u64) -> Option<Arc<FeatureGroup>> {
        if let Some(group) = self.groups.read().values().find(|g| g.id == id) {
            return Some(group.clone());
        }
        self.retired.read().get(&id).map(|(g, _)| g.clone())
    }

    /// Forgets deleted groups whose staged rows all lie below `flushed_upto`.
    pub fn release_retired(&self, flushed_upto: u64) -> Result<()> {
        let done: Vec<u64> = self
            .retired
            .read()
            .iter()
            .filter(|(_, (_, before))| *before <= flushed_upto)
            .map(|(id, _)| *id)
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for id in &done {
            batch.delete_cf(cf(&self.db, CF_REGISTRY), retired_key(*id));
        }
        self.commit(batch, "forgetting deleted feature groups")?;
        let mut retired = self.retired.write();
        for id in done {
            retired.remove(&id);
        }
        Ok(())
    }

    pub fn create(&self, spec: FeatureGroupSpec) -> Result<Arc<FeatureGroup>> {
        validate::validate_group_spec(&spec)?;
        let _serial = self.create_lock.lock();
        if self
            .groups
            .read()
            .contains_key(&spec.name.to_ascii_lowercase())
        {
            return Err(Error::already_exists(format!(
                "feature group '{}' already exists (names are unique ignoring case)",
                spec.name
            )));
        }
        let registry_cf = cf(&self.db, CF_REGISTRY);
        let id = match self
            .db
            .get_cf(registry_cf, KEY_NEXT_GROUP_ID)
            .map_err(|e| Error::storage("reading the next group id", e))?
        {
            Some(bytes) => u64::from_le_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::internal("registry next group id is corrupt"))?,
            ),
            None => 1,
        };
        let arn = self.arns.feature_group_arn(&spec.name);
        let group = FeatureGroup::from_spec(spec, id, arn, self.clock.now_ms());
        let mut batch = WriteBatch::default();
        batch.put_cf(registry_cf, KEY_NEXT_GROUP_ID, (id + 1).to_le_bytes());
        batch.put_cf(registry_cf, group_key(&group.name), encode_group(&group)?);
        self.commit(batch, "creating a feature group")?;
        let group = Arc::new(group);
        self.groups
            .write()
            .insert(group.name.to_ascii_lowercase(), group.clone());
        tracing::info!(group = %group.name, id, "feature group created");
        Ok(group)
    }

    /// Adds features and/or changes the default TTL.
    pub fn update(
        &self,
        name_or_arn: &str,
        additions: Vec<FeatureSpec>,
        ttl: TtlUpdate,
    ) -> Result<Arc<FeatureGroup>> {
        let _exclusive = self.exclusive();
        let current = self.get(name_or_arn)?;
        if additions.is_empty() && ttl == TtlUpdate::Keep {
            return Err(Error::validation(
                "UpdateFeatureGroup needs FeatureAdditions or OnlineStoreConfig.TtlDuration",
            ));
        }
        validate::validate_feature_additions(&current, &additions)?;
        let now = self.clock.now_ms();
        let mut group = (*current).clone();
        if ttl != TtlUpdate::Keep {
            let online = group.online.as_mut().ok_or_else(|| {
                Error::validation(format!(
                    "OnlineStoreConfig.TtlDuration: feature group '{}' has no online store",
                    group.name
                ))
            })?;
            online.ttl = match ttl {
                TtlUpdate::Set(duration) => {
                    validate::validate_ttl("OnlineStoreConfig.TtlDuration", &duration)?;
                    Some(duration)
                }
                _ => None,
            };
        }
        group
            .features
            .extend(additions.into_iter().map(|spec| Feature::new(spec, now)));
        group.last_modified_time_ms = now;
        self.replace(group.index(), "updating a feature group")
    }

    pub fn update_feature_metadata(
        &self,
        name_or_arn: &str,
        feature_name: &str,
        description: Option<String>,
        additions: Vec<(String, String)>,
        removals: Vec<String>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        let current = self.get(name_or_arn)?;
        validate::validate_metadata_update(description.as_deref(), &additions, &removals)?;
        let mut group = (*current).clone();
        let ordinal = feature_ordinal(&group, feature_name)?;
        let now = self.clock.now_ms();
        let feature = &mut group.features[usize::from(ordinal)];
        if let Some(description) = description {
            feature.description = description;
        }
        for key in removals {
            feature.parameters.remove(&key);
        }
        for (key, value) in additions {
            feature.parameters.insert(key, value);
        }
        feature.last_modified_time_ms = now;
        group.last_modified_time_ms = now;
        self.replace(group.index(), "updating feature metadata")
            .map(|_| ())
    }

    /// Removes the group's definition and, in the same atomic write, its online records
    /// (`purge_records` adds those to the batch and returns the offline staging watermark, taken
    /// while no write is in flight). The name is free again at once. A group with an offline
    /// store is kept as retired until its staged rows are written.
    pub fn delete(
        &self,
        name_or_arn: &str,
        purge_records: impl FnOnce(&mut WriteBatch, u64) -> u64,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        let group = self.get(name_or_arn)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf(&self.db, CF_REGISTRY), group_key(&group.name));
        let staged_before = purge_records(&mut batch, group.id);
        if group.has_offline_store() {
            let retired = serde_json::to_vec(&RetiredGroup {
                format_version: REGISTRY_FORMAT_VERSION,
                group: (*group).clone(),
                staged_before,
            })
            .map_err(|e| Error::internal(format!("cannot encode deleted group: {e}")))?;
            batch.put_cf(cf(&self.db, CF_REGISTRY), retired_key(group.id), retired);
        }
        self.commit(batch, "deleting a feature group")?;
        if group.has_offline_store() {
            self.retired
                .write()
                .insert(group.id, (group.clone(), staged_before));
        }
        self.groups.write().remove(&group.name.to_ascii_lowercase());
        tracing::info!(group = %group.name, id = group.id, "feature group deleted");
        Ok(())
    }

    fn replace(&self, group: FeatureGroup, context: &str) -> Result<Arc<FeatureGroup>> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_REGISTRY),
            group_key(&group.name),
            encode_group(&group)?,
        );
        self.commit(batch, context)?;
        let group = Arc::new(group);
        self.groups
            .write()
            .insert(group.name.to_ascii_lowercase(), group.clone());
        Ok(group)
    }

    /// Registry changes are rare and must survive power loss: always fsynced.
    fn commit(&self, batch: WriteBatch, context: &str) -> Result<()> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| Error::storage(context, e))
    }
}

pub fn feature_ordinal(group: &FeatureGroup, feature_name: &str) -> Result<u16> {
    group.ordinal(feature_name).ok_or_else(|| {
        Error::not_found(format!(
            "feature {} does not exist in feature group '{}'",
            quote(feature_name),
            group.name
        ))
    })
}

fn retired_key(id: u64) -> Vec<u8> {
    let mut key = RETIRED_PREFIX.as_bytes().to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn group_key(name: &str) -> Vec<u8> {
    format!("{GROUP_PREFIX}{name}").into_bytes()
}

fn encode_group(group: &FeatureGroup) -> Result<Vec<u8>> {
    serde_json::to_vec(&PersistedGroup {
        format_version: REGISTRY_FORMAT_VERSION,
        group: group.clone(),
    })
    .map_err(|e| Error::internal(format!("cannot encode feature group '{}': {e}", group.name)))
}

fn decode_group(bytes: &[u8]) -> Result<FeatureGroup> {
    let persisted: PersistedGroup = serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("stored feature group is unreadable: {e}")))?;
    if persisted.format_version > REGISTRY_FORMAT_VERSION {
        return Err(Error::internal(format!(
            "stored feature group '{}' is in format {}, newer than this server's {REGISTRY_FORMAT_VERSION}",
            persisted.group.name, persisted.format_version
        )));
    }
    let group = persisted.group.index();
    if group
        .feature(&group.record_identifier_feature_name)
        .is_none()
        || group.feature(&group.event_time_feature_name).is_none()
    {
        return Err(Error::internal(format!(
            "stored feature group '{}' lacks its identifier or event-time feature",
            group.name
        )));
    }
    Ok(group)
}
