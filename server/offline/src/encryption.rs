//! Parquet modular encryption of offline files, with key metadata in the form of the Parquet
//! key-management tools specification, which pyarrow's `CryptoFactory` (and Spark's
//! `PropertiesDrivenCryptoFactory`) read.
//!
//! Each file gets its own data encryption key (AES-256-GCM), which encrypts the footer and every
//! column (uniform encryption, encrypted footer). The key is wrapped by the group's
//! key-management key, bound to the group's ARN (for AWS KMS: `Encrypt` with the encryption
//! context `aws:sagemaker:feature-group-arn`), and stored in the footer's key metadata:
//!
//! ```json
//! {"keyMaterialType": "PKMT1", "internalStorage": true, "isFooterKey": true,
//!  "kmsInstanceID": "DEFAULT", "kmsInstanceURL": "DEFAULT", "masterKeyID": "<KmsKeyId>",
//!  "wrappedDEK": "<base64 of the wrapped key>", "doubleWrapping": false,
//!  "encryptionContext": {"aws:sagemaker:feature-group-arn": "<group ARN>"}}
//! ```
//!
//! A reader's KMS client is called with `wrappedDEK` and `masterKeyID`; for an AWS KMS key it
//! base64-decodes the first and calls KMS `Decrypt` with the encryption context
//! (docs/security.md shows a pyarrow client). The server's own queries read the files with
//! [`FileKeys`] (the query engine registers it with DataFusion).
//!
//! Files are immutable once written, as S3 objects are: rotating a key does not re-wrap the
//! keys inside them. AWS KMS keeps old key material for decryption, and local keys keep their
//! old versions, so rotated files stay readable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use parquet::encryption::decrypt::KeyRetriever;
use parquet::encryption::encrypt::FileEncryptionProperties;
use serde::{Deserialize, Serialize};

use quiver_storage::kms::{Context, KEY_LEN, KeyProvider, Scope, random};
use quiver_types::error::{Error, Result};

const KEY_MATERIAL_TYPE: &str = "PKMT1";
/// Unwrapped file keys kept at most this many (a query reading many files unwraps each once).
const CACHE_ENTRIES: usize = 65_536;

/// The key material of the Parquet key-management tools specification, stored internally.
#[derive(Debug, Serialize, Deserialize)]
struct KeyMaterial {
    #[serde(rename = "keyMaterialType")]
    key_material_type: String,
    #[serde(rename = "internalStorage")]
    internal_storage: bool,
    #[serde(rename = "isFooterKey")]
    is_footer_key: bool,
    #[serde(rename = "kmsInstanceID", default)]
    kms_instance_id: String,
    #[serde(rename = "kmsInstanceURL", default)]
    kms_instance_url: String,
    #[serde(rename = "masterKeyID")]
    master_key_id: String,
    #[serde(rename = "wrappedDEK")]
    wrapped_dek: String,
    #[serde(rename = "doubleWrapping")]
    double_wrapping: bool,
    /// Quiver's addition (readers of the specification ignore it): what the key is bound to.
    #[serde(rename = "encryptionContext", default)]
    encryption_context: HashMap<String, String>,
}

/// The encryption properties of one new offline file of `scope`'s group: a fresh data key,
/// wrapped by `provider` under the group's key.
pub fn file_encryption(
    provider: &dyn KeyProvider,
    scope: &Scope<'_>,
) -> Result<Arc<FileEncryptionProperties>> {
    let mut dek = [0u8; KEY_LEN];
    random(&mut dek)?;
    let context = Context::group(scope.arn);
    let wrapped = provider.wrap(scope.key_id, &dek, context)?;
    let material = KeyMaterial {
        key_material_type: KEY_MATERIAL_TYPE.into(),
        internal_storage: true,
        is_footer_key: true,
        kms_instance_id: "DEFAULT".into(),
        kms_instance_url: "DEFAULT".into(),
        master_key_id: scope.key_id.to_string(),
        wrapped_dek: base64(&wrapped),
        double_wrapping: false,
        encryption_context: HashMap::from([(context.name.into(), context.value.into())]),
    };
    let metadata = serde_json::to_vec(&material).map_err(|e| Error::internal(e.to_string()))?;
    FileEncryptionProperties::builder(dek.to_vec())
        .with_footer_key_metadata(metadata)
        .build()
        .map_err(|e| Error::internal(format!("Parquet encryption properties: {e}")))
}

/// The keys of offline files, for readers: unwraps each file's key through the key providers,
/// caching it for `max_age` (the data-key cache bound).
pub struct FileKeys {
    provider: Arc<dyn KeyProvider>,
    max_age: Duration,
    /// Unwrapped keys by wrapped key.
    cache: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
}

impl FileKeys {
    pub fn new(provider: Arc<dyn KeyProvider>, max_age: Duration) -> Self {
        Self {
            provider,
            max_age,
            cache: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKeys").finish_non_exhaustive()
    }
}

impl FileKeys {
    fn key(&self, metadata: &[u8]) -> Result<Vec<u8>> {
        let material: KeyMaterial = serde_json::from_slice(metadata).map_err(|e| {
            Error::internal(format!(
                "an offline file's key metadata is not Parquet key material: {e}"
            ))
        })?;
        if !material.internal_storage || material.double_wrapping {
            return Err(Error::internal(
                "an offline file uses external key material or double wrapping, which Quiver \
                 does not write",
            ));
        }
        if let Some((key, at)) = self.cache.lock().get(&material.wrapped_dek)
            && at.elapsed() < self.max_age
        {
            return Ok(key.clone());
        }
        let wrapped = unbase64(&material.wrapped_dek)
            .ok_or_else(|| Error::internal("an offline file's wrapped key is not base64"))?;
        let (name, value) = material
            .encryption_context
            .iter()
            .next()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .unwrap_or(("", ""));
        let key = self
            .provider
            .unwrap(&material.master_key_id, &wrapped, Context::new(name, value))?
            .to_vec();
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(material.wrapped_dek, (key.clone(), Instant::now()));
        Ok(key)
    }
}

impl KeyRetriever for FileKeys {
    fn retrieve_key(&self, key_metadata: &[u8]) -> parquet::errors::Result<Vec<u8>> {
        self.key(key_metadata)
            .map_err(|e| parquet::errors::ParquetError::General(e.message().to_string()))
    }
}

fn base64(bytes: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
}
