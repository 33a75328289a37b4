"""Uploads FILE to s3://BUCKET/KEY on an S3 endpoint.   s3_put.py ENDPOINT BUCKET KEY FILE"""
import sys

import boto3

endpoint, bucket, key, path = sys.argv[1:5]
boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").upload_file(path, bucket, key)
print("{}")
