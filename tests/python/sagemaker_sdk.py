"""The SageMaker Python SDK's FeatureGroup helpers against Quiver.

    python sagemaker_sdk.py http://127.0.0.1:PORT

Points the SDK at Quiver the way its users would: the standard endpoint environment variables
(AWS_ENDPOINT_URL_SAGEMAKER, AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME), which every boto3
client honours, including the ones `ingest` creates in its workers. Then runs
load_feature_definitions, create, describe, ingest(df, max_workers=4), get_record and
delete_record, and prints what it observed as JSON.
"""

import json
import os
import sys
import time

ENDPOINT = sys.argv[1]
# The SDK logs to standard output; only the JSON result goes there.
RESULT_OUT, sys.stdout = sys.stdout, sys.stderr
os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = ENDPOINT
os.environ["AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME"] = ENDPOINT
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# The SDK reports usage to an AWS bucket unless told not to; tests stay on this machine.
CONFIG = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"quiver-sagemaker-config-{os.getpid()}.yaml")
with open(CONFIG, "w") as f:
    f.write("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = CONFIG

import boto3  # noqa: E402
import pandas as pd  # noqa: E402
from sagemaker.feature_store.feature_group import FeatureGroup  # noqa: E402
from sagemaker.feature_store.inputs import DeletionModeEnum  # noqa: E402
from sagemaker.session import Session  # noqa: E402

ROWS = 200

boto_session = boto3.Session(region_name="us-east-1")
session = Session(
    boto_session=boto_session,
    sagemaker_client=boto_session.client("sagemaker"),
    sagemaker_featurestore_runtime_client=boto_session.client("sagemaker-featurestore-runtime"),
)

now = time.time()
df = pd.DataFrame(
    {
        "customer_id": [f"c{i}" for i in range(ROWS)],
        "event_time": [now - 60 + i * 0.001 for i in range(ROWS)],
        "age": [20 + i % 50 for i in range(ROWS)],
        "lifetime_value": [i * 1.5 for i in range(ROWS)],
        "city": ["Paris" if i % 2 else "Lima" for i in range(ROWS)],
    }
)
# The SDK maps only pandas' string dtype to String (object columns are refused).
df["customer_id"] = df["customer_id"].astype("string")
df["city"] = df["city"].astype("string")

group = FeatureGroup(name="sdk_customers", sagemaker_session=session)
definitions = group.load_feature_definitions(data_frame=df)
group.create(
    s3_uri=False,
    record_identifier_name="customer_id",
    event_time_feature_name="event_time",
    role_arn="arn:aws:iam::000000000000:role/quiver",
    enable_online_store=True,
    description="created by the SageMaker SDK",
)
described = group.describe()
manager = group.ingest(data_frame=df, max_workers=4, wait=True)
record = group.get_record(record_identifier_value_as_string="c7")
missing = group.get_record(record_identifier_value_as_string="nobody")
group.delete_record(
    record_identifier_value_as_string="c7",
    event_time=str(now + 10),
    deletion_mode=DeletionModeEnum.SOFT_DELETE,
)
after_delete = group.get_record(record_identifier_value_as_string="c7")
last = group.get_record(record_identifier_value_as_string=f"c{ROWS - 1}")

RESULT_OUT.write(
    json.dumps(
        {
            "definitions": [
                {"name": d.feature_name, "type": d.feature_type.value} for d in definitions
            ],
            "status": described["FeatureGroupStatus"],
            "described_features": [f["FeatureName"] for f in described["FeatureDefinitions"]],
            "online": described["OnlineStoreConfig"]["EnableOnlineStore"],
            "failed_rows": manager.failed_rows,
            "record": {v["FeatureName"]: v["ValueAsString"] for v in record},
            "missing": missing,
            "after_delete": after_delete,
            "last": {v["FeatureName"]: v["ValueAsString"] for v in last},
        }
    )
)
