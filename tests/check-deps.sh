#!/usr/bin/env bash
# Fails if a server crate depends on what its layer must not (docs/development.md, "Crates"):
# arrows point down only, and the I/O crates stay behind the crate that needs them.
# Run by tests/run-all.sh; needs only Cargo.lock (no build).
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
# forbid CRATE "what it must not depend on (transitively)" DEP...
forbid() {
  local crate=$1 why=$2
  shift 2
  local tree
  tree=$(cargo tree --offline -p "$crate" -e normal --prefix none -f '{p}' 2>/dev/null \
    || cargo tree -p "$crate" -e normal --prefix none -f '{p}')
  local dep
  for dep in "$@"; do
    if grep -q "^$dep v" <<<"$tree"; then
      echo "check-deps: $crate depends on $dep ($why); cargo tree -p $crate -i $dep shows how" >&2
      failed=1
    fi
  done
}
# forbid_direct CRATE "why" DEP...: only its own dependencies, not theirs.
forbid_direct() {
  local crate=$1 why=$2
  shift 2
  local tree
  tree=$(cargo tree --offline -p "$crate" -e normal --depth 1 --prefix none -f '{p}' 2>/dev/null \
    || cargo tree -p "$crate" -e normal --depth 1 --prefix none -f '{p}')
  local dep
  for dep in "$@"; do
    if grep -q "^$dep v" <<<"$tree"; then
      echo "check-deps: $crate uses $dep directly ($why)" >&2
      failed=1
    fi
  done
}

io="rocksdb tonic axum hyper datafusion arrow parquet object_store tokio aws-config aws-sdk-kms aws-sdk-glue aws-sdk-kinesis rdkafka"
forbid quiver-types "the domain model does no I/O" $io
forbid quiver-storage "storage holds RocksDB and KMS only" datafusion tonic axum aws-sdk-glue aws-sdk-kinesis quiver-offline quiver-core
forbid quiver-offline "the offline store writes files; queries are above it" datafusion tonic axum quiver-core quiver-query
forbid quiver-core "the operations know no wire format" tonic axum quiver-auth quiver-query
forbid_direct quiver-auth "auth stores its records through quiver-storage's API, not RocksDB" rocksdb
forbid quiver-auth "auth is beside the operations, below the front doors" quiver-core quiver-query datafusion
forbid_direct quiver-lineage "lineage stores its graph through quiver-storage's API, not RocksDB" rocksdb
forbid quiver-lineage "the lineage service is below the front doors and knows no query engine" tonic axum datafusion quiver-core quiver-query quiver-grpc quiver-sagemaker
forbid quiver-automl "AutoML's learning reads Arrow batches its host gives it, and knows no store or wire format" rocksdb tonic axum datafusion quiver-storage quiver-core quiver-query quiver-grpc quiver-sagemaker
forbid quiver-query "the query engine knows no wire format" tonic axum quiver-grpc quiver-sagemaker
forbid quiver-net "the listeners know nothing of what is served" quiver-storage quiver-core quiver-auth
forbid quiver-grpc "the front doors do not depend on each other" quiver-sagemaker
forbid quiver-sagemaker "the front doors do not depend on each other" quiver-grpc quiver-console
forbid quiver-grpc "the front doors do not depend on each other" quiver-console
forbid quiver-console "the console acts through the SageMaker operations and the query engine, not through gRPC" quiver-grpc tonic-reflection rdkafka

if [ "$failed" != 0 ]; then
  exit 1
fi
echo "check-deps: every server crate depends only on the layers below it"
