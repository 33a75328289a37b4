"""The data preparation benchmark's 10 steps in pandas and in DuckDB SQL (bench/prep.sh), on
the same files as Quiver's recipe (recipe.json): prints one JSON line per system with its
seconds, output rows and peak RSS (each runs in a process of its own)."""
import json
import resource
import sys
import time

system, data, out = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.perf_counter()

if system == "pandas":
    import numpy as np
    import pandas as pd

    events = pd.read_parquet(f"{data}/events.parquet")
    users = pd.read_parquet(f"{data}/users.parquet")
    df = events.merge(users, on="user_id", how="left")
    df = df[df["category"].isna() | (df["category"] != "c19")]
    df["amount"] = df["amount"].fillna(df["amount"].mean())
    top = df["category"].value_counts().index[:20]
    for level in sorted(top):
        df[f"category_{level}"] = (df["category"] == level).astype("int32")
    df = df.drop(columns=["category"])
    df["amount"] = (df["amount"] - df["amount"].mean()) / df["amount"].std(ddof=0)
    df["ts_hour"] = df["ts"].dt.hour
    df["ts_day_of_week"] = df["ts"].dt.day_of_week
    df["ts_month"] = df["ts"].dt.month
    df = df.sort_values(["user_id", "ts"], kind="stable")
    grouped = df.groupby("user_id", sort=False)["amount"]
    df["amount_lag_1"] = grouped.shift(1)
    df["amount_rolling_mean_3"] = grouped.rolling(3, min_periods=1).mean().reset_index(level=0, drop=True)
    df["user_mean_amount"] = grouped.transform("mean")
    df = df.sort_values("amount", kind="stable").drop_duplicates(["user_id", "ts"], keep="first")
    df.to_parquet(out)
    rows = len(df)
elif system == "duckdb":
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    levels = [r[0] for r in con.execute(
        f"SELECT category FROM '{data}/events.parquet' WHERE category IS NOT NULL "
        "AND category <> 'c19' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 20").fetchall()]
    one_hot = ", ".join(f"CAST(category = '{l}' AS INT) AS category_{l}" for l in sorted(levels))
    con.execute(f"""
    COPY (
    WITH joined AS (
      SELECT e.*, u.segment FROM '{data}/events.parquet' e LEFT JOIN '{data}/users.parquet' u USING (user_id)
    ), filtered AS (
      SELECT * FROM joined WHERE category IS NULL OR category <> 'c19'
    ), filled AS (
      SELECT * REPLACE (coalesce(amount, avg(amount) OVER ()) AS amount) FROM filtered
    ), encoded AS (
      SELECT * EXCLUDE (category), {one_hot} FROM filled
    ), scaled AS (
      SELECT * REPLACE ((amount - avg(amount) OVER ()) / stddev_pop(amount) OVER () AS amount) FROM encoded
    ), dated AS (
      SELECT *, hour(ts) AS ts_hour, isodow(ts) - 1 AS ts_day_of_week, month(ts) AS ts_month FROM scaled
    ), series AS (
      SELECT *,
        lag(amount, 1) OVER (PARTITION BY user_id ORDER BY ts) AS amount_lag_1,
        avg(amount) OVER (PARTITION BY user_id ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS amount_rolling_mean_3,
        avg(amount) OVER (PARTITION BY user_id) AS user_mean_amount
      FROM dated
    )
    SELECT * FROM series QUALIFY row_number() OVER (PARTITION BY user_id, ts ORDER BY amount) = 1
    ) TO '{out}' (FORMAT parquet)
    """)
    rows = con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]
else:
    raise SystemExit(f"unknown system {system}")

seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"system": system, "seconds": seconds, "rows": rows, "peak_rss_bytes": peak}))
