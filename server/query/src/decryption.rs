//! Offline files encrypted at rest, read by the query engine: DataFusion asks
//! [`OfflineDecryption`] (registered as encryption factory [`FACTORY_ID`]) for each file's
//! decryption properties, whose keys come from the offline store's [`FileKeys`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::EncryptionFactoryOptions;
use datafusion::execution::parquet_encryption::EncryptionFactory;
use object_store::path::Path;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use quiver_offline::encryption::FileKeys;

/// The id the query engine knows [`OfflineDecryption`] by.
pub const FACTORY_ID: &str = "quiver";

/// Decrypts offline files for the query engine.
#[derive(Debug, Clone)]
pub struct OfflineDecryption {
    keys: Arc<FileKeys>,
}

impl OfflineDecryption {
    pub fn new(keys: FileKeys) -> Self {
        Self {
            keys: Arc::new(keys),
        }
    }
}

#[async_trait]
impl EncryptionFactory for OfflineDecryption {
    async fn get_file_encryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _schema: &SchemaRef,
        _file_path: &Path,
    ) -> datafusion::common::Result<Option<Arc<FileEncryptionProperties>>> {
        // The query engine writes no offline files.
        Ok(None)
    }

    async fn get_file_decryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _file_path: &Path,
    ) -> datafusion::common::Result<Option<Arc<FileDecryptionProperties>>> {
        let properties = FileDecryptionProperties::with_key_retriever(self.keys.clone())
            .build()
            .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
        Ok(Some(properties))
    }
}
