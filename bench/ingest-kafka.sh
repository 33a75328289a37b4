#!/usr/bin/env bash
# Records per second from Kafka into both stores, with one partition and with four, with the
# workers inside the server and standalone.
#
#   bash bench/ingest-kafka.sh [RECORDS] [FEATURES] [MODES]
#       (defaults 1,000,000, 20 and "in-server,standalone")
#
# Runs `quiver-ingest-bench` (release), which for each mode and partition count starts a fresh
# quiver-server (WAL on, offline store on local disk, periodic WAL sync as the default
# configuration), hosts a Kafka wire-protocol broker (librdkafka's mock cluster, on this
# machine), produces RECORDS JSON records of FEATURES Fractional features, and times the Kafka
# worker (a `[[source]]` of the server's configuration, or the same code as quiver-ingest in
# its own process, writing over gRPC) from its start until the server's stored positions reach
# the end of every partition. Target: at least 100,000 records/s with four partitions.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-1000000}"
FEATURES="${2:-20}"
MODES="${3:-in-server,standalone}"
source deploy/build-env.sh
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
"$BIN/quiver-ingest-bench" --server-bin "$BIN/quiver-server" --records "$RECORDS" \
  --features "$FEATURES" --partitions 1,4 --modes "$MODES"
