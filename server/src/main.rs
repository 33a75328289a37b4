//! `quiver-server`: parses configuration, binds the listeners, and runs until SIGINT or SIGTERM.

use std::io::IsTerminal;

use clap::Parser;
use quiver_server::config::{LogFormat, ServerArgs};
use quiver_server::server::{self, Listeners};
use tracing_subscriber::EnvFilter;

/// mimalloc: the read and write paths allocate many small, short-lived buffers; glibc malloc
/// took about 12% of server CPU under GetRecord load (docs/benchmarks.md). The `override`
/// feature (server/Cargo.toml) makes RocksDB's C++ allocate from mimalloc too: under glibc
/// malloc its per-thread arenas kept growing the RSS during a mixed soak.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Memory freed is kept for reuse rather than returned to the OS 10 ms later (mimalloc's
/// default), unless `MIMALLOC_PURGE_DELAY` says otherwise: a dataset build allocates and frees
/// gigabytes, and re-faulting returned pages took a quarter of its time (docs/benchmarks.md).
/// Memory stays bounded by what was in use at once (the query budget, the block cache).
#[allow(unsafe_code)]
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads options atomically.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    let config = ServerArgs::parse().resolve()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr, coloured only when a person is watching.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let listeners = Listeners::bind(&config).await?;
    server::run(config, listeners, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
