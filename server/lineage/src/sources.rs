//! The lineage Quiver records for its stream sources: each Kafka topic or Kinesis stream a
//! source reads (`kafka://<brokers>/<topic>`, `kinesis://<region>/<stream>`, as the ingest
//! workers send them with their writes) is an artifact (type `KafkaTopic`, `KinesisStream` or
//! `Stream`, with the source's name as a property) that ContributedTo the group it feeds. Each
//! (group, URI) is recorded once per server process, off the write path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use quiver_types::error::{ErrorKind, Result};
use quiver_types::model::FeatureGroup;

use crate::Lineage;
use crate::model::AssociationType;

/// Remembers which (group, source URI) pairs this process has recorded, so that a write
/// costs one set lookup and only the first write of a pair records it.
pub struct SourceLineage {
    lineage: Arc<Lineage>,
    /// Group (as writes name it) -> the URIs recorded for it.
    seen: Mutex<HashMap<String, HashSet<String>>>,
}

impl SourceLineage {
    pub fn new(lineage: Arc<Lineage>) -> Self {
        Self {
            lineage,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Those of `uris` not yet recorded for `group`; they count as recorded from now on (see
    /// [`SourceLineage::record`] for a failure). Called on every stream write: when nothing is
    /// new, it allocates nothing.
    pub fn unseen(&self, group: &str, uris: &[String]) -> Vec<String> {
        let mut seen = self.seen.lock();
        if uris.is_empty()
            || seen
                .get(group)
                .is_some_and(|known| uris.iter().all(|u| known.contains(u)))
        {
            return Vec::new();
        }
        let known = seen.entry(group.to_string()).or_default();
        uris.iter()
            .filter(|uri| known.insert((*uri).clone()))
            .cloned()
            .collect()
    }

    /// Records that `uri`, read by the source `source`, feeds `group` (named `as_written` by
    /// the writes). On failure the pair is forgotten, so a later write records it again.
    pub fn record(
        &self,
        source: &str,
        as_written: &str,
        group: &FeatureGroup,
        uri: &str,
    ) -> Result<()> {
        let recorded = self.lineage.record_stream_source(source, group, uri);
        if recorded.is_err()
            && let Some(known) = self.seen.lock().get_mut(as_written)
        {
            known.remove(uri);
        }
        recorded.map(|_| ())
    }
}

/// The artifact type of a source URI.
fn stream_type(uri: &str) -> &'static str {
    if uri.starts_with("kafka://") {
        "KafkaTopic"
    } else if uri.starts_with("kinesis://") {
        "KinesisStream"
    } else {
        "Stream"
    }
}

impl Lineage {
    /// The stream's artifact (made if missing) ContributedTo the group's context; returns the
    /// artifact's ARN.
    pub fn record_stream_source(
        &self,
        source: &str,
        group: &FeatureGroup,
        uri: &str,
    ) -> Result<String> {
        self.record_feature_group(group)?;
        let mut properties = BTreeMap::new();
        properties.insert("SourceName".to_string(), source.to_string());
        let artifact = self.artifact_for(uri, stream_type(uri), properties, None)?;
        let context = crate::feature_groups::group_context_arn(self, group);
        match self.add_association(
            &artifact,
            &context,
            Some(AssociationType::ContributedTo),
            None,
        ) {
            Err(e) if e.kind() != ErrorKind::Validation => return Err(e),
            _ => {}
        }
        if let Some(emitter) = &self.emitter {
            emitter.job(
                &format!("ingest.{source}"),
                &[uri.to_string()],
                std::slice::from_ref(&group.arn),
                &self.now_iso(),
            );
        }
        Ok(artifact)
    }
}
