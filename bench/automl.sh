#!/usr/bin/env bash
# AutoML quality and speed against scikit-learn's HistGradientBoosting and FLAML, at the same
# wall-clock budget, on this machine (docs/automl.md, docs/benchmarks.md).
#
#   bash bench/automl.sh [BUDGET_SECONDS] [--smoke]     (default 60 s per training; --smoke: 2 small tasks, 5 s)
#
# --smoke is the small version the test suite runs (tests/run-all.sh): it also fails when Quiver
# errs or scores below 0.8 normalised on a task.
#
# Datasets: scikit-learn's breast_cancer, wine, digits, diabetes, iris and generated ones with
# missing values, outliers and text categories, each in 5 outer folds shared by every system.
# Prints each task's metric (AUC binary, log loss multiclass, RMSE regression) per system, the
# normalised score (0 = constant predictor, 1 = best competitor), the mean normalised scores,
# Quiver's largest shortfall against HistGradientBoosting and any training over its budget.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=""; SMOKE=""
for arg in "$@"; do case "$arg" in --smoke) SMOKE="--smoke" ;; *) BUDGET="$arg" ;; esac; done
BUDGET="${BUDGET:-$([ -n "$SMOKE" ] && echo 5 || echo 60)}"
source deploy/build-env.sh
VENV="${QUIVER_BENCH_VENV:-$HOME/.cache/quiver/bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q scikit-learn "flaml[automl]" pandas pyarrow lightgbm
cargo build --release -p quiver-automl --bin quiver-automl-bench -q
WORK="$(mktemp -d /tmp/quiver-automl-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" bench/automl/datasets.py "$WORK/data" $SMOKE
echo "training Quiver ($BUDGET s per fold)"
"$CARGO_TARGET_DIR/release/quiver-automl-bench" --data "$WORK/data" --budget "$BUDGET" | tee "$WORK/results.jsonl"
echo "training HistGradientBoosting and FLAML ($BUDGET s per fold)"
"$VENV/bin/python" bench/automl/compare.py run "$WORK/data" "$BUDGET" | tee -a "$WORK/results.jsonl"
echo
"$VENV/bin/python" bench/automl/compare.py summarize "$WORK/results.jsonl" "$WORK/data" ${SMOKE:+--check}
