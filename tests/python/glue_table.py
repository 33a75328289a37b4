"""Prints the Glue table DATABASE.TABLE from a Glue endpoint as JSON (null when absent).

    glue_table.py ENDPOINT DATABASE TABLE
"""
import json
import sys

import boto3

glue = boto3.client("glue", endpoint_url=sys.argv[1], region_name="us-east-1")
try:
    table = glue.get_table(DatabaseName=sys.argv[2], Name=sys.argv[3])["Table"]
except glue.exceptions.EntityNotFoundException:
    table = None
json.dump(table, sys.stdout, default=str)
