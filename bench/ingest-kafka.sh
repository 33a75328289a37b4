#!/usr/bin/env bash
# Records per second from Kafka into both stores, with one partition and with four.
#
#   bash bench/ingest-kafka.sh [RECORDS] [FEATURES]      (defaults 1,000,000 and 20)
#
# Starts a release quiver-server on a fresh data dir (WAL on, offline store on local disk,
# periodic WAL sync as the default configuration), then runs `quiver-ingest-bench`, which for
# each partition count hosts a Kafka wire-protocol broker (librdkafka's mock cluster, on this
# machine), produces RECORDS JSON records of FEATURES Fractional features, and times the Kafka
# worker (the same code as quiver-ingest) from its start until the server's stored positions
# reach the end of every partition. Target: at least 100,000 records/s with four partitions.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-1000000}"
FEATURES="${2:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}"
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-ingest-bench.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/addrs.json" &
for _ in $(seq 600); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
GRPC="http://$(python3 -c "import json;print(json.load(open('$WORK/addrs.json'))['grpc'])")"
"$BIN/quiver-ingest-bench" --server "$GRPC" --records "$RECORDS" --features "$FEATURES" --partitions 1,4
