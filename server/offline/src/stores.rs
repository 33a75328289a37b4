//! The object stores offline files go to: a base URI (`file:///dir` or `s3://bucket/prefix`)
//! resolved to an `object_store` client and a path prefix. One client per bucket (or local
//! root), built on first use and shared.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use parking_lot::Mutex;

use quiver_types::error::{Error, Result};

/// A base URI resolved: where to write and under which prefix.
#[derive(Clone, Debug)]
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
}

impl Destination {
    /// `<prefix>/<relative>` as an object path.
    pub fn path(&self, relative: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.prefix))
        }
    }
}

#[derive(Debug, Default)]
pub struct ObjectStores {
    s3_endpoint: Option<String>,
    region: String,
    clients: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ObjectStores {
    pub fn new(s3_endpoint: Option<String>, region: String) -> Self {
        Self {
            s3_endpoint,
            region,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn resolve(&self, base_uri: &str) -> Result<Destination> {
        self.resolve_with(base_uri, None)
    }

    /// As [`ObjectStores::resolve`]; on S3, objects are written with SSE-KMS under `sse_kms`
    /// when given.
    pub fn resolve_with(&self, base_uri: &str, sse_kms: Option<&str>) -> Result<Destination> {
        let base_uri = base_uri.trim_end_matches('/');
        if let Some(dir) = base_uri.strip_prefix("file://") {
            let store = self.client(&format!("file://{dir}"), || {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::internal(format!("cannot create offline store directory {dir}: {e}"))
                })?;
                let local = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    Error::internal(format!("cannot open offline store directory {dir}: {e}"))
                })?;
                Ok(Arc::new(local) as Arc<dyn ObjectStore>)
            })?;
            return Ok(Destination {
                store,
                prefix: String::new(),
            });
        }
        let rest = base_uri
            .strip_prefix("s3://")
            .or_else(|| base_uri.strip_prefix("https://"))
            .ok_or_else(|| {
                Error::validation(format!(
                    "offline store URI '{base_uri}' must be s3://bucket/prefix or file:///dir"
                ))
            })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let key = match sse_kms {
            Some(kms_key) => format!("s3://{bucket}#sse-kms={kms_key}"),
            None => format!("s3://{bucket}"),
        };
        let store = self.client(&key, || self.s3_client(bucket, sse_kms))?;
        Ok(Destination {
            store,
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    fn client(
        &self,
        key: &str,
        build: impl FnOnce() -> Result<Arc<dyn ObjectStore>>,
    ) -> Result<Arc<dyn ObjectStore>> {
        let mut clients = self.clients.lock();
        if let Some(client) = clients.get(key) {
            return Ok(client.clone());
        }
        let client = build()?;
        clients.insert(key.to_string(), client.clone());
        Ok(client)
    }

    /// Credentials and region from the usual AWS_* environment; the endpoint from configuration.
    /// Retries are few and short: the flusher has its own backoff and must notice an outage.
    fn s3_client(&self, bucket: &str, sse_kms: Option<&str>) -> Result<Arc<dyn ObjectStore>> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            );
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region(&self.region);
        }
        if let Some(kms_key) = sse_kms {
            builder = builder.with_sse_kms_encryption(kms_key);
        }
        if let Some(endpoint) = &self.s3_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| {
            Error::internal(format!("cannot configure S3 for bucket '{bucket}': {e}"))
        })?;
        Ok(Arc::new(store))
    }
}
