"""Lists the objects under an S3 prefix with their server-side encryption, as S3 reports it.

    s3_sse.py ENDPOINT BUCKET PREFIX

Prints {"objects": [{"key": ..., "sse": ServerSideEncryption, "kms_key": SSEKMSKeyId}, ...]}.
"""
import json
import sys

import boto3

ENDPOINT, BUCKET, PREFIX = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1")
objects = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
    for item in page.get("Contents", []):
        head = s3.head_object(Bucket=BUCKET, Key=item["Key"])
        objects.append(
            {
                "key": item["Key"],
                "sse": head.get("ServerSideEncryption"),
                "kms_key": head.get("SSEKMSKeyId"),
            }
        )
print(json.dumps({"objects": objects}))
