//! The server binary configured from a TOML file and `QUIVER_*` environment variables alone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quiver_tests::*;

#[tokio::test]
async fn config_file_and_environment_configure_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let addr_file = dir.path().join("addrs.json");
    let config = dir.path().join("quiver.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:1\"\nflight_sql_addr = \"127.0.0.1:0\"\naddr_file = {:?}\nwal_sync = \"periodic\"\naccount_id = \"123456789012\"\nregion = \"eu-west-1\"\n",
            data.display().to_string(),
            addr_file.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(binary("quiver-server"))
        .arg("--config")
        .arg(&config)
        // The environment overrides the file's (unusable) HTTP address.
        .env("QUIVER_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !addr_file.exists() {
        assert!(child.try_wait().unwrap().is_none(), "server exited early");
        assert!(Instant::now() < deadline, "server not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addrs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&addr_file).unwrap()).unwrap();
    let endpoint = format!("http://{}", addrs["grpc"].as_str().unwrap());
    let client = quiver_client::Client::connect(endpoint).await.unwrap();
    let arn = client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap()
        .feature_group_arn;
    assert_eq!(
        arn,
        "arn:aws:sagemaker:eu-west-1:123456789012:feature-group/g"
    );
    assert!(
        data.join("CURRENT").exists(),
        "RocksDB lives in the file's data_dir"
    );
    assert_ne!(addrs["http"].as_str().unwrap(), "127.0.0.1:1");
    child.kill().unwrap();
    child.wait().unwrap();

    // A bad value is refused at start with a message naming it.
    std::fs::write(&config, "wal_sync = \"sometimes\"\n").unwrap();
    let output = Command::new(binary("quiver-server"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("wal_sync") || stderr.contains("sometimes"),
        "{stderr}"
    );
}
