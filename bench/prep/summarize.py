"""Prints the data preparation benchmark's table (summarize.py RESULTS [SOURCE_ROWS]): seconds, rows and peak RSS per system, and
Quiver's speed-up against pandas and DuckDB, with the targets (at least 5x pandas, no slower
than DuckDB, peak memory no more than DuckDB's)."""
import json
import sys

source_rows = sys.argv[2] if len(sys.argv) > 2 else "?"
results = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        results[r["system"]] = r
print(f"{'system':<8} {'seconds':>9} {'rows':>11} {'peak RSS MiB':>13}")
for name in ("quiver", "pandas", "duckdb"):
    r = results.get(name)
    if r:
        print(f"{name:<8} {r['seconds']:>9.2f} {r['rows']:>11} {r['peak_rss_bytes'] / 2**20:>13.0f}")
q = results.get("quiver")
if q:
    for name, target in (("pandas", 5.0), ("duckdb", 1.0)):
        r = results.get(name)
        if r:
            speedup = r["seconds"] / q["seconds"]
            print(f"Quiver is {speedup:.2f}x {name}'s speed (target {target:g}x): {'met' if speedup >= target else 'NOT met'}")
    d = results.get("duckdb")
    if d:
        ratio = q["peak_rss_bytes"] / d["peak_rss_bytes"]
        print(f"Quiver's peak RSS is {ratio:.2f}x DuckDB's (target at most 1x): {'met' if ratio <= 1 else 'NOT met'}")
    if "preview_seconds" in q:
        print(f"preview of every step on a {source_rows}-row source: {q['preview_seconds']:.3f} s (target under 1 s)")
        if "replay_seconds" in q:
            print(f"the fitted recipe replayed (no fitting passes): {q['replay_seconds']:.2f} s")
