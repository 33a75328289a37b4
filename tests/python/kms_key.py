"""Creates a symmetric key in a KMS-compatible endpoint (moto) and prints {"arn": ...}.

    kms_key.py ENDPOINT
"""
import json
import sys

import boto3

kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name="us-east-1")
key = kms.create_key(Description="quiver test key", KeyUsage="ENCRYPT_DECRYPT")
print(json.dumps({"arn": key["KeyMetadata"]["Arn"]}))
