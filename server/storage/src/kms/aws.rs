//! AWS KMS as key provider (aws-sdk-kms; any KMS-compatible endpoint, such as moto's in the
//! tests). Data keys come from GenerateDataKey and are unwrapped with Decrypt, each bound to the
//! encryption context (for a feature group's keys, `aws:sagemaker:feature-group-arn` = its
//! ARN), so KMS's own policies and CloudTrail see which group a key serves.
//!
//! The callers are synchronous (the write path holds RocksDB batches), and run on runtimes that
//! must not block in place, so KMS calls run on this provider's own small runtime and the caller
//! waits for the answer. [`super::DataKeys`] caches data keys, so this happens once per data key,
//! not per record.

use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use super::{Context, DataKey, KeyProvider};
use quiver_types::error::{Error, Result};

/// How long a KMS call may take before the operation that needs it fails (UNAVAILABLE).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AwsKms {
    client: Client,
    /// Runs the calls; shut down in the background when the provider is dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl AwsKms {
    /// Credentials from the usual AWS chain; region from the environment, else `region`;
    /// `endpoint` for a KMS-compatible server other than AWS's.
    pub async fn connect(endpoint: Option<&str>, region: &str) -> Result<Self> {
        let region_chain = RegionProviderChain::default_provider()
            .or_else(aws_config::Region::new(region.to_string()));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region_chain);
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let client = Client::new(&loader.load().await);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("quiver-kms")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("starting the AWS KMS client runtime: {e}")))?;
        Ok(Self {
            client,
            runtime: Some(runtime),
        })
    }

    /// Runs `call` on the provider's runtime and waits for it (from any thread).
    fn call<T: Send + 'static>(
        &self,
        what: String,
        call: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(async move {
                let _ = tx.send(call.await);
            });
        rx.recv_timeout(CALL_TIMEOUT).map_err(|_| {
            Error::unavailable(format!(
                "AWS KMS {what}: no answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))
        })?
    }
}

impl Drop for AwsKms {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A KMS failure as an error naming the operation and key: unreachable KMS is UNAVAILABLE,
/// anything KMS refused (unknown or disabled key, wrong context, access denied) is internal,
/// since the data cannot be read or written until an operator fixes the key.
fn kms_error<E, R>(what: &str, key_id: &str, e: aws_sdk_kms::error::SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = format!(
        "AWS KMS {what} with key {key_id}: {}",
        DisplayErrorContext(&e)
    );
    match e {
        aws_sdk_kms::error::SdkError::ServiceError(_) => Error::internal(message),
        _ => Error::unavailable(message),
    }
}

fn data_key(bytes: Option<Blob>, what: &str, key_id: &str) -> Result<DataKey> {
    bytes
        .map(Blob::into_inner)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Error::internal(format!(
                "AWS KMS {what} with key {key_id} returned no 32-byte data key"
            ))
        })
}

impl KeyProvider for AwsKms {
    fn generate(&self, key_id: &str, context: Context<'_>) -> Result<(DataKey, Vec<u8>)> {
        let request = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(context.name, context.value);
        let key = key_id.to_string();
        self.call(format!("GenerateDataKey with key {key_id}"), async move {
            let out = request
                .send()
                .await
                .map_err(|e| kms_error("GenerateDataKey", &key, e))?;
            let wrapped = out.ciphertext_blob.map(Blob::into_inner).ok_or_else(|| {
                Error::internal("AWS KMS GenerateDataKey returned no CiphertextBlob")
            })?;
            Ok((data_key(out.plaintext, "GenerateDataKey", &key)?, wrapped))
        })
    }

    fn wrap(&self, key_id: &str, data_key: &DataKey, context: Context<'_>) -> Result<Vec<u8>> {
        let request = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(data_key.to_vec()))
            .encryption_context(context.name, context.value);
        let key = key_id.to_string();
        self.call(format!("Encrypt with key {key_id}"), async move {
            let out = request
                .send()
                .await
                .map_err(|e| kms_error("Encrypt", &key, e))?;
            out.ciphertext_blob
                .map(Blob::into_inner)
                .ok_or_else(|| Error::internal("AWS KMS Encrypt returned no CiphertextBlob"))
        })
    }

    fn unwrap(&self, key_id: &str, wrapped: &[u8], context: Context<'_>) -> Result<DataKey> {
        let request = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .encryption_context(context.name, context.value);
        let key = key_id.to_string();
        self.call(format!("Decrypt with key {key_id}"), async move {
            let out = request
                .send()
                .await
                .map_err(|e| kms_error("Decrypt", &key, e))?;
            data_key(out.plaintext, "Decrypt", &key)
        })
    }

    fn is_current(&self, _key_id: &str, _wrapped: &[u8]) -> Result<bool> {
        Ok(false)
    }
}
