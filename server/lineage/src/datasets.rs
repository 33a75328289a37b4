//! The lineage Quiver records for each training dataset it builds (`quiver dataset create`,
//! the `Query.CreateDataset` call): an artifact of type `DataSet` whose SourceUri is the
//! dataset's manifest, with the build's options as properties, DerivedFrom each joined feature
//! group's context and from the base it read: a file (an artifact of type `DataSet`, one per
//! URI, reused) or a SQL statement (an artifact of type `Query`, one per statement, reused).

use std::collections::BTreeMap;

use quiver_storage::lineage_records::LineageTable;
use quiver_types::error::Result;
use quiver_types::model::FeatureGroup;

use crate::model::{AssociationType, EntityKind, MetadataProperties, NewEntity, Source};
use crate::{Lineage, keys};

pub const DATASET_TYPE: &str = "DataSet";
pub const QUERY_TYPE: &str = "Query";

/// What a dataset was built from.
#[derive(Debug, Clone)]
pub enum DatasetBase {
    Sql(String),
    File(String),
}

/// A built dataset, as its lineage records it.
#[derive(Debug, Clone)]
pub struct DatasetBuild<'a> {
    pub manifest_uri: String,
    pub base: DatasetBase,
    pub groups: Vec<&'a FeatureGroup>,
    /// The options it was built with, and its row count.
    pub properties: BTreeMap<String, String>,
}

impl Lineage {
    /// Records a dataset and where it came from; returns its artifact's ARN.
    pub fn record_dataset(&self, build: &DatasetBuild<'_>, by: Option<&str>) -> Result<String> {
        let dataset = self
            .create(
                artifact(&build.manifest_uri, DATASET_TYPE, build.properties.clone()),
                by,
            )?
            .arn;
        let (base, base_uri) = self.base_artifact(&build.base, by)?;
        self.add_association(&base, &dataset, Some(AssociationType::DerivedFrom), by)?;
        for group in &build.groups {
            // A group created before the lineage service gets its contexts now.
            self.record_feature_group(group)?;
            let context = crate::feature_groups::group_context_arn(self, group);
            self.add_association(&context, &dataset, Some(AssociationType::DerivedFrom), by)?;
        }
        if let Some(emitter) = &self.emitter {
            let mut inputs = vec![base_uri];
            inputs.extend(build.groups.iter().map(|g| g.arn.clone()));
            let output = build
                .manifest_uri
                .trim_end_matches("/manifest.json")
                .to_string();
            emitter.run_completed("dataset.create", &inputs, &[output], &self.now_iso());
        }
        Ok(dataset)
    }

    /// The artifact standing for a file or an SQL statement (`quiver:sql/<hash>`, of type
    /// `Query`, holding the statement), made if there is none; its ARN and SourceUri.
    pub fn base_artifact(&self, base: &DatasetBase, by: Option<&str>) -> Result<(String, String)> {
        match base {
            DatasetBase::File(uri) => Ok((
                self.artifact_for(uri, DATASET_TYPE, BTreeMap::new(), by)?,
                uri.clone(),
            )),
            DatasetBase::Sql(sql) => {
                let uri = format!("quiver:sql/{:016x}", fnv1a(sql.as_bytes()));
                let mut properties = BTreeMap::new();
                let statement: String = sql.chars().take(4096).collect();
                properties.insert("Sql".to_string(), statement);
                Ok((self.artifact_for(&uri, QUERY_TYPE, properties, by)?, uri))
            }
        }
    }

    /// The artifact of this type with this SourceUri, made if there is none.
    pub fn artifact_for(
        &self,
        uri: &str,
        artifact_type: &str,
        properties: BTreeMap<String, String>,
        by: Option<&str>,
    ) -> Result<String> {
        let prefix = keys::source_uri_prefix(EntityKind::Artifact, uri);
        let mut existing = None;
        self.records.scan(LineageTable::Index, &prefix, |key, _| {
            let arn = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if self
                .get(&arn)?
                .is_some_and(|e| e.entity_type == artifact_type)
            {
                existing = Some(arn);
                return Ok(false);
            }
            Ok(true)
        })?;
        match existing {
            Some(arn) => Ok(arn),
            None => Ok(self
                .create(artifact(uri, artifact_type, properties), by)?
                .arn),
        }
    }
}

fn artifact(uri: &str, artifact_type: &str, properties: BTreeMap<String, String>) -> NewEntity {
    NewEntity {
        kind: EntityKind::Artifact,
        name: None,
        source: Source {
            source_uri: uri.to_string(),
            source_types: Vec::new(),
            source_type: None,
            source_id: None,
        },
        entity_type: artifact_type.to_string(),
        description: None,
        status: None,
        properties,
        metadata: MetadataProperties::default(),
        tags: Vec::new(),
    }
}

/// A stable 64-bit hash of a statement (FNV-1a): the same SQL is the same artifact.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
