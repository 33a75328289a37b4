#!/usr/bin/env bash
# Builds quiver-server (release) and runs it on its embedded defaults: data in ./quiver-data,
# gRPC on 127.0.0.1:7940, metrics on http://127.0.0.1:7941/metrics. Extra arguments go to the
# server (see `quiver-server --help`). Also builds the `quiver` CLI next to it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}"

# clang / libclang-dev: RocksDB's bindings; libssl-dev / pkg-config: librdkafka's TLS (the
# server runs the ingest workers its configuration lists).
missing=()
for pkg in clang libclang-dev libssl-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# From the repository, whose .cargo/config.toml sets how RocksDB's C++ is built.
(cd "$repo" && cargo build --release --bin quiver-server --bin quiver)
echo "quiver CLI: $CARGO_TARGET_DIR/release/quiver"
exec "$CARGO_TARGET_DIR/release/quiver-server" "$@"
