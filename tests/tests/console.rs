//! The web console in a real headless browser (Debian's chromium, driven by playwright-core:
//! `tests/browser/console.mjs`) against the real server with `--auth`. Screenshots of each page
//! are kept under `<target dir>/test-artifacts/console/` (or `$QUIVER_TEST_ARTIFACTS/console`).

use std::path::{Path, PathBuf};
use std::process::Command;

use quiver_tests::{TestServer, binary};

/// Where the test's artifacts go.
fn artifacts() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUIVER_TEST_ARTIFACTS") {
        return PathBuf::from(dir).join("console");
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>  ->  target/test-artifacts/console
    exe.ancestors()
        .nth(3)
        .unwrap()
        .join("test-artifacts/console")
}

/// The `quiver` CLI as root.
fn quiver(server: &TestServer, args: &[&str]) -> String {
    let out = Command::new(binary("quiver"))
        .arg("--endpoint")
        .arg(server.endpoint())
        .args(args)
        .env(
            "QUIVER_SHARED_CREDENTIALS_FILE",
            server.data_dir().join("root-credentials"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quiver {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A profile's value in the root-credentials file.
fn credential(data_dir: &Path, name: &str) -> String {
    std::fs::read_to_string(data_dir.join("root-credentials"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{name} in root-credentials"))
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let modules = std::env::var("QUIVER_BROWSER_MODULES").expect(
        "QUIVER_BROWSER_MODULES names where playwright-core is installed: run tests/run-all.sh, \
         which installs it and chromium",
    );
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(&dir.path().join("data"), &["--auth"]).await;

    // 120 customers, and c2 as the quickstart has it.
    let csv = dir.path().join("customers.csv");
    let mut rows = String::from("customer_id,event_time,age,lifetime_value,city\n");
    for i in 0..120 {
        let city = ["Paris", "Lima", "Oslo"][i % 3];
        rows += &format!(
            "c{i:03},{},{},{}.5,{city}\n",
            1_700_000_000 + i,
            20 + i % 50,
            i * 10
        );
    }
    rows += "c2,1700000001,45,980.0,Lima\n";
    std::fs::write(&csv, rows).unwrap();
    let csv = csv.to_str().unwrap();
    quiver(
        &server,
        &[
            "feature-group",
            "create",
            "customers",
            "--from",
            csv,
            "--record-id",
            "customer_id",
            "--event-time",
            "event_time",
            "--offline-store",
            "default",
        ],
    );
    quiver(&server, &["ingest", "customers", csv, "--no-progress"]);

    let shots = artifacts();
    let _ = std::fs::remove_dir_all(&shots);
    let script = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("browser/console.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(format!("http://{}", server.http))
        .arg(credential(server.data_dir(), "aws_access_key_id"))
        .arg(credential(server.data_dir(), "aws_secret_access_key"))
        .arg(&shots)
        .env("QUIVER_BROWSER_MODULES", &modules)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ok"], true);
    for name in [
        "sign-in",
        "home",
        "catalog",
        "group",
        "lineage",
        "lineage-entity",
        "query",
        "home-narrow",
        "group-narrow",
    ] {
        let path = shots.join(format!("{name}.png"));
        let png = std::fs::read(&path).unwrap_or_else(|_| panic!("{} written", path.display()));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{name}.png is an image"
        );
    }
    // What the browser did is in the audit log, as the principal.
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(audit.contains("console:SignIn"), "{audit}");
    assert!(audit.contains("console:UpdateFeatureMetadata"), "{audit}");
    assert!(audit.contains("console:SignOut"), "{audit}");
}
