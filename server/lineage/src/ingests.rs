//! The lineage Quiver records for writes through SageMaker's runtime API: boto3's
//! `put_record`, the SageMaker SDK's `FeatureGroup.ingest` (many PutRecord calls from threads
//! and processes), Quiver's `BatchWriteRecord`. Such writes do not say they belong together,
//! so Quiver groups them into **ingest sessions**: the writes of one caller (its principal, or
//! none without `--auth`), from one client (its User-Agent), to one feature group, with no
//! pause longer than the idle time. A session is recorded when it ends, as `quiver ingest`
//! records a file: an action of type `BatchIngest` with its row and request counts, first and
//! last write as properties, that ContributedTo the group's context.
//!
//! A write costs one hash and one map update under a short lock ([`IngestSessions::observe`]);
//! the graph is written later, off the write path ([`IngestSessions::flush`], called by the
//! server every few seconds and at shutdown).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use quiver_types::error::{ErrorKind, Result};
use quiver_types::model::FeatureGroup;
use quiver_types::time::EpochMillis;

use crate::Lineage;
use crate::model::{AssociationType, EntityKind, MetadataProperties, NewEntity, Source};

/// The action type of an ingest session (and of `quiver ingest`).
pub const BATCH_INGEST_TYPE: &str = "BatchIngest";
/// The default pause that ends a session.
pub const DEFAULT_IDLE_SECS: u64 = 60;
/// How much of a User-Agent is kept.
const MAX_CLIENT_LEN: usize = 256;

/// The open sessions.
pub struct IngestSessions {
    lineage: Arc<Lineage>,
    idle_ms: i64,
    /// By the hash of (group, principal, client).
    open: Mutex<HashMap<u64, Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    group: String,
    principal: Option<String>,
    client: String,
    rows: u64,
    requests: u64,
    first_ms: EpochMillis,
    last_ms: EpochMillis,
}

/// What a flush recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIngest {
    pub action_arn: String,
    pub group: String,
    pub rows: u64,
}

impl IngestSessions {
    pub fn new(lineage: Arc<Lineage>, idle: std::time::Duration) -> Self {
        Self {
            lineage,
            idle_ms: i64::try_from(idle.as_millis()).unwrap_or(i64::MAX).max(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// How long the server may wait between flushes and still end sessions on time.
    pub fn tick(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.idle_ms / 4).clamp(100, 5_000) as u64)
    }

    /// Counts `rows` written to `group` (as the request named it) by `principal` from
    /// `client` (its User-Agent). Allocates only when a session opens.
    pub fn observe(&self, group: &str, principal: Option<&str>, client: &str, rows: u64) {
        let now = self.lineage.clock.now_ms();
        let client = clip(client);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (group, principal, client).hash(&mut hasher);
        let key = hasher.finish();
        let mut open = self.open.lock();
        let session = open.entry(key).or_insert_with(|| Session {
            group: group.to_string(),
            principal: principal.map(str::to_string),
            client: client.to_string(),
            rows: 0,
            requests: 0,
            first_ms: now,
            last_ms: now,
        });
        session.rows += rows;
        session.requests += 1;
        session.last_ms = now;
    }

    /// Records the sessions idle for the idle time (every open session with `all`, at
    /// shutdown). `group_of` finds a group by the name its writes gave (a group deleted since
    /// is skipped); `principal_arn` makes a principal's ARN, the action's creator. A session
    /// that fails to record is kept for the next flush.
    pub fn flush(
        &self,
        all: bool,
        group_of: &dyn Fn(&str) -> Option<Arc<FeatureGroup>>,
        principal_arn: &dyn Fn(&str) -> String,
    ) -> Result<Vec<RecordedIngest>> {
        let now = self.lineage.clock.now_ms();
        let ended: Vec<(u64, Session)> = {
            let mut open = self.open.lock();
            let keys: Vec<u64> = open
                .iter()
                .filter(|(_, s)| all || now - s.last_ms >= self.idle_ms)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| open.remove(&k).map(|s| (k, s)))
                .collect()
        };
        let mut recorded = Vec::new();
        let mut failure = None;
        for (key, session) in ended {
            let Some(group) = group_of(&session.group) else {
                continue;
            };
            match self.record(&session, &group, principal_arn) {
                Ok(action_arn) => recorded.push(RecordedIngest {
                    action_arn,
                    group: group.name.clone(),
                    rows: session.rows,
                }),
                Err(e) => {
                    tracing::warn!(group = %group.name, error = %e, "recording an ingest session in the lineage graph failed; retrying at the next flush");
                    self.open.lock().entry(key).or_insert(session);
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) if recorded.is_empty() => Err(e),
            _ => Ok(recorded),
        }
    }

    fn record(
        &self,
        session: &Session,
        group: &FeatureGroup,
        principal_arn: &dyn Fn(&str) -> String,
    ) -> Result<String> {
        let lineage = &self.lineage;
        lineage.record_feature_group(group)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&session.principal, &session.client).hash(&mut hasher);
        let name = format!(
            "ingest-{}-{}-{:08x}",
            group.name.replace('_', "-"),
            session.first_ms,
            hasher.finish() as u32
        );
        let by = session.principal.as_deref().map(principal_arn);
        let iso = quiver_types::time::format_iso8601;
        let mut properties = BTreeMap::from([
            ("FeatureGroupName".to_string(), group.name.clone()),
            ("rows".to_string(), session.rows.to_string()),
            ("requests".to_string(), session.requests.to_string()),
            ("first_write".to_string(), iso(session.first_ms)),
            ("last_write".to_string(), iso(session.last_ms)),
            ("via".to_string(), "SageMaker runtime API".to_string()),
        ]);
        if !session.client.is_empty() {
            properties.insert("client".to_string(), session.client.clone());
        }
        if let Some(by) = &by {
            properties.insert("principal".to_string(), by.clone());
        }
        let action = match lineage.create(
            NewEntity {
                kind: EntityKind::Action,
                name: Some(name.clone()),
                source: Source {
                    source_uri: group.arn.clone(),
                    source_types: Vec::new(),
                    source_type: Some("SageMakerRuntimeAPI".to_string()),
                    source_id: None,
                },
                entity_type: BATCH_INGEST_TYPE.to_string(),
                description: None,
                status: Some("Completed".to_string()),
                properties,
                metadata: MetadataProperties::default(),
                tags: Vec::new(),
            },
            by.as_deref(),
        ) {
            Ok(action) => action.arn,
            // Recorded by an earlier flush whose association failed.
            Err(e)
                if e.kind() == ErrorKind::Validation && e.message().contains("already exists") =>
            {
                lineage.arn(EntityKind::Action, &name.to_ascii_lowercase())
            }
            Err(e) => return Err(e),
        };
        let context = crate::feature_groups::group_context_arn(lineage, group);
        match lineage.add_association(
            &action,
            &context,
            Some(AssociationType::ContributedTo),
            by.as_deref(),
        ) {
            Err(e) if e.kind() != ErrorKind::Validation => return Err(e),
            _ => {}
        }
        if let Some(emitter) = &lineage.emitter {
            emitter.job(
                &format!("ingest.{name}"),
                &[],
                std::slice::from_ref(&group.arn),
                &lineage.now_iso(),
            );
        }
        Ok(action)
    }

    /// How many sessions are open.
    pub fn open_sessions(&self) -> usize {
        self.open.lock().len()
    }
}

/// A User-Agent cut to [`MAX_CLIENT_LEN`] bytes at a character boundary.
fn clip(client: &str) -> &str {
    if client.len() <= MAX_CLIENT_LEN {
        return client;
    }
    let mut end = MAX_CLIENT_LEN;
    while !client.is_char_boundary(end) {
        end -= 1;
    }
    &client[..end]
}
