//! What the fuzz targets share: splitting one input into parts, and the real components some
//! targets drive (a feature store in a temporary directory, a tokio runtime).
//!
//! Inputs are plain bytes so that corpora stay readable and seeds are real documents: a target
//! that needs several parts (a policy and a request, a header and a body) reads them separated
//! by NUL bytes, which no text document contains.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use quiver_core::FeatureStore;
use quiver_types::time::{Clock, SystemClock};

/// `data` split at NUL bytes into at most `n` parts (the last keeps the rest, NULs included).
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == 0).collect()
}

/// A part as text, lossily (the decoders under test take `&str`).
pub fn text(part: Option<&&[u8]>) -> String {
    part.map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default()
}

/// A current-thread tokio runtime, made once per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A private directory for this fuzzing process. libFuzzer's fork mode runs the target in a
/// new process every minute or so, each leaving its directory behind (a RocksDB store is
/// 150 MB): the directories of processes that have ended are removed first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("QUIVER_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let prefix = format!("quiver-fuzz-{name}-");
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let pid = file_name.to_str().and_then(|n| n.strip_prefix(&prefix));
        if let Some(pid) = pid.filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && !std::path::Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    std::path::absolute(&dir).expect("an absolute scratch directory")
}

/// A feature store with the server's defaults in a fresh scratch directory, and that directory.
pub fn store(name: &str) -> (Arc<FeatureStore>, PathBuf) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = scratch_dir(name);
    (Arc::new(quiver_core::testing::open(&dir, clock)), dir)
}
