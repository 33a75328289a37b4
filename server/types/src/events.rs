//! What the feature store tells the services beside it (the lineage service records it):
//! observers of feature-group changes, called after each change is committed.

use crate::model::FeatureGroup;

/// Told of each feature group created and deleted, after the change is committed. An
/// observer's failure is its own to log: it never undoes the change it was told of.
pub trait GroupObserver: Send + Sync {
    fn group_created(&self, group: &FeatureGroup);
    fn group_deleted(&self, group: &FeatureGroup);
}
