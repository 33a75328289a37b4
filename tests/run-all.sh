#!/usr/bin/env bash
# Runs Quiver's whole test suite on a fresh Debian machine with Rust (as root), or a prepared one.
# Installs what the build needs, builds every binary, then runs every test with cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

source deploy/build-env.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# openssl: the TLS tests' certificates; fiu-utils: libfiu's fault injection (tests/tests/crash.rs).
ensure_packages openssl fiu-utils
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# The offline-store tests read Parquet with pyarrow and run S3 and Glue on moto_server (each test
# starts its own); the SageMaker-compatibility tests drive the server with boto3 and the SageMaker
# Python SDK; all from a Python environment kept beside the build cache.
export QUIVER_TEST_VENV="${QUIVER_TEST_VENV:-$HOME/.cache/quiver/venv}"
if ! "$QUIVER_TEST_VENV/bin/python" -c "import boto3, pyarrow, moto, pandas, sagemaker" >/dev/null 2>&1; then
  python3 -c "import ensurepip" >/dev/null 2>&1 || ensure_packages python3-venv
  rm -rf "$QUIVER_TEST_VENV"
  python3 -m venv "$QUIVER_TEST_VENV"
  "$QUIVER_TEST_VENV/bin/pip" install -q --disable-pip-version-check \
    'boto3>=1.34,<2' 'pyarrow>=15' 'moto[server]>=5.1,<6' 'pandas>=2' 'sagemaker>=2.200,<3'
fi
# The Flight SQL test queries the server with the ADBC driver, as a standard client would; the
# dataset parity test runs the SageMaker SDK's DatasetBuilder SQL in DuckDB.
if ! "$QUIVER_TEST_VENV/bin/python" -c "import adbc_driver_flightsql.dbapi, duckdb" >/dev/null 2>&1; then
  "$QUIVER_TEST_VENV/bin/pip" install -q --disable-pip-version-check \
    'adbc-driver-flightsql>=1.0' 'adbc-driver-manager>=1.0' 'duckdb>=1.1'
fi

# The OpenLineage test posts events with OpenLineage's own Python client.
if ! "$QUIVER_TEST_VENV/bin/python" -c "import openlineage.client" >/dev/null 2>&1; then
  "$QUIVER_TEST_VENV/bin/pip" install -q --disable-pip-version-check 'openlineage-python>=1.20'
fi

# The console's browser test drives Debian's chromium with playwright-core from npm, installed
# beside the build cache from tests/browser/package-lock.json (again only when the lock changes).
ensure_packages chromium
export QUIVER_BROWSER_MODULES="${QUIVER_BROWSER_MODULES:-$HOME/.cache/quiver/browser}"
if ! cmp -s tests/browser/package-lock.json "$QUIVER_BROWSER_MODULES/package-lock.json" \
  || [ ! -d "$QUIVER_BROWSER_MODULES/node_modules/playwright-core" ]; then
  command -v npm >/dev/null || ensure_packages nodejs npm
  mkdir -p "$QUIVER_BROWSER_MODULES"
  cp tests/browser/package.json tests/browser/package-lock.json "$QUIVER_BROWSER_MODULES/"
  (cd "$QUIVER_BROWSER_MODULES" && npm ci --no-audit --no-fund --loglevel=error)
fi

# Each server crate depends only on the layers below it (docs/development.md, "Crates").
bash tests/check-deps.sh

# The end-to-end tests start the real binaries, so build them first.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"

# The whole suite (no filter given) ends with the AutoML benchmark's smoke version: two small
# tasks against scikit-learn and FLAML, failing if Quiver errs or scores far below them.
if [ $# -eq 0 ]; then
  bash bench/automl.sh --smoke
fi
