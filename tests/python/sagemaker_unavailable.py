"""PutRecord while the offline store cannot take more rows: boto3 sees 503 ServiceUnavailable.

    python sagemaker_unavailable.py http://127.0.0.1:PORT

The server runs with --offline-staging-limit-mb 0, so every write that targets the offline store
is refused and online-only writes are not. Prints what botocore parsed as JSON.
"""

import json
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

args = dict(
    endpoint_url=sys.argv[1],
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    config=Config(retries={"max_attempts": 1}),
)
sm = boto3.client("sagemaker", **args)
rt = boto3.client("sagemaker-featurestore-runtime", **args)
sm.create_feature_group(
    FeatureGroupName="both",
    RecordIdentifierFeatureName="id",
    EventTimeFeatureName="ts",
    FeatureDefinitions=[
        {"FeatureName": "id", "FeatureType": "String"},
        {"FeatureName": "ts", "FeatureType": "Fractional"},
    ],
    OnlineStoreConfig={"EnableOnlineStore": True},
    OfflineStoreConfig={"S3StorageConfig": {"S3Uri": ""}},
)
record = [
    {"FeatureName": "id", "ValueAsString": "a"},
    {"FeatureName": "ts", "ValueAsString": str(time.time())},
]
result = {}
try:
    rt.put_record(FeatureGroupName="both", Record=record)
    result["refused"] = None
except ClientError as e:
    result["refused"] = {
        "code": e.response["Error"]["Code"],
        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        "message": e.response["Error"].get("Message", ""),
    }
rt.put_record(FeatureGroupName="both", Record=record, TargetStores=["OnlineStore"])
result["online_only_written"] = "Record" in rt.get_record(
    FeatureGroupName="both", RecordIdentifierValueAsString="a"
)
print(json.dumps(result))
