"""Generates the data preparation benchmark's inputs (docs/data-prep.md): `events.parquet`,
ROWS events of 1/10 as many users (user_id, ts, amount with 5% missing, category with 3%
missing, 20 levels; 1% of rows repeated), and `users.parquet` (user_id, segment)."""
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

out, rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(7)
users = max(rows // 10, 1)
user_id = rng.integers(0, users, rows)
ts = np.datetime64("2024-01-01T00:00:00") + rng.integers(0, 365 * 86400, rows).astype("timedelta64[s]")
amount = np.round(rng.gamma(2.0, 50.0, rows), 2)
amount_missing = rng.random(rows) < 0.05
levels = np.array([f"c{i:02d}" for i in range(20)])
category = levels[rng.zipf(1.5, rows) % 20]
category_missing = rng.random(rows) < 0.03
# 1% of rows repeat another row (the deduplication step removes them).
repeat = rng.random(rows) < 0.01
source = rng.integers(0, rows, rows)
for column in (user_id, ts, amount, category):
    column[repeat] = column[source[repeat]]
amount_missing[repeat] = amount_missing[source[repeat]]
category_missing[repeat] = category_missing[source[repeat]]
table = pa.table({
    "user_id": pa.array(user_id, pa.int64()),
    "ts": pa.array(ts.astype("datetime64[us]")),
    "amount": pa.array(amount, mask=amount_missing),
    "category": pa.array(category, mask=category_missing),
})
pq.write_table(table, f"{out}/events.parquet", row_group_size=1 << 20)
segments = np.array(["free", "pro", "team", "enterprise"])
pq.write_table(pa.table({
    "user_id": pa.array(np.arange(users), pa.int64()),
    "segment": pa.array(segments[rng.integers(0, 4, users)]),
}), f"{out}/users.parquet")
print(f"{rows} events, {users} users")
