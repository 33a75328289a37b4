//! `quiver-server`: parses configuration, binds the listeners, and runs until SIGINT or SIGTERM.
//!
//! The binary holds configuration ([`config`]), assembly and lifecycle ([`server`]), the HTTP
//! listener's `/metrics` and `/healthz` beside the SageMaker API ([`http`]) and the metrics it
//! renders ([`metrics`]), and `quiver-server restore` ([`restore`]). Everything else is a crate under `server/`, each a layer over the ones
//! below it (docs/development.md has the map): `quiver-types`, `quiver-storage`,
//! `quiver-offline`, `quiver-core`, `quiver-auth`, `quiver-query`, and the front doors
//! `quiver-grpc` and `quiver-sagemaker` (over `quiver-net`'s listeners). It is a binary-only
//! crate: a library beside it would be one more test binary to link after every change below.

mod automl;
mod config;
mod http;
mod metrics;
mod prep;
mod restore;
mod server;

use std::io::IsTerminal;

use clap::Parser;
use config::{LogFormat, ServerArgs};
use server::Listeners;
use tracing_subscriber::EnvFilter;

/// mimalloc: the read and write paths allocate many small, short-lived buffers; glibc malloc
/// took about 12% of server CPU under GetRecord load (docs/benchmarks.md). The `override`
/// feature (server/Cargo.toml) makes RocksDB's C++ allocate from mimalloc too: under glibc
/// malloc its per-thread arenas kept growing the RSS during a mixed soak.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

/// Transparent huge pages off for the server process (as Redis and most databases advise):
/// the first touch of each fresh 2 MiB page clears all of it, and a dataset build spent over a
/// quarter of its time there (docs/benchmarks.md), for memory it then used a fraction of.
/// mimalloc asks for them on its arenas (`madvise`), so the system-wide `madvise` setting
/// does not keep them away. `QUIVER_THP=1` leaves them on.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn disable_transparent_huge_pages() {
    unsafe extern "C" {
        // Variadic in C; every argument here is an integer register either way.
        fn prctl(
            option: std::ffi::c_int,
            arg2: std::ffi::c_ulong,
            arg3: std::ffi::c_ulong,
            arg4: std::ffi::c_ulong,
            arg5: std::ffi::c_ulong,
        ) -> std::ffi::c_int;
    }
    const PR_SET_THP_DISABLE: std::ffi::c_int = 41; // <linux/prctl.h>
    if std::env::var_os("QUIVER_THP").is_some_and(|v| v == "1") {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and only sets a process flag.
    let rc = unsafe { prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "quiver-server: could not disable transparent huge pages: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("restore") {
        return restore::run(std::env::args()).await;
    }
    disable_transparent_huge_pages();
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
