//! Create, Describe, List, Update and Delete of artifacts, actions and contexts, and what
//! experiments, trials and trial components share with them (see `experiments.rs`).

use quiver_storage::lineage_records::{LineageBatch, LineageTable};
use quiver_types::error::{Error, Result, quote};
use quiver_types::time::EpochMillis;

use crate::model::{Entity, EntityKind, EntityUpdate, ExperimentFields, NewEntity, Page, Source};
use crate::{Lineage, decode_entity, encode, keys, not_found, paging, validate};

/// How a listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntitySort {
    CreationTime,
    /// Actions and contexts only.
    Name,
}

/// ListArtifacts, ListActions, ListContexts.
#[derive(Debug, Clone)]
pub struct EntityListQuery {
    pub kind: EntityKind,
    pub source_uri: Option<String>,
    pub entity_type: Option<String>,
    pub created_after_ms: Option<EpochMillis>,
    pub created_before_ms: Option<EpochMillis>,
    pub sort_by: EntitySort,
    pub descending: bool,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    /// Only these ARNs (a trial's components, an experiment's trials), when given.
    pub within: Option<Vec<String>>,
}

impl EntitySort {
    /// `SortBy` as SageMaker spells it: `CreationTime`, or `Name` (not for artifacts).
    pub fn parse(field: &str, kind: EntityKind, text: &str) -> Result<Self> {
        match text {
            "CreationTime" => Ok(Self::CreationTime),
            "Name" if kind != EntityKind::Artifact => Ok(Self::Name),
            other => Err(Error::validation(format!(
                "{field} {} is not one of {}",
                quote(other),
                if kind == EntityKind::Artifact {
                    "CreationTime (artifacts have no unique name)"
                } else {
                    "Name, CreationTime"
                }
            ))),
        }
    }
}

impl Lineage {
    /// Creates an entity; `by` is the caller that asked, recorded as its creator.
    pub fn create(&self, new: NewEntity, by: Option<&str>) -> Result<Entity> {
        validate::check_new_entity(&new)?;
        self.create_entity(new, None, by, |_, _| Ok(()))
    }

    /// Creates a validated entity; `link` checks what it refers to and adds its index keys,
    /// under the write lock and in the entity's batch.
    pub(crate) fn create_entity(
        &self,
        new: NewEntity,
        experiment: Option<ExperimentFields>,
        by: Option<&str>,
        link: impl FnOnce(&mut LineageBatch<'_>, &Entity) -> Result<()>,
    ) -> Result<Entity> {
        let kind = new.kind;
        let now = self.clock.now_ms();
        let arn = match (&new.name, kind) {
            (_, EntityKind::Artifact) => {
                self.arn(kind, &format!("{:032x}", rand::random::<u128>()))
            }
            (Some(name), _) => self.arn(kind, &name.to_ascii_lowercase()),
            (None, _) => unreachable!("validated: actions and contexts have names"),
        };
        let entity = Entity {
            kind,
            arn,
            name: new.name,
            source: new.source,
            entity_type: new.entity_type,
            description: new.description,
            status: new.status,
            properties: new.properties,
            metadata: new.metadata,
            tags: new.tags,
            created_ms: now,
            created_by: by.map(str::to_string),
            modified_ms: now,
            modified_by: by.map(str::to_string),
            experiment,
        };
        let written = {
            let mut writer = self.writer.lock();
            if writer.entities >= self.max_entities {
                return Err(Error::limit(format!(
                    "the lineage graph holds {} entities, its limit (lineage_max_entities)",
                    writer.entities
                )));
            }
            if kind != EntityKind::Artifact
                && self
                    .records
                    .get(LineageTable::Entities, &keys::entity(kind, &entity.arn))?
                    .is_some()
            {
                return Err(Error::validation(format!(
                    "{} {} already exists ({})",
                    kind.name(),
                    quote(entity.name.as_deref().unwrap_or_default()),
                    entity.arn
                )));
            }
            let mut batch = self.records.batch();
            link(&mut batch, &entity)?;
            put_entity(&mut batch, &entity)?;
            writer.entities += 1;
            batch.put(
                LineageTable::Index,
                keys::COUNT,
                &writer.entities.to_be_bytes(),
            );
            match batch.write("creating a lineage entity") {
                Ok(written) => written,
                Err(e) => {
                    writer.entities -= 1;
                    return Err(e);
                }
            }
        };
        written.sync()?;
        Ok(entity)
    }

    /// DescribeArtifact (by ARN), DescribeAction and DescribeContext (by name or ARN).
    /// (And DescribeExperiment, DescribeTrial, DescribeTrialComponent.)
    pub fn describe(&self, kind: EntityKind, field: &str, name_or_arn: &str) -> Result<Entity> {
        self.load(kind, field, name_or_arn)
    }

    /// UpdateArtifact, UpdateAction, UpdateContext.
    pub fn update(
        &self,
        kind: EntityKind,
        field: &str,
        name_or_arn: &str,
        update: EntityUpdate,
        by: Option<&str>,
    ) -> Result<Entity> {
        validate::check_update(kind, &update)?;
        self.modify(kind, field, name_or_arn, by, |entity| {
            for key in &update.properties_to_remove {
                entity.properties.remove(key);
            }
            entity.properties.extend(update.properties);
            validate::check_property_count(
                "Properties (after the update)",
                entity.properties.len(),
            )?;
            if let Some(name) = update.name {
                entity.name = Some(name);
            }
            if let Some(description) = update.description {
                entity.description = Some(description);
            }
            if let Some(status) = update.status {
                entity.status = Some(status);
            }
            Ok(())
        })
    }

    /// Changes an entity under the write lock (`change` may refuse, leaving it as it was),
    /// stamps who changed it and when, and writes it, synced after the lock is released.
    pub(crate) fn modify(
        &self,
        kind: EntityKind,
        field: &str,
        name_or_arn: &str,
        by: Option<&str>,
        change: impl FnOnce(&mut Entity) -> Result<()>,
    ) -> Result<Entity> {
        let (entity, written) = {
            let _writer = self.writer.lock();
            let mut entity = self.load(kind, field, name_or_arn)?;
            change(&mut entity)?;
            entity.modified_ms = self.clock.now_ms().max(entity.created_ms);
            entity.modified_by = by.map(str::to_string);
            let mut batch = self.records.batch();
            batch.put(
                LineageTable::Entities,
                &keys::entity(kind, &entity.arn),
                &encode(&entity)?,
            );
            let written = batch.write("updating a lineage entity")?;
            (entity, written)
        };
        written.sync()?;
        Ok(entity)
    }

    /// DeleteAction, DeleteContext, DeleteArtifact by ARN (and DeleteExperiment, DeleteTrial,
    /// DeleteTrialComponent): the entity and every association it is an end of, in one
    /// write, so that no association ever points at nothing. An experiment with trials, a
    /// trial with trial components and a trial component in a trial are refused.
    pub fn delete(&self, kind: EntityKind, field: &str, name_or_arn: &str) -> Result<Entity> {
        let (entity, written) = {
            let mut writer = self.writer.lock();
            let entity = self.load(kind, field, name_or_arn)?;
            let written = self.delete_locked(&mut writer, &entity)?;
            (entity, written)
        };
        written.sync()?;
        Ok(entity)
    }

    /// DeleteArtifact by Source: the artifact with this SourceUri (and these SourceTypes, when
    /// given). More than one match is refused: which one to delete is the caller's choice.
    pub fn delete_artifact_by_source(&self, source: &Source) -> Result<Entity> {
        let kind = EntityKind::Artifact;
        let (entity, written) = {
            let mut writer = self.writer.lock();
            let mut matches = Vec::new();
            for arn in self.arns_with_source_uri(kind, &source.source_uri)? {
                if let Some(entity) = self.get(&arn)?
                    && (source.source_types.is_empty()
                        || entity.source.source_types == source.source_types)
                {
                    matches.push(entity);
                }
            }
            let entity = match matches.len() {
                0 => return Err(not_found(kind, &source.source_uri)),
                1 => matches.remove(0),
                n => {
                    return Err(Error::validation(format!(
                        "Source.SourceUri {} names {n} artifacts; delete one by its ArtifactArn",
                        quote(&source.source_uri)
                    )));
                }
            };
            let written = self.delete_locked(&mut writer, &entity)?;
            (entity, written)
        };
        written.sync()?;
        Ok(entity)
    }

    fn delete_locked(
        &self,
        writer: &mut crate::Writer,
        entity: &Entity,
    ) -> Result<quiver_storage::lineage_records::Written<'_>> {
        self.check_unreferenced(entity)?;
        let mut batch = self.records.batch();
        self.unlink(&mut batch, entity);
        batch.delete(
            LineageTable::Entities,
            &keys::entity(entity.kind, &entity.arn),
        );
        if let Some(name) = &entity.name
            && entity.kind != EntityKind::Artifact
        {
            batch.delete(LineageTable::Index, &keys::name(entity.kind, name));
        }
        if !entity.source.source_uri.is_empty() {
            batch.delete(
                LineageTable::Index,
                &keys::source_uri(entity.kind, &entity.source.source_uri, &entity.arn),
            );
        }
        for (direction, reverse) in [("o", "i"), ("i", "o")] {
            let prefix = keys::edges_from(direction, &entity.arn);
            self.records.scan(LineageTable::Edges, &prefix, |key, _| {
                let far = String::from_utf8_lossy(keys::far_end(&prefix, key));
                batch.delete(LineageTable::Edges, key);
                let mut mirror = keys::edges_from(reverse, &far);
                mirror.extend_from_slice(entity.arn.as_bytes());
                batch.delete(LineageTable::Edges, &mirror);
                Ok(true)
            })?;
        }
        let entities = writer.entities.saturating_sub(1);
        batch.put(LineageTable::Index, keys::COUNT, &entities.to_be_bytes());
        let written = batch.write("deleting a lineage entity")?;
        writer.entities = entities;
        Ok(written)
    }

    pub(crate) fn arns_with_source_uri(&self, kind: EntityKind, uri: &str) -> Result<Vec<String>> {
        let prefix = keys::source_uri_prefix(kind, uri);
        let mut arns = Vec::new();
        self.records.scan(LineageTable::Index, &prefix, |key, _| {
            arns.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
            Ok(true)
        })?;
        Ok(arns)
    }

    /// Every entity of a kind, in ARN order (Search over experiments).
    pub fn all_of(&self, kind: EntityKind) -> Result<Vec<Entity>> {
        let mut found = Vec::new();
        self.records.scan(
            LineageTable::Entities,
            &keys::entities_of(kind),
            |_, value| {
                found.push(decode_entity(value)?);
                Ok(true)
            },
        )?;
        Ok(found)
    }

    /// ListArtifacts, ListActions, ListContexts: the entities of a kind that pass the filters,
    /// sorted, one page at a time (at most 100, 10 by default).
    pub fn list(&self, query: &EntityListQuery) -> Result<Page<Entity>> {
        let max = paging::page_size(query.max_results, 10, 100)?;
        if query.sort_by == EntitySort::Name && query.kind == EntityKind::Artifact {
            return Err(Error::validation(
                "SortBy 'Name' is not allowed for artifacts (only CreationTime)",
            ));
        }
        let keep = |e: &Entity| {
            query
                .entity_type
                .as_ref()
                .is_none_or(|t| &e.entity_type == t)
                && query.created_after_ms.is_none_or(|t| e.created_ms > t)
                && query.created_before_ms.is_none_or(|t| e.created_ms < t)
        };
        let mut found = Vec::new();
        match (&query.within, &query.source_uri) {
            (Some(arns), _) => {
                for arn in arns {
                    if let Some(entity) = self.get(arn)?
                        && entity.kind == query.kind
                        && query
                            .source_uri
                            .as_ref()
                            .is_none_or(|uri| &entity.source.source_uri == uri)
                        && keep(&entity)
                    {
                        found.push(entity);
                    }
                }
            }
            (None, Some(uri)) => {
                for arn in self.arns_with_source_uri(query.kind, uri)? {
                    if let Some(entity) = self.get(&arn)?
                        && keep(&entity)
                    {
                        found.push(entity);
                    }
                }
            }
            (None, None) => {
                let prefix = keys::entities_of(query.kind);
                self.records
                    .scan(LineageTable::Entities, &prefix, |_, value| {
                        let entity = decode_entity(value)?;
                        if keep(&entity) {
                            found.push(entity);
                        }
                        Ok(true)
                    })?;
            }
        }
        let position = |e: &Entity| -> paging::Position {
            let key = match query.sort_by {
                EntitySort::CreationTime => format!("{:020}", e.created_ms.max(0)),
                EntitySort::Name => e.name.clone().unwrap_or_default(),
            };
            (key, e.arn.clone(), String::new())
        };
        paging::sorted_page(
            &format!("List{}s", query.kind.name()),
            found.into_iter().map(|e| (position(&e), e)).collect(),
            query.descending,
            query.next_token.as_deref(),
            max,
        )
    }
}

fn put_entity(batch: &mut LineageBatch<'_>, entity: &Entity) -> Result<()> {
    batch.put(
        LineageTable::Entities,
        &keys::entity(entity.kind, &entity.arn),
        &encode(entity)?,
    );
    if let Some(name) = &entity.name
        && entity.kind != EntityKind::Artifact
    {
        batch.put(
            LineageTable::Index,
            &keys::name(entity.kind, name),
            entity.arn.as_bytes(),
        );
    }
    if !entity.source.source_uri.is_empty() {
        batch.put(
            LineageTable::Index,
            &keys::source_uri(entity.kind, &entity.source.source_uri, &entity.arn),
            b"",
        );
    }
    Ok(())
}
