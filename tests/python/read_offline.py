"""Reads a Quiver offline store with pyarrow, independently of Quiver, and prints it as JSON.

    read_offline.py local DIR
    read_offline.py s3 ENDPOINT BUCKET PREFIX

Prints {"files": [relative key, ...], "columns": {name: arrow type}, "rows": [{...}, ...]},
each row with its file's hive partition as "_partition". Files written before a feature was
added lack its column; the union schema gives them nulls, as any reader of the group sees.
"""
import io
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def local_files(root):
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            if name.endswith(".parquet"):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, root), open(path, "rb").read()


def s3_files(endpoint, bucket, prefix):
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                yield obj["Key"][len(prefix):].lstrip("/"), body


def plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def main():
    if sys.argv[1] == "local":
        files = list(local_files(sys.argv[2]))
    else:
        files = list(s3_files(*sys.argv[2:5]))
    tables, names = [], []
    for key, body in sorted(files):
        table = pq.read_table(io.BytesIO(body), use_threads=False)
        partition = "/".join(p for p in key.split("/") if "=" in p)
        table = table.append_column("_partition", pa.array([partition] * table.num_rows, pa.string()))
        tables.append(table)
        names.append(key)
    if tables:
        combined = pa.concat_tables(tables, promote_options="default")
        columns = {f.name: str(f.type) for f in combined.schema}
        rows = [{k: plain(v) for k, v in row.items()} for row in combined.to_pylist()]
    else:
        columns, rows = {}, []
    json.dump({"files": names, "columns": columns, "rows": rows}, sys.stdout)


main()
# pyarrow's thread pools can abort the interpreter's teardown under load ("terminate called
# without an active exception"): the output is complete, so leave without it.
sys.stdout.flush()
os._exit(0)
