"""Queries Quiver's Arrow Flight SQL endpoint with the ADBC Flight SQL driver (as any standard
Arrow client would) and prints what came back as JSON.

    flight_sql.py HOST:PORT SQL

Prints {"columns": [...], "rows": [[...], ...], "tables": [[schema, table, type], ...]}.
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql


def main():
    address, sql = sys.argv[1], sys.argv[2]
    with flight_sql.connect(f"grpc://{address}") as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            table = cur.fetch_arrow_table()
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = [
        [schema["db_schema_name"], t["table_name"], t["table_type"]]
        for catalog in objects
        for schema in catalog["catalog_db_schemas"] or []
        for t in schema["db_schema_tables"] or []
    ]
    print(
        json.dumps(
            {
                "columns": table.column_names,
                "rows": [list(r.values()) for r in table.to_pylist()],
                "tables": sorted(tables),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
