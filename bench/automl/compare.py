"""The competitors' side of `bench/automl.sh`, and the summary.

    python compare.py run DATA_DIR BUDGET_SECONDS > competitors.jsonl
    python compare.py summarize results.jsonl

`run` trains scikit-learn's HistGradientBoosting (its defaults; it has no time budget) and
FLAML (`time_budget` = the budget) on the same CSV files and outer folds as
`quiver-automl-bench`, and prints one JSON line per (system, dataset, fold) in its format.
`summarize` reads every system's lines and prints, per dataset, each system's mean metric
(AUC for binary, log loss for multiclass, RMSE for regression) and normalised score
(0 = a constant predictor, 1 = the best competitor), and the mean normalised scores.
"""

import glob
import json
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def load(path):
    frame = pd.read_csv(path)
    for col in frame.columns:
        if col != "target" and (frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col])):
            frame[col] = frame[col].astype("category")
    return frame


def task_of(y):
    if y.dtype.kind not in "iuf" or y.nunique() == 2 or (y.dtype.kind in "iu" and y.nunique() <= 10):
        return "binary" if y.nunique() == 2 else "multiclass"
    return "regression"


def score(task, y_true, proba_or_pred, classes):
    from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score
    if task == "regression":
        return "rmse", float(np.sqrt(mean_squared_error(y_true, proba_or_pred)))
    if task == "binary":
        return "auc", float(roc_auc_score(y_true == classes[1], proba_or_pred[:, 1]))
    return "logloss", float(log_loss(y_true, np.clip(proba_or_pred, 1e-15, 1), labels=classes))


def run(data, budget):
    from flaml import AutoML
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    for path in sorted(glob.glob(os.path.join(data, "*.csv"))):
        name = os.path.splitext(os.path.basename(path))[0]
        frame = load(path)
        task = task_of(frame["target"])
        for k in sorted(frame["fold"].unique()):
            train, test = frame[frame["fold"] != k], frame[frame["fold"] == k]
            x_train, y_train = train.drop(columns=["target", "fold"]), train["target"]
            x_test, y_test = test.drop(columns=["target", "fold"]), test["target"]
            classes = sorted(y_train.unique()) if task != "regression" else None
            for system in ["hgb", "flaml"]:
                started = time.time()
                if system == "hgb":
                    model = (HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier)(
                        categorical_features="from_dtype", random_state=0)
                    model.fit(x_train, y_train)
                else:
                    model = AutoML()
                    model.fit(x_train, y_train, task="regression" if task == "regression" else "classification",
                              metric={"regression": "rmse", "binary": "roc_auc", "multiclass": "log_loss"}[task],
                              time_budget=budget, verbose=0, seed=0, n_jobs=2)
                train_seconds = time.time() - started
                out = model.predict(x_test) if task == "regression" else model.predict_proba(x_test)
                if task != "regression":
                    order = list(model.classes_)
                    out = out[:, [order.index(c) for c in classes]]
                metric, value = score(task, y_test.to_numpy(), out, classes)
                print(json.dumps({"system": system, "dataset": name, "fold": int(k), "metric": metric,
                                  "score": value, "train_seconds": train_seconds, "budget_seconds": budget}),
                      flush=True)


def constant(data_dir, name, metric):
    """A constant predictor's score on the same folds: 0.5 AUC, the priors' log loss, the mean's RMSE."""
    frame = load(os.path.join(data_dir, f"{name}.csv"))
    values = []
    for k in sorted(frame["fold"].unique()):
        train, test = frame[frame["fold"] != k], frame[frame["fold"] == k]
        if metric == "auc":
            values.append(0.5)
        elif metric == "rmse":
            values.append(float(np.sqrt(((test["target"] - train["target"].mean()) ** 2).mean())))
        else:
            priors = train["target"].value_counts(normalize=True)
            values.append(float(-np.log(np.clip(test["target"].map(priors).fillna(1e-15), 1e-15, 1)).mean()))
    return float(np.mean(values))


def summarize(results, data_dir, check=False):
    """Prints the comparison. With `check` (the CI smoke run), exits 1 when Quiver failed a fold
    or scored below 0.8 normalised on a task: a sanity floor, not the targets (times are not
    checked: CI's machine is busy)."""
    rows = [json.loads(line) for line in open(results) if line.strip().startswith("{")]
    errors = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    table = {}
    for r in rows:
        entry = table.setdefault(r["dataset"], {"metric": r["metric"], "systems": {}})
        entry["systems"].setdefault(r["system"], {"scores": [], "seconds": [], "budget": r["budget_seconds"]})
        entry["systems"][r["system"]]["scores"].append(r["score"])
        entry["systems"][r["system"]]["seconds"].append(r["train_seconds"])
    systems = sorted({r["system"] for r in rows})
    normalised = {s: [] for s in systems}
    print(f"{'dataset':<20} {'metric':<8} " + " ".join(f"{s:>22}" for s in systems) + "   (metric / normalised / mean train s)")
    for name, entry in sorted(table.items()):
        metric = entry["metric"]
        higher = metric == "auc"
        base = constant(data_dir, name, metric)
        means = {s: float(np.mean(v["scores"])) for s, v in entry["systems"].items()}
        competitors = [means[s] for s in means if s != "quiver"]
        best = max(competitors) if higher else min(competitors)
        cells = []
        for s in systems:
            if s not in means:
                cells.append(f"{'-':>22}")
                continue
            norm = (means[s] - base) / (best - base) if best != base else 1.0
            normalised[s].append(norm)
            seconds = float(np.mean(entry["systems"][s]["seconds"]))
            cells.append(f"{means[s]:>8.4f} {norm:>6.3f} {seconds:>6.1f}s")
        print(f"{name:<20} {metric:<8} " + " ".join(cells))
    print()
    for s in systems:
        print(f"mean normalised score {s:<6}: {np.mean(normalised[s]):.4f} over {len(normalised[s])} datasets")
    if "quiver" in means and "hgb" in systems:
        gaps = []
        for name, entry in sorted(table.items()):
            m = {s: float(np.mean(v["scores"])) for s, v in entry["systems"].items()}
            if "quiver" in m and "hgb" in m:
                base = constant(data_dir, name, entry["metric"])
                competitors = [m[s] for s in m if s != "quiver"]
                best = max(competitors) if entry["metric"] == "auc" else min(competitors)
                nq = (m["quiver"] - base) / (best - base) if best != base else 1.0
                nh = (m["hgb"] - base) / (best - base) if best != base else 1.0
                gaps.append((name, nq - nh))
        worst = min(gaps, key=lambda g: g[1])
        print(f"largest shortfall against HistGradientBoosting: {worst[0]} {worst[1]:+.4f} (target: no task below -0.02)")
    over = [(r["dataset"], r["fold"], r["train_seconds"], r["budget_seconds"]) for r in rows
            if r["system"] == "quiver" and r["train_seconds"] > r["budget_seconds"] * 1.1 + 1]
    print(f"quiver folds over budget (+10%, +1 s): {len(over)}" + (f" {over[:5]}" if over else ""))
    for e in errors:
        print(f"error: {e['system']} {e['dataset']} fold {e['fold']}: {e['error']}")
    if check:
        problems = [f"{e['dataset']} fold {e['fold']}: {e['error']}" for e in errors if e["system"] == "quiver"]
        if "quiver" not in systems:
            problems.append("no Quiver results")
        for name, entry in sorted(table.items()):
            m = {s: float(np.mean(v["scores"])) for s, v in entry["systems"].items()}
            if "quiver" not in m or len(m) < 2:
                problems.append(f"{name}: missing a system's results")
                continue
            base = constant(data_dir, name, entry["metric"])
            competitors = [m[s] for s in m if s != "quiver"]
            best = max(competitors) if entry["metric"] == "auc" else min(competitors)
            nq = (m["quiver"] - base) / (best - base) if best != base else 1.0
            if not nq >= 0.8:
                problems.append(f"{name}: Quiver's normalised score {nq:.3f} is below 0.8")
        if problems:
            print("smoke check failed:\n  " + "\n  ".join(problems))
            sys.exit(1)
        print("smoke check passed")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], float(sys.argv[3]))
    else:
        summarize(sys.argv[2], sys.argv[3], check="--check" in sys.argv)
