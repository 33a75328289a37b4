//! [`FeatureStore`]: the registry, the online store and the offline store, opened together
//! ([`StoreOptions`]), and the way async callers run its blocking operations ([`blocking`]).

use std::path::PathBuf;
use std::sync::Arc;

use quiver_offline::flusher::FlushSources;
use quiver_offline::{OfflineConfig, OfflineStore};
use quiver_storage::db::{self, StorageOptions};
use quiver_storage::kms::{DataKeyPolicy, DataKeys, Keys};
use quiver_storage::online::OnlineStore;
use quiver_storage::registry::Registry;
use quiver_types::error::{Error, Result};
use quiver_types::events::GroupObserver;
use quiver_types::model::arn::ArnContext;
use quiver_types::time::Clock;

/// Where the stores live and how they behave: what the server's configuration decides.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The RocksDB database's directory.
    pub data_dir: PathBuf,
    pub block_cache_bytes: usize,
    /// The account and region in ARNs.
    pub arns: ArnContext,
    /// Each write is fsynced before it is acknowledged (`wal_sync = "always"`).
    pub sync_writes: bool,
    pub data_key_policy: DataKeyPolicy,
    /// The key that encrypts groups naming none, when encryption at rest is on for every group.
    pub default_key_id: Option<String>,
    pub offline: OfflineConfig,
}

pub struct FeatureStore {
    pub(crate) registry: Arc<Registry>,
    pub(crate) online: Arc<OnlineStore>,
    pub(crate) offline: Arc<OfflineStore>,
    /// Source writes compare stored positions and write new ones: one at a time.
    pub(crate) source_writes: parking_lot::Mutex<()>,
    /// Told of groups created and deleted ([`FeatureStore::observe`]).
    pub(crate) observers: parking_lot::RwLock<Vec<Arc<dyn GroupObserver>>>,
}

impl FeatureStore {
    /// Opens the stores under `options.data_dir`, encrypting with `keys`.
    pub fn open(options: &StoreOptions, clock: Arc<dyn Clock>, keys: Arc<Keys>) -> Result<Self> {
        let db = db::open(
            &options.data_dir,
            &StorageOptions {
                block_cache_bytes: options.block_cache_bytes,
            },
        )?;
        let registry = Registry::open(db.clone(), options.arns.clone(), clock.clone())?;
        let data_keys = Arc::new(DataKeys::new(
            db.clone(),
            keys,
            options.data_key_policy,
            options.default_key_id.clone(),
            clock.clone(),
        ));
        let online = OnlineStore::open(
            db,
            clock,
            options.sync_writes,
            options.offline.staging_limit_bytes,
            data_keys,
        )?;
        online.migrate_record_keys(&registry.all())?;
        let offline = OfflineStore::new(
            options.offline.clone(),
            options.arns.account_id.clone(),
            options.arns.region.clone(),
        );
        Ok(Self::new(registry, online, offline))
    }

    pub fn new(registry: Registry, online: OnlineStore, offline: OfflineStore) -> Self {
        Self {
            registry: Arc::new(registry),
            online: Arc::new(online),
            offline: Arc::new(offline),
            source_writes: parking_lot::Mutex::new(()),
            observers: parking_lot::RwLock::new(Vec::new()),
        }
    }

    /// Tells `observer` of every feature group created or deleted from now on.
    pub fn observe(&self, observer: Arc<dyn GroupObserver>) {
        self.observers.write().push(observer);
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

    /// What the offline flusher works from: the same registry and stores.
    pub fn flush_sources(&self) -> FlushSources {
        FlushSources {
            registry: self.registry.clone(),
            online: self.online.clone(),
            offline: self.offline.clone(),
        }
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
