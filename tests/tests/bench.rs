//! `quiver-bench` against the real server: it loads what it says, runs each operation, and
//! reports counts and latencies that match the run.

use std::process::Command;

use quiver_tests::{binary, feature, read, start};

fn bench(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(binary("quiver-bench"))
        .args([
            "--endpoint",
            endpoint,
            "--group",
            "lg",
            "--features",
            "12",
            "--json",
        ])
        .args(args)
        .output()
        .expect("quiver-bench runs");
    assert!(
        output.status.success(),
        "quiver-bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints one JSON object")
}

#[tokio::test]
async fn quiver_bench_loads_and_runs_every_operation() {
    let (_dir, server) = start().await;
    let endpoint = server.endpoint();
    let get = bench(
        &endpoint,
        &[
            "get",
            "--records",
            "500",
            "--requests",
            "300",
            "--concurrency",
            "8",
        ],
    );
    assert_eq!(get["load"]["records"], 500);
    assert_eq!(get["operation"], "get");
    assert_eq!(get["requests"], 300);
    assert_eq!(get["errors"], 0, "{get}");
    let latency = &get["latency_ms"];
    assert!(latency["p50"].as_f64().unwrap() > 0.0);
    assert!(latency["p50"].as_f64() <= latency["p99"].as_f64());
    assert!(latency["p99"].as_f64() <= latency["max"].as_f64());

    // The load really wrote the records, with the requested number of features.
    let client = server.client().await;
    let record = read(&client, "lg", "r499").await;
    assert_eq!(record.len(), 12);
    assert_eq!(feature(&record, "id"), Some(serde_json::json!("r499")));

    for (operation, extra) in [
        (
            "batch-get",
            vec!["--batch-size", "20", "--distribution", "zipfian"],
        ),
        ("put", vec![]),
        ("put-batch", vec!["--batch-size", "10"]),
        ("mixed", vec!["--read-ratio", "0.5"]),
    ] {
        let mut args = vec![
            operation,
            "--records",
            "500",
            "--skip-load",
            "--requests",
            "100",
            "--concurrency",
            "4",
        ];
        args.extend(extra);
        let run = bench(&endpoint, &args);
        assert_eq!(run["operation"], operation);
        assert_eq!(run["requests"], 100, "{run}");
        assert_eq!(run["errors"], 0, "{run}");
    }
    // An open loop: 200 requests offered at 1,000/s take about 0.2 s and are all answered.
    let paced = bench(
        &endpoint,
        &[
            "get",
            "--records",
            "500",
            "--skip-load",
            "--requests",
            "200",
            "--rate",
            "1000",
        ],
    );
    assert_eq!(paced["requests"], 200, "{paced}");
    assert_eq!(paced["errors"], 0, "{paced}");
    assert_eq!(paced["rate"], 1000.0);
    let seconds = paced["seconds"].as_f64().unwrap();
    assert!((0.19..5.0).contains(&seconds), "{paced}");
    let waited = &paced["wait_for_worker_ms"];
    assert!(waited["p99"].as_f64() <= waited["max"].as_f64(), "{paced}");
    assert!(
        waited["max"].as_f64() <= paced["latency_ms"]["max"].as_f64(),
        "the wait is part of the latency: {paced}"
    );

    // Puts carry newer event times than the load, so they were applied.
    let mut updated = 0;
    for key in 0..50 {
        let record = read(&client, "lg", &format!("r{key}")).await;
        if feature(&record, "ts").and_then(|t| t.as_f64()).unwrap() > 1_700_000_000.0 {
            updated += 1;
        }
    }
    assert!(updated > 0, "no put was applied to r0..r49");
    server.stop().await;
}
