//! AWS-compatible services for tests, really started: `moto_server` (S3, Glue) from the
//! Python environment the README's test command prepares, a TCP proxy that can cut the
//! connection to it (an outage), and the independent Python readers in `tests/python/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// Credentials moto accepts; passed to the server and to boto3.
pub const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The Python environment with boto3, pyarrow and moto: `QUIVER_TEST_VENV`, or the one
/// `tests/run-all.sh` creates.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("QUIVER_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/quiver/venv")
        });
    assert!(
        venv.join("bin/python").exists(),
        "no Python test environment at {}: run `bash tests/run-all.sh` once (it creates it), or set QUIVER_TEST_VENV",
        venv.display()
    );
    venv
}

/// `tests/python/` of the checkout being tested. The runner's `CARGO_MANIFEST_DIR` comes first:
/// the one compiled in names whichever checkout last built this crate, and clones sharing one
/// `CARGO_TARGET_DIR` (CI's fresh clone and the working one) share its build.
fn python_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("python")
}

/// Runs `tests/python/<script>` with `args` and parses its standard output as JSON.
pub fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let path = python_dir().join(script);
    let output = Command::new(venv().join("bin/python"))
        .arg(&path)
        .args(args)
        .envs(AWS_ENV)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Checks a report of the Python check scripts (`{"passed": [names], "failed": [{"name",
/// "error"}]}`): panics listing every failed check, else asserts that `expected` checks ran.
pub fn assert_all_checks_passed(report: &serde_json::Value, expected: usize) {
    let failed = report["failed"].as_array().expect("failed list");
    assert!(
        failed.is_empty(),
        "checks failed:\n{}",
        failed
            .iter()
            .map(|f| format!("- {}: {}", f["name"], f["error"].as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let passed = report["passed"].as_array().expect("passed list");
    assert_eq!(passed.len(), expected, "every check ran: {passed:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `moto_server` process on a free loopback port; killed on drop.
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
}

impl Moto {
    pub async fn start() -> Self {
        let port = free_port();
        let mut command = Command::new(venv().join("bin/moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Self::spawn(command, port).await
    }

    /// moto with Kinesis resharding as AWS does it (`tests/python/moto_kinesis.py`); with
    /// `faults`, some reads fail with expired iterators and throttling.
    pub async fn start_kinesis(faults: bool) -> Self {
        let port = free_port();
        let script = python_dir().join("moto_kinesis.py");
        let mut command = Command::new(venv().join("bin/python"));
        command
            .arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .env("QUIVER_KINESIS_FAULTS", if faults { "1" } else { "0" });
        Self::spawn(command, port).await
    }

    async fn spawn(mut command: Command, port: u16) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server not listening within 60s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, addr }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn create_bucket(&self, bucket: &str) {
        python("s3_bucket.py", &[&self.endpoint(), bucket]);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to `target` that can be taken down (new and open connections are cut) and
/// brought back: an outage of the service behind it, whose state survives.
pub struct Proxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let down = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (is_down, cuts) = (down.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if is_down.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            down,
            generation,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}
