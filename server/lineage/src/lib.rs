//! Quiver's ML lineage service: SageMaker's ML Lineage Tracking model (artifacts, actions and
//! contexts joined by typed associations) kept in the lineage column families of the server's
//! RocksDB (through `quiver-storage`'s [`LineageRecords`]), and walked by QueryLineage.
//!
//! - [`model`]: entities, associations, pages;
//! - [`validate`]: every limit SageMaker's service model declares;
//! - [`entities`]: Create / Describe / List / Update / Delete of the three kinds;
//! - [`experiments`]: experiments, trials and trial components (runs: parameters, artifacts,
//!   metrics), which are entities of the same graph;
//! - [`associations`]: AddAssociation, DeleteAssociation, ListAssociations;
//! - [`query`]: QueryLineage, a breadth-first walk with filters;
//! - [`feature_groups`]: the contexts recorded for each feature group, as the SDK expects;
//! - [`datasets`]: the artifacts recorded for each training dataset built, and their sources;
//! - [`sources`]: the artifacts recorded for the Kafka topics and Kinesis streams ingested;
//! - [`ingests`]: the actions recorded for batches written through SageMaker's runtime API;
//! - [`automl`]: the trial component, input and model recorded for each AutoML job;
//! - [`openlineage`]: OpenLineage events from other tools onto the same graph, column lineage;
//! - [`emit`]: what Quiver records, sent on as OpenLineage events to another server;
//! - [`keys`]: the layout of the column families; [`paging`]: page tokens.
//!
//! The front doors (the SageMaker JSON API and OpenLineage's HTTP route; gRPC) translate wire
//! shapes to these calls (OpenLineage's events are parsed here, [`openlineage`]); the
//! feature store's own operations record their lineage through the same calls. Writes here go
//! through one lock and never touch the records' column families, so they do not slow
//! PutRecord or GetRecord; each is synced (with `wal_sync = always`) after the lock is released,
//! concurrent writers sharing the fsync.

pub mod associations;
pub mod automl;
pub mod datasets;
pub mod emit;
pub mod entities;
pub mod experiments;
pub mod feature_groups;
pub mod ingests;
pub mod keys;
pub mod model;
pub mod openlineage;
pub mod paging;
pub mod prep;
pub mod query;
pub mod sources;
pub mod validate;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use parking_lot::Mutex;

use quiver_storage::lineage_records::{LineageRecords, LineageTable};
use quiver_types::error::{Error, Result, quote};
use quiver_types::model::arn::ArnContext;
use quiver_types::time::Clock;

use model::{Entity, EntityKind};

/// The default cap on how many entities the graph holds (`ResourceLimitExceeded` past it).
pub const DEFAULT_MAX_ENTITIES: u64 = 10_000_000;

/// The lineage graph.
pub struct Lineage {
    records: LineageRecords,
    arns: ArnContext,
    clock: Arc<dyn Clock>,
    max_entities: u64,
    /// The most entities one QueryLineage walk visits.
    max_walk: usize,
    /// Where what Quiver records by itself is also sent, as OpenLineage events.
    emitter: Option<Arc<emit::Emitter>>,
    /// Held by every change from its checks to its write, so that two changes never both see
    /// a name free or an entity present; the fsync happens after it is released.
    writer: Mutex<Writer>,
}

/// What only the holder of the write lock touches.
struct Writer {
    /// How many entities exist (the stored `#count`).
    entities: u64,
}

impl Lineage {
    /// Opens the graph kept in `records`. ARNs are made in `arns`' region and account.
    pub fn open(
        records: LineageRecords,
        arns: ArnContext,
        clock: Arc<dyn Clock>,
        max_entities: u64,
    ) -> Result<Self> {
        let entities = match records.get(LineageTable::Index, keys::COUNT)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::internal("the lineage entity count is corrupt"))?,
            ),
            None => 0,
        };
        Ok(Self {
            records,
            arns,
            clock,
            max_entities,
            max_walk: query::MAX_WALK,
            emitter: None,
            writer: Mutex::new(Writer { entities }),
        })
    }

    /// Sends what Quiver records by itself (datasets built, stream sources) to `emitter` too.
    pub fn with_emitter(mut self, emitter: Arc<emit::Emitter>) -> Self {
        self.emitter = Some(emitter);
        self
    }

    fn now_iso(&self) -> String {
        quiver_types::time::format_iso8601(self.clock.now_ms())
    }

    /// Refuses QueryLineage walks that visit more than `max_walk` entities.
    pub fn with_max_walk(mut self, max_walk: usize) -> Self {
        self.max_walk = max_walk.max(1);
        self
    }

    /// How many entities the graph holds.
    pub fn entity_count(&self) -> u64 {
        self.writer.lock().entities
    }

    /// The ARN of the entity of `kind` whose id (a lower-case name, or an artifact's id) is `id`.
    pub fn arn(&self, kind: EntityKind, id: &str) -> String {
        format!(
            "arn:aws:sagemaker:{}:{}:{}/{}",
            self.arns.region,
            self.arns.account_id,
            kind.arn_segment(),
            id
        )
    }

    /// The ARN a request naming `name_or_arn` concerns, for authorization: the ARN itself, or
    /// the ARN an action or context of that name has (or would have).
    pub fn resource_arn(&self, kind: EntityKind, name_or_arn: &str) -> String {
        if name_or_arn.starts_with("arn:") {
            name_or_arn.to_string()
        } else {
            self.arn(kind, &name_or_arn.to_ascii_lowercase())
        }
    }

    /// The resource standing for every entity of a kind (`arn:...:artifact/*`): what creating
    /// an artifact (whose id is not chosen yet) is authorized on.
    pub fn any_of(&self, kind: EntityKind) -> String {
        self.arn(kind, "*")
    }

    /// The entity with this ARN, if it exists.
    pub fn get(&self, arn: &str) -> Result<Option<Entity>> {
        let Some(kind) = EntityKind::of_arn(arn) else {
            return Ok(None);
        };
        self.records
            .get(LineageTable::Entities, &keys::entity(kind, arn))?
            .map(|bytes| decode_entity(&bytes))
            .transpose()
    }

    /// The ARN a request names: an ARN of `kind`, or the name of an action or context.
    fn resolve(&self, kind: EntityKind, field: &str, name_or_arn: &str) -> Result<String> {
        if name_or_arn.starts_with("arn:") {
            let named = validate::check_arn(field, name_or_arn)?;
            if named != kind {
                return Err(Error::validation(format!(
                    "{field} {} is the ARN of a {}, not of a {}",
                    quote(name_or_arn),
                    named.noun(),
                    kind.noun()
                )));
            }
            return Ok(name_or_arn.to_string());
        }
        if kind == EntityKind::Artifact {
            return Err(Error::validation(format!(
                "{field} {} is not an artifact ARN (artifacts are named by ARN)",
                quote(name_or_arn)
            )));
        }
        validate::check_entity_name(field, kind, name_or_arn)?;
        match self
            .records
            .get(LineageTable::Index, &keys::name(kind, name_or_arn))?
        {
            Some(arn) => Ok(String::from_utf8_lossy(&arn).into_owned()),
            None => Err(not_found(kind, name_or_arn)),
        }
    }

    /// The entity a request names, or ResourceNotFound.
    fn load(&self, kind: EntityKind, field: &str, name_or_arn: &str) -> Result<Entity> {
        let arn = self.resolve(kind, field, name_or_arn)?;
        self.get(&arn)?.ok_or_else(|| not_found(kind, name_or_arn))
    }
}

fn not_found(kind: EntityKind, name_or_arn: &str) -> Error {
    Error::not_found(format!(
        "{} {} does not exist",
        kind.name(),
        quote(name_or_arn)
    ))
}

fn decode_entity(bytes: &[u8]) -> Result<Entity> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("a stored lineage entity is corrupt: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("encoding lineage: {e}")))
}
