//! Assembles the server from its parts and runs it until `shutdown` resolves. `main` parses the
//! configuration and binds the listeners; tests bind port 0 and pass their own shutdown future.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arrow_flight::flight_service_server::FlightServiceServer;
use quiver_proto::v1::auth_server::AuthServer;
use quiver_proto::v1::lineage_server::LineageServer;
use quiver_proto::v1::query_server::QueryServer;
use quiver_proto::v1_server::feature_store_server::FeatureStoreServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, WalSync};
use quiver_auth::Access;
use quiver_auth::store::AuthStore;
use quiver_core::FeatureStore;
use quiver_core::group_commit::GroupCommit;
use quiver_grpc::admin::AdminService;
use quiver_grpc::auth_layer::AuthLayer;
use quiver_grpc::flight_sql::FlightSql;
use quiver_grpc::in_process::InProcess;
use quiver_grpc::lineage_service::LineageService;
use quiver_grpc::query_service::QueryService;
use quiver_grpc::{GrpcService, threads};
use quiver_lineage::Lineage;
use quiver_lineage::emit::Emitter;
use quiver_lineage::feature_groups::FeatureGroupLineage;
use quiver_lineage::ingests::IngestSessions;
use quiver_lineage::sources::SourceLineage;
use quiver_net::ServerTls;
use quiver_offline::flusher::Flusher;
use quiver_query::{QueryEngine, QueryOptions};
use quiver_storage::auth_records::AuthRecords;
use quiver_storage::kms::{AwsKms, Keys, LocalKeys};
use quiver_storage::lineage_records::LineageRecords;
use quiver_types::model::arn::ArnContext;
use quiver_types::time::{Clock, SystemClock};

pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    pub flight_sql: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen for gRPC on {}", config.grpc_addr))?;
        let http = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.http_addr))?;
        let flight_sql = TcpListener::bind(config.flight_sql_addr)
            .await
            .with_context(|| {
                format!("cannot listen for Flight SQL on {}", config.flight_sql_addr)
            })?;
        Ok(Self {
            grpc,
            http,
            flight_sql,
        })
    }
}

/// Opens the principals and policies stored with `store`, the local master keys, and the audit
/// log; with authentication on, makes the root principal on the first start.
pub fn open_access(
    config: &Config,
    store: &FeatureStore,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Access>> {
    let auth = Arc::new(
        AuthStore::open(
            AuthRecords::new(store.online().db().clone()),
            store.online().data_keys().provider().clone(),
            clock.clone(),
            config.account_id.clone(),
        )?
        .with_secret_key(config.encryption.default_key_id.clone()),
    );
    if config.auth {
        if let Some(path) = auth.bootstrap(&config.data_dir)? {
            tracing::warn!(
                path = %path.display(),
                "created the root principal; its access key is in this file (mode 0600): keep it safe"
            );
        }
    } else {
        let exposed: Vec<String> = config
            .listen_addrs()
            .iter()
            .filter(|(_, a)| !a.ip().is_loopback())
            .map(|(n, a)| format!("{n} = {a}"))
            .collect();
        tracing::warn!(
            exposed = ?exposed,
            "AUTHENTICATION IS OFF: every caller can read and write every feature group. \
             For development only; start with --auth for anything else (docs/security.md)"
        );
    }
    let arns = ArnContext {
        region: config.region.clone(),
        account_id: config.account_id.clone(),
    };
    Ok(Arc::new(Access::new(
        config.auth,
        auth,
        &config.data_dir,
        arns,
        clock,
    )?))
}

/// Records the runtime API's ingest sessions as they end, and every open one once the
/// listeners have stopped (background tasks are awaited after them).
async fn record_ingest_sessions(
    ingests: Arc<IngestSessions>,
    store: Arc<FeatureStore>,
    access: Arc<Access>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(ingests.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let all = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        let (ingests, store, access) = (ingests.clone(), store.clone(), access.clone());
        let flushed = tokio::task::spawn_blocking(move || {
            ingests.flush(
                all,
                &|name| store.describe_feature_group(name).ok(),
                &|principal| access.store().principal_arn(principal),
            )
        })
        .await;
        match flushed {
            Ok(Err(e)) => tracing::warn!(error = %e, "recording ingest sessions failed"),
            Err(e) => tracing::warn!(error = %e, "recording ingest sessions failed"),
            Ok(Ok(_)) => {}
        }
        if all {
            return;
        }
    }
}

/// The lineage graph kept with `store`, unless the configuration turns it off.
pub fn open_lineage(
    config: &Config,
    store: &FeatureStore,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<Lineage>>> {
    if !config.lineage {
        return Ok(None);
    }
    let records = LineageRecords::new(
        store.online().db().clone(),
        config.wal_sync == WalSync::Always,
    );
    let arns = ArnContext {
        region: config.region.clone(),
        account_id: config.account_id.clone(),
    };
    let mut lineage = Lineage::open(records, arns, clock, config.lineage_max_entities)?;
    if let Some(emitter) = &config.openlineage {
        lineage =
            lineage.with_emitter(Emitter::start(emitter.clone()).map_err(anyhow::Error::msg)?);
    }
    let lineage = Arc::new(lineage);
    // Groups created before the lineage service existed (or while it was off) get their
    // contexts now; groups created from now on, as they are.
    for group in store.registry().all() {
        lineage.record_feature_group(&group)?;
    }
    store.observe(Arc::new(FeatureGroupLineage(lineage.clone())));
    Ok(Some(lineage))
}

/// The key providers: local master keys under `<data_dir>/keys`, and AWS KMS when configured.
pub async fn open_keys(config: &Config) -> anyhow::Result<Arc<Keys>> {
    let local = LocalKeys::open(&config.data_dir.join("keys"))?;
    let aws = match &config.encryption.aws {
        Some(endpoint) => Some(AwsKms::connect(endpoint.as_deref(), &config.region).await?),
        None => None,
    };
    Ok(Arc::new(Keys::new(local, aws)))
}

/// Opens the stores under `config.data_dir`, encrypting with `keys`.
pub fn open_store(
    config: &Config,
    clock: Arc<dyn Clock>,
    keys: Arc<Keys>,
) -> anyhow::Result<Arc<FeatureStore>> {
    Ok(Arc::new(FeatureStore::open(
        &config.store_options(),
        clock,
        keys,
    )?))
}

pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = crate::metrics::install();
    let keys = open_keys(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open_store(&config, clock.clone(), keys)?;
    let access = open_access(&config, &store, clock.clone())?;
    let clock_for_automl = clock.clone();
    let lineage = open_lineage(&config, &store, clock)?;
    let tls = config.tls.as_ref().map(ServerTls::load).transpose()?;
    if tls.is_none() {
        tracing::warn!(
            "TLS IS OFF: requests, responses and (without --auth) everything else travel in \
             plaintext. For development only; start with --tls-cert and --tls-key otherwise \
             (docs/security.md)"
        );
    }
    let grpc_addr = listeners.grpc.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let flight_sql_addr = listeners.flight_sql.local_addr()?;
    let queries = Arc::new(
        QueryEngine::new(
            store.clone(),
            &QueryOptions {
                memory_bytes: config.query_memory_mb * 1024 * 1024,
                threads: config.query_threads,
                spill_dir: config.data_dir.join("tmp").join("query"),
            },
        )
        .context("starting the query engine")?,
    );

    let automl =
        crate::automl::open_jobs(&config, &queries, lineage.clone(), clock_for_automl.clone())?;
    let (recipes, prep_runs, prep_sources) = crate::prep::open(
        &config,
        &store,
        &queries,
        lineage.clone(),
        clock_for_automl.clone(),
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        // Resolves when the sender says stop, or is gone.
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let mut background = spawn_background_tasks(&config, store.clone(), stop_rx.clone());
    background.push(tokio::spawn(crate::metrics::run_upkeep(
        metrics.clone(),
        stop_rx.clone(),
    )));
    let flusher = Flusher::new(store.flush_sources()).await;
    background.push(tokio::spawn(flusher.run(stop_rx.clone())));
    let ingests = lineage.as_ref().map(|lineage| {
        Arc::new(IngestSessions::new(
            lineage.clone(),
            config.lineage_ingest_idle,
        ))
    });
    if let Some(ingests) = &ingests {
        background.push(tokio::spawn(record_ingest_sessions(
            ingests.clone(),
            store.clone(),
            access.clone(),
            stop_rx.clone(),
        )));
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<FeatureStoreServer<GrpcService>>()
        .await;
    // Reflection v1, and v1alpha for older grpcurl and tools that only speak it.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(quiver_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("building the gRPC reflection service")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building the gRPC reflection service (v1alpha)")?;
    let max_request = config.max_request_mb * 1024 * 1024;
    let puts = GroupCommit::start(store.clone()).context("starting the group-commit writer")?;
    let mut service = GrpcService::new(store.clone(), puts.clone(), access.clone());
    if let Some(lineage) = &lineage {
        service = service.with_source_lineage(Arc::new(SourceLineage::new(lineage.clone())));
    }
    let api = FeatureStoreServer::new(service.clone())
        .max_decoding_message_size(max_request)
        .max_encoding_message_size(max_request);
    let query_api = QueryServer::new(QueryService::new(
        queries.clone(),
        access.clone(),
        lineage.clone(),
    ))
    .max_decoding_message_size(max_request)
    .max_encoding_message_size(max_request);
    let admin_api = AuthServer::new(AdminService::new(
        access.clone(),
        store.online().data_keys().clone(),
        store.clone(),
    ));
    let lineage_api = lineage
        .clone()
        .map(|l| LineageServer::new(LineageService::new(l, access.clone())));
    let automl_api = automl.clone().map(|jobs| {
        quiver_proto::v1::auto_ml_server::AutoMlServer::new(
            quiver_grpc::automl_service::AutoMlService::new(
                jobs,
                store.clone(),
                access.clone(),
                queries.clone(),
            ),
        )
    });
    let prep_api =
        quiver_proto::v1::prep_server::PrepServer::new(quiver_grpc::prep_service::PrepService {
            recipes,
            runs: prep_runs,
            sources: prep_sources,
            store: store.clone(),
            access: access.clone(),
            queries: queries.clone(),
            clock: clock_for_automl.clone(),
        })
        .max_decoding_message_size(max_request)
        .max_encoding_message_size(max_request);
    let authenticate = AuthLayer::new(access.clone(), max_request);
    let routes: threads::RoutesFactory = Arc::new(move || {
        h2_limits(tonic::transport::Server::builder())
            .http2_adaptive_window(Some(true))
            .layer(authenticate.clone())
            .add_service(health_service.clone())
            .add_service(reflection_v1.clone())
            .add_service(reflection_v1alpha.clone())
            .add_service(api.clone())
            .add_service(query_api.clone())
            .add_service(admin_api.clone())
            .add_optional_service(lineage_api.clone())
            .add_optional_service(automl_api.clone())
            .add_service(prep_api.clone())
    });
    let h2_tls = tls.as_ref().map(|t| t.h2.clone());
    let grpc = threads::serve(
        listeners.grpc,
        config.grpc_threads,
        routes,
        stop_rx.clone(),
        h2_tls.clone(),
        config.limits,
    );
    let http = quiver_net::http::serve(
        quiver_net::Listener::new(
            listeners.http,
            tls.as_ref().map(|t| t.http1.clone()),
            config.limits,
        ),
        crate::http::router(
            store.clone(),
            puts,
            metrics,
            access.clone(),
            crate::http::Served {
                services: quiver_sagemaker::Services {
                    lineage,
                    ingests,
                    automl: automl.clone(),
                },
                console: config.console.then(|| queries.clone()),
            },
            max_request,
        ),
        stopped(stop_rx.clone()),
    );
    let http = async move {
        http.await;
        Ok::<(), std::io::Error>(())
    };
    let flight_sql = h2_limits(tonic::transport::Server::builder())
        .layer(AuthLayer::new(access.clone(), max_request))
        .add_service(FlightServiceServer::new(
            FlightSql::new(queries.clone(), access.clone()).context("starting Flight SQL")?,
        ))
        .serve_with_incoming_shutdown(
            quiver_net::incoming(quiver_net::accept(
                quiver_net::tcp_connections(
                    listeners.flight_sql,
                    quiver_net::Gate::new(
                        "flight_sql",
                        config.limits.max_connections,
                        quiver_net::Refusal::Close,
                    ),
                ),
                h2_tls,
                config.limits.idle_timeout,
            )),
            stopped(stop_rx.clone()),
        );

    if let Some(path) = &config.addr_file {
        write_addr_file(path, grpc_addr, http_addr, flight_sql_addr)?;
    }
    tracing::info!(%grpc_addr, %http_addr, %flight_sql_addr, data_dir = %config.data_dir.display(), wal_sync = ?config.wal_sync, "quiver-server ready");

    // Ingest workers write through the server's own handlers, so they stop first: each
    // writes the batch in hand while the store still takes it.
    let (stop_ingest, ingest_stopped) = watch::channel(false);
    let ingest = start_ingest(&config, &access, service, ingest_stopped)?;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let signal = tokio::spawn(async move {
        shutdown.await;
        if let Some(ingest) = ingest {
            tracing::info!("shutting down: ingest workers write the batches in hand");
            let _ = stop_ingest.send(true);
            if tokio::time::timeout(grace, ingest).await.is_err() {
                tracing::warn!("ingest workers still writing after the grace period; stopping");
            }
        }
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    // In-flight requests get `shutdown_grace_secs` to finish; then remaining connections are
    // dropped, so a client that never lets go cannot hold the server up.
    let servers = async { tokio::join!(grpc, http, flight_sql) };
    let grace_over = async {
        stopped(stop_rx.clone()).await;
        tokio::time::sleep(grace).await;
    };
    let (grpc_result, http_result, flight_sql_result) = tokio::select! {
        results = servers => results,
        _ = grace_over => {
            tracing::warn!(grace_secs = config.shutdown_grace_secs, "shutdown grace period over; closing remaining connections");
            (Ok(()), Ok(()), Ok(()))
        }
    };
    signal.abort();
    health_reporter
        .set_not_serving::<FeatureStoreServer<GrpcService>>()
        .await;
    for task in background {
        let _ = task.await;
    }
    grpc_result?;
    http_result.context("HTTP server failed")?;
    flight_sql_result.context("Flight SQL server failed")?;
    // AutoML's workers stop (a job they were running is marked Failed) before the engine
    // they read through goes.
    drop(automl);
    drop(queries);

    // Closing: sync the WAL (it matters with wal_sync = periodic) and let RocksDB close.
    store.online().sync_wal()?;
    match Arc::try_unwrap(store) {
        Ok(store) => drop(store),
        Err(_) => tracing::warn!("store still referenced at shutdown; RocksDB closes at exit"),
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// The bounds of an HTTP/2 listener's connections (docs/operations.md, "Limits").
fn h2_limits(builder: tonic::transport::Server) -> tonic::transport::Server {
    use quiver_net::limits::*;
    builder
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

const INGEST_PRINCIPAL: &str = "quiver-ingest";
const INGEST_POLICY: &str = "QuiverIngestAccess";
const INGEST_POLICY_DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"IngestWrites","Effect":"Allow","Action":["sagemaker:PutRecord","sagemaker:DescribeFeatureGroup","quiver:PutSourceRecords","quiver:GetSourcePositions"],"Resource":"*"}]}"#;

/// Starts the configuration's ingest sources (if any), calling the server's gRPC handlers in
/// process ([`InProcess`]). A source that fails is logged and started again (after 1 s,
/// doubling to a minute); the server keeps serving.
fn start_ingest(
    config: &Config,
    access: &Access,
    service: GrpcService,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if config.sources.is_empty() {
        return Ok(None);
    }
    // With authentication on, the workers act as the `quiver-ingest` principal, which may
    // write feature groups and source positions and nothing else.
    let principal = if access.enabled() {
        access.store().service_principal(
            INGEST_PRINCIPAL,
            INGEST_POLICY,
            INGEST_POLICY_DOCUMENT,
        )?;
        Some(INGEST_PRINCIPAL.to_string())
    } else {
        None
    };
    let sink: quiver_ingest::sink::SharedSink = Arc::new(InProcess::new(service, principal));
    let sources = config.sources.clone();
    tracing::info!(
        sources = ?sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "starting ingest workers"
    );
    Ok(Some(tokio::spawn(async move {
        let restart = quiver_ingest::OnFailure::Restart(Duration::from_secs(1));
        if let Err(e) = quiver_ingest::run(sources, sink, stop, restart).await {
            tracing::error!("ingest: {e}");
        }
    })))
}

/// TTL purge, and with `wal_sync = periodic` the WAL sync; both stop when told.
fn spawn_background_tasks(
    config: &Config,
    store: Arc<FeatureStore>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let every = |period: Duration,
                 name: &'static str,
                 store: Arc<FeatureStore>,
                 mut stop: watch::Receiver<bool>,
                 work: fn(&FeatureStore)| {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let store = store.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || work(&store)).await {
                    tracing::error!(task = name, error = %e, "background task failed");
                }
            }
        })
    };
    tasks.push(every(
        Duration::from_secs(config.ttl_purge_interval_secs),
        "ttl-purge",
        store.clone(),
        stop.clone(),
        |store| match store.online().purge_expired() {
            Ok(0) => {}
            Ok(n) => {
                crate::metrics::record_purged(n);
                tracing::info!(records = n, "purged expired records");
            }
            Err(e) => tracing::error!(error = %e, "TTL purge failed"),
        },
    ));
    if config.wal_sync == WalSync::Periodic {
        tasks.push(every(
            Duration::from_millis(config.wal_sync_interval_ms),
            "wal-sync",
            store,
            stop,
            |store| {
                if let Err(e) = store.online().sync_wal() {
                    tracing::error!(error = %e, "WAL sync failed");
                }
            },
        ));
    }
    tasks
}

/// Written to a temporary file and renamed, so a reader never sees half a file.
fn write_addr_file(
    path: &Path,
    grpc: SocketAddr,
    http: SocketAddr,
    flight_sql: SocketAddr,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "grpc": grpc.to_string(),
        "http": http.to_string(),
        "flight_sql": flight_sql.to_string(),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body.to_string())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
