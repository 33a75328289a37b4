#!/usr/bin/env bash
# Builds quiver-server (release) and runs it on its embedded defaults: data in ./quiver-data,
# gRPC on 127.0.0.1:7940, metrics on http://127.0.0.1:7941/metrics. Extra arguments go to the
# server (see `quiver-server --help`). Also builds the `quiver` CLI next to it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo/deploy/build-env.sh"

# From the repository, whose .cargo/config.toml sets how RocksDB's C++ is built.
(cd "$repo" && cargo build --release --bin quiver-server --bin quiver)
echo "quiver CLI: $CARGO_TARGET_DIR/release/quiver"
exec "$CARGO_TARGET_DIR/release/quiver-server" "$@"
