"""Compares Quiver's training datasets with what the SageMaker Python SDK's DatasetBuilder gives.

The SDK builds a dataset by generating SQL over the offline store's table (plain SQL, run by
Athena). This script has the installed SDK generate that SQL for each case (a DataFrame base
joined with one feature group, with the case's options), runs it in DuckDB over the group's
Parquet files as Quiver wrote them, and compares the result with the dataset `quiver dataset
create` wrote for the same case, row by row (as multisets).

Usage: dataset_builder_parity.py SPEC.json, where SPEC is
  {"base_csv": path, "base_id": column, "base_time": column,
   "groups": {name: {"files": glob, "record_id": f, "event_time": f,
                     "event_time_type": "Fractional"|"String", "features": [f, ...]}},
   "cases": [{"name": ..., "group": name, "quiver_output": dir, "options": {
       "point_in_time": bool, "include_duplicates": bool, "include_deleted": bool,
       "most_recent_per_identifier": int|null, "inner_join": bool,
       "start": epoch seconds|null, "end": epoch seconds|null, "as_of": epoch seconds|null}}]}
Prints {"cases": [{"name", "sdk_rows", "quiver_rows", "differ", "sql", "examples"}]}.
"""

import datetime
import json
import os
import re
import sys

# The SDK logs to standard output; only the JSON result goes there.
RESULT_OUT, sys.stdout = sys.stdout, sys.stderr
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
from sagemaker.feature_store.dataset_builder import (  # noqa: E402
    DatasetBuilder,
    FeatureGroupToBeMerged,
    JoinComparatorEnum,
    JoinTypeEnum,
    TableType,
)
from sagemaker.feature_store.feature_definition import (  # noqa: E402
    FeatureDefinition,
    FeatureTypeEnum,
)

DATABASE = "sagemaker_featurestore"
BASE_TABLE = "dataframe_base"


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def sdk_sql(spec, case):
    """The SQL DatasetBuilder.to_dataframe() would send to Athena for this case."""
    group = spec["groups"][case["group"]]
    options = case["options"]
    base_df = pd.read_csv(spec["base_csv"])
    builder = DatasetBuilder(
        sagemaker_session=None,
        base=base_df,
        output_path="s3://unused/",
        record_identifier_feature_name=spec["base_id"],
        event_time_identifier_feature_name=spec["base_time"],
    )
    # The base's event time is epoch seconds (a float column), as the SDK infers from its dtype.
    builder._event_time_identifier_feature_type = FeatureTypeEnum.FRACTIONAL
    if options.get("point_in_time"):
        builder.point_in_time_accurate_join()
    if options.get("include_duplicates"):
        builder.include_duplicated_records()
    if options.get("include_deleted"):
        builder.include_deleted_records()
    if options.get("most_recent_per_identifier") is not None:
        builder.with_number_of_recent_records_by_record_identifier(
            options["most_recent_per_identifier"]
        )
    if options.get("as_of") is not None:
        builder.as_of(utc(options["as_of"]))
    if options.get("start") is not None or options.get("end") is not None:
        builder.with_event_time_range(
            starting_timestamp=utc(options["start"]) if options.get("start") is not None else None,
            ending_timestamp=utc(options["end"]) if options.get("end") is not None else None,
        )
    features = group["features"]
    included = list(features)
    for key in (group["record_id"], group["event_time"]):
        if key not in included:
            included.append(key)
    event_time_type = FeatureTypeEnum(group["event_time_type"])
    builder._feature_groups_to_be_merged.append(
        FeatureGroupToBeMerged(
            features=included,
            included_feature_names=included,
            projected_feature_names=list(features),
            catalog="AwsDataCatalog",
            database=DATABASE,
            table_name=case["group"],
            record_identifier_feature_name=group["record_id"],
            event_time_identifier_feature=FeatureDefinition(group["event_time"], event_time_type),
            target_feature_name_in_base=spec["base_id"],
            table_type=TableType.FEATURE_GROUP,
            feature_name_in_target=None,
            join_comparator=JoinComparatorEnum.EQUALS,
            join_type=JoinTypeEnum.INNER_JOIN if options.get("inner_join") else JoinTypeEnum.LEFT_JOIN,
        )
    )
    base_columns = list(base_df.columns)
    base = FeatureGroupToBeMerged(
        base_columns,
        base_columns,
        base_columns,
        "AwsDataCatalog",
        DATABASE,
        BASE_TABLE,
        spec["base_id"],
        FeatureDefinition(spec["base_time"], FeatureTypeEnum.FRACTIONAL),
        None,
        TableType.DATA_FRAME,
    )
    return builder._construct_query_string(base)


def for_duckdb(sql):
    """Athena (Presto) functions the SDK's SQL uses, in DuckDB's terms."""
    # as_of: to_timestamp('2026-01-05 00:00:00+00:00', 'yyyy-mm-dd hh24:mi:ss')
    return re.sub(
        r"to_timestamp\('([^']*)', '[^']*'\)",
        r"CAST('\1' AS TIMESTAMPTZ)",
        sql,
    )


def normalize(value):
    if isinstance(value, float):
        return round(value, 6)
    return value


def rows(result):
    return sorted((tuple(normalize(v) for v in row) for row in result.fetchall()), key=repr)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE MACRO from_unixtime(x) AS to_timestamp(x)")
    con.execute("CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)")
    con.execute(f"CREATE SCHEMA {DATABASE}")
    for name, group in spec["groups"].items():
        con.execute(
            f"CREATE VIEW {DATABASE}.\"{name}\" AS SELECT * FROM read_parquet('{group['files']}', "
            "hive_partitioning = true, union_by_name = true)"
        )
    # The SDK's base query filters on is_deleted when both duplicates and deleted records
    # are included (a column only feature groups have): the base has it, always false.
    con.execute(
        f"CREATE VIEW {DATABASE}.{BASE_TABLE} AS SELECT *, false AS is_deleted FROM "
        f"read_csv('{spec['base_csv']}', header = true, "
        f"types = {{'{spec['base_id']}': 'VARCHAR', '{spec['base_time']}': 'DOUBLE'}})"
    )
    results = []
    for case in spec["cases"]:
        sql = sdk_sql(spec, case)
        sdk = rows(con.execute(for_duckdb(sql)))
        quiver = rows(
            con.execute(f"SELECT * FROM read_parquet('{case['quiver_output']}/*.parquet')")
        )
        differ = sum(1 for a, b in zip(sdk, quiver) if a != b) + abs(len(sdk) - len(quiver))
        results.append(
            {
                "name": case["name"],
                "sdk_rows": len(sdk),
                "quiver_rows": len(quiver),
                "differ": differ,
                "sql": sql if differ else None,
                "examples": {
                    "sdk_only": [list(r) for r in sdk if r not in quiver][:5],
                    "quiver_only": [list(r) for r in quiver if r not in sdk][:5],
                }
                if differ
                else None,
            }
        )
    print(json.dumps({"cases": results}, default=str), file=RESULT_OUT)


if __name__ == "__main__":
    main()
