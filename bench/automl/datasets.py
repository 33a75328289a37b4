"""Writes the AutoML benchmark's datasets as CSV files with a `target` column and an outer
`fold` column (5 stratified folds, the same for every system compared).

    python datasets.py OUT_DIR [--smoke]

scikit-learn's bundled breast_cancer, wine, digits, diabetes and iris, and generated ones with
missing values, outliers and text categories (a binary and a regression task). With --smoke,
only iris and a small generated binary task.
"""

import os
import sys

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import KFold, StratifiedKFold

OUT, SMOKE = sys.argv[1], "--smoke" in sys.argv
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)


def write(name, frame, classification):
    split = (StratifiedKFold if classification else KFold)(n_splits=5, shuffle=True, random_state=0)
    frame = frame.reset_index(drop=True)
    frame["fold"] = -1
    for k, (_, test) in enumerate(split.split(frame, frame["target"] if classification else None)):
        frame.loc[test, "fold"] = k
    frame.to_csv(os.path.join(OUT, f"{name}.csv"), index=False)


def bundled(name, loader, classification):
    data = loader(as_frame=True)
    frame = data.frame.rename(columns={data.target.name: "target"})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    write(name, frame, classification)


def messy(name, rows, classification):
    """Numbers with gaps and outliers, two text categories that matter, one that does not."""
    x = rng.normal(size=(rows, 6))
    region = rng.choice(["north", "south", "east", "west"], size=rows)
    plan = rng.choice(["basic", "plus", "pro"], size=rows, p=[0.5, 0.3, 0.2])
    noise = rng.choice([f"tag{i}" for i in range(30)], size=rows)
    signal = (1.5 * x[:, 0] - x[:, 1] + 0.8 * x[:, 2] * x[:, 3]
              + np.where(region == "north", 1.0, 0.0) + np.where(plan == "pro", -1.2, 0.3))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    frame["region"], frame["plan"], frame["tag"] = region, plan, noise
    for col in ["x0", "x2", "x4"]:
        frame.loc[rng.random(rows) < 0.1, col] = np.nan
    outliers = rng.random(rows) < 0.01
    frame.loc[outliers, "x1"] = frame.loc[outliers, "x1"] * 50
    if classification:
        frame["target"] = np.where(signal + rng.normal(scale=1.0, size=rows) > 0.5, "yes", "no")
    else:
        frame["target"] = signal * 10 + rng.normal(scale=5.0, size=rows)
    write(name, frame, classification)


if SMOKE:
    bundled("iris", datasets.load_iris, True)
    messy("messy_binary_small", 600, True)
else:
    bundled("breast_cancer", datasets.load_breast_cancer, True)
    bundled("wine", datasets.load_wine, True)
    bundled("digits", datasets.load_digits, True)
    bundled("diabetes", datasets.load_diabetes, False)
    bundled("iris", datasets.load_iris, True)
    messy("messy_binary", 5000, True)
    messy("messy_regression", 5000, False)
