"""Writes and deletes records through the SageMaker runtime API with boto3, for the encryption
sentinel test (tests/tests/encryption.rs).

    python sentinel_writes.py http://127.0.0.1:PORT GROUP SENTINEL

Puts two records (identifiers and values made from SENTINEL) with PutRecord, soft-deletes the
first with DeleteRecord and writes a third with BatchWriteRecord where the API has it, then
prints {"written": [identifiers]} as JSON.
"""

import json
import sys

import boto3
from botocore.config import Config

ENDPOINT, GROUP, SENTINEL = sys.argv[1:4]
rt = boto3.client(
    "sagemaker-featurestore-runtime",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    config=Config(retries={"max_attempts": 1}),
)


def record(identifier, n):
    return [
        {"FeatureName": "id", "ValueAsString": identifier},
        {"FeatureName": "ts", "ValueAsString": "2026-01-02T00:00:00Z"},
        {"FeatureName": "diagnosis", "ValueAsString": f"{SENTINEL} boto3 #{n}"},
        {"FeatureName": "age", "ValueAsString": str(n)},
    ]


ids = [f"{SENTINEL.lower()}-boto3-{n}@example.com" for n in range(2)]
for n, identifier in enumerate(ids):
    rt.put_record(FeatureGroupName=GROUP, Record=record(identifier, n))
rt.delete_record(
    FeatureGroupName=GROUP,
    RecordIdentifierValueAsString=ids[0],
    EventTime="2026-01-03T00:00:00Z",
)
got = rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString=ids[1])
assert got["Record"][2]["ValueAsString"] == f"{SENTINEL} boto3 #1", got
print(json.dumps({"written": ids}))
