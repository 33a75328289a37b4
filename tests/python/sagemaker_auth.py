"""boto3 against a Quiver server with --auth: requests signed with AWS Signature V4 by boto3
itself, using Quiver access keys.

    python sagemaker_auth.py ENDPOINT ROOT_KEY ROOT_SECRET READER_KEY READER_SECRET \
        NOBODY_KEY NOBODY_SECRET

The reader's policy allows sagemaker:GetRecord on the `authz` group and denies its `ssn`
feature, and allows querying and describing the group's lineage contexts and describing and logging metrics to the runs named authz-*; nobody has no policy, and calls every operation Quiver serves (nobody_<Operation>). Prints {"results": {name: outcome}} as JSON, each outcome "ok" or
"<error code> <HTTP status>", for the Rust test to assert on.
"""

import json
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, ROOT_KEY, ROOT_SECRET, READER_KEY, READER_SECRET, NOBODY_KEY, NOBODY_SECRET = sys.argv[1:8]


def metrics_client(key, secret):
    """SageMaker Metrics (BatchPutMetrics), on the same endpoint."""
    return boto3.client("sagemaker-metrics", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def clients(key, secret, **config):
    session = dict(
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, **config),
    )
    if key is not None:
        session.update(aws_access_key_id=key, aws_secret_access_key=secret)
    return (
        boto3.client("sagemaker", **session),
        boto3.client("sagemaker-featurestore-runtime", **session),
    )


RESULTS = {}


def outcome(name, call):
    try:
        call()
        RESULTS[name] = "ok"
    except ClientError as e:
        RESULTS[name] = "%s %s" % (
            e.response["Error"]["Code"],
            e.response["ResponseMetadata"]["HTTPStatusCode"],
        )


root_sm, root_rt = clients(ROOT_KEY, ROOT_SECRET)
record = [
    {"FeatureName": "id", "ValueAsString": "u1"},
    {"FeatureName": "ts", "ValueAsString": "2024-01-01T00:00:00Z"},
    {"FeatureName": "age", "ValueAsString": "42"},
    {"FeatureName": "ssn", "ValueAsString": "123-45-6789"},
]
outcome(
    "root_create",
    lambda: root_sm.create_feature_group(
        FeatureGroupName="authz",
        RecordIdentifierFeatureName="id",
        EventTimeFeatureName="ts",
        FeatureDefinitions=[
            {"FeatureName": "id", "FeatureType": "String"},
            {"FeatureName": "ts", "FeatureType": "String"},
            {"FeatureName": "age", "FeatureType": "Integral"},
            {"FeatureName": "ssn", "FeatureType": "String"},
        ],
        OnlineStoreConfig={"EnableOnlineStore": True},
    ),
)
outcome("root_put", lambda: root_rt.put_record(FeatureGroupName="authz", Record=record))
outcome(
    "root_get",
    lambda: root_rt.get_record(FeatureGroupName="authz", RecordIdentifierValueAsString="u1"),
)
outcome(
    "root_batch_get",
    lambda: root_rt.batch_get_record(
        Identifiers=[{"FeatureGroupName": "authz", "RecordIdentifiersValueAsString": ["u1"]}]
    ),
)
outcome("root_list", lambda: root_sm.list_feature_groups())

wrong_sm, wrong_rt = clients(ROOT_KEY, "not-the-secret")
outcome("wrong_secret_list", lambda: wrong_sm.list_feature_groups())
outcome(
    "wrong_secret_get",
    lambda: wrong_rt.get_record(FeatureGroupName="authz", RecordIdentifierValueAsString="u1"),
)
unknown_sm, _ = clients("AKQVNOSUCHKEY", "x")
outcome("unknown_key_list", lambda: unknown_sm.list_feature_groups())
unsigned_sm, unsigned_rt = clients(None, None, signature_version=UNSIGNED)
outcome("unsigned_list", lambda: unsigned_sm.list_feature_groups())
outcome(
    "unsigned_get",
    lambda: unsigned_rt.get_record(FeatureGroupName="authz", RecordIdentifierValueAsString="u1"),
)

reader_sm, reader_rt = clients(READER_KEY, READER_SECRET)
outcome(
    "reader_get_age",
    lambda: reader_rt.get_record(
        FeatureGroupName="authz", RecordIdentifierValueAsString="u1", FeatureNames=["age"]
    ),
)
outcome(
    "reader_get_ssn",
    lambda: reader_rt.get_record(
        FeatureGroupName="authz", RecordIdentifierValueAsString="u1", FeatureNames=["ssn"]
    ),
)
outcome(
    "reader_get_all",
    lambda: reader_rt.get_record(FeatureGroupName="authz", RecordIdentifierValueAsString="u1"),
)
outcome("reader_put", lambda: reader_rt.put_record(FeatureGroupName="authz", Record=record))
outcome("reader_describe", lambda: reader_sm.describe_feature_group(FeatureGroupName="authz"))
outcome(
    "reader_batch_get_ssn",
    lambda: reader_rt.batch_get_record(
        Identifiers=[
            {
                "FeatureGroupName": "authz",
                "RecordIdentifiersValueAsString": ["u1"],
                "FeatureNames": ["age", "ssn"],
            }
        ]
    ),
)

# Lineage: the reader may query and describe the group's contexts (which Quiver made with the
# group), nothing else.
contexts = root_sm.list_contexts(ContextType="FeatureGroup")["ContextSummaries"]
group_context = [c["ContextArn"] for c in contexts if c["ContextName"].startswith("authz-")][0]
artifact = root_sm.create_artifact(ArtifactType="DataSet", Source={"SourceUri": "s3://b/authz"})["ArtifactArn"]
outcome("root_add_association", lambda: root_sm.add_association(SourceArn=artifact, DestinationArn=group_context))
outcome("reader_query_context", lambda: reader_sm.query_lineage(StartArns=[group_context], Direction="Ascendants"))
outcome("reader_describe_context", lambda: reader_sm.describe_context(ContextName=group_context))
outcome("reader_query_artifact", lambda: reader_sm.query_lineage(StartArns=[artifact]))
outcome("reader_create_artifact", lambda: reader_sm.create_artifact(ArtifactType="t", Source={"SourceUri": "u"}))
outcome("reader_delete_association", lambda: reader_sm.delete_association(SourceArn=artifact, DestinationArn=group_context))

# Experiments: the reader may describe and log metrics to the runs named authz-*, nothing else.
for run in ["authz-run", "other-run"]:
    root_sm.create_trial_component(TrialComponentName=run)
metric = [{"MetricName": "loss", "Timestamp": 1_700_000_000, "Value": 0.5}]
reader_metrics = metrics_client(READER_KEY, READER_SECRET)
outcome("reader_describe_run", lambda: reader_sm.describe_trial_component(TrialComponentName="authz-run"))
outcome("reader_describe_other_run", lambda: reader_sm.describe_trial_component(TrialComponentName="other-run"))
outcome("reader_put_metrics", lambda: reader_metrics.batch_put_metrics(TrialComponentName="authz-run", MetricData=metric))
outcome("reader_put_other_metrics",
        lambda: reader_metrics.batch_put_metrics(TrialComponentName="other-run", MetricData=metric))
outcome("reader_create_experiment", lambda: reader_sm.create_experiment(ExperimentName="authz-exp"))

# AutoML: the reader may create jobs, but reading their data is a query, which it may not.
def automl_job(name, uri):
    return reader_sm.create_auto_ml_job_v2(
        AutoMLJobName=name,
        AutoMLJobInputDataConfig=[{"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}],
        OutputDataConfig={"S3OutputPath": "file:///tmp"}, RoleArn="arn:aws:iam::000000000000:role/r",
        AutoMLProblemTypeConfig={"TabularJobConfig": {"TargetAttributeName": "age"}})


group_arn = root_sm.describe_feature_group(FeatureGroupName="authz")["FeatureGroupArn"]
outcome("reader_automl_from_group", lambda: automl_job("from-group", group_arn))
outcome("reader_automl_from_file", lambda: automl_job("from-file", "file:///etc/passwd.csv"))

nobody_sm, nobody_rt = clients(NOBODY_KEY, NOBODY_SECRET)
nobody_metrics = metrics_client(NOBODY_KEY, NOBODY_SECRET)
G = {"FeatureGroupName": "authz"}
EVERY_OPERATION = [
    (nobody_sm.create_feature_group, dict(
        FeatureGroupName="x", RecordIdentifierFeatureName="id", EventTimeFeatureName="ts",
        FeatureDefinitions=[{"FeatureName": "id", "FeatureType": "String"},
                            {"FeatureName": "ts", "FeatureType": "String"}])),
    (nobody_sm.describe_feature_group, G),
    (nobody_sm.list_feature_groups, {}),
    (nobody_sm.update_feature_group, dict(G, FeatureAdditions=[{"FeatureName": "z", "FeatureType": "String"}])),
    (nobody_sm.delete_feature_group, G),
    (nobody_sm.update_feature_metadata, dict(G, FeatureName="age", Description="d")),
    (nobody_sm.describe_feature_metadata, dict(G, FeatureName="age")),
    (nobody_sm.search, dict(Resource="FeatureGroup")),
    (nobody_rt.put_record, dict(G, Record=record)),
    (nobody_rt.get_record, dict(G, RecordIdentifierValueAsString="u1")),
    (nobody_rt.delete_record, dict(G, RecordIdentifierValueAsString="u1", EventTime="2024-01-02T00:00:00Z")),
    (nobody_rt.batch_get_record, dict(Identifiers=[{"FeatureGroupName": "authz", "RecordIdentifiersValueAsString": ["u1"]}])),
    (nobody_sm.create_artifact, dict(ArtifactType="t", Source={"SourceUri": "u"})),
    (nobody_sm.describe_artifact, dict(ArtifactArn=artifact)),
    (nobody_sm.list_contexts, {}),
    (nobody_sm.add_association, dict(SourceArn=artifact, DestinationArn=group_context)),
    (nobody_sm.query_lineage, dict(StartArns=[group_context])),
    (nobody_sm.create_experiment, dict(ExperimentName="x")),
    (nobody_sm.list_trials, {}),
    (nobody_sm.describe_trial_component, dict(TrialComponentName="authz-run")),
    (nobody_sm.associate_trial_component, dict(TrialComponentName="authz-run", TrialName="t")),
    (nobody_metrics.batch_put_metrics, dict(TrialComponentName="authz-run", MetricData=metric)),
    (nobody_sm.create_auto_ml_job_v2, dict(
        AutoMLJobName="x", AutoMLJobInputDataConfig=[{"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "file:///tmp/x.csv"}}}],
        OutputDataConfig={"S3OutputPath": "file:///tmp"}, RoleArn="arn:aws:iam::000000000000:role/r",
        AutoMLProblemTypeConfig={"TabularJobConfig": {"TargetAttributeName": "y"}})),
    (nobody_sm.describe_auto_ml_job_v2, dict(AutoMLJobName="x")),
    (nobody_sm.list_auto_ml_jobs, {}),
    (nobody_sm.list_candidates_for_auto_ml_job, dict(AutoMLJobName="x")),
    (nobody_sm.stop_auto_ml_job, dict(AutoMLJobName="x")),
]
for method, params in EVERY_OPERATION:
    outcome("nobody_" + method.__name__, lambda: method(**params))

# Quiver's own runtime routes (not in boto3's model), signed by botocore's signer.
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
import urllib.request

for path, body in [
    ("/FeatureGroup/authz/ListRecords", "{}"),
    ("/BatchWriteRecord", json.dumps({"Entries": [dict(G, Record=record)]})),
]:
    request = AWSRequest(method="POST", url=ENDPOINT + path, data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(NOBODY_KEY, NOBODY_SECRET), "sagemaker", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=body.encode(), method="POST",
                                 headers=dict(prepared.headers))
    try:
        urllib.request.urlopen(raw)
        RESULTS["nobody_" + path] = "ok"
    except urllib.error.HTTPError as e:
        RESULTS["nobody_" + path] = "%s %s" % (e.headers.get("x-amzn-ErrorType", "?"), e.code)

print(json.dumps({"results": RESULTS}))
