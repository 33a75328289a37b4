//! The lineage Quiver records for its feature groups: the three contexts the SageMaker SDK's
//! feature processor looks up for a group (`sagemaker.feature_store.feature_processor.lineage`),
//! named from the group's name and creation time in whole epoch seconds:
//!
//! | context | ContextType |
//! | --- | --- |
//! | `{group}-{epoch}` | `FeatureGroup` |
//! | `{group}-{epoch}-feature-group-pipeline` | `FeatureGroupPipeline` |
//! | `{group}-{epoch}-feature-group-pipeline-version` | `FeatureGroupPipelineVersion` |
//!
//! each with the group's ARN as its SourceUri; the pipeline context is AssociatedWith the
//! group's, and the version context AssociatedWith the pipeline's. They are created with the
//! group, deleted with it, and made at start for groups that do not have them yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use quiver_types::error::{ErrorKind, Result};
use quiver_types::events::GroupObserver;
use quiver_types::model::FeatureGroup;

use crate::Lineage;
use crate::model::{AssociationType, EntityKind, MetadataProperties, NewEntity, Source};

pub const GROUP_CONTEXT_TYPE: &str = "FeatureGroup";
pub const PIPELINE_CONTEXT_TYPE: &str = "FeatureGroupPipeline";
pub const PIPELINE_VERSION_CONTEXT_TYPE: &str = "FeatureGroupPipelineVersion";
const PIPELINE_SUFFIX: &str = "feature-group-pipeline";
const PIPELINE_VERSION_SUFFIX: &str = "feature-group-pipeline-version";

/// The names of a group's three contexts: the group's, its pipeline's, its pipeline version's.
pub fn context_names(group: &FeatureGroup) -> [String; 3] {
    let base = format!("{}-{}", group.name, group.creation_time_ms.div_euclid(1000));
    [
        base.clone(),
        format!("{base}-{PIPELINE_SUFFIX}"),
        format!("{base}-{PIPELINE_VERSION_SUFFIX}"),
    ]
}

/// The ARN of the context that stands for `group` in the graph.
pub fn group_context_arn(lineage: &Lineage, group: &FeatureGroup) -> String {
    let [base, _, _] = context_names(group);
    lineage.arn(EntityKind::Context, &base.to_ascii_lowercase())
}

impl Lineage {
    /// Creates whichever of the group's contexts and their associations are missing.
    pub fn record_feature_group(&self, group: &FeatureGroup) -> Result<()> {
        let names = context_names(group);
        let types = [
            GROUP_CONTEXT_TYPE,
            PIPELINE_CONTEXT_TYPE,
            PIPELINE_VERSION_CONTEXT_TYPE,
        ];
        let mut arns = Vec::new();
        for (name, context_type) in names.iter().zip(types) {
            let arn = self.arn(EntityKind::Context, &name.to_ascii_lowercase());
            if self.get(&arn)?.is_none() {
                let mut properties = BTreeMap::new();
                properties.insert("FeatureGroupName".to_string(), group.name.clone());
                let created = self.create(
                    NewEntity {
                        kind: EntityKind::Context,
                        name: Some(name.clone()),
                        source: Source {
                            source_uri: group.arn.clone(),
                            source_types: Vec::new(),
                            source_type: Some("FeatureGroup".into()),
                            source_id: None,
                        },
                        entity_type: context_type.to_string(),
                        description: None,
                        status: None,
                        properties,
                        metadata: MetadataProperties::default(),
                        tags: Vec::new(),
                    },
                    None,
                );
                // Another caller made it first: as good.
                if let Err(e) = created
                    && e.kind() != ErrorKind::Validation
                {
                    return Err(e);
                }
            }
            arns.push(arn);
        }
        for (from, to) in [(&arns[1], &arns[0]), (&arns[2], &arns[1])] {
            match self.add_association(from, to, Some(AssociationType::AssociatedWith), None) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Validation => {} // exists already
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes the group's contexts (and with them their associations).
    pub fn forget_feature_group(&self, group: &FeatureGroup) -> Result<()> {
        for name in context_names(group) {
            match self.delete(EntityKind::Context, "ContextName", &name) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Records feature groups in the graph as they are created and deleted.
pub struct FeatureGroupLineage(pub Arc<Lineage>);

impl GroupObserver for FeatureGroupLineage {
    fn group_created(&self, group: &FeatureGroup) {
        if let Err(e) = self.0.record_feature_group(group) {
            tracing::error!(group = %group.name, error = %e, "cannot record the feature group's lineage contexts");
        }
    }

    fn group_deleted(&self, group: &FeatureGroup) {
        if let Err(e) = self.0.forget_feature_group(group) {
            tracing::error!(group = %group.name, error = %e, "cannot delete the feature group's lineage contexts");
        }
    }
}
