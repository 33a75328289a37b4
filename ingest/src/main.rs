//! `quiver-ingest`: runs the ingest workers a configuration file lists, against a Quiver
//! server, until SIGINT or SIGTERM (each worker writes the batch in hand first).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use quiver_ingest::config::IngestConfig;
use quiver_ingest::error::IngestError;
use quiver_ingest::sink::{Server, SharedSink};
use tokio::sync::watch;

/// mimalloc: every message allocates its record's small values and strings.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Quiver's Kafka and Kinesis ingest workers (docs/ingest.md)"
)]
struct Args {
    /// The configuration file (TOML; docs/ingest.md).
    #[arg(long, env = "QUIVER_INGEST_CONFIG")]
    config: PathBuf,
    /// The server's gRPC endpoint; overrides the configuration's `server`.
    #[arg(long, env = "QUIVER_ENDPOINT")]
    server: Option<String>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quiver-ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), IngestError> {
    let in_file =
        |e: &dyn std::fmt::Display| IngestError::Config(format!("{}: {e}", args.config.display()));
    let text = std::fs::read_to_string(&args.config).map_err(|e| in_file(&e))?;
    let config = IngestConfig::parse(&text).map_err(|e| in_file(&e))?;
    if config.sources.is_empty() {
        return Err(in_file(&"lists no [[source]]"));
    }
    let server = Server::new(args.server.as_deref().unwrap_or(&config.server))?;
    let server: SharedSink = std::sync::Arc::new(server);
    if let Some(addr) = config.metrics_addr {
        serve_metrics(addr).await?;
    }
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping: writing the batches in hand");
        let _ = stop.send(true);
    });
    quiver_ingest::run(
        config.sources,
        server,
        shutdown,
        quiver_ingest::OnFailure::Stop,
    )
    .await
}

/// Installs the Prometheus recorder and serves it at `http://addr/metrics`.
async fn serve_metrics(addr: std::net::SocketAddr) -> Result<(), IngestError> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| IngestError::Config(format!("metrics recorder: {e}")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| IngestError::Config(format!("metrics_addr {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| IngestError::Config(format!("metrics_addr {addr}: {e}")))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server: {e}");
        }
    });
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(())
}
