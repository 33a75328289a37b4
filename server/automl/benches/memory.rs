//! Peak memory of one AutoML build on a large table: `cargo bench -p quiver-automl --bench
//! memory [-- ROWS FEATURES BUDGET_SECONDS]` (defaults 1,000,000 rows, 100 features, 300 s),
//! against the target of 4 GiB of RSS for 1M rows x 100 features.
//!
//! The table is generated in the process (numbers, a tenth of them with 5% missing values, a
//! binary target from a rule over ten of them), as the build receives it from its loader, and
//! the build runs as a job runs it: cleaning, the search within the budget (one 80/20 holdout
//! above 50,000 rows), the ensemble, the reports. Prints the process's peak resident set size
//! (VmHWM) after the table is made and after the build.

use std::time::{Duration, Instant};

use quiver_automl::frame::{Column, Frame};
use quiver_automl::training::{TrainingSpec, train};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(1_000_000);
    let features = args.get(1).copied().unwrap_or(100).max(12);
    let budget = args.get(2).copied().unwrap_or(300) as u64;

    let mut state = 11u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / (1u64 << 31) as f64 - 0.5
    };
    let mut columns: Vec<Column> = (0..features)
        .map(|f| {
            let values = (0..rows)
                .map(|_| {
                    let v = next();
                    if f % 10 == 9 && next() < -0.45 {
                        f64::NAN
                    } else {
                        v
                    }
                })
                .collect();
            Column::number(&format!("f{f}"), values)
        })
        .collect();
    let label: Vec<f64> = (0..rows)
        .map(|r| {
            let s: f64 = (0..10)
                .map(|f| columns[f].values[r] * (f as f64 + 1.0))
                .sum::<f64>()
                + columns[10].values[r] * columns[11].values[r] * 8.0;
            if s > 0.0 { 1.0 } else { 0.0 }
        })
        .collect();
    columns.push(Column::number("label", label));
    let frame = Frame::new(columns).expect("frame");
    let table_mib = (rows * (features + 1) * 8) as f64 / 1048576.0;
    println!(
        "table: {rows} rows x {features} features ({table_mib:.0} MiB of values); peak RSS {:.0} MiB",
        peak_rss_mib()
    );

    let started = Instant::now();
    let model = train(
        &frame,
        &TrainingSpec::new("label", Duration::from_secs(budget)),
        &|stage| println!("{:>6.1} s  {stage:?}", started.elapsed().as_secs_f64()),
    )
    .expect("training");
    let best = model.leaderboard.first().map_or("-", |c| c.name.as_str());
    let peak = peak_rss_mib();
    println!(
        "built in {:.0} s (budget {budget} s), best {best}, {} {:.4}",
        started.elapsed().as_secs_f64(),
        model.objective.name(),
        model.leaderboard.first().map_or(f64::NAN, |c| c.objective)
    );
    println!(
        "peak RSS {peak:.0} MiB ({:.2} GiB) against the 4 GiB target: {}",
        peak / 1024.0,
        if peak <= 4096.0 { "met" } else { "not met" }
    );
}
