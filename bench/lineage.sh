#!/usr/bin/env bash
# The lineage service: creating entities and associations, and QueryLineage latency, through
# the server's gRPC API on this machine.
#
#   bash bench/lineage.sh [ENTITIES] [EDGES] [CLUSTER] [QUERIES]   (defaults 1,000,000, 3,000,000, 1,000 and 2,000)
#
# Starts a release server on a fresh data dir (default settings: every change fsynced before it
# is answered, concurrent changes sharing the fsync), builds a graph of ENTITIES entities and
# EDGES associations in clusters of CLUSTER entities (associations only inside a cluster, so a
# query at depth 10 reaches one cluster), from 64 requests in flight; waits 30 s for RocksDB to
# finish compacting the load (SETTLE_SECS overrides); then times QUERIES
# QueryLineage calls (Direction Both, MaxDepth 10, IncludeEdges) from random entities, one at a
# time. Prints the rates and latency percentiles against the targets: 10,000 entities a second,
# p99 under 20 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
ENTITIES="${1:-1000000}"
EDGES="${2:-3000000}"
CLUSTER="${3:-1000}"
QUERIES="${4:-2000}"
source deploy/build-env.sh
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-lineage-bench.XXXXXX)"
trap 'kill $(cat "$WORK/server.pid" 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT

"$BIN/quiver-server" --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/addrs.json" >"$WORK/server.log" 2>&1 &
echo $! >"$WORK/server.pid"
for _ in $(seq 100); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
GRPC=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['grpc'])" "$WORK/addrs.json")

"$BIN/quiver-lineage-bench" --endpoint "http://$GRPC" --entities "$ENTITIES" --edges "$EDGES" \
  --cluster "$CLUSTER" --queries "$QUERIES" --settle-secs "${SETTLE_SECS:-30}"
echo "server RSS at the end: $(ps -o rss= -p "$(cat "$WORK/server.pid")" | awk '{printf "%.0f MiB", $1/1024}')"
echo "data dir: $(du -sh "$WORK/data" | cut -f1)"
