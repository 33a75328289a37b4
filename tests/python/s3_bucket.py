"""Creates bucket BUCKET on an S3 endpoint.   s3_bucket.py ENDPOINT BUCKET"""
import sys

import boto3

boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket=sys.argv[2])
print("{}")
