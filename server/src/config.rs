//! Server configuration: every setting is a flag, a `QUIVER_*` environment variable, and a key of
//! the optional TOML file given with `--config`. Precedence: flag or environment variable, then
//! the file, then the default. `deploy/quiver.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

use quiver_core::StoreOptions;
use quiver_lineage::emit::EmitterConfig;
use quiver_net::TlsFiles;
use quiver_offline::OfflineConfig;
use quiver_storage::kms::DataKeyPolicy;
use quiver_types::model::arn::ArnContext;

/// How long staged rows wait for a flush by default: few, large offline files (at most one per
/// hour partition and group every 5 minutes) for outside readers; Quiver's queries read staged
/// rows, so they are current whatever it is.
pub const DEFAULT_OFFLINE_FLUSH_INTERVAL_MS: u64 = 300_000;

/// When a write's WAL entry reaches disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WalSync {
    /// fsync before every acknowledgement (concurrent writes share one fsync): an acknowledged
    /// write survives a crash of the process, the OS or the machine.
    Always,
    /// Write to the OS before acknowledging, fsync every `wal_sync_interval_ms`: survives a crash
    /// of the process (`kill -9`); a power loss may lose the last interval.
    Periodic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings as given: every field optional, so flags, environment and file can be merged.
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(
    name = "quiver-server",
    version,
    about = "Quiver feature store server",
    // A flag given twice takes its last value, as in most Unix tools (a wrapper's defaults,
    // then the caller's).
    args_override_self = true
)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServerArgs {
    /// TOML configuration file; flags and environment variables override its values.
    #[arg(long, env = "QUIVER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory holding the RocksDB database (created if missing). Default ./quiver-data.
    #[arg(long, env = "QUIVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// gRPC listen address; port 0 picks a free port. Default 127.0.0.1:7940.
    #[arg(long, env = "QUIVER_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,

    /// HTTP listen address for /metrics and /healthz; port 0 picks a free port. Default 127.0.0.1:7941.
    #[arg(long, env = "QUIVER_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// Once ready, write the bound addresses as JSON ({"grpc": ..., "http": ...}) to this file.
    #[arg(long, env = "QUIVER_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,

    /// When the write-ahead log is synced to disk. Default always.
    #[arg(long, env = "QUIVER_WAL_SYNC", value_enum)]
    pub wal_sync: Option<WalSync>,

    /// With wal_sync = periodic, how often the WAL is synced. Default 100.
    #[arg(long, env = "QUIVER_WAL_SYNC_INTERVAL_MS")]
    pub wal_sync_interval_ms: Option<u64>,

    /// RocksDB block cache for online records, in MiB. Default 256.
    #[arg(long, env = "QUIVER_BLOCK_CACHE_MB")]
    pub block_cache_mb: Option<usize>,

    /// How often expired records are purged from disk, in seconds. Default 60.
    #[arg(long, env = "QUIVER_TTL_PURGE_INTERVAL_SECS")]
    pub ttl_purge_interval_secs: Option<u64>,

    /// AWS-style account id used in ARNs. Default 000000000000.
    #[arg(long, env = "QUIVER_ACCOUNT_ID")]
    pub account_id: Option<String>,

    /// Region used in ARNs. Default us-east-1.
    #[arg(long, env = "QUIVER_REGION")]
    pub region: Option<String>,

    /// Largest gRPC request accepted, in MiB. Default 64.
    #[arg(long, env = "QUIVER_MAX_REQUEST_MB")]
    pub max_request_mb: Option<usize>,

    /// Threads serving gRPC connections, each connection on one of them. Default: one per CPU.
    #[arg(long, env = "QUIVER_GRPC_THREADS")]
    pub grpc_threads: Option<usize>,

    /// On SIGINT/SIGTERM, how long in-flight requests may take before connections are closed. Default 10.
    #[arg(long, env = "QUIVER_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,

    /// Most connections open at once on each listener (gRPC, HTTP, Flight SQL). Default 4096.
    #[arg(long, env = "QUIVER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Seconds a connection may stay silent: before its first byte, and on HTTP while a request's headers arrive or between requests. Default 30.
    #[arg(long, env = "QUIVER_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,

    /// Seconds an HTTP request's body may take to arrive. Default 60.
    #[arg(long, env = "QUIVER_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,

    /// Log format. Default text. Log levels come from RUST_LOG (default info).
    #[arg(long, env = "QUIVER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Where groups without their own S3Uri keep offline files: file:///abs/dir or
    /// s3://bucket/prefix. Default file://<data_dir>/offline-store.
    #[arg(long, env = "QUIVER_OFFLINE_STORE_URI")]
    pub offline_store_uri: Option<String>,

    /// Longest an accepted row waits before it is written to a Parquet file, in ms; each hour
    /// partition of a group gets at most one file per interval (queries through Quiver see
    /// rows at once, whatever it is). Default 300000 (5 minutes).
    #[arg(long, env = "QUIVER_OFFLINE_FLUSH_INTERVAL_MS")]
    pub offline_flush_interval_ms: Option<u64>,

    /// A flush starts early once this many MiB of rows wait, and no file holds more. Default 128.
    #[arg(long, env = "QUIVER_OFFLINE_MAX_FILE_MB")]
    pub offline_max_file_mb: Option<u64>,

    /// Writes to the offline store are refused with UNAVAILABLE while this many MiB of accepted
    /// rows wait for it (e.g. during an S3 outage). Default 4096.
    #[arg(long, env = "QUIVER_OFFLINE_STAGING_LIMIT_MB")]
    pub offline_staging_limit_mb: Option<u64>,

    /// S3 endpoint for s3:// offline stores (e.g. http://127.0.0.1:5000 for a local
    /// S3-compatible server); default AWS. Credentials come from the usual AWS_* environment.
    #[arg(long, env = "QUIVER_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// On S3 offline stores, also have S3 encrypt each object with SSE-KMS under the group's
    /// S3StorageConfig.KmsKeyId when it names an AWS KMS key, as SageMaker does. Default false.
    #[arg(long, env = "QUIVER_S3_SSE_KMS", num_args = 0..=1, default_missing_value = "true")]
    pub s3_sse_kms: Option<bool>,

    /// Register each group's offline table in the AWS Glue Data Catalog. Default false.
    #[arg(long, env = "QUIVER_GLUE_CATALOG")]
    pub glue_catalog: Option<bool>,

    /// Glue endpoint (e.g. http://127.0.0.1:5000); default AWS. Implies glue_catalog = true.
    #[arg(long, env = "QUIVER_GLUE_ENDPOINT")]
    pub glue_endpoint: Option<String>,

    /// Arrow Flight SQL listen address; port 0 picks a free port. Default 127.0.0.1:7942.
    #[arg(long, env = "QUIVER_FLIGHT_SQL_ADDR")]
    pub flight_sql_addr: Option<SocketAddr>,

    /// Memory SQL queries and dataset builds may hold at once, in MiB; past it, sorts, joins
    /// and aggregations spill to disk (under <data_dir>/tmp). Default 1024.
    #[arg(long, env = "QUIVER_QUERY_MEMORY_MB")]
    pub query_memory_mb: Option<usize>,

    /// Threads executing SQL queries, apart from those serving online reads and writes.
    /// Default: one per CPU.
    #[arg(long, env = "QUIVER_QUERY_THREADS")]
    pub query_threads: Option<usize>,

    /// Require signed requests and enforce IAM policies (docs/security.md). The first start
    /// with it on creates the root principal and writes its key to <data_dir>/root-credentials.
    /// Default false, allowed only when every listener is on a loopback address.
    #[arg(long, env = "QUIVER_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub auth: Option<bool>,

    /// Listen on non-loopback addresses without TLS and authentication anyway.
    #[arg(long, env = "QUIVER_ALLOW_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    pub allow_insecure: Option<bool>,

    /// Run the lineage service (docs/lineage.md): SageMaker's lineage operations and the
    /// lineage Quiver records by itself. Default true.
    #[arg(long, env = "QUIVER_LINEAGE", num_args = 0..=1, default_missing_value = "true")]
    pub lineage: Option<bool>,

    /// Most lineage entities the graph holds; creating more is refused with
    /// ResourceLimitExceeded. Default 10000000.
    #[arg(long, env = "QUIVER_LINEAGE_MAX_ENTITIES")]
    pub lineage_max_entities: Option<u64>,

    /// Run AutoML jobs (docs/automl.md). Default true.
    #[arg(long, env = "QUIVER_AUTOML", num_args = 0..=1, default_missing_value = "true")]
    pub automl: Option<bool>,

    /// Serve the web console at /console/ on the HTTP listener (docs/console.md). Default true.
    #[arg(long, env = "QUIVER_CONSOLE", num_args = 0..=1, default_missing_value = "true")]
    pub console: Option<bool>,

    /// How many AutoML jobs train at once (each uses every core). Default 1.
    #[arg(long, env = "QUIVER_AUTOML_WORKERS")]
    pub automl_workers: Option<usize>,

    /// Writes through SageMaker's runtime API (boto3, the SDK's FeatureGroup.ingest) by one
    /// caller and client to one group, with no pause longer than this, are recorded as one
    /// BatchIngest action when the pause ends. Default 60.
    #[arg(long, env = "QUIVER_LINEAGE_INGEST_IDLE_SECS")]
    pub lineage_ingest_idle_secs: Option<u64>,

    /// Also send the lineage Quiver records by itself as OpenLineage events to this server
    /// (http://host:port; events go to <url>/api/v1/lineage, as Marquez takes them).
    #[arg(long, env = "QUIVER_OPENLINEAGE_URL")]
    pub openlineage_url: Option<String>,

    /// Sent to openlineage_url as `Authorization: Bearer <key>`.
    #[arg(long, env = "QUIVER_OPENLINEAGE_API_KEY")]
    pub openlineage_api_key: Option<String>,

    /// The namespace of Quiver's jobs in the events it sends. Default quiver.
    #[arg(long, env = "QUIVER_OPENLINEAGE_NAMESPACE")]
    pub openlineage_namespace: Option<String>,

    /// Encrypt every feature group's data at rest (online records, offline staging and files)
    /// under kms_key_id, not only groups that name a KmsKeyId. Default false.
    #[arg(long, env = "QUIVER_ENCRYPT_AT_REST", num_args = 0..=1, default_missing_value = "true")]
    pub encrypt_at_rest: Option<bool>,

    /// The key that wraps data keys of groups naming no KmsKeyId: local/<name> (a master key
    /// file under <data_dir>/keys) or an AWS KMS key id, ARN or alias. Default local/default.
    #[arg(long, env = "QUIVER_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,

    /// AWS KMS endpoint (e.g. http://127.0.0.1:5000 for a KMS-compatible server); enables
    /// AWS KMS key ids. Credentials come from the usual AWS_* environment.
    #[arg(long, env = "QUIVER_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,

    /// Enable AWS KMS key ids with AWS's own endpoint. Default false.
    #[arg(long, env = "QUIVER_KMS", num_args = 0..=1, default_missing_value = "true")]
    pub kms: Option<bool>,

    /// A data key encrypts for at most this long, and an unwrapped one is cached this long
    /// (so a disabled KMS key stops decryption within it). Default 300.
    #[arg(long, env = "QUIVER_DATA_KEY_MAX_AGE_SECS")]
    pub data_key_max_age_secs: Option<u64>,

    /// A data key encrypts at most this many values before a new one is made. Default 16777216.
    #[arg(long, env = "QUIVER_DATA_KEY_MAX_USES")]
    pub data_key_max_uses: Option<u64>,

    /// PEM certificate chain (leaf first) served on every listener; with tls_key, turns TLS on.
    #[arg(long, env = "QUIVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of tls_cert.
    #[arg(long, env = "QUIVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM certificate authority of client certificates (mutual TLS): a client may present a
    /// certificate it issued, whose subject common name is then the principal of the
    /// connection's unsigned requests. Requires tls_cert.
    #[arg(long, env = "QUIVER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Stream sources (`[[source]]` tables of the file, as in docs/ingest.md) whose ingest
    /// workers run inside the server, writing through its own gRPC API.
    #[arg(skip)]
    #[serde(default, rename = "source")]
    pub sources: Vec<quiver_ingest::config::SourceConfig>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub addr_file: Option<PathBuf>,
    pub wal_sync: WalSync,
    pub wal_sync_interval_ms: u64,
    pub block_cache_mb: usize,
    pub ttl_purge_interval_secs: u64,
    pub account_id: String,
    pub region: String,
    pub max_request_mb: usize,
    pub grpc_threads: usize,
    pub shutdown_grace_secs: u64,
    /// What each listener lets its clients hold.
    pub limits: quiver_net::Limits,
    pub log_format: LogFormat,
    pub offline: OfflineConfig,
    pub flight_sql_addr: SocketAddr,
    pub query_memory_mb: usize,
    pub query_threads: usize,
    /// Ingest sources run inside the server.
    pub sources: Vec<quiver_ingest::config::SourceConfig>,
    /// Signed requests and policy enforcement.
    pub auth: bool,
    pub allow_insecure: bool,
    /// The lineage service.
    pub lineage: bool,
    pub lineage_max_entities: u64,
    /// The pause that ends a runtime-API ingest session.
    pub lineage_ingest_idle: Duration,
    /// AutoML jobs, and how many train at once.
    pub automl: bool,
    pub automl_workers: usize,
    /// The web console on the HTTP listener.
    pub console: bool,
    /// Where Quiver's own lineage is also sent as OpenLineage events.
    pub openlineage: Option<EmitterConfig>,
    /// TLS on every listener.
    pub tls: Option<TlsFiles>,
    pub encryption: EncryptionConfig,
}

/// Encryption at rest.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    /// Every group, not only those naming a KmsKeyId.
    pub all_groups: bool,
    pub default_key_id: String,
    /// AWS KMS: `Some(None)` uses AWS's endpoint.
    pub aws: Option<Option<String>>,
    pub data_key_max_age_secs: u64,
    pub data_key_max_uses: u64,
}

impl Config {
    /// Every address the server listens on.
    pub fn listen_addrs(&self) -> [(&'static str, SocketAddr); 3] {
        [
            ("grpc_addr", self.grpc_addr),
            ("http_addr", self.http_addr),
            ("flight_sql_addr", self.flight_sql_addr),
        ]
    }

    /// Refuses to expose the server beyond this machine without both authentication and TLS
    /// unless `allow_insecure` says so.
    fn check_exposure(&self) -> anyhow::Result<()> {
        let missing = match (self.auth, self.tls.is_some()) {
            (true, true) => return Ok(()),
            _ if self.allow_insecure => return Ok(()),
            (false, false) => {
                "authentication and TLS are off: start with --auth and --tls-cert/--tls-key"
            }
            (false, true) => "authentication is off: start with --auth",
            (true, false) => "TLS is off: start with --tls-cert and --tls-key",
        };
        for (name, addr) in self.listen_addrs() {
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "{name} = {addr} is reachable from other machines, and {missing} (see \
                 docs/security.md), listen on 127.0.0.1, or pass --allow-insecure to accept the risk"
            );
        }
        Ok(())
    }
}

impl Config {
    /// What the feature store's operations need of the configuration.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            data_dir: self.data_dir.clone(),
            block_cache_bytes: self.block_cache_mb * 1024 * 1024,
            arns: ArnContext {
                region: self.region.clone(),
                account_id: self.account_id.clone(),
            },
            sync_writes: self.wal_sync == WalSync::Always,
            data_key_policy: DataKeyPolicy {
                max_age: Duration::from_secs(self.encryption.data_key_max_age_secs),
                max_uses: self.encryption.data_key_max_uses,
            },
            default_key_id: self
                .encryption
                .all_groups
                .then(|| self.encryption.default_key_id.clone()),
            offline: self.offline.clone(),
        }
    }
}

impl ServerArgs {
    /// Reads a TOML configuration file.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Fills every unset field from `file`.
    pub fn or(self, file: ServerArgs) -> Self {
        Self {
            config: self.config,
            data_dir: self.data_dir.or(file.data_dir),
            grpc_addr: self.grpc_addr.or(file.grpc_addr),
            http_addr: self.http_addr.or(file.http_addr),
            addr_file: self.addr_file.or(file.addr_file),
            wal_sync: self.wal_sync.or(file.wal_sync),
            wal_sync_interval_ms: self.wal_sync_interval_ms.or(file.wal_sync_interval_ms),
            block_cache_mb: self.block_cache_mb.or(file.block_cache_mb),
            ttl_purge_interval_secs: self
                .ttl_purge_interval_secs
                .or(file.ttl_purge_interval_secs),
            account_id: self.account_id.or(file.account_id),
            region: self.region.or(file.region),
            max_request_mb: self.max_request_mb.or(file.max_request_mb),
            grpc_threads: self.grpc_threads.or(file.grpc_threads),
            shutdown_grace_secs: self.shutdown_grace_secs.or(file.shutdown_grace_secs),
            max_connections: self.max_connections.or(file.max_connections),
            idle_timeout_secs: self.idle_timeout_secs.or(file.idle_timeout_secs),
            body_timeout_secs: self.body_timeout_secs.or(file.body_timeout_secs),
            log_format: self.log_format.or(file.log_format),
            offline_store_uri: self.offline_store_uri.or(file.offline_store_uri),
            offline_flush_interval_ms: self
                .offline_flush_interval_ms
                .or(file.offline_flush_interval_ms),
            offline_max_file_mb: self.offline_max_file_mb.or(file.offline_max_file_mb),
            offline_staging_limit_mb: self
                .offline_staging_limit_mb
                .or(file.offline_staging_limit_mb),
            s3_endpoint: self.s3_endpoint.or(file.s3_endpoint),
            s3_sse_kms: self.s3_sse_kms.or(file.s3_sse_kms),
            glue_catalog: self.glue_catalog.or(file.glue_catalog),
            glue_endpoint: self.glue_endpoint.or(file.glue_endpoint),
            flight_sql_addr: self.flight_sql_addr.or(file.flight_sql_addr),
            query_memory_mb: self.query_memory_mb.or(file.query_memory_mb),
            query_threads: self.query_threads.or(file.query_threads),
            auth: self.auth.or(file.auth),
            allow_insecure: self.allow_insecure.or(file.allow_insecure),
            lineage: self.lineage.or(file.lineage),
            lineage_max_entities: self.lineage_max_entities.or(file.lineage_max_entities),
            lineage_ingest_idle_secs: self
                .lineage_ingest_idle_secs
                .or(file.lineage_ingest_idle_secs),
            automl: self.automl.or(file.automl),
            console: self.console.or(file.console),
            automl_workers: self.automl_workers.or(file.automl_workers),
            openlineage_url: self.openlineage_url.or(file.openlineage_url),
            openlineage_api_key: self.openlineage_api_key.or(file.openlineage_api_key),
            openlineage_namespace: self.openlineage_namespace.or(file.openlineage_namespace),
            encrypt_at_rest: self.encrypt_at_rest.or(file.encrypt_at_rest),
            kms_key_id: self.kms_key_id.or(file.kms_key_id),
            kms_endpoint: self.kms_endpoint.or(file.kms_endpoint),
            kms: self.kms.or(file.kms),
            data_key_max_age_secs: self.data_key_max_age_secs.or(file.data_key_max_age_secs),
            data_key_max_uses: self.data_key_max_uses.or(file.data_key_max_uses),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            tls_client_ca: self.tls_client_ca.or(file.tls_client_ca),
            // Sources are listed in the file only.
            sources: if self.sources.is_empty() {
                file.sources
            } else {
                self.sources
            },
        }
    }

    /// Merges the file named by `--config`, applies defaults, and checks the values.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let merged = match &self.config {
            Some(path) => {
                let file = Self::from_toml_file(path)?;
                self.or(file)
            }
            None => self,
        };
        let data_dir = merged
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./quiver-data"));
        // Sizes in MiB become bytes below: bounded first, so no multiplication overflows.
        for (field, value) in [
            ("block_cache_mb", merged.block_cache_mb.map(|v| v as u64)),
            ("query_memory_mb", merged.query_memory_mb.map(|v| v as u64)),
            ("offline_max_file_mb", merged.offline_max_file_mb),
            ("offline_staging_limit_mb", merged.offline_staging_limit_mb),
        ] {
            if let Some(value) = value {
                anyhow::ensure!(
                    value <= MAX_MB,
                    "{field} must be at most {MAX_MB} (1 PiB), got {value}"
                );
            }
        }
        let mb = 1024 * 1024;
        let offline = OfflineConfig {
            default_uri: merged.offline_store_uri.unwrap_or_else(|| {
                format!("file://{}/offline-store", absolute(&data_dir).display())
            }),
            flush_interval_ms: merged
                .offline_flush_interval_ms
                .unwrap_or(DEFAULT_OFFLINE_FLUSH_INTERVAL_MS),
            max_file_bytes: merged.offline_max_file_mb.unwrap_or(128) * mb,
            staging_limit_bytes: merged.offline_staging_limit_mb.unwrap_or(4096) * mb,
            s3_endpoint: merged.s3_endpoint,
            s3_sse_kms: merged.s3_sse_kms.unwrap_or(false),
            glue: match (merged.glue_catalog, merged.glue_endpoint) {
                (Some(false), _) => None,
                (_, Some(endpoint)) => Some(Some(endpoint)),
                (Some(true), None) => Some(None),
                (None, None) => None,
            },
        };
        anyhow::ensure!(
            offline.default_uri.starts_with("file:///") || offline.default_uri.starts_with("s3://"),
            "offline_store_uri must be file:///absolute/dir or s3://bucket/prefix, got '{}'",
            offline.default_uri
        );
        anyhow::ensure!(
            offline.flush_interval_ms >= 10,
            "offline_flush_interval_ms must be at least 10"
        );
        anyhow::ensure!(
            offline.max_file_bytes >= mb,
            "offline_max_file_mb must be at least 1"
        );
        let config = Config {
            data_dir,
            grpc_addr: merged
                .grpc_addr
                .unwrap_or_else(|| ([127, 0, 0, 1], 7940).into()),
            http_addr: merged
                .http_addr
                .unwrap_or_else(|| ([127, 0, 0, 1], 7941).into()),
            addr_file: merged.addr_file,
            wal_sync: merged.wal_sync.unwrap_or(WalSync::Always),
            wal_sync_interval_ms: merged.wal_sync_interval_ms.unwrap_or(100),
            block_cache_mb: merged.block_cache_mb.unwrap_or(256),
            ttl_purge_interval_secs: merged.ttl_purge_interval_secs.unwrap_or(60),
            account_id: merged
                .account_id
                .unwrap_or_else(|| "000000000000".to_string()),
            region: merged.region.unwrap_or_else(|| "us-east-1".to_string()),
            max_request_mb: merged.max_request_mb.unwrap_or(64),
            grpc_threads: merged
                .grpc_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            shutdown_grace_secs: merged.shutdown_grace_secs.unwrap_or(10),
            limits: {
                let default = quiver_net::Limits::default();
                quiver_net::Limits {
                    max_connections: merged.max_connections.unwrap_or(default.max_connections),
                    idle_timeout: merged
                        .idle_timeout_secs
                        .map_or(default.idle_timeout, Duration::from_secs),
                    body_timeout: merged
                        .body_timeout_secs
                        .map_or(default.body_timeout, Duration::from_secs),
                }
            },
            log_format: merged.log_format.unwrap_or(LogFormat::Text),
            offline,
            flight_sql_addr: merged
                .flight_sql_addr
                .unwrap_or_else(|| ([127, 0, 0, 1], 7942).into()),
            query_memory_mb: merged.query_memory_mb.unwrap_or(1024),
            query_threads: merged
                .query_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            sources: merged.sources,
            auth: merged.auth.unwrap_or(false),
            allow_insecure: merged.allow_insecure.unwrap_or(false),
            lineage: merged.lineage.unwrap_or(true),
            lineage_max_entities: merged
                .lineage_max_entities
                .unwrap_or(quiver_lineage::DEFAULT_MAX_ENTITIES),
            automl: merged.automl.unwrap_or(true),
            console: merged.console.unwrap_or(true),
            automl_workers: merged.automl_workers.unwrap_or(1).max(1),
            lineage_ingest_idle: Duration::from_secs(
                merged
                    .lineage_ingest_idle_secs
                    .unwrap_or(quiver_lineage::ingests::DEFAULT_IDLE_SECS)
                    .max(1),
            ),
            openlineage: merged.openlineage_url.map(|url| EmitterConfig {
                url,
                api_key: merged.openlineage_api_key,
                namespace: merged
                    .openlineage_namespace
                    .unwrap_or_else(|| "quiver".to_string()),
                queue: 10_000,
                attempts: 8,
            }),
            tls: match (merged.tls_cert, merged.tls_key, merged.tls_client_ca) {
                (Some(cert), Some(key), client_ca) => Some(TlsFiles {
                    cert,
                    key,
                    client_ca,
                }),
                (None, None, None) => None,
                (None, None, Some(_)) => {
                    anyhow::bail!("tls_client_ca needs tls_cert and tls_key: mutual TLS is TLS")
                }
                _ => anyhow::bail!("tls_cert and tls_key must be given together"),
            },
            encryption: EncryptionConfig {
                all_groups: merged.encrypt_at_rest.unwrap_or(false),
                default_key_id: merged
                    .kms_key_id
                    .unwrap_or_else(|| quiver_storage::kms::DEFAULT_KEY_ID.to_string()),
                aws: match (merged.kms, merged.kms_endpoint) {
                    (Some(false), _) => None,
                    (_, Some(endpoint)) => Some(Some(endpoint)),
                    (Some(true), None) => Some(None),
                    (None, None) => None,
                },
                data_key_max_age_secs: merged.data_key_max_age_secs.unwrap_or(300),
                data_key_max_uses: merged.data_key_max_uses.unwrap_or(1 << 24),
            },
        };
        config.check_exposure()?;
        anyhow::ensure!(
            config.encryption.data_key_max_age_secs >= 1,
            "data_key_max_age_secs must be at least 1"
        );
        anyhow::ensure!(
            (1..=1u64 << 32).contains(&config.encryption.data_key_max_uses),
            "data_key_max_uses must be between 1 and 4294967296 (AES-GCM's limit per key)"
        );
        if config.encryption.default_key_id.starts_with("local/") {
            quiver_storage::kms::LocalKeys::check_key_id(&config.encryption.default_key_id)
                .map_err(|e| anyhow::anyhow!("kms_key_id: {}", e.message()))?;
        } else {
            anyhow::ensure!(
                config.encryption.aws.is_some(),
                "kms_key_id = {:?} names an AWS KMS key: set kms_endpoint (or kms = true)",
                config.encryption.default_key_id
            );
        }
        quiver_ingest::config::validate_sources(&config.sources).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            (1..=1024).contains(&config.query_threads),
            "query_threads must be between 1 and 1024, got {}",
            config.query_threads
        );
        anyhow::ensure!(
            config.query_memory_mb >= 16,
            "query_memory_mb must be at least 16, got {}",
            config.query_memory_mb
        );
        anyhow::ensure!(
            (1..=1024).contains(&config.grpc_threads),
            "grpc_threads must be between 1 and 1024, got {}",
            config.grpc_threads
        );
        anyhow::ensure!(
            config.wal_sync_interval_ms >= 1,
            "wal_sync_interval_ms must be at least 1"
        );
        anyhow::ensure!(
            config.ttl_purge_interval_secs >= 1,
            "ttl_purge_interval_secs must be at least 1"
        );
        anyhow::ensure!(
            (1..=1024).contains(&config.max_request_mb),
            "max_request_mb must be in 1..1024"
        );
        anyhow::ensure!(
            (1..=1_000_000).contains(&config.limits.max_connections),
            "max_connections must be in 1..1000000"
        );
        anyhow::ensure!(
            !config.limits.idle_timeout.is_zero() && !config.limits.body_timeout.is_zero(),
            "idle_timeout_secs and body_timeout_secs must be at least 1"
        );
        anyhow::ensure!(
            config.account_id.len() == 12 && config.account_id.bytes().all(|b| b.is_ascii_digit()),
            "account_id must be 12 digits, got '{}'",
            config.account_id
        );
        Ok(config)
    }
}

/// The largest size in MiB any `*_mb` setting takes (1 PiB).
const MAX_MB: u64 = 1 << 30;

/// `path` made absolute against the working directory (without resolving symlinks).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let file = ServerArgs::from_toml(
            "data_dir = \"/from/file\"\nblock_cache_mb = 8\nwal_sync = \"periodic\"",
        )
        .unwrap();
        let flags = ServerArgs::parse_from(["quiver-server", "--block-cache-mb", "16"]);
        let config = flags.or(file).resolve().unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.block_cache_mb, 16);
        assert_eq!(config.wal_sync, WalSync::Periodic);
        assert_eq!(config.grpc_addr.port(), 7940);
    }

    #[test]
    fn a_flag_given_twice_takes_its_last_value_and_lineage_settings_resolve() {
        let flags = ServerArgs::parse_from([
            "quiver-server",
            "--http-addr",
            "127.0.0.1:1",
            "--http-addr",
            "127.0.0.1:2",
            "--openlineage-url",
            "http://marquez:5000",
        ]);
        let config = flags.resolve().unwrap();
        assert_eq!(config.http_addr.port(), 2);
        assert!(config.lineage, "the lineage service runs by default");
        let emitter = config.openlineage.expect("OpenLineage out");
        assert_eq!(emitter.url, "http://marquez:5000");
        assert_eq!(emitter.namespace, "quiver");
        assert_eq!(config.lineage_ingest_idle, Duration::from_secs(60));
        let off = ServerArgs::from_toml("lineage = false\nlineage_ingest_idle_secs = 5")
            .unwrap()
            .resolve()
            .unwrap();
        assert!(!off.lineage);
        assert_eq!(off.lineage_ingest_idle, Duration::from_secs(5));
    }

    /// Found by fuzzing (`server_config`): `block_cache_mb = 258888888888888024` overflowed
    /// its conversion to bytes.
    #[test]
    fn sizes_too_large_to_count_in_bytes_are_refused() {
        for field in [
            "block_cache_mb",
            "query_memory_mb",
            "offline_max_file_mb",
            "offline_staging_limit_mb",
        ] {
            let file = ServerArgs::from_toml(&format!("{field} = 258888888888888024")).unwrap();
            let e = ServerArgs::parse_from(["quiver-server"])
                .or(file)
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("{field} must be at most")), "{e}");
        }
        let file = ServerArgs::from_toml("block_cache_mb = 1073741824").unwrap();
        let config = ServerArgs::parse_from(["quiver-server"])
            .or(file)
            .resolve()
            .unwrap();
        assert_eq!(config.store_options().block_cache_bytes, 1 << 50);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = ServerArgs::from_toml("data_dirr = \"x\"").unwrap_err();
        assert!(err.to_string().contains("data_dirr"), "{err}");
    }

    #[test]
    fn sources_are_listed_in_the_file_and_checked() {
        let source = "[[source]]\nname = \"a\"\nfeature_group = \"g\"\n[source.kafka]\nbrokers = \"b:9092\"\ntopics = [\"t\"]\n";
        let config = ServerArgs::from_toml(source).unwrap().resolve().unwrap();
        assert_eq!(config.sources.len(), 1);
        assert_eq!(config.sources[0].name, "a");
        let err = ServerArgs::from_toml(&format!("{source}{source}"))
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(
            err.to_string().contains("two sources are named \"a\""),
            "{err}"
        );
        let err = ServerArgs::from_toml("[[source]]\nname = \"a\"\nfeature_group = \"g\"\n")
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("source \"a\""), "{err}");
    }

    #[test]
    fn deploy_example_parses() {
        // The runner's manifest dir first: a shared target dir may hold another clone's build.
        let manifest = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = Path::new(&manifest).join("../deploy/quiver.toml");
        let args = ServerArgs::from_toml_file(&path).unwrap();
        let config = args.resolve().unwrap();
        assert!(config.auth, "the deployment example authenticates");
    }

    #[test]
    fn exposure_without_authentication_is_refused() {
        let exposed = |extra: &str| {
            ServerArgs::from_toml(&format!("grpc_addr = \"0.0.0.0:7940\"\n{extra}"))
                .unwrap()
                .resolve()
        };
        let err = exposed("").unwrap_err().to_string();
        assert!(
            err.contains("grpc_addr = 0.0.0.0:7940") && err.contains("--auth"),
            "{err}"
        );
        // Authentication without TLS would send signed requests, and data, in the clear.
        let err = exposed("auth = true").unwrap_err().to_string();
        assert!(err.contains("TLS is off"), "{err}");
        let tls = "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"";
        let err = exposed(tls).unwrap_err().to_string();
        assert!(err.contains("authentication is off"), "{err}");
        let config = exposed(&format!("auth = true\n{tls}")).unwrap();
        assert!(config.auth && config.tls.is_some());
        assert!(exposed("allow_insecure = true").unwrap().allow_insecure);
        let err = exposed("tls_cert = \"/c.pem\"").unwrap_err().to_string();
        assert!(
            err.contains("tls_cert and tls_key must be given together"),
            "{err}"
        );
        // Loopback only: development without authentication is allowed.
        assert!(!ServerArgs::from_toml("").unwrap().resolve().unwrap().auth);
    }
}
