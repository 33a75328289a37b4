//! `quiver-lineage-bench`: the lineage service's speed, through the server's gRPC API.
//!
//! Builds a graph of `--entities` entities (artifacts, actions and contexts in turn) and about
//! `--edges` associations, in clusters of `--cluster` entities with associations only inside a
//! cluster (so a query reaches one cluster: `--cluster` vertices), from `--concurrency`
//! requests in flight; waits `--settle-secs` for the load's compactions; then times `--queries` QueryLineage calls from random entities
//! (Direction Both, MaxDepth 10, IncludeEdges, the first page of 50 vertices), one at a time.
//! Prints creation rates and query latency percentiles against the targets (10,000 entities a
//! second; p99 under 20 ms), or one JSON object with `--json`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use quiver_client::{Client, pb};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Parser)]
#[command(
    name = "quiver-lineage-bench",
    version,
    about = "Lineage service benchmark"
)]
struct Args {
    #[arg(long, env = "QUIVER_ENDPOINT", default_value = "http://127.0.0.1:7940")]
    endpoint: String,
    #[arg(long, default_value_t = 1_000_000)]
    entities: usize,
    #[arg(long, default_value_t = 3_000_000)]
    edges: usize,
    /// Entities per cluster: what a query at depth 10 reaches.
    #[arg(long, default_value_t = 1_000)]
    cluster: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 2_000)]
    queries: usize,
    /// Seconds to wait after loading, before the queries: the server's flushes and
    /// compactions of the load finish (as a graph built over time would be).
    #[arg(long, default_value_t = 30)]
    settle_secs: u64,
    #[arg(long)]
    json: bool,
}

const ENTITY_TARGET_PER_SEC: f64 = 10_000.0;
const QUERY_P99_TARGET_MS: f64 = 20.0;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.entities == 0 || args.cluster == 0 || args.concurrency == 0 {
        bail!("--entities, --cluster and --concurrency must be positive");
    }
    let client = Client::connect(args.endpoint.clone()).await?;

    // Entities, in order: entity i is in cluster i / cluster.
    let started = Instant::now();
    let cluster = args.cluster;
    let arns: Vec<String> = futures::stream::iter(0..args.entities)
        .map(|i| {
            let mut lineage = client.lineage();
            async move {
                let (kind, name) = match i % 3 {
                    0 => (pb::LineageEntityKind::Artifact, None),
                    1 => (
                        pb::LineageEntityKind::Action,
                        Some(format!("bench-action-{i}")),
                    ),
                    _ => (
                        pb::LineageEntityKind::Context,
                        Some(format!("bench-context-{i}")),
                    ),
                };
                let entity = lineage
                    .create_entity(pb::CreateLineageEntityRequest {
                        kind: kind.into(),
                        name,
                        source: Some(pb::LineageSource {
                            source_uri: format!("s3://bench/{i}"),
                            ..Default::default()
                        }),
                        entity_type: ["DataSet", "TrainingJob", "Endpoint"][i % 3].into(),
                        properties: [("cluster".to_string(), (i / cluster).to_string())].into(),
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("creating entity {i}"))?;
                Ok::<_, anyhow::Error>(entity.into_inner().arn)
            }
        })
        .buffered(args.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let entity_secs = started.elapsed().as_secs_f64();
    let entities_per_sec = args.entities as f64 / entity_secs;
    eprintln!(
        "created {} entities in {entity_secs:.1} s: {entities_per_sec:.0}/s",
        args.entities
    );

    // Associations inside each cluster, distinct pairs.
    let mut rng = SmallRng::seed_from_u64(7);
    let mut pairs = Vec::with_capacity(args.edges);
    let clusters = args.entities.div_ceil(args.cluster);
    let per_cluster = args.edges / clusters.max(1);
    for c in 0..clusters {
        let lo = c * args.cluster;
        let hi = ((c + 1) * args.cluster).min(args.entities);
        let size = hi - lo;
        if size < 2 {
            continue;
        }
        let wanted = per_cluster.min(size * (size - 1));
        let mut seen = HashSet::with_capacity(wanted);
        while seen.len() < wanted {
            let (a, b) = (
                lo + rng.random_range(0..size),
                lo + rng.random_range(0..size),
            );
            if a != b && seen.insert((a, b)) {
                pairs.push((a, b));
            }
        }
    }
    let arns = Arc::new(arns);
    let started = Instant::now();
    let failed = Arc::new(AtomicUsize::new(0));
    futures::stream::iter(pairs.iter().copied())
        .map(|(a, b)| {
            let mut lineage = client.lineage();
            let (arns, failed) = (arns.clone(), failed.clone());
            async move {
                let added = lineage
                    .add_association(pb::LineageAssociationRequest {
                        source_arn: arns[a].clone(),
                        destination_arn: arns[b].clone(),
                        association_type: Some("ContributedTo".into()),
                    })
                    .await;
                if let Err(e) = added
                    && failed.fetch_add(1, Ordering::Relaxed) < 3
                {
                    eprintln!("AddAssociation failed: {e}");
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await;
    let edge_secs = started.elapsed().as_secs_f64();
    let edges_per_sec = pairs.len() as f64 / edge_secs;
    let failed = failed.load(Ordering::Relaxed);
    eprintln!(
        "added {} associations in {edge_secs:.1} s: {edges_per_sec:.0}/s ({failed} failed)",
        pairs.len()
    );

    eprintln!("waiting {} s for the load's compactions", args.settle_secs);
    tokio::time::sleep(std::time::Duration::from_secs(args.settle_secs)).await;

    // How far a query reaches: every page of one query.
    let mut lineage = client.lineage();
    let start = arns[rng.random_range(0..arns.len())].clone();
    let mut reached = 0;
    let mut next_token = None;
    loop {
        let page = lineage
            .query_lineage(pb::QueryLineageRequest {
                start_arns: vec![start.clone()],
                max_depth: Some(10),
                next_token: next_token.take(),
                ..Default::default()
            })
            .await?
            .into_inner();
        reached += page.vertices.len();
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => break,
        }
    }

    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut edges_returned = 0usize;
    for _ in 0..args.queries {
        let start = arns[rng.random_range(0..arns.len())].clone();
        let began = Instant::now();
        let page = lineage
            .query_lineage(pb::QueryLineageRequest {
                start_arns: vec![start],
                direction: Some("Both".into()),
                include_edges: true,
                max_depth: Some(10),
                ..Default::default()
            })
            .await?
            .into_inner();
        latency.record(began.elapsed().as_micros().max(1) as u64)?;
        edges_returned += page.edges.len();
    }
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p99, max) = (ms(0.5), ms(0.99), latency.max() as f64 / 1000.0);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "entities": args.entities,
                "associations": pairs.len(),
                "associations_failed": failed,
                "cluster": args.cluster,
                "reached_per_query": reached,
                "entities_per_sec": entities_per_sec.round(),
                "associations_per_sec": edges_per_sec.round(),
                "queries": args.queries,
                "edges_per_query": edges_returned / args.queries.max(1),
                "query_p50_ms": p50,
                "query_p99_ms": p99,
                "query_max_ms": max,
            })
        );
    } else {
        println!(
            "graph: {} entities, {} associations, clusters of {}",
            args.entities,
            pairs.len(),
            args.cluster
        );
        println!(
            "create entities:   {entities_per_sec:>9.0}/s   target {ENTITY_TARGET_PER_SEC:.0}/s: {}",
            verdict(entities_per_sec >= ENTITY_TARGET_PER_SEC)
        );
        println!("add associations:  {edges_per_sec:>9.0}/s");
        println!(
            "QueryLineage (Both, depth 10, {reached} reachable, {} edges per answer): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms   target p99 < {QUERY_P99_TARGET_MS} ms: {}",
            edges_returned / args.queries.max(1),
            verdict(p99 < QUERY_P99_TARGET_MS)
        );
    }
    Ok(())
}
