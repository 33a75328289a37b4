"""The SageMaker Python SDK's lineage classes against Quiver.

    python sagemaker_lineage_sdk.py http://127.0.0.1:PORT

Artifact, Context, Action and Association create / load / list / save / delete; LineageQuery
with LineageFilter and LineageQueryDirectionEnum; a vertex back to its lineage object; and the
feature processor's check that a feature group has its lineage contexts (which Quiver creates
with the group). Prints what it observed as JSON.
"""

import json
import os
import sys

ENDPOINT = sys.argv[1]
RESULT_OUT, sys.stdout = sys.stdout, sys.stderr
os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = ENDPOINT
os.environ["AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME"] = ENDPOINT
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
CONFIG = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"quiver-sagemaker-config-{os.getpid()}.yaml")
with open(CONFIG, "w") as f:
    f.write("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = CONFIG

import boto3  # noqa: E402
from sagemaker.lineage.action import Action  # noqa: E402
from sagemaker.lineage.artifact import Artifact  # noqa: E402
from sagemaker.lineage.association import Association  # noqa: E402
from sagemaker.lineage.context import Context  # noqa: E402
from sagemaker.lineage.query import (  # noqa: E402
    LineageEntityEnum,
    LineageFilter,
    LineageQuery,
    LineageQueryDirectionEnum,
    LineageSourceEnum,
)
from sagemaker.session import Session  # noqa: E402

boto_session = boto3.Session(region_name="us-east-1")
session = Session(
    boto_session=boto_session,
    sagemaker_client=boto_session.client("sagemaker"),
    sagemaker_featurestore_runtime_client=boto_session.client("sagemaker-featurestore-runtime"),
)
seen = {}

data = Artifact.create(
    artifact_name="train-data",
    source_uri="s3://bucket/train.csv",
    artifact_type="DataSet",
    properties={"rows": "1000"},
    sagemaker_session=session,
)
job = Action.create(
    action_name="sdk-training",
    source_uri="s3://bucket/job",
    action_type="TrainingJob",
    status="Completed",
    sagemaker_session=session,
)
model = Artifact.create(
    artifact_name="model",
    source_uri="s3://bucket/model.tar.gz",
    artifact_type="Model",
    sagemaker_session=session,
)
endpoint = Context.create(
    context_name="sdk-endpoint",
    source_uri="arn:aws:sagemaker:us-east-1:000000000000:endpoint/e",
    context_type="Endpoint",
    description="serving",
    sagemaker_session=session,
)
Association.create(source_arn=data.artifact_arn, destination_arn=job.action_arn, association_type="ContributedTo", sagemaker_session=session)
Association.create(source_arn=job.action_arn, destination_arn=model.artifact_arn, association_type="Produced", sagemaker_session=session)
Association.create(source_arn=model.artifact_arn, destination_arn=endpoint.context_arn, association_type="ContributedTo", sagemaker_session=session)

loaded = Artifact.load(artifact_arn=data.artifact_arn, sagemaker_session=session)
seen["loaded"] = {"name": loaded.artifact_name, "type": loaded.artifact_type, "uri": loaded.source.source_uri, "properties": loaded.properties}
seen["listed"] = [a.artifact_arn for a in Artifact.list(source_uri="s3://bucket/train.csv", sagemaker_session=session)] == [data.artifact_arn]

# Which data went into the endpoint?
result = LineageQuery(session).query(
    start_arns=[endpoint.context_arn],
    direction=LineageQueryDirectionEnum.ASCENDANTS,
    include_edges=True,
    query_filter=LineageFilter(entities=[LineageEntityEnum.ARTIFACT], sources=[LineageSourceEnum.DATASET]),
)
seen["datasets_upstream"] = [v.arn for v in result.vertices] == [data.artifact_arn]
seen["edges"] = sorted((e.source_arn.split(":")[-1], e.destination_arn.split(":")[-1], e.association_type) for e in result.edges)
lineage_object = result.vertices[0].to_lineage_object()
seen["vertex_object"] = type(lineage_object).__name__, lineage_object.artifact_arn == data.artifact_arn

everything = LineageQuery(session).query(start_arns=[data.artifact_arn], direction=LineageQueryDirectionEnum.DESCENDANTS)
seen["downstream"] = sorted(v.lineage_entity for v in everything.vertices)

ctx = Context.load(context_name="sdk-endpoint", sagemaker_session=session)
ctx.description = "serving v2"
ctx.properties = {"stage": "prod"}
ctx.save()
again = Context.load(context_name=endpoint.context_arn, sagemaker_session=session)
seen["context_saved"] = {"description": again.description, "properties": again.properties}

# Deleting with disassociate removes the associations first, through ListAssociations.
model.delete(disassociate=True)
seen["after_model_delete"] = len(list(Association.list(source_arn=job.action_arn, sagemaker_session=session)))
job.delete(disassociate=True)
data.delete()
endpoint.delete()

# The feature processor's check: a feature group has its pipeline contexts.
sm = boto_session.client("sagemaker")
sm.create_feature_group(
    FeatureGroupName="lineage-orders",
    RecordIdentifierFeatureName="id",
    EventTimeFeatureName="ts",
    FeatureDefinitions=[{"FeatureName": "id", "FeatureType": "String"}, {"FeatureName": "ts", "FeatureType": "String"}],
    OnlineStoreConfig={"EnableOnlineStore": True},
)
# The feature processor package's __init__ loads its Spark machinery (pyspark and the
# feature_store_pyspark jars), which its lineage lookups do not use: register the package
# without running that __init__, then import the SDK's own lineage handler from it.
import importlib.util  # noqa: E402
import types  # noqa: E402

import sagemaker.feature_store  # noqa: E402

_package = "sagemaker.feature_store.feature_processor"
_spec = importlib.util.find_spec(_package)
_module = types.ModuleType(_package)
_module.__path__ = list(_spec.submodule_search_locations)
sys.modules[_package] = _module
from sagemaker.feature_store.feature_processor.lineage._feature_group_lineage_entity_handler import (  # noqa: E402
    FeatureGroupLineageEntityHandler,
)

contexts = FeatureGroupLineageEntityHandler.retrieve_feature_group_context_arns("lineage-orders", session)
created = int(sm.describe_feature_group(FeatureGroupName="lineage-orders")["CreationTime"].timestamp())
seen["feature_group_contexts"] = {
    "name": contexts.name,
    "pipeline": contexts.pipeline_context_arn.rsplit("/", 1)[1],
    "version": contexts.pipeline_version_context_arn.rsplit("/", 1)[1],
    "epoch": created,
}
seen["version_type"] = Context.load(context_name=contexts.pipeline_version_context_arn, sagemaker_session=session).context_type
sm.delete_feature_group(FeatureGroupName="lineage-orders")
try:
    Context.load(context_name=contexts.pipeline_context_arn, sagemaker_session=session)
    seen["contexts_after_delete"] = "present"
except Exception as e:  # noqa: BLE001
    seen["contexts_after_delete"] = getattr(e, "response", {}).get("Error", {}).get("Code", repr(e))

print(json.dumps(seen), file=RESULT_OUT)
