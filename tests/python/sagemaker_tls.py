"""boto3 against a Quiver server whose HTTP listener is TLS, signing with a Quiver key.

    python sagemaker_tls.py HTTPS_ENDPOINT CA_PEM KEY SECRET GROUP RECORD_ID

Prints {"results": {name: outcome}} as JSON: the record read with the test CA trusted, and the
same call with only the system's roots trusted (which must fail verification), and over plain
HTTP (which the TLS listener must refuse).
"""

import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, SSLError, ConnectionClosedError

ENDPOINT, CA, KEY, SECRET, GROUP, RECORD_ID = sys.argv[1:7]
RESULTS = {}


def runtime(endpoint, verify):
    return boto3.client(
        "sagemaker-featurestore-runtime",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        verify=verify,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5),
    )


def outcome(name, call):
    try:
        RESULTS[name] = call()
    except ClientError as e:
        RESULTS[name] = "%s %s" % (
            e.response["Error"]["Code"],
            e.response["ResponseMetadata"]["HTTPStatusCode"],
        )
    except SSLError:
        RESULTS[name] = "ssl error"
    except (EndpointConnectionError, ConnectionClosedError, Exception) as e:  # noqa: B014
        RESULTS[name] = "connection error: %s" % type(e).__name__


def get(endpoint, verify):
    record = runtime(endpoint, verify).get_record(
        FeatureGroupName=GROUP, RecordIdentifierValueAsString=RECORD_ID
    )["Record"]
    return {f["FeatureName"]: f["ValueAsString"] for f in record}


outcome("trusted_ca", lambda: get(ENDPOINT, CA))
outcome("system_roots", lambda: get(ENDPOINT, True))
outcome("plain_http", lambda: get(ENDPOINT.replace("https://", "http://"), CA))
print(json.dumps({"results": RESULTS}))
